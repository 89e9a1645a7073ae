"""Paired significance tests over per-query scores, with Holm-Bonferroni correction.

* :func:`paired_t_test`: two-sided paired Student t-test (``scipy.stats.ttest_rel``).
* :func:`randomization_test`: two-sided paired randomization (permutation) test, Fisher's sign-flip
  test as used in IR (Smucker, Allan & Carterette, CIKM 2007). The statistic is ``|mean(b - a)|``;
  each permutation flips the sign of every per-query difference with probability 1/2. With ``n``
  queries and ``2**n <= n_permutations`` all ``2**n`` sign patterns are enumerated and the p-value is
  exact (``count(|S| >= observed) / 2**n``); otherwise ``n_permutations`` patterns are drawn with
  ``numpy.random.default_rng(seed)`` and ``p = (count + 1) / (n_permutations + 1)`` (the observed
  labelling counts as one permutation, so p is never 0). Same inputs and seed -> same p.
* :func:`holm`: Holm-Bonferroni step-down adjusted p-values over a family of comparisons.
* :func:`compare`, :func:`significance_table`: the same on per-query mappings ``{qid: value}`` (or an
  :class:`~rankstack.measures.compute.Evaluation` plus a measure).

**Which queries are compared.** By default (``missing="intersect"``) the queries present in both
per-query mappings; a warning names how many queries were dropped when the two sets differ. With
``missing="zero"`` the union is compared, a query missing on one side scoring 0 there -- what
trec_eval ``-c`` does; results from ``evaluate(..., all_judged=True)`` already hold every qrels query,
so both options agree on them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rankstack.errors import ConfigError
from rankstack.measures.parse import Measure, parse_measure

__all__ = [
    "SignificanceRow",
    "bonferroni",
    "compare",
    "holm",
    "paired_t_test",
    "randomization_test",
    "significance_table",
]

ArrayLike = Sequence[float] | np.ndarray


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(a, dtype=np.float64).ravel()
    xb = np.asarray(b, dtype=np.float64).ravel()
    if xa.shape != xb.shape:
        raise ConfigError(f"paired samples differ in length: {xa.size} vs {xb.size}")
    if xa.size == 0:
        raise ConfigError("no paired queries to compare")
    if np.isnan(xa).any() or np.isnan(xb).any():
        raise ConfigError("per-query scores contain NaN")
    return xa, xb


def paired_t_test(a: ArrayLike, b: ArrayLike) -> float:
    """Two-sided paired t-test p-value of ``b`` vs ``a`` (``scipy.stats.ttest_rel``).

    Returns 1.0 when every difference is zero (scipy returns NaN there). Needs >= 2 pairs.
    """
    from scipy import stats

    xa, xb = _pair(a, b)
    if xa.size < 2:
        raise ConfigError("the paired t-test needs at least 2 queries")
    d = xb - xa
    if not d.any():
        return 1.0
    return float(stats.ttest_rel(xb, xa).pvalue)


def _sign_patterns(n: int) -> np.ndarray:
    """All 2**n sign vectors, as a (2**n, n) float array."""
    bits = (np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n, dtype=np.int64)[None, :]) & 1
    return 1.0 - 2.0 * bits


def randomization_test(a: ArrayLike, b: ArrayLike, n_permutations: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired randomization (sign-flip) test p-value of ``b`` vs ``a``; see the module doc.

    Exact (full enumeration) when ``2**n <= n_permutations``, else Monte Carlo with ``seed``.
    """
    if n_permutations < 1:
        raise ConfigError(f"n_permutations must be >= 1, got {n_permutations}")
    xa, xb = _pair(a, b)
    d = xb - xa
    n = d.size
    observed = abs(d.sum())
    # sums of the same numbers in another order may differ in the last bits: compare with a tolerance
    tol = 1e-10 * max(float(np.abs(d).sum()), 1e-300)
    if n <= 30 and 2**n <= n_permutations:
        stats = np.abs(_sign_patterns(n) @ d)
        return float(np.count_nonzero(stats >= observed - tol)) / 2**n
    rng = np.random.default_rng(seed)
    nbytes = (n + 7) // 8
    chunk = max(1, min(n_permutations, 4_000_000 // max(n, 1)))
    count = 0
    done = 0
    while done < n_permutations:
        c = min(chunk, n_permutations - done)
        bits = np.unpackbits(rng.integers(0, 256, size=(c, nbytes), dtype=np.uint8), axis=1)[:, :n]
        signs = 1.0 - 2.0 * bits
        count += int(np.count_nonzero(np.abs(signs @ d) >= observed - tol))
        done += c
    return (count + 1) / (n_permutations + 1)


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (same order as given)."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    m = p.size
    if m == 0:
        return p.copy()
    if np.isnan(p).any():
        raise ConfigError("p-values contain NaN")
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adj = np.maximum.accumulate(adj)
    out = np.empty(m)
    out[order] = adj
    return out


def bonferroni(pvalues: ArrayLike) -> np.ndarray:
    """Bonferroni adjusted p-values: ``min(1, m * p)``."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    return np.minimum(1.0, p.size * p)


def _per_query(x: Any, measure: str | Measure | None, what: str) -> Mapping[str, float]:
    """``{qid: value}`` out of a per-query mapping, an Evaluation, or ``{measure: {qid: value}}``."""
    if hasattr(x, "query_values") and hasattr(x, "per_query"):  # an Evaluation
        if measure is None:
            raise ConfigError(f"{what}: an Evaluation needs a measure to compare on")
        return x.query_values(measure)
    if not isinstance(x, Mapping):
        raise TypeError(f"{what}: expected a mapping qid -> value, got {type(x).__name__}")
    if x and all(isinstance(v, Mapping) for v in x.values()):
        if measure is None:
            raise ConfigError(f"{what}: a mapping of measures needs a measure to compare on")
        key = str(parse_measure(measure))
        for k in x:
            if k == key or (isinstance(k, str | Measure) and _same(k, key)):
                return x[k]
        raise KeyError(f"{what}: measure {key} not found; has {', '.join(map(str, x))}")
    return x


def _same(k: str | Measure, key: str) -> bool:
    try:
        return str(parse_measure(k)) == key
    except ValueError:
        return False


def _align(
    a: Mapping[str, float], b: Mapping[str, float], missing: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    if missing == "intersect":
        qids = [q for q in a if q in b]
        if not qids and (a or b):
            raise ConfigError(
                f"no query in common between the two per-query results ({len(a)} and {len(b)} queries)"
            )
        dropped = len(a) + len(b) - 2 * len(qids)
        if dropped:
            warnings.warn(
                f"comparing on the {len(qids)} queries both sides have; {len(a) - len(qids)} only in the "
                f"first and {len(b) - len(qids)} only in the second are left out",
                RuntimeWarning,
                stacklevel=3,
            )
    elif missing == "zero":
        qids = list(a) + [q for q in b if q not in a]
    else:
        raise ConfigError(f"missing must be 'intersect' or 'zero', got {missing!r}")
    xa = np.fromiter((float(a.get(q, 0.0)) for q in qids), dtype=np.float64, count=len(qids))
    xb = np.fromiter((float(b.get(q, 0.0)) for q in qids), dtype=np.float64, count=len(qids))
    return qids, xa, xb


Test = Literal["t", "randomization"]


def _pvalue(xa: np.ndarray, xb: np.ndarray, test: str, n_permutations: int, seed: int) -> float:
    if test == "t":
        return paired_t_test(xa, xb)
    if test in ("randomization", "permutation"):
        return randomization_test(xa, xb, n_permutations=n_permutations, seed=seed)
    raise ConfigError(f"test must be 't' or 'randomization', got {test!r}")


def compare(
    per_query_a: Any,
    per_query_b: Any,
    test: Test = "t",
    *,
    measure: str | Measure | None = None,
    n_permutations: int = 10_000,
    seed: int = 0,
    missing: Literal["intersect", "zero"] = "intersect",
) -> float:
    """Two-sided p-value of the paired difference between two systems' per-query scores.

    ``per_query_a``/``per_query_b``: ``{qid: value}``, or an ``Evaluation`` / ``{measure: {qid:
    value}}`` together with ``measure``. ``test``: ``"t"`` (paired t-test) or ``"randomization"``.
    """
    a = _per_query(per_query_a, measure, "per_query_a")
    b = _per_query(per_query_b, measure, "per_query_b")
    _, xa, xb = _align(a, b, missing)
    return _pvalue(xa, xb, test, n_permutations, seed)


@dataclass(frozen=True, slots=True)
class SignificanceRow:
    """One system compared with the baseline on one measure."""

    name: str
    measure: str
    n_queries: int
    mean: float
    baseline_mean: float
    delta: float  # mean - baseline_mean
    p: float
    p_corrected: float
    significant: bool  # p_corrected <= alpha
    test: str
    correction: str


def significance_table(
    baseline_per_query: Any,
    systems: Mapping[str, Any],
    measure: str | Measure | None = None,
    test: Test = "t",
    alpha: float = 0.05,
    correction: Literal["holm", "bonferroni", "none"] = "holm",
    *,
    n_permutations: int = 10_000,
    seed: int = 0,
    missing: Literal["intersect", "zero"] = "intersect",
) -> list[SignificanceRow]:
    """Compare every system with the baseline on ``measure``; correct the family's p-values.

    The family is the set of comparisons in ``systems`` (one per system); ``correction`` is
    ``"holm"`` (Holm-Bonferroni), ``"bonferroni"`` or ``"none"``. A row is ``significant`` when its
    corrected p-value is ``<= alpha``. Means are over the compared queries (see the module doc).
    """
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    mname = str(parse_measure(measure)) if measure is not None else ""
    base = _per_query(baseline_per_query, measure, "baseline")
    rows: list[tuple[str, int, float, float, float]] = []
    for name, sys_pq in systems.items():
        s = _per_query(sys_pq, measure, str(name))
        _, xa, xb = _align(base, s, missing)
        p = _pvalue(xa, xb, test, n_permutations, seed)
        rows.append((str(name), xa.size, float(xb.mean()), float(xa.mean()), p))
    ps = np.array([r[4] for r in rows], dtype=np.float64)
    if correction == "holm":
        adj = holm(ps)
    elif correction == "bonferroni":
        adj = bonferroni(ps)
    elif correction == "none":
        adj = ps
    else:
        raise ConfigError(f"correction must be 'holm', 'bonferroni' or 'none', got {correction!r}")
    return [
        SignificanceRow(
            name=n,
            measure=mname,
            n_queries=nq,
            mean=mean,
            baseline_mean=bmean,
            delta=mean - bmean,
            p=p,
            p_corrected=float(pc),
            significant=bool(pc <= alpha) and not math.isnan(pc),
            test=test,
            correction=correction,
        )
        for (n, nq, mean, bmean, p), pc in zip(rows, adj, strict=True)
    ]
