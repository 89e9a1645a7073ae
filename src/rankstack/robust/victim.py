"""The victim of an attack: a rankstack reranker scored on (query, texts), with a hard query budget.

A :class:`Victim` wraps any reranker stage (anything with the batched ``score_batch(Candidates)``
hook). Every scoring call counts one *victim query* per candidate list scored; a
:class:`QueryBudget` stops the attack exactly at its limit (OpenAttack's invoke limit). The query
text is never modified: only document texts are replaced.

Ranks follow rankstack's order everywhere (trec_eval's): score descending, ties broken by document
id descending. :func:`rank_of` gives the 1-based rank of one document after its score changed,
without a re-sort, and equals the position a full re-sort would give (tested, ties included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query
from rankstack.errors import ConfigError, StageError

__all__ = ["BudgetExhausted", "QueryBudget", "Victim", "BM25TextScorer", "rank_of", "full_rank"]


class BudgetExhausted(StageError):
    """The attack's query budget is spent; the attack stops and keeps its best text so far."""


@dataclass
class QueryBudget:
    """At most ``limit`` victim calls (``None``: unlimited); :meth:`spend` raises at the limit."""

    limit: int | None = None
    used: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ConfigError(f"query budget must be a positive integer or None, got {self.limit!r}")

    def spend(self, n: int = 1, reserve: int = 0) -> None:
        """Count ``n`` victim calls; raise :class:`BudgetExhausted` (counting none) if they would
        leave fewer than ``reserve`` calls (the attack keeps one for its final re-check)."""
        if self.limit is not None and self.used + n > self.limit - reserve:
            raise BudgetExhausted(f"query budget of {self.limit} victim calls spent ({self.used} used)")
        self.used += n

    @property
    def left(self) -> int | None:
        return None if self.limit is None else self.limit - self.used

    def left_for_search(self) -> int | None:
        """Calls left when one is kept back for the re-check."""
        return None if self.limit is None else self.limit - self.used - 1


def rank_of(doc_ids: Sequence[str], scores: np.ndarray, target: int) -> int:
    """1-based rank of ``doc_ids[target]`` among all candidates in trec_eval order (score desc,
    doc id desc): one pass, no sort."""
    s = np.asarray(scores, dtype=np.float64)
    t, tid = s[target], doc_ids[target]
    higher = int(np.count_nonzero(s > t))
    tied = [i for i in np.flatnonzero(s == t).tolist() if i != target and doc_ids[i] > tid]
    return 1 + higher + len(tied)


def full_rank(doc_ids: Sequence[str], scores: np.ndarray, target: int) -> int:
    """The same rank by a full re-sort (the reference :func:`rank_of` is tested against)."""
    from rankstack.data.records import ranked_items

    order = ranked_items(dict(zip(doc_ids, np.asarray(scores, dtype=np.float64).tolist())))
    return 1 + [d for d, _ in order].index(doc_ids[target])


class BM25TextScorer:
    """BM25 of arbitrary document *texts* with a :class:`BM25Index`'s statistics (idf, avgdl,
    analyzer, Lucene's one-byte length norms), so an edited text gets the score the index would
    give it. On an unedited document it equals ``BM25Reranker`` (tested). The collection statistics
    stay those of the index (the attacked document is one of millions)."""

    name = "bm25-text"
    reads_docs = True

    def __init__(self, index: Any, k1: float | None = None, b: float | None = None, fields: str = "title+text"):
        from rankstack.index.bm25 import LENGTH_TABLE, int_to_byte4

        self.index = index
        self.k1, self.b = index._params(k1, b, "lucene")
        self.fields = fields
        self._table, self._byte4 = LENGTH_TABLE, int_to_byte4

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "index": self.index.fingerprint, "k1": self.k1, "b": self.b}

    def _body(self, doc: Document) -> str:
        if self.fields == "text":
            return doc.text
        return f"{doc.title} {doc.text}" if doc.title and doc.text else (doc.title or doc.text)

    def score_batch(self, batch: Any) -> list[np.ndarray]:
        out = []
        an, vocab = self.index.analyzer, self.index.vocab
        k1, b, avgdl = np.float32(self.k1), np.float32(self.b), np.float32(self.index.avgdl)
        for q, docs in zip(batch.queries, batch.docs):
            tids, boosts = self.index.query_terms(q.text)
            w = (boosts * self.index._idf(tids)).astype(np.float32) if len(tids) else np.zeros(0, np.float32)
            qpos = {int(t): i for i, t in enumerate(tids.tolist())}
            scores = np.zeros(len(docs), dtype=np.float32)
            for j, d in enumerate(docs):
                terms = an.analyze(self._body(d))
                length = self._table[int(self._byte4(len(terms)))]
                ninv = np.float32(1) / (k1 * ((np.float32(1) - b) + b * np.float32(length) / avgdl))
                tf = np.zeros(len(tids), dtype=np.float32)
                for t in terms:
                    i = qpos.get(vocab.get(t, -1))
                    if i is not None:
                        tf[i] += 1
                m = tf > 0
                clause = w[m] - w[m] / (np.float32(1) + tf[m] * ninv)  # float32 clauses, summed as the index does
                scores[j] = np.float32(clause.astype(np.float64).sum())
            out.append(scores.astype(np.float64))
        return out


@dataclass
class Victim:
    """A reranker under attack. ``stage`` is any object with ``score_batch(Candidates)``.

    :meth:`scores` scores one query's candidate list with some texts replaced (``{index: text}``),
    one victim call per candidate list; :meth:`score_texts` scores several variants of one target in
    one batched call (one victim call per variant)."""

    stage: Any
    budget: QueryBudget = field(default_factory=QueryBudget)

    def __post_init__(self) -> None:
        if not callable(getattr(self.stage, "score_batch", None)):
            raise ConfigError(f"victim {getattr(self.stage, 'name', self.stage)!r} has no batched scoring hook "
                              "(score_batch): give a reranker stage")
        if not isinstance(self.budget, QueryBudget):
            raise ConfigError(f"victim budget must be a QueryBudget, got {self.budget!r}")

    @property
    def white_box(self) -> bool:
        enc = getattr(self.stage, "encoder", None)
        return enc is not None and hasattr(enc, "model_path") and getattr(enc, "backend", "torch") == "torch"

    def _run(self, queries: list[Query], ids: list[list[str]], docs: list[list[Document]],
             reserve: int = 0) -> list[np.ndarray]:
        from rankstack.stages.base import Candidates

        self.budget.spend(len(queries), reserve)
        out = self.stage.score_batch(Candidates(queries, ids, docs))
        res = [np.asarray(s, dtype=np.float64) for s in out]
        for s in res:
            if np.isnan(s).any():
                raise StageError(f"victim {getattr(self.stage, 'name', self.stage)!r} returned NaN scores")
        return res

    def scores(self, query: Query, docs: Sequence[Document], replace: dict[int, str] | None = None,
               reserve: int = 0) -> np.ndarray:
        """Scores of the whole candidate list, the texts at ``replace``'s positions replaced."""
        ds = [Document(d.id, replace[i], "") if replace and i in replace else d for i, d in enumerate(docs)]
        return self._run([query], [[d.id for d in ds]], [ds], reserve)[0]

    def score_texts(self, query: Query, doc_id: str, texts: Sequence[str], partial: bool = False) -> np.ndarray:
        """Scores of ``texts`` as the text of document ``doc_id``: one victim call each, batched,
        one call kept back for the re-check. With ``partial``, the texts that fit in the budget are
        scored (the result is shorter) and the next call raises; otherwise nothing is scored and
        :class:`BudgetExhausted` is raised when they do not all fit."""
        left = self.budget.left_for_search()
        if left is not None and len(texts) > left:
            if not partial or left <= 0:
                raise BudgetExhausted(f"query budget of {self.budget.limit} victim calls spent "
                                      f"({self.budget.used} used, one kept for the re-check)")
            texts = texts[:left]
        if not texts:
            return np.empty(0)
        n = len(texts)
        res = self._run([query] * n, [[doc_id]] * n, [[Document(doc_id, t, "")] for t in texts], reserve=1)
        return np.array([r[0] for r in res])
