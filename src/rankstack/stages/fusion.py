"""Rank fusion: RRF, CombSUM, CombMNZ and weighted sums of normalised scores, and weight tuning.

Methods (Fox & Shaw 1994 for CombSUM/CombMNZ; Cormack et al. 2009 for RRF), per query over the
union of the runs' documents:

* ``combsum``: ``sum_i w_i * s_i(d)`` (``w_i = 1`` unless ``weights``);
* ``wsum``:    the same with explicit weights (default: equal weights ``1/n``), i.e. linear
  interpolation (``alpha * bm25 + (1 - alpha) * dense`` with ``weights=[alpha, 1 - alpha]``);
* ``combmnz``: ``combsum(d) * |{i : d in run_i}|``;
* ``rrf``:     ``sum_i w_i / (rrf_k + rank_i(d))``, ranks 1-based in trec_eval order (score desc,
  doc id desc); a run that lacks ``d`` contributes nothing.

``norm`` is applied to each run's scores per query before combining: ``None`` (raw), ``"minmax"``
(``(s - min) / (max - min)``; a list whose scores are all equal gets 1.0) or ``"zscore"``
(``(s - mean) / std``, population std; equal scores get 0.0). A document missing from a run
contributes 0 to score-based methods (after normalisation), as in ranx and PyTerrier.

This is numpy, not ``ranx.fuse``: ranx compiles its kernels with numba on first use (seconds per
process) and orders tied scores by its own rule, while rankstack ranks ties by trec_eval's order;
the test suite checks the fused scores agree with ranx's on real runs.

These are the run-level kernels; the :class:`~rankstack.stages.base.Fuse` stage (and ``a + b``)
calls them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rankstack.data.records import Run, ranked_items
from rankstack.errors import ConfigError

METHODS = ("rrf", "combsum", "combmnz", "wsum")
NORMS = (None, "minmax", "zscore")


def _check(method: str, norm: str | None, weights: Sequence[float] | None, n: int) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown fusion method {method!r}; known: {', '.join(METHODS)}")
    if norm not in NORMS:
        raise ConfigError(f"unknown normalisation {norm!r}; known: None, 'minmax', 'zscore'")
    if weights is not None and len(weights) != n:
        raise ConfigError(f"{len(weights)} weights for {n} runs")
    if n < 1:
        raise ConfigError("fusion needs at least one run")


def _normalise(scores: np.ndarray, norm: str | None) -> np.ndarray:
    if norm is None or len(scores) == 0:
        return scores
    if norm == "minmax":
        lo, hi = scores.min(), scores.max()
        return np.ones_like(scores) if hi == lo else (scores - lo) / (hi - lo)
    sd = scores.std()
    return np.zeros_like(scores) if sd == 0 else (scores - scores.mean()) / sd


class _Prepared:
    """Per query: the union of document ids and ``(n_docs, n_runs)`` matrices of normalised scores,
    presence and 1-based ranks (0 where absent). Built once, fused many times (weight tuning)."""

    def __init__(
        self, runs: Sequence[Mapping[str, Mapping[str, float]]], norm: str | None, depth: int | None = None
    ):
        self.n_runs = len(runs)
        qids: dict[str, None] = {}
        for r in runs:
            qids.update(dict.fromkeys(r))
        self.queries: list[str] = list(qids)
        self.data: dict[str, tuple[list[str], np.ndarray, np.ndarray, np.ndarray]] = {}
        for q in self.queries:
            index: dict[str, int] = {}
            cols: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
            for r in runs:
                items = ranked_items(r.get(q, {}))
                if depth is not None:
                    items = items[:depth]
                rows = np.fromiter(
                    (index.setdefault(d, len(index)) for d, _ in items), dtype=np.int64, count=len(items)
                )
                s = np.fromiter((s for _, s in items), dtype=np.float64, count=len(items))
                cols.append((rows, _normalise(s, norm), np.arange(1, len(items) + 1, dtype=np.float64)))
            n = len(index)
            S = np.zeros((n, self.n_runs))
            P = np.zeros((n, self.n_runs))
            R = np.zeros((n, self.n_runs))
            for j, (rows, s, rk) in enumerate(cols):
                S[rows, j] = s
                P[rows, j] = 1.0
                R[rows, j] = rk
            self.data[q] = (list(index), S, P, R)

    def fuse(self, method: str, weights: Sequence[float] | None, rrf_k: float) -> dict[str, dict[str, float]]:
        if weights is None:
            w = np.full(self.n_runs, 1.0 / self.n_runs) if method == "wsum" else np.ones(self.n_runs)
        else:
            w = np.asarray(weights, dtype=np.float64)
        out: dict[str, dict[str, float]] = {}
        for q, (ids, S, P, R) in self.data.items():
            if not ids:
                out[q] = {}
                continue
            if method == "rrf":
                contrib = np.where(P > 0, 1.0 / (rrf_k + np.where(P > 0, R, 1.0)), 0.0)
                f = contrib @ w
            else:
                f = S @ w
                if method == "combmnz":
                    f = f * P.sum(axis=1)
            out[q] = dict(zip(ids, f.tolist()))
        return out


def fuse_runs(
    runs: Sequence[Mapping[str, Mapping[str, float]]],
    method: str = "rrf",
    norm: str | None = None,
    weights: Sequence[float] | None = None,
    rrf_k: float = 60,
    depth: int | None = None,
    name: str | None = None,
) -> Run:
    """Fuse runs into one :class:`Run` (see the module docstring for the methods).

    ``depth`` keeps only each run's top ``depth`` documents before fusing.
    """
    _check(method, norm, weights, len(runs))
    if rrf_k < 0:
        raise ConfigError(f"rrf_k must be >= 0, got {rrf_k}")
    data = _Prepared(runs, norm, depth).fuse(method, weights, rrf_k)
    label = name or f"{method}({', '.join(getattr(r, 'name', 'run') for r in runs)})"
    return Run._wrap(data, name=label, stats={"items": sum(sum(len(v) for v in r.values()) for r in runs)})


def tune_weights(
    runs: Sequence[Mapping[str, Mapping[str, float]]],
    qrels: Mapping[str, Mapping[str, int]],
    measure: str = "nDCG@10",
    grid: Sequence[float] | None = None,
    method: str = "wsum",
    norm: str | None = "minmax",
    rrf_k: float = 60,
    depth: int | None = None,
) -> dict[str, Any]:
    """Grid search of fusion weights maximising ``measure`` on ``qrels``' queries.

    ``grid`` lists candidate values of each weight (default ``0, 0.05, ..., 1``); for ``wsum`` the
    weights are constrained to sum to 1 (so two runs give ``alpha`` and ``1 - alpha``). Only queries
    with judgments are used. Returns ``{"weights", "score", "measure", "table": [(weights, score)]}``;
    ties go to the first grid point (smallest first weight).
    """
    from rankstack.measures import evaluate

    _check(method, norm, None, len(runs))
    grid = list(np.round(np.linspace(0, 1, 21), 4)) if grid is None else [float(g) for g in grid]
    judged = [{q: v for q, v in r.items() if q in qrels} for r in runs]
    prep = _Prepared(judged, norm, depth)
    table: list[tuple[tuple[float, ...], float]] = []
    best: tuple[tuple[float, ...], float] | None = None
    if method == "wsum" and len(runs) > 1:
        cands = [
            (*c, round(1 - sum(c), 6))
            for c in itertools.product(grid, repeat=len(runs) - 1)
            if sum(c) <= 1 + 1e-9
        ]
    else:
        cands = list(itertools.product(grid, repeat=len(runs)))
    for w in cands:
        if not any(w):
            continue
        fused = prep.fuse(method, w, rrf_k)
        score = float(evaluate(qrels, fused, [measure])[measure])
        table.append((tuple(float(x) for x in w), score))
        if best is None or score > best[1] + 1e-12:
            best = (tuple(float(x) for x in w), score)
    assert best is not None
    return {
        "weights": list(best[0]),
        "score": best[1],
        "measure": measure,
        "method": method,
        "norm": norm,
        "table": table,
    }
