"""Evaluation straight from columns (issue #22): :func:`evaluate_columns`.

The input is a run and its qrels as arrays -- a
:class:`~rankstack.data.formats._columnar.ColumnarPair` (document ids as integer codes shared by
both, float64 scores, int64 grades, one block of rows per query), as ``rankstack evaluate`` reads
regular files. The ranked grades of every query are built with numpy over all queries at once (one
``argsort`` of an int64 key, none when the file is already in trec_eval order) and handed to the same
:class:`~rankstack.measures.compute._Flat` kernels as :class:`~rankstack.measures.compute.Evaluator`,
so the values are identical to ``evaluate(read_qrels(q), read_run(r), ...)``: the same arrays reach
the same code. Same semantics (module docstring of :mod:`~rankstack.measures.compute`): score
descending, ties broken by document id descending; a retrieved document absent from its query's
qrels is non-relevant (``_NONPOOL``), one judged with a negative grade unjudged (``_UNJUDGED``);
run queries without qrels are ignored, and with ``all_judged`` every qrels query is evaluated (in
qrels order), a query missing from the run with an empty ranking.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from rankstack.measures.compute import _NONPOOL, _UNJUDGED, Evaluation, _Flat
from rankstack.measures.external import CORE_PROVIDER, ExternalMeasure
from rankstack.measures.parse import AnyMeasure, parse_measures

__all__ = ["evaluate_columns"]


class Columns(Protocol):  # what evaluate_columns reads (ColumnarPair in rankstack.data.formats._columnar)
    run_qids: list[str]
    run_offsets: np.ndarray
    run_docs: np.ndarray
    run_scores: np.ndarray
    qrels_qids: list[str]
    qrels_offsets: np.ndarray
    qrels_docs: np.ndarray
    qrels_grades: np.ndarray
    num_docs: int

    def doc_order(self) -> np.ndarray: ...

    def doc_codes(self, ids: list[str]) -> np.ndarray: ...


def _rows_of(blocks: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, lengths) of ``blocks`` (block numbers, in that order), concatenated."""
    lens = offsets[blocks + 1] - offsets[blocks]
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64), lens
    first = np.zeros(blocks.size, dtype=np.int64)
    np.cumsum(lens[:-1], out=first[1:])
    rows = np.arange(total, dtype=np.int64) + np.repeat(offsets[blocks] - first, lens)
    return rows, lens


def _ranking(qp: np.ndarray, s: np.ndarray, d: np.ndarray, cols: Columns) -> np.ndarray | None:
    """The permutation that sorts rows by (query position, score descending, document id
    descending), or ``None`` when they already are in that order."""
    n = qp.size
    if n < 2:
        return None
    same_q = qp[1:] == qp[:-1]
    if (qp[1:] >= qp[:-1]).all() and not (same_q & (s[1:] > s[:-1])).any():
        tie = same_q & (s[1:] == s[:-1])
        if not tie.any():
            return None  # strictly decreasing scores per query, queries in order
        rank = cols.doc_order()[d]
        if not (tie & (rank[1:] > rank[:-1])).any():
            return None  # ties already by document id descending
    return _sort(qp, s, d, cols)


def _sort(qp: np.ndarray, s: np.ndarray, d: np.ndarray, cols: Columns) -> np.ndarray:
    """Rows by (query, score descending, document id descending) with one ``argsort`` of an int64
    key: the score's dense rank among all scores (``-0.0`` and ``0.0`` equal, as in the dict path),
    and the document's rank in string order only when two scores of a query are equal."""
    inv = np.unique(-s, return_inverse=True)[1].ravel().astype(np.int64)
    m = int(inv.max()) + 1
    key = qp * m + inv
    order = np.argsort(key)
    ko = key[order]
    if not (ko[1:] == ko[:-1]).any():
        return order  # (query, score) is unique: it decides
    rank = cols.doc_order()[d]
    nd = int(rank.max()) + 1
    if (int(qp.max()) + 1) * m * nd < 2**62:
        return np.argsort(key * nd + (nd - 1 - rank))
    return np.lexsort((-rank, -s, qp))  # pragma: no cover - beyond 2**62 (query, score, document) triples


def evaluate_columns(
    cols: Columns,
    measures: str | AnyMeasure | Iterable[str | AnyMeasure] | Any,
    *,
    per_query: bool = False,
    all_judged: bool = False,
    remove_query_doc: bool = False,
) -> Evaluation | None:
    """:func:`~rankstack.measures.evaluate` of the run and qrels held in ``cols`` (see the module
    docstring), or ``None`` when the dict path must compute it: a measure handed to ir_measures,
    or a grade beyond float64's exact integers (the dict path raises its error)."""
    ms = tuple(parse_measures(measures))
    if any(isinstance(m, ExternalMeasure) for m in ms):
        return None
    grades = cols.qrels_grades
    if grades.size and int(np.abs(grades).max()) >= 2**53:
        return None
    top = int(grades.max()) if grades.size else None
    unreachable = [str(m) for m in ms if top is not None and isinstance(m.rel, int) and m.rel > max(top, 1)]
    if unreachable:
        warnings.warn(f"{', '.join(unreachable)}: no judgment reaches that relevance level (the highest grade "
                      f"in the qrels is {top}); the measure is 0 for every query", UserWarning, stacklevel=2)

    run_qids, qrels_qids = cols.run_qids, cols.qrels_qids
    qindex = {q: i for i, q in enumerate(qrels_qids)}
    run_set = set(run_qids)
    run_to_qrels = np.fromiter((qindex.get(q, -1) for q in run_qids), dtype=np.int64, count=len(run_qids))
    in_qrels = run_to_qrels >= 0
    ignored = int((~in_qrels).sum())
    missing = sum(1 for q in qrels_qids if q not in run_set)
    if all_judged:
        qids = list(qrels_qids)
        qpos = run_to_qrels  # a run block's position among the evaluated queries (qrels order)
        eval_blocks = np.arange(len(qrels_qids), dtype=np.int64)
    else:
        qids = [q for q in run_qids if q in qindex]
        qpos = np.where(in_qrels, np.cumsum(in_qrels) - 1, -1)
        eval_blocks = run_to_qrels[in_qrels]
    nq = len(qids)

    # each run row's grade: run and qrels (query, document) keys sorted together; a key is unique on
    # each side (read_pair checks it), so a judged run row is the one equal neighbour of a qrels row
    r_off, q_off = cols.run_offsets, cols.qrels_offsets
    nd = np.int64(max(cols.num_docs, 1))
    row_block = np.repeat(np.arange(len(run_qids), dtype=np.int64), np.diff(r_off))
    run_index = {q: i for i, q in enumerate(run_qids)}
    qrels_to_run = np.fromiter((run_index.get(q, -1) for q in qrels_qids), dtype=np.int64, count=len(qrels_qids))
    q_run_block = np.repeat(qrels_to_run, np.diff(q_off))
    in_run = np.flatnonzero(q_run_block >= 0)
    n_run = row_block.size
    keys = np.concatenate((row_block * nd + cols.run_docs, q_run_block[in_run] * nd + cols.qrels_docs[in_run]))
    perm = np.argsort(keys)
    sk = keys[perm]
    eq = np.flatnonzero(sk[1:] == sk[:-1])
    a, b = perm[eq], perm[eq + 1]
    run_row, qrels_row = np.minimum(a, b), in_run[np.maximum(a, b) - n_run]
    G = np.full(n_run, _NONPOOL, dtype=np.int64)
    G[run_row] = np.where(grades[qrels_row] >= 0, grades[qrels_row], _UNJUDGED)

    # the rows of the evaluated queries, ranked
    keep = qpos[row_block] >= 0
    if remove_query_doc:
        keep &= cols.run_docs != cols.doc_codes(run_qids)[row_block]
    if keep.all():
        qp, s, d = qpos[row_block], cols.run_scores, cols.run_docs
    else:
        qp, s, d, G = qpos[row_block][keep], cols.run_scores[keep], cols.run_docs[keep], G[keep]
    order = _ranking(qp, s, d, cols)
    if order is not None:
        G = G[order]
    nret = np.bincount(qp, minlength=nq).astype(np.int64)

    # the evaluated queries' judgments: non-negative grades, and the positive ones descending
    rows, lens = _rows_of(eval_blocks, q_off)
    g = grades[rows]
    gq = np.repeat(np.arange(nq, dtype=np.int64), lens)
    judged = g >= 0
    J, jq = g[judged], gq[judged]
    pos = g > 0
    ig, iq = g[pos], gq[pos]
    io = np.lexsort((-ig, iq))
    I = ig[io].astype(np.float64)
    nj = np.bincount(jq, minlength=nq).astype(np.int64)
    ni = np.bincount(iq, minlength=nq).astype(np.int64)
    flat = _Flat.from_arrays(G, nret, J, nj, I, ni)

    values = {str(m): flat.compute(m) for m in ms}
    if qids:
        aggregate = {str(m): float(values[str(m)].mean()) for m in ms}
    else:
        warnings.warn(
            f"no query to evaluate: the run has {len(run_qids)} queries, the qrels {len(qrels_qids)}, none in "
            "common" if not all_judged else "no query to evaluate: the qrels are empty",
            RuntimeWarning,
            stacklevel=2,
        )
        aggregate = {k: math.nan for k in values}
    ev = Evaluation(
        measures=ms,
        queries=tuple(qids),
        arrays=values,
        aggregate=aggregate,
        all_judged=all_judged,
        ignored_run_queries=ignored,
        missing_run_queries=missing,
        providers={str(m): CORE_PROVIDER for m in ms},
    )
    if per_query:
        ev.per_query  # noqa: B018 - build eagerly
    return ev
