"""Adapter from `ir_datasets <https://ir-datasets.com>`_ datasets to a rankstack :class:`Collection`.

``ir_datasets`` is optional (``pip install ir_datasets``) and is imported only when this adapter is
called. It downloads data on first use; on a machine without network access the data must already be
in its home directory (``IR_DATASETS_HOME``, default ``~/.ir_datasets``).

Field mapping (ir_datasets records are namedtuples):

* documents: ``doc_id`` -> ``Document.id``; ``title`` (when the record has a string ``title``) ->
  ``Document.title``; the text is the first present of ``text``, ``body``, ``passage``, ``contents``,
  ``abstract``, else ``default_text()`` (which for some classes includes the title).
* queries: ``query_id`` -> ``Query.id``; the text is ``text`` when the record has one, else the TREC
  topic field chosen by ``field`` (``title``, ``description``, ``title+desc``, ``narrative``), else
  ``default_text()``.
* qrels: ``(query_id, doc_id, relevance)``; ``iteration`` is ignored as in trec_eval.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from rankstack.data.records import Collection, Document, Qrels, Query
from rankstack.errors import ConfigError, NotFoundError

__all__ = ["IrdsDocs", "from_ir_datasets", "irds_doc", "irds_query"]

_TEXT_FIELDS = ("text", "body", "passage", "contents", "abstract")


def _require_irds() -> Any:
    try:
        import ir_datasets
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("from_ir_datasets needs the ir_datasets package: pip install ir_datasets") from e
    return ir_datasets


def irds_doc(rec: Any) -> Document:
    """Convert one ir_datasets document namedtuple to a :class:`Document` (see the module mapping)."""
    fields = getattr(rec, "_fields", ())
    if "doc_id" not in fields:
        raise ConfigError(f"not an ir_datasets document record (no doc_id field): {type(rec).__name__}{fields}")
    title = rec.title if "title" in fields and isinstance(rec.title, str) else ""
    for f in _TEXT_FIELDS:
        if f in fields and isinstance(getattr(rec, f), str):
            return Document(str(rec.doc_id), getattr(rec, f), title)
    if hasattr(rec, "default_text"):
        return Document(str(rec.doc_id), rec.default_text(), "")
    raise ConfigError(f"{type(rec).__name__}{fields}: no text field among {_TEXT_FIELDS} and no default_text()")


_TOPIC_FIELDS = {"title": ("title",), "desc": ("description",), "title+desc": ("title", "description"),
                 "narr": ("narrative",)}


def irds_query(rec: Any, field: str = "title") -> Query:
    """Convert one ir_datasets query namedtuple to a :class:`Query` (see the module mapping)."""
    fields = getattr(rec, "_fields", ())
    if "query_id" not in fields:
        raise ConfigError(f"not an ir_datasets query record (no query_id field): {type(rec).__name__}{fields}")
    if "text" in fields:
        return Query(str(rec.query_id), rec.text)
    want = _TOPIC_FIELDS.get(field)
    if want is None:
        raise ConfigError(f"unknown topic field {field!r}; known: {', '.join(_TOPIC_FIELDS)}")
    if all(f in fields for f in want):
        return Query(str(rec.query_id), " ".join(getattr(rec, f).strip() for f in want).strip())
    if hasattr(rec, "default_text"):
        return Query(str(rec.query_id), rec.default_text())
    raise ConfigError(f"{type(rec).__name__}{fields}: no text, no {'/'.join(want)} and no default_text()")


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
            return irds_doc(self._docstore().get(doc_id))
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


def from_ir_datasets(
    dataset: Any,
    *,
    docs: Literal["memory", "lazy"] = "memory",
    field: Literal["title", "desc", "title+desc", "narr"] = "title",
    name: str | None = None,
) -> Collection:
    """A :class:`Collection` from an ir_datasets dataset object or id (``"cranfield"``, ``"beir/scifact/test"``).

    ``docs="memory"`` converts every document into a ``dict``; ``docs="lazy"`` wraps the dataset's
    own docs store (:class:`IrdsDocs`). A dataset id whose data is not available locally (and cannot
    be downloaded) raises ``RuntimeError`` saying so.
    """
    dsid = dataset if isinstance(dataset, str) else getattr(dataset, "dataset_id", lambda: None)()
    if isinstance(dataset, str):
        irds = _require_irds()
        try:
            dataset = irds.load(dataset)
        except KeyError as e:
            raise NotFoundError(f"ir_datasets has no dataset {dsid!r}") from e
    try:
        dmap: Any = None
        if dataset.has_docs():
            if docs == "memory":
                dmap = {}
                for rec in dataset.docs_iter():
                    d = irds_doc(rec)
                    if d.id in dmap:
                        raise ConfigError(f"ir_datasets dataset {dsid}: duplicate document id {d.id!r}")
                    dmap[d.id] = d
            elif docs == "lazy":
                dmap = IrdsDocs(dataset)
            else:
                raise ConfigError(f"unknown docs mode {docs!r}; known: memory, lazy")
        queries = [irds_query(q, field) for q in dataset.queries_iter()] if dataset.has_queries() else []
        qrels: Qrels | None = None
        if dataset.has_qrels():
            data: dict[str, dict[str, int]] = {}
            for r in dataset.qrels_iter():
                data.setdefault(str(r.query_id), {})[str(r.doc_id)] = int(r.relevance)
            qrels = Qrels(data, name=f"{dsid or 'irds'}-qrels")
    except (OSError, ConnectionError, RuntimeError) as e:
        raise RuntimeError(
            f"ir_datasets could not provide the data of {dsid or dataset!r}: {str(e)[:300]}. Without network access the "
            "files must already be in ir_datasets' home (IR_DATASETS_HOME, default ~/.ir_datasets)"
        ) from e
    meta = {"source": "ir_datasets", "dataset_id": dsid, "num_queries": len(queries)}
    return Collection(name or str(dsid or "ir_datasets"), dmap, queries, qrels, meta)
