"""Paired t-test, randomization test, Holm correction, significance tables."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from rankstack.measures import (
    compare,
    evaluate,
    holm,
    paired_t_test,
    randomization_test,
    significance_table,
)


def _pq(values: np.ndarray, prefix: str = "q") -> dict[str, float]:
    return {f"{prefix}{i}": float(v) for i, v in enumerate(values)}


def test_t_test_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(50)
    b = a + rng.normal(0.03, 0.1, 50)
    want = stats.ttest_rel(b, a).pvalue
    assert compare(_pq(a), _pq(b), "t") == want
    assert paired_t_test(a, b) == want
    assert 0.0 < want < 1.0


def test_t_test_degenerate_cases() -> None:
    assert paired_t_test([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        paired_t_test([0.1], [0.2])
    with pytest.raises(ValueError, match="differ in length"):
        paired_t_test([0.1, 0.2], [0.2])


@pytest.mark.parametrize(
    ("a", "b", "p"),
    [
        ([0, 0, 0], [1, 1, 1], 2 / 8),  # all deltas equal sign and size: only all+ and all- reach it
        ([0, 0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4, 0.5], 2 / 32),
        ([0, 0, 0, 0], [1, 1, 1, -1], 10 / 16),  # |sum| >= 2 for 1 + 4 + 4 + 1 of 16 sign patterns
        ([0.5, 0.5], [0.5, 0.5], 1.0),
        ([0.0, 0.0, 0.0], [1.0, 2.0, -3.0], 1.0),  # observed mean 0
        ([0, 0, 0], [1, 2, 4], 2 / 8),  # 4 > 1 + 2: only the observed pattern and its mirror reach 7
    ],
)
def test_randomization_exact_for_tiny_samples(a: list[float], b: list[float], p: float) -> None:
    assert randomization_test(a, b) == pytest.approx(p, abs=1e-15)
    assert compare(_pq(np.array(a)), _pq(np.array(b)), "randomization") == pytest.approx(p, abs=1e-15)


def test_randomization_close_to_t_on_large_sample_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    n = 400
    a = rng.random(n)
    b = a + rng.normal(0.01, 0.1, n)
    p_t = paired_t_test(a, b)
    p_r = randomization_test(a, b, seed=3)
    assert 0.01 < p_t < 0.5
    assert abs(p_r - p_t) < 0.02
    assert randomization_test(a, b, seed=3) == p_r  # same seed -> same p
    # Monte Carlo p-values are (count + 1) / (n_permutations + 1): a multiple of 1/10001
    assert round(p_r * 10_001) == pytest.approx(p_r * 10_001, abs=1e-6)
    # a huge effect: nothing reaches it, p = 1 / (n + 1)
    assert randomization_test(a, a + 1.0, n_permutations=999, seed=0) == pytest.approx(1 / 1000)


def test_holm_on_a_handcrafted_family() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]).size == 0


def test_significance_table_with_holm() -> None:
    rng = np.random.default_rng(11)
    n = 60
    base = rng.random(n)
    systems = {
        "better": _pq(base + 0.2 + rng.normal(0, 0.05, n)),  # clearly better
        "same": _pq(base + rng.normal(0, 0.05, n)),
        "slightly": _pq(base + 0.02 + rng.normal(0, 0.05, n)),
    }
    rows = significance_table(_pq(base), systems, test="t", alpha=0.05, correction="holm")
    assert [r.name for r in rows] == ["better", "same", "slightly"]
    raw = [stats.ttest_rel(np.array(list(systems[r.name].values())), base).pvalue for r in rows]
    assert [r.p for r in rows] == pytest.approx(raw, rel=1e-12)
    assert [r.p_corrected for r in rows] == pytest.approx(list(holm(raw)), rel=1e-12)
    by = {r.name: r for r in rows}
    assert by["better"].significant and not by["same"].significant
    assert by["better"].delta == pytest.approx(by["better"].mean - by["better"].baseline_mean)
    assert by["better"].baseline_mean == pytest.approx(base.mean())
    assert all(r.n_queries == n for r in rows)
    none = significance_table(_pq(base), systems, correction="none")
    assert [r.p_corrected for r in none] == [r.p for r in none]


def test_table_from_evaluations_and_query_alignment() -> None:
    qrels = {"1": {"a": 1}, "2": {"b": 1}, "3": {"c": 1}, "4": {"d": 1}}
    base_run = {"1": {"a": 1.0, "x": 2.0}, "2": {"b": 1.0, "x": 2.0}, "3": {"x": 1.0}}
    good_run = {"1": {"a": 2.0, "x": 1.0}, "2": {"b": 2.0, "x": 1.0}, "3": {"c": 1.0}}
    ev_base = evaluate(qrels, base_run, ["RR"])  # queries 1, 2, 3: 0.5, 0.5, 0
    ev_good = evaluate(qrels, good_run, ["RR"])  # 1, 1, 1
    [row] = significance_table(ev_base, {"good": ev_good}, "RR", test="randomization")
    assert row.n_queries == 3
    assert row.baseline_mean == pytest.approx(1 / 3) and row.mean == 1.0
    assert row.p == 2 / 8  # exact: three positive deltas 0.5, 0.5, 1
    # -c style: query 4 counts, 0 on both sides
    evc_base = evaluate(qrels, base_run, ["RR"], all_judged=True)
    evc_good = evaluate(qrels, good_run, ["RR"], all_judged=True)
    [row_c] = significance_table(evc_base, {"good": evc_good}, "RR", test="randomization")
    assert row_c.n_queries == 4 and row_c.mean == 0.75
    assert row_c.p == 4 / 16  # the zero delta doubles both counts
    # mixed query sets: intersection warns, zero-fill does not
    with pytest.warns(RuntimeWarning, match="1 only in the second"):
        p = compare(ev_base, evc_good, "t", measure="RR")
    assert p == stats.ttest_rel([1.0, 1.0, 1.0], [0.5, 0.5, 0.0]).pvalue
    p0 = compare(ev_base, evc_good, "t", measure="RR", missing="zero")
    assert p0 == stats.ttest_rel([1.0, 1.0, 1.0, 0.0], [0.5, 0.5, 0.0, 0.0]).pvalue
    # {measure: {qid: value}} input
    assert compare(ev_base.per_query, ev_good.per_query, "t", measure="recip_rank") == compare(
        ev_base, ev_good, "t", measure="RR"
    )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="test must be"):
        compare({"q": 1.0, "r": 0.0}, {"q": 0.0, "r": 1.0}, "wilcoxon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a measure"):
        compare({"RR": {"q": 1.0}}, {"RR": {"q": 0.0}})
    with pytest.raises(ValueError, match="correction must be"):
        significance_table({"q": 1.0, "r": 0.0}, {"s": {"q": 0.0, "r": 1.0}}, correction="fdr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no query in common"):
        compare({"a": 1.0}, {"b": 1.0}, "randomization", missing="intersect")
