"""Whole test collections: :func:`load_collection` finds the document, query and qrels files of a
BEIR, MS MARCO-style or SMART directory and reads them with the readers of this package.

Dependency direction: this is the only module of :mod:`rankstack.data.formats` that uses
:mod:`rankstack.data.docstore` (for ``store="docstore"``). The docstore imports only
:func:`~rankstack.data.formats.docs.read_docs`, and :mod:`~rankstack.data.formats.docs` never
imports the docstore, so the edges go one way: ``formats.collection -> docstore -> formats.docs``
(``tests/data/test_imports.py`` checks that ``rankstack.data`` has no import cycle). The docstore is
imported inside :func:`load_collection`: the docstore imports ``formats.docs`` when it is loaded,
which loads this package, so this package must not need the docstore while it is being loaded.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from rankstack.data.formats._lines import PathLike, _strip_zeros
from rankstack.data.formats.docs import read_docs
from rankstack.data.formats.qrels import _qrels_nocopy, read_qrels
from rankstack.data.formats.queries import read_queries
from rankstack.data.records import Collection, Qrels, Query
from rankstack.errors import ConfigError

_SMART_DOCS = ("cran.all.1400", "cisi.all", "cacm.all", "med.all", "adi.all", "time.all", "npl.all")
_SMART_QRY = ("cran.qry", "cisi.qry", "query.text", "med.qry", "adi.qry", "time.que")
_SMART_REL = ("cran.qrels", "cranqrel", "cisi.rel", "qrels.text", "med.rel", "adi.rel", "time.rel")


def _find(d: Path, names: Iterable[str]) -> Path | None:
    by_lower = {p.name.lower(): p for p in d.iterdir() if p.is_file()}
    for n in names:
        for cand in (n, n + ".gz"):
            if cand in by_lower:
                return by_lower[cand]
    return None


def load_collection(
    path: PathLike,
    *,
    split: str = "test",
    docs: PathLike | None = None,
    queries: PathLike | None = None,
    qrels: PathLike | None = None,
    store: Literal["memory", "docstore"] = "memory",
    cache_dir: PathLike | None = None,
    field: Literal["title", "desc", "title+desc", "narr"] = "title",
    cranfield_scale: Literal["irds", "cleverdon", "raw"] = "irds",
    renumber: bool | Literal["auto"] = "auto",
    all_queries: bool = False,
    name: str | None = None,
) -> Collection:
    """Load a test collection directory into a :class:`Collection`.

    Layouts recognised (or pass ``docs``/``queries``/``qrels`` paths explicitly):

    * BEIR: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``. As BEIR's
      ``GenericDataLoader`` does, queries are restricted to those judged in the split unless
      ``all_queries=True``.
    * MS MARCO style: ``collection.tsv``, ``queries.tsv`` (or ``topics.*``), ``qrels.txt``/``qrels.tsv``.
    * SMART: ``cran.all.1400`` + ``cran.qry`` + ``cran.qrels`` (also CISI/CACM/MED/ADI names).
      When the qrels' query ids only match the query file's after stripping leading zeros (CACM's
      ``01``), both are normalised; ``meta["query_ids_stripped"]`` says so.

    ``store="memory"`` puts documents in a ``dict`` (id -> Document); ``store="docstore"`` builds or
    reuses an on-disk :class:`~rankstack.data.docstore.DocStore` under ``cache_dir``.
    ``meta`` records the files read, the layout and counts.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or directory")
    layout = "explicit"
    qrels_fmt = "auto"
    if root.is_dir():
        if (root / "corpus.jsonl").exists() or (root / "corpus.jsonl.gz").exists():
            layout = "beir"
            docs = docs or _find(root, ["corpus.jsonl"])
            queries = queries or _find(root, ["queries.jsonl"])
            if qrels is None:
                qd = root / "qrels"
                qrels = _find(qd, [f"{split}.tsv"]) if qd.is_dir() else None
                if qrels is None:
                    have = sorted(p.stem for p in qd.glob("*.tsv")) if qd.is_dir() else []
                    raise FileNotFoundError(f"{root}: no qrels/{split}.tsv (splits present: {', '.join(have) or 'none'})")
        elif _find(root, ["collection.tsv"]):
            layout = "msmarco"
            docs = docs or _find(root, ["collection.tsv"])
            queries = queries or _find(root, ["queries.tsv", f"queries.{split}.tsv", "topics.tsv"])
            qrels = qrels or _find(root, ["qrels.txt", "qrels.tsv", f"qrels.{split}.tsv", f"qrels.{split}.txt"])
        elif _find(root, _SMART_DOCS):
            layout = "smart"
            docs = docs or _find(root, _SMART_DOCS)
            queries = queries or _find(root, _SMART_QRY)
            qrels = qrels or _find(root, _SMART_REL)
            if qrels is not None and Path(qrels).name.lower().startswith("cran"):
                qrels_fmt = "cranfield"
        else:
            raise FileNotFoundError(f"{root}: not a BEIR (corpus.jsonl), MS MARCO (collection.tsv) or SMART "
                                    "collection directory; pass docs=, queries=, qrels= paths")
    elif docs is None:
        docs = root
    if docs is None:
        raise FileNotFoundError(f"{root}: no document file found")
    meta: dict[str, Any] = {"layout": layout, "docs_path": str(docs)}

    qlist: list[Query] = []
    if queries is not None:
        qlist = read_queries(queries, field=field, renumber=renumber)
        meta["queries_path"] = str(queries)
    qr: Qrels | None = None
    if qrels is not None:
        qr = read_qrels(qrels, qrels_fmt, cranfield_scale=cranfield_scale)
        meta["qrels_path"] = str(qrels)
        qids = {q.id for q in qlist}
        if qlist and not set(qr) <= qids:
            sq = {_strip_zeros(q) for q in qids}
            if {_strip_zeros(q) for q in qr} <= sq:
                qlist = [Query(_strip_zeros(q.id), q.text) for q in qlist]
                qr = _qrels_nocopy({_strip_zeros(q): d for q, d in qr.items()}, qr.name)
                meta["query_ids_stripped"] = True
            else:
                missing = sorted(set(qr) - qids)
                warnings.warn(f"{qrels}: {len(missing)} judged queries are not in {queries} "
                              f"(e.g. {', '.join(missing[:5])})", stacklevel=2)
        if layout == "beir" and not all_queries:
            qlist = [q for q in qlist if q.id in qr]
    if store == "memory":
        dmap: Any = {d.id: d for d in read_docs(docs)}
    elif store == "docstore":
        # imported here, not at the top: the docstore imports formats.docs while it loads (see the
        # module docstring); the edge still goes one way, the docstore never imports this module
        from rankstack.data.docstore import DocStore

        if cache_dir is None:
            raise ConfigError("store='docstore' needs cache_dir=")
        dmap = DocStore.from_path(docs, cache_dir)
    else:
        raise ConfigError(f"unknown store {store!r}; known: memory, docstore")
    meta.update(num_docs=len(dmap), num_queries=len(qlist),
                num_judgments=sum(len(v) for v in qr.values()) if qr is not None else 0)
    if layout == "beir":
        meta["split"] = split
    return Collection(name or (root.name if root.is_dir() else root.stem), dmap, qlist, qr, meta)
