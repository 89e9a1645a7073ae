"""Adapter from `ir_datasets <https://ir-datasets.com>`_ datasets to rankstack records, **local data only**.

``ir_datasets`` is optional (``pip install ir_datasets``) and is imported only when an id is loaded.
rankstack never lets it download: the files must already be in its home directory
(``IR_DATASETS_HOME``, default ``~/.ir_datasets``), where ir_datasets itself would have put them.

* Before reading, :func:`missing_files` walks the dataset's sources (ir_datasets' ``Download`` and
  ``Cache`` objects) and lists every file that is neither downloaded nor extracted; if any is missing,
  :class:`~rankstack.errors.NotFoundError` names each file, where ir_datasets wants it, and the URL it
  comes from. A document store ir_datasets has already built (``docs.pklz4``) counts as present.
* While reading, :func:`offline` refuses any download ir_datasets still attempts (no network call is
  made, nothing hangs) with the same error. An existing file is not re-hashed: ir_datasets checks the
  MD5 only while it downloads, so a copy laid out by hand must be the file it names.
* ir_datasets fixes its paths when it is first imported: set ``IR_DATASETS_HOME`` before that.

What ir_datasets needs on disk (``$H`` = ``IR_DATASETS_HOME``):

* ``beir/<name>`` and ``beir/<name>/<split>``: the BEIR zip as ``$H/beir/<name>/source.zip``
  (holding ``<name>/corpus.jsonl``, ``<name>/queries.jsonl``, ``<name>/qrels/<split>.tsv``); once read,
  ``queries.json``, ``<split>.qrels`` and ``docs.pklz4`` next to it replace it.
* ``cranfield``: ``$H/cranfield/cran.tar.gz`` (``cran.all.1400``, ``cran.qry``, ``cranqrel``), or the
  extracted ``docs.txt``, ``queries.txt``, ``qrels.txt`` in ``$H/cranfield/``.

Field mapping (ir_datasets records are namedtuples): see :mod:`rankstack.data.coerce`.
"""

from __future__ import annotations

import os
import threading
import types
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from rankstack.data.coerce import as_doc, as_qrels, as_queries, as_query
from rankstack.data.records import Collection, Document, FingerprintedDocs, Qrels, Query
from rankstack.errors import ConfigError, FormatError, MissingDependencyError, NotFoundError

__all__ = [
    "IrdsDocs", "from_ir_datasets", "irds_doc", "irds_query", "open_dataset", "is_registered", "home",
    "missing_files", "require_local", "offline", "load_collection", "load_queries", "load_qrels", "PARTS",
]

#: the entity types rankstack reads from an ir_datasets dataset
PARTS = ("docs", "queries", "qrels")


def _require_irds() -> Any:
    try:
        import ir_datasets
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("ir_datasets ids need the ir_datasets package: pip install ir_datasets") from e
    return ir_datasets


def irds_doc(rec: Any) -> Document:
    """One ir_datasets document record -> :class:`Document` (:func:`rankstack.data.coerce.as_doc`)."""
    return as_doc(rec)


def irds_query(rec: Any, field: str = "title") -> Query:
    """One ir_datasets query record -> :class:`Query` (:func:`rankstack.data.coerce.as_query`)."""
    return as_query(rec, field)


def home() -> Path:
    """ir_datasets' home directory as the environment gives it now (``IR_DATASETS_HOME``)."""
    return Path(os.environ.get("IR_DATASETS_HOME") or Path.home() / ".ir_datasets")


def is_registered(dsid: str) -> bool:
    """Whether ir_datasets knows the id (imports ir_datasets; ``False`` if it is not installed)."""
    try:
        irds = _require_irds()
    except MissingDependencyError:
        return False
    try:
        irds.load(dsid)
    except KeyError:
        return False
    return True


def open_dataset(dsid: str) -> Any:
    """The ir_datasets ``Dataset`` of an id; :class:`NotFoundError` (with near ids) if it has none."""
    irds = _require_irds()
    try:
        return irds.load(dsid)
    except KeyError:
        stem = dsid.rsplit("/", 1)[0]
        near = sorted(k for k in irds.registry if k == stem or k.startswith(stem + "/"))[:12]
        hint = f"; ids under {stem!r}: {', '.join(near)}" if near else ""
        raise NotFoundError(f"ir_datasets has no dataset {dsid!r}{hint}") from None


# -- what is on disk ------------------------------------------------------------------------------
def _download_classes() -> tuple[Any, Any, Any]:
    from ir_datasets.util import Cache
    from ir_datasets.util.download import Download, LocalDownload

    return Download, LocalDownload, Cache


def _present(dl: Any, local_cls: Any) -> bool:
    if getattr(dl, "_path", None) is not None:
        return True
    cp = getattr(dl, "_cache_path", None)
    if cp is not None and cp != os.devnull and os.path.exists(cp):
        return True
    return any(isinstance(m, local_cls) and m._path.exists() for m in getattr(dl, "mirrors", ()))


def _wanted(dl: Any, local_cls: Any) -> str:
    """``PATH (from URL, md5 ...)`` for one ir_datasets ``Download``."""
    locals_ = [str(m._path) for m in dl.mirrors if isinstance(m, local_cls)]
    urls = [str(getattr(m, "url", None) or getattr(m, "uri", "")) for m in dl.mirrors if not isinstance(m, local_cls)]
    cp = getattr(dl, "_cache_path", None)
    where = str(cp) if cp else (locals_[0] if locals_ else "(a temporary download)")
    extra = [f"or {p}" for p in locals_ if p != where]
    if urls:
        extra.append(f"from {urls[0]}")
    if getattr(dl, "expected_md5", None):
        extra.append(f"md5 {dl.expected_md5}")
    return f"{where} ({', '.join(extra)})" if extra else where


_LEAVES = (str, bytes, int, float, bool, type(None), Path, type, types.FunctionType, types.MethodType,
           types.BuiltinFunctionType, types.ModuleType)


def _docs_store_built(handler: Any) -> bool:
    store_fn = getattr(handler, "docs_store", None)
    if not callable(store_fn):
        return False
    try:
        store = store_fn()
        return bool(store.built())
    except Exception:  # noqa: BLE001 - a store that cannot tell is treated as not built
        return False


def missing_files(dataset: Any, parts: tuple[str, ...] = PARTS) -> list[str]:
    """The files ir_datasets would have to download to provide ``parts`` of ``dataset`` (none: local).

    Each entry is ``PATH (from URL, md5 ...)``. Walks the handlers' attributes down to ir_datasets'
    ``Download`` objects; a ``Cache`` whose file exists, and a built document store, stop the walk.
    """
    return _scan(dataset, parts)[0]


def _scan(dataset: Any, parts: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(missing downloads, the missing extracted ``Cache`` files that would each stand in for one)."""
    download_cls, local_cls, cache_cls = _download_classes()
    out: list[str] = []
    extracted: list[str] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if depth > 16 or isinstance(obj, _LEAVES):
            return
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, download_cls):
            if not _present(obj, local_cls):
                w = _wanted(obj, local_cls)
                if w not in out:
                    out.append(w)
            return
        if isinstance(obj, cache_cls):
            if Path(obj._path).exists():
                return
            extracted.append(str(obj._path))
        if isinstance(obj, (list, tuple, set, frozenset)):
            for x in obj:
                visit(x, depth + 1)
            return
        if isinstance(obj, dict):
            for x in obj.values():
                visit(x, depth + 1)
            return
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            for x in list(attrs.values()):
                visit(x, depth + 1)

    for part in parts:
        if not dataset.has(part):
            continue
        handler = getattr(dataset, f"{part}_handler")()
        if part == "docs" and _docs_store_built(handler):
            continue
        visit(handler, 0)
    return out, extracted


def _not_local(dsid: str, wanted: list[str], extracted: Sequence[str] = ()) -> NotFoundError:
    h = home()
    stale = [w for w in wanted if not w.startswith(str(h))]
    note = ""
    if stale and os.environ.get("IR_DATASETS_HOME"):
        note = (" (ir_datasets fixed its paths when it was first imported, under another IR_DATASETS_HOME: "
                "set IR_DATASETS_HOME before the first import)")
    return NotFoundError(
        f"ir_datasets dataset {dsid!r} is not available locally, and rankstack does not download it. ir_datasets "
        f"wants, under IR_DATASETS_HOME={h}: {'; '.join(wanted)}{note}"
        + (f" (it also reads its own extracted copies instead, where present: {', '.join(extracted)})"
           if extracted else "")
        + ". Download the file(s) on a machine with "
        "network access and copy them to exactly these paths (ir_datasets does not re-hash an existing file), "
        "or point IR_DATASETS_HOME at a folder that has them"
    )


def require_local(dataset: Any, dsid: str, parts: tuple[str, ...] = PARTS) -> None:
    """:class:`NotFoundError` listing the files, if ``parts`` of ``dataset`` are not all on disk."""
    wanted, extracted = _scan(dataset, parts)
    if wanted:
        raise _not_local(dsid, wanted, extracted)


class _Refused(Exception):
    """Raised inside ir_datasets where it would download; :func:`offline` turns it into NotFoundError."""


_GUARD = threading.RLock()


@contextmanager
def offline(dsid: str = "ir_datasets") -> Iterator[None]:
    """Within the block, ir_datasets cannot download: a missing file raises :class:`NotFoundError` at once.

    It replaces, for the block's duration and under a lock, the methods through which ir_datasets goes
    to the network (``Download.path`` for a missing file, the HTTP, Google Drive and bucket streams).
    """
    _require_irds()
    from ir_datasets.util import download as dl

    download_cls, local_cls, _ = _download_classes()
    refused: list[str] = []
    orig_path = download_cls.path

    def path(self: Any, force: bool = True) -> Any:
        if force and not _present(self, local_cls):
            refused.append(_wanted(self, local_cls))
            raise _Refused(refused[-1])
        return orig_path(self, force)

    def no_network(self: Any, *args: Any, **kwargs: Any) -> Any:
        refused.append(str(getattr(self, "url", None) or getattr(self, "uri", "a URL")))
        raise _Refused(refused[-1])

    patches = [(download_cls, "path", path), (dl.RequestsDownload, "__iter__", no_network),
               (dl.RequestsDownload, "stream", no_network), (dl.GoogleDriveDownload, "stream", no_network),
               (dl.GoogleCloudBucketStream, "stream", no_network)]
    with _GUARD:
        saved = [(cls, name, cls.__dict__[name]) for cls, name, _ in patches]
        for cls, name, fn in patches:
            setattr(cls, name, fn)
        try:
            yield
        except Exception as e:
            if refused:
                raise _not_local(dsid, list(dict.fromkeys(refused))) from e
            raise
        finally:
            for cls, name, fn in reversed(saved):
                setattr(cls, name, fn)


@contextmanager
def _reading(dsid: str) -> Iterator[None]:
    with offline(dsid):
        try:
            yield
        except (RuntimeError, AssertionError) as e:
            raise FormatError(f"ir_datasets could not read the local files of {dsid!r} under "
                              f"IR_DATASETS_HOME={home()}: {type(e).__name__}: {str(e)[:300]}") from e


# -- loading --------------------------------------------------------------------------------------
class IrdsDocs(Mapping[str, Document]):
    """A read-only ``doc_id -> Document`` view over an ir_datasets docs store (lazy, not in memory)."""

    def __init__(self, dataset: Any):
        self._ds = dataset
        self._store: Any = None

    def _docstore(self) -> Any:
        if self._store is None:
            self._store = self._ds.docs_store()
        return self._store

    def __getitem__(self, doc_id: str) -> Document:
        try:
            return as_doc(self._docstore().get(doc_id))
        except KeyError:
            raise NotFoundError(f"document {doc_id!r} is not in the ir_datasets collection") from None

    def __iter__(self) -> Iterator[str]:
        for d in self._ds.docs_iter():
            yield d.doc_id

    def __len__(self) -> int:
        n = self._ds.docs_count()
        if n is None:
            n = sum(1 for _ in self._ds.docs_iter())
        return int(n)


def _memory_docs(dataset: Any, dsid: str | None) -> FingerprintedDocs:
    out = FingerprintedDocs()
    for rec in dataset.docs_iter():
        d = as_doc(rec)
        if d.id in out:
            raise FormatError(f"ir_datasets dataset {dsid}: duplicate document id {d.id!r}")
        out[d.id] = d
    return out


def from_ir_datasets(
    dataset: Any,
    *,
    docs: Literal["memory", "lazy"] = "memory",
    field: Literal["title", "desc", "title+desc", "narr"] = "title",
    name: str | None = None,
) -> Collection:
    """A :class:`Collection` from an ir_datasets dataset object or id (``"cranfield"``, ``"beir/scifact/test"``).

    ``docs="memory"`` converts every document into a ``dict``; ``docs="lazy"`` wraps the dataset's
    own docs store (:class:`IrdsDocs`). Data that is not on disk raises :class:`NotFoundError` naming
    the files ir_datasets wants (see the module docstring); nothing is downloaded.
    """
    if docs not in ("memory", "lazy"):
        raise ConfigError(f"unknown docs mode {docs!r}; known: memory, lazy")
    if isinstance(dataset, str):
        dsid: str | None = dataset
        dataset = open_dataset(dataset)
    else:
        dsid = getattr(dataset, "dataset_id", lambda: None)() if hasattr(dataset, "dataset_id") else None
    label = dsid or "ir_datasets"
    if hasattr(dataset, "_constituents"):
        require_local(dataset, label)
    with _reading(label):
        dmap: Any = None
        if dataset.has_docs():
            dmap = _memory_docs(dataset, dsid) if docs == "memory" else IrdsDocs(dataset)
        queries = as_queries(dataset.queries_iter(), field) if dataset.has_queries() else []
        qrels = as_qrels(dataset.qrels_iter(), name=f"{label}-qrels") if dataset.has_qrels() else None
    meta = {"source": "ir_datasets", "dataset_id": dsid, "num_queries": len(queries), "runs": {},
            "ir_datasets_home": str(home())}
    return Collection(name or str(label), dmap, queries, qrels, meta)


def load_collection(dsid: str, *, name: str | None = None, docs: Literal["memory", "lazy"] = "memory",
                    field: Literal["title", "desc", "title+desc", "narr"] = "title") -> Collection:
    """:func:`from_ir_datasets` of an id (checked to be local first); ``name`` defaults to the id."""
    return from_ir_datasets(dsid, docs=docs, field=field, name=name or dsid)


def load_queries(dsid: str, field: Literal["title", "desc", "title+desc", "narr"] = "title") -> list[Query]:
    """The queries of an ir_datasets id (only the query files need be on disk)."""
    ds = open_dataset(dsid)
    if not ds.has_queries():
        raise NotFoundError(f"ir_datasets dataset {dsid!r} has no queries")
    require_local(ds, dsid, ("queries",))
    with _reading(dsid):
        return as_queries(ds.queries_iter(), field)


def load_qrels(dsid: str) -> Qrels:
    """The judgments of an ir_datasets id (only the qrels files need be on disk)."""
    ds = open_dataset(dsid)
    if not ds.has_qrels():
        raise NotFoundError(f"ir_datasets dataset {dsid!r} has no qrels (a BEIR id needs its split: "
                            f"{dsid}/test)")
    require_local(ds, dsid, ("qrels",))
    with _reading(dsid):
        return as_qrels(ds.qrels_iter(), name=dsid)
