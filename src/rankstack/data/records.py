"""Plain typed records: documents, queries, qrels, runs.

The lowest layer of rankstack. Nothing here imports any other rankstack module.

* ``Document``, ``Query`` and ``Qrel`` are frozen dataclasses (ir_datasets-style records).
* ``Qrels`` is a mapping ``query_id -> {doc_id: grade}`` (pytrec_eval's layout).
* ``Run`` is a mapping ``query_id -> {doc_id: score}`` plus a name and a ``stats`` dict that carries
  efficiency figures (wall time, queries/s, items scored/s) and per-query counters.

Ranking order everywhere in rankstack is trec_eval's: score descending, ties broken by document id
*descending* (``strcmp(b, a)`` in trec_eval's ``comp_sim_docno``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rankstack.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    text: str
    title: str = ""

    @property
    def contents(self) -> str:
        """Title and text joined, as indexed by default."""
        if self.title:
            return f"{self.title} {self.text}" if self.text else self.title
        return self.text


@dataclass(frozen=True, slots=True)
class Query:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Qrel:
    query_id: str
    doc_id: str
    relevance: int


@dataclass(frozen=True, slots=True)
class ScoredDoc:
    query_id: str
    doc_id: str
    score: float
    rank: int = 0


def rank_key(item: tuple[str, float]) -> tuple[float, _Desc]:
    """Sort key giving trec_eval order (score desc, doc id desc) with ``sorted(..., key)``."""
    return (-item[1], _Desc(item[0]))


class _Desc(str):
    """A string that sorts in reverse order."""

    __slots__ = ()

    def __lt__(self, other: str) -> bool:  # type: ignore[override]
        return str.__gt__(self, other)

    def __gt__(self, other: str) -> bool:  # type: ignore[override]
        return str.__lt__(self, other)


def ranked_items(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """``(doc_id, score)`` pairs in trec_eval ranking order."""
    # two stable sorts are faster than a key object: doc id desc, then score desc
    items = sorted(scores.items(), key=lambda kv: kv[0], reverse=True)
    items.sort(key=lambda kv: kv[1], reverse=True)
    return items


class _ByQuery(Mapping):
    """A read-only mapping ``qid -> {doc id: value}`` over ``self._data`` (shared by Qrels and Run)."""

    _data: dict

    def __getitem__(self, qid: str) -> dict:
        return self._data[qid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to_dict(self) -> dict:
        """The underlying ``{qid: {doc id: value}}`` dict (not a copy)."""
        return self._data


class Qrels(_ByQuery, Mapping[str, dict[str, int]]):
    """Graded relevance judgments: ``qrels[qid][docid] -> grade``."""

    def __init__(self, data: Mapping[str, Mapping[str, int]] | None = None, name: str = "qrels"):
        self._data: dict[str, dict[str, int]] = {
            str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in (data or {}).items()
        }
        self.name = name

    @classmethod
    def from_records(cls, records: Iterable[Qrel], name: str = "qrels") -> Qrels:
        out = cls(name=name)
        for r in records:
            out._data.setdefault(r.query_id, {})[r.doc_id] = r.relevance
        return out

    def records(self) -> Iterator[Qrel]:
        for q, docs in self._data.items():
            for d, r in docs.items():
                yield Qrel(q, d, r)

    def __repr__(self) -> str:
        n = sum(len(v) for v in self._data.values())
        return f"Qrels({self.name!r}, queries={len(self)}, judgments={n})"


class Run(_ByQuery, Mapping[str, dict[str, float]]):
    """A ranked list per query: ``run[qid][docid] -> score``.

    ``stats`` holds efficiency figures added by stages (``wall_s``, ``queries_per_s``,
    ``items_per_s``, ``items``) and anything a stage wants to report per query
    (``per_query``: ``{qid: {counter: value}}``), e.g. LLM calls and tokens.
    """

    def __init__(
        self,
        data: Mapping[str, Mapping[str, float]] | None = None,
        name: str = "run",
        stats: dict[str, Any] | None = None,
    ):
        self._data: dict[str, dict[str, float]] = {
            str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in (data or {}).items()
        }
        self.name = name
        self.stats: dict[str, Any] = dict(stats or {})

    @classmethod
    def from_records(cls, records: Iterable[ScoredDoc], name: str = "run") -> Run:
        out = cls(name=name)
        for r in records:
            out._data.setdefault(r.query_id, {})[r.doc_id] = float(r.score)
        return out

    @classmethod
    def _wrap(cls, data: dict[str, dict[str, float]], name: str = "run", stats: dict | None = None) -> Run:
        """Adopt ``data`` without copying (internal fast path; caller guarantees types)."""
        out = cls.__new__(cls)
        out._data = data
        out.name = name
        out.stats = dict(stats or {})
        return out

    def ranked(self, qid: str) -> list[tuple[str, float]]:
        """``(doc_id, score)`` of one query in trec_eval order; empty if the query is absent."""
        return ranked_items(self._data.get(qid, {}))

    def records(self) -> Iterator[ScoredDoc]:
        for q in self._data:
            for i, (d, s) in enumerate(self.ranked(q), start=1):
                yield ScoredDoc(q, d, s, i)

    def cut(self, k: int) -> Run:
        """The top ``k`` documents of each query (trec_eval order)."""
        if k < 0:
            raise ConfigError(f"cutoff must be >= 0, got {k}")
        data = {q: dict(self.ranked(q)[:k]) for q in self._data}
        return Run._wrap(data, name=f"{self.name}%{k}", stats=self.stats)

    def num_items(self) -> int:
        return sum(len(v) for v in self._data.values())

    def to_df(self, queries: Iterable[Query] | Mapping[str, str] | None = None) -> Any:
        """This run as a PyTerrier results frame: ``qid, docno, score, rank`` (``rank`` 0-based, as
        PyTerrier counts; rows in :meth:`ranked` order, ties by document id descending), plus ``query``
        when ``queries`` (``Query`` objects or ``{qid: text}``) are given. A query with an empty ranking
        has no row. Needs pandas (``pip install 'rankstack[pyterrier]'``); see :mod:`rankstack.data.frames`.
        """
        from rankstack.data.frames import run_to_frame

        return run_to_frame(self, queries)

    @classmethod
    def from_df(cls, df: Any, name: str | None = None) -> Run:
        """A run from a PyTerrier results frame (``qid, docno, score``; ``rank`` is optional and not
        read: the scores order the run). A missing column, a NaN score or a duplicate (qid, docno)
        pair is a :class:`~rankstack.errors.FormatError`; see :mod:`rankstack.data.frames`."""
        from rankstack.data.frames import run_from_frame

        return cls._wrap(run_from_frame(df), name=name or "run")

    def fingerprint(self) -> str:
        """A content hash (query ids, doc ids, scores) used for cache keys."""
        h = hashlib.sha256()
        for q in sorted(self._data):
            h.update(q.encode())
            h.update(b"\x00")
            for d, s in sorted(self._data[q].items()):
                h.update(d.encode())
                h.update(repr(s).encode())
                h.update(b"\x01")
            h.update(b"\x02")
        return h.hexdigest()

    def __repr__(self) -> str:
        return f"Run({self.name!r}, queries={len(self)}, items={self.num_items()})"


class DocsHasher:
    """The content fingerprint of a document collection, fed one document at a time (ids, titles
    and texts, in order): what ``DocStore.build`` stores and every content-keyed cache compares."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def add(self, doc: Document) -> None:
        h = self._h
        for part in (doc.id, doc.title, doc.text):
            b = part.encode()
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)

    def hexdigest(self) -> str:
        return self._h.hexdigest()[:32]


def docs_fingerprint(docs: Iterable[Document]) -> str:
    """:class:`DocsHasher` over ``docs``: equal iff the ids, titles and texts are equal, in order."""
    h = DocsHasher()
    for d in docs:
        h.add(d)
    return h.hexdigest()


class FingerprintedDocs(dict):
    """A ``doc id -> Document`` dict that knows its content fingerprint (computed once, on first use),
    so that caches keyed by it change when any text changes."""

    _fp: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = docs_fingerprint(self.values())
        return self._fp


def queries_fingerprint(queries: Iterable[Query]) -> str:
    h = hashlib.sha256()
    for q in queries:
        h.update(q.id.encode())
        h.update(b"\x00")
        h.update(q.text.encode())
        h.update(b"\x01")
    return h.hexdigest()


@dataclass(slots=True)
class Collection:
    """A test collection: documents (any ``DocStore``-like object), queries and qrels."""

    name: str
    docs: Any
    queries: list[Query]
    qrels: Qrels | None = None
    meta: dict[str, Any] = field(default_factory=dict)
