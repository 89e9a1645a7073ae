"""BM25 stages over a :class:`~rankstack.index.bm25.BM25Index` (Lucene/Anserini scoring):
:class:`BM25Retriever` (first stage, ``bm25``) and :class:`BM25Reranker` (``bm25-rerank``).

The index, its analysis and its scoring live in :mod:`rankstack.index.bm25`; these stages are thin.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.data.records import Query, Run
from rankstack.errors import ConfigError, StageError
from rankstack.index.bm25 import BM25Index, _pick, open_index
from rankstack.stages.base import Candidates, Reranker, Stage

__all__ = ["BM25Reranker", "BM25Retriever"]


def _warn_empty(stage: str, empty: list[str]) -> None:
    if empty:
        shown = ", ".join(repr(q) for q in empty[:5]) + (" ..." if len(empty) > 5 else "")
        warnings.warn(
            f"{stage}: {len(empty)} quer{'y has' if len(empty) == 1 else 'ies have'} no indexed term after "
            f"analysis (only stop words, punctuation or unknown words): {shown}; they get empty rankings",
            stacklevel=3,
        )


class BM25Retriever(Stage):
    """First-stage BM25 retrieval over a :class:`BM25Index` (Lucene/Anserini scoring).

    ``index``: a :class:`BM25Index` or the directory it was saved to. ``k1``/``b`` default to the
    index's (Anserini: 0.9/0.4). ``norms="lucene"`` quantises document lengths as Lucene does;
    ``"exact"`` does not. Returns the top ``k`` documents per query in trec_eval order; a query with
    no indexed term gets an empty ranking and a warning.
    """

    name = "bm25"
    _not_in_key = ("progress", "batch_size")

    def __init__(
        self,
        index: BM25Index | str | os.PathLike[str],
        k: int = 1000,
        k1: float | None = None,
        b: float | None = None,
        norms: str = "lucene",
        batch_size: int | None = None,
    ) -> None:
        self.index = open_index(index)
        if int(k) < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        self.k = int(k)
        self.k1, self.b = self.index._params(k1, b, norms)
        self.norms = norms
        self.batch_size = batch_size

    @classmethod
    def from_context(cls, ctx: Any, **params: Any) -> BM25Retriever:
        return cls(params.pop("index", None) or ctx.bm25_index(), **params)

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        queries = list(queries)
        results = self.index.search_many(
            [q.text for q in queries], self.k, self.k1, self.b, self.norms, batch_size=self.batch_size
        )
        data: dict[str, dict[str, float]] = {}
        empty: list[str] = []
        doc_ids = self.index.doc_id_list()
        for q, (top, scores) in zip(queries, results):
            if len(top) == 0 and len(self.index.query_terms(q.text)[0]) == 0:
                empty.append(q.id)
            data[q.id] = dict(zip(_pick(doc_ids, top), scores.tolist()))
        _warn_empty(self.name, empty)
        return Run._wrap(data, name=self.name, stats={"items": sum(len(v) for v in data.values())})


class BM25Reranker(Reranker):
    """Re-scores a candidate run with BM25 from a :class:`BM25Index` (no document texts needed).

    Every candidate gets its BM25 score (0.0 if it matches no query term); a candidate missing from
    the index raises :class:`StageError` naming it. Useful to add BM25 to a fusion or to rescore
    another system's candidates with different ``k1``/``b``.
    """

    name = "bm25-rerank"
    reads_docs = False

    def __init__(
        self,
        index: BM25Index | str | os.PathLike[str],
        k1: float | None = None,
        b: float | None = None,
        norms: str = "lucene",
    ) -> None:
        super().__init__(docs=None)
        self.index = open_index(index)
        self.k1, self.b = self.index._params(k1, b, norms)
        self.norms = norms

    @classmethod
    def from_context(cls, ctx: Any, **params: Any) -> BM25Reranker:
        return cls(params.pop("index", None) or ctx.bm25_index(), **params)

    def score_ids(self, query: Query, doc_ids: Sequence[str]) -> np.ndarray:
        """BM25 scores (float32) of the given documents for ``query``."""
        rows = np.empty(len(doc_ids), dtype=np.int64)
        for i, d in enumerate(doc_ids):
            try:
                rows[i] = self.index.doc_index(d)
            except KeyError:
                raise StageError(f"{self.name}: document {d!r} (query {query.id!r}) is not in the BM25 index") from None
        return self.index.score_all(query.text, self.k1, self.b, self.norms)[rows]

    def score_batch(self, batch: Candidates) -> list[np.ndarray]:
        empty = [q.id for q in batch.queries if len(self.index.query_terms(q.text)[0]) == 0]
        if empty:
            warnings.warn(
                f"{self.name}: {len(empty)} queries have no indexed term; their candidates all score 0.0 "
                f"(e.g. {empty[0]!r})",
                stacklevel=4,
            )
        return [self.score_ids(q, ids) for q, ids in zip(batch.queries, batch.doc_ids)]
