"""rankstack.measures against pytrec_eval-terrier (trec_eval 9.0.x), the oracle.

A hypothesis property test draws qrels/run pairs with score ties, unjudged documents, empty runs,
queries missing on either side, graded and negative labels, and multi-digit doc ids (so lexicographic
and numeric order differ), and checks every measure per query and in aggregate to 1e-9.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankstack.data.records import Run
from rankstack.measures import Evaluator, evaluate

pytrec_eval = pytest.importorskip("pytrec_eval")

ROOT = Path(__file__).resolve().parents[2]
DL19 = ROOT / "data" / "trec-dl-2019"

DOC_IDS = ["1", "2", "9", "10", "11", "19", "100", "101", "20", "3", "d7", "D7", "a10", "a9", "0"]
QIDS = ["1", "2", "10", "3", "q"]
SCORES = [0.0, 0.5, 1.0, 1.0, 1.5, 2.0, -1.0, 3.25]
GRADES = [-2, -1, 0, 0, 1, 1, 2, 3]

# ours -> pytrec_eval name, at the default level 1
LEVEL1 = {
    "nDCG@1": "ndcg_cut_1",
    "nDCG@3": "ndcg_cut_3",
    "nDCG@5": "ndcg_cut_5",
    "nDCG@10": "ndcg_cut_10",
    "nDCG": "ndcg",
    "AP": "map",
    "AP@3": "map_cut_3",
    "AP@100": "map_cut_100",
    "RR": "recip_rank",
    "P@1": "P_1",
    "P@3": "P_3",
    "P@5": "P_5",
    "P@20": "P_20",
    "R@3": "recall_3",
    "R@10": "recall_10",
    "R": "recall_1000",
    "Rprec": "Rprec",
    "Success@1": "success_1",
    "Success@5": "success_5",
}
# ours -> pytrec_eval name with relevance_level=2
LEVEL2 = {
    "AP(rel=2)": "map",
    "AP(rel=2)@3": "map_cut_3",
    "RR(rel=2)": "recip_rank",
    "P(rel=2)@5": "P_5",
    "P(rel=2)@3": "P_3",
    "R(rel=2)@10": "recall_10",
    "Rprec(rel=2)": "Rprec",
    "Success(rel=2)@5": "success_5",
    "nDCG@5": "ndcg_cut_5",  # the relevance level does not change nDCG
}
RR_CUTS = (1, 3, 5)
JUDGED_CUTS = (1, 3, 10)
ALL = list(LEVEL1) + list(LEVEL2) + [f"RR@{k}" for k in RR_CUTS] + ["RR(rel=2)@3"]
ALL += [f"Judged@{k}" for k in JUDGED_CUTS] + ["Judged"]


@st.composite
def qrels_and_run(draw: st.DrawFn) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    qrels: dict[str, dict[str, int]] = {}
    for q in draw(st.lists(st.sampled_from(QIDS), min_size=1, max_size=4, unique=True)):
        docs = draw(st.dictionaries(st.sampled_from(DOC_IDS), st.sampled_from(GRADES), min_size=1, max_size=10))
        if max(docs.values()) < 0:
            # trec_eval's behaviour is undefined on a query whose grades are all negative (rel_levels is
            # sized max_rel + 1 and num_rel_levels is left stale): pytrec_eval segfaults or hangs
            docs[next(iter(docs))] = 0
        qrels[q] = docs
    run: dict[str, dict[str, float]] = {}
    for q in draw(st.lists(st.sampled_from(QIDS), min_size=0, max_size=5, unique=True)):
        run[q] = draw(st.dictionaries(st.sampled_from(DOC_IDS), st.sampled_from(SCORES), max_size=12))
    return qrels, run


def oracle(qrels: dict, run: dict, names: dict[str, str], level: int) -> dict[str, dict[str, float]]:
    """pytrec_eval per query, re-keyed to our measure names: {measure: {qid: value}}."""
    res = pytrec_eval.RelevanceEvaluator(qrels, set(names.values()), relevance_level=level).evaluate(run)
    return {ours: {q: v[theirs] for q, v in res.items()} for ours, theirs in names.items()}


def oracle_rr_at(qrels: dict, run: dict, k: int, level: int) -> dict[str, float]:
    """RR@k = trec_eval's recip_rank on the run cut at k (Run.cut ranks in trec_eval order)."""
    cut = Run(run).cut(k).to_dict()
    res = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=level).evaluate(cut)
    return {q: v["recip_rank"] for q, v in res.items()}


def judged_at(qrels: dict, run: dict, k: int | None) -> dict[str, float]:
    out = {}
    for q in run:
        if q not in qrels:
            continue
        top = Run(run).ranked(q)[: k if k is not None else None]
        out[q] = sum(d in qrels[q] for d, _ in top) / len(top) if top else 0.0
    return out


def expected_all(qrels: dict, run: dict) -> dict[str, dict[str, float]]:
    exp = oracle(qrels, run, LEVEL1, 1)
    exp.update(oracle(qrels, run, LEVEL2, 2))
    for k in RR_CUTS:
        exp[f"RR@{k}"] = oracle_rr_at(qrels, run, k, 1)
    exp["RR(rel=2)@3"] = oracle_rr_at(qrels, run, 3, 2)
    for k in JUDGED_CUTS:
        exp[f"Judged@{k}"] = judged_at(qrels, run, k)
    exp["Judged"] = judged_at(qrels, run, None)
    return exp


def check(ev, exp: dict[str, dict[str, float]], qids: list[str]) -> None:
    assert sorted(ev.queries) == sorted(qids)
    for m in ALL:
        got = ev.per_query[m]
        want = exp[m]
        assert set(got) == set(qids), m
        for q in qids:
            assert got[q] == pytest.approx(want[q], abs=1e-9), (m, q, got[q], want[q])
        if qids:
            mean = sum(want[q] for q in qids) / len(qids)
            assert ev[m] == pytest.approx(mean, abs=1e-9), m
        else:
            assert math.isnan(ev[m])


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(qrels_and_run())
def test_matches_pytrec_eval(data: tuple[dict, dict]) -> None:
    qrels, run = data
    exp = expected_all(qrels, run)
    qids = [q for q in run if q in qrels]
    assert set(exp["AP"]) == set(qids)  # pytrec_eval evaluates the run queries that have qrels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ev = evaluate(qrels, run, ALL)
    check(ev, exp, qids)

    # trec_eval -c: pytrec_eval returns only run queries, so the expectation zero-fills the others
    exp_c = {m: {q: vals.get(q, 0.0) for q in qrels} for m, vals in exp.items()}
    ev_c = evaluate(qrels, run, ALL, all_judged=True)
    check(ev_c, exp_c, list(qrels))

    # remove_query_doc: the same as deleting the doc named like the query before evaluating
    if any(q in docs for q, docs in run.items()):
        run2 = {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ev2 = evaluate(qrels, run, ALL, remove_query_doc=True)
        check(ev2, expected_all(qrels, run2), qids)


def test_tie_break_is_doc_id_descending_strcmp() -> None:
    # all scores tie: trec_eval ranks "9" > "10" > "1" > "0" (strcmp, descending)
    qrels = {"q": {"10": 1}}
    run = {"q": {"0": 1.0, "1": 1.0, "10": 1.0, "9": 1.0}}
    assert evaluate(qrels, run, ["RR"])["RR"] == 0.5
    qrels = {"q": {"9": 1}}
    assert evaluate(qrels, run, ["RR"])["RR"] == 1.0


def test_negative_grade_is_unjudged_but_judged_counts_it() -> None:
    qrels = {"q": {"a": -1, "b": 1}}
    run = {"q": {"a": 2.0, "b": 1.0, "c": 0.5}}
    ev = evaluate(qrels, run, ["P@2", "RR", "Judged@3", "nDCG"])
    assert ev["P@2"] == 0.5
    assert ev["RR"] == 0.5
    assert ev["Judged@3"] == pytest.approx(2 / 3)
    assert ev["nDCG"] == pytest.approx(1 / math.log2(3))


def test_no_common_query_warns_and_gives_nan() -> None:
    with pytest.warns(RuntimeWarning, match="none in common"):
        ev = evaluate({"1": {"a": 1}}, {"2": {"a": 1.0}}, ["nDCG@10"])
    assert math.isnan(ev["nDCG@10"])
    assert ev.ignored_run_queries == 1 and ev.missing_run_queries == 1


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="run query 'q', document 'a': score is NaN"):
        evaluate({"q": {"a": 1}}, {"q": {"a": float("nan"), "b": 1.0}}, ["AP"])
    with pytest.raises(ValueError, match="qrels query 'q', document 'a': grade 1.5 is not an integer"):
        evaluate({"q": {"a": 1.5}}, {"q": {"a": 1.0}}, ["AP"])
    with pytest.raises(ValueError, match="run query 'q': scores must be numbers"):
        evaluate({"q": {"a": 1}}, {"q": {"a": "high"}}, ["AP"])
    with pytest.raises(ValueError, match="unknown measure"):
        evaluate({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["nDGC@10"])


def test_evaluation_mapping_and_keys() -> None:
    ev = evaluate({"q": {"a": 1}}, {"q": {"a": 1.0}}, ["nDCG@10", "AP"])
    assert ev["ndcg_cut_10"] == ev["nDCG@10"] == 1.0
    assert dict(ev) == {"nDCG@10": 1.0, "AP": 1.0}
    assert ev.query_values("map") == {"q": 1.0}
    with pytest.raises(KeyError, match="was not evaluated"):
        ev["P@5"]


# --- TREC DL 2019 ---------------------------------------------------------------------------------


def _read_trec_run(path: Path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        q, _q0, d, _rank, s, _tag = line.split()
        run.setdefault(q, {})[d] = float(s)
    return run


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines():
        q, _, d, g = line.split()
        qrels.setdefault(q, {})[d] = int(g)
    return qrels


@pytest.fixture(scope="module")
def dl19() -> tuple[dict, dict]:
    return _read_qrels(DL19 / "qrels.txt"), _read_trec_run(DL19 / "bm25.top100.trec")


def test_dl19_bm25_reference_figures(dl19: tuple[dict, dict]) -> None:
    qrels, run = dl19
    ev = evaluate(qrels, run, ["nDCG@10", "AP", "RR@10", "R@100", "AP(rel=2)", "RR(rel=2)@10", "R(rel=2)@100"])
    assert len(ev.queries) == 43
    # the published Anserini BM25 figure for this run
    assert round(ev["nDCG@10"], 4) == 0.5058
    # figures measured with pytrec_eval (relevance_level 1 and 2); RR@10 = recip_rank of the run cut at 10
    assert round(ev["AP"], 4) == 0.2993
    assert round(ev["R@100"], 4) == 0.4531
    assert round(ev["RR@10"], 4) == 0.8233
    assert round(ev["AP(rel=2)"], 4) == 0.2476
    assert round(ev["R(rel=2)@100"], 4) == 0.4910
    assert round(ev["RR(rel=2)@10"], 4) == 0.7024


def test_records_types_give_the_same_figures(dl19: tuple[dict, dict]) -> None:
    from rankstack.data.records import Qrels

    qrels, run = dl19
    a = evaluate(Qrels(qrels), Run(run), ["nDCG@10", "AP", "RR@10"])
    b = evaluate(qrels, run, ["nDCG@10", "AP", "RR@10"])
    assert dict(a) == dict(b)
    assert "nDCG@10" in a and "nope" not in a and "P@5" not in a


def test_dl19_matches_pytrec_eval(dl19: tuple[dict, dict]) -> None:
    qrels, run = dl19
    cut10 = Run(run).cut(10).to_dict()
    for level in (1, 2):
        names = {"ndcg_cut_10": "nDCG@10", "map": f"AP(rel={level})", "recall_100": f"R(rel={level})@100",
                 "map_cut_100": f"AP(rel={level})@100", "Rprec": f"Rprec(rel={level})", "P_10": f"P(rel={level})@10"}
        res = pytrec_eval.RelevanceEvaluator(qrels, set(names), relevance_level=level).evaluate(run)
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=level).evaluate(cut10)
        ev = Evaluator(qrels, list(names.values()) + [f"RR(rel={level})@10"]).evaluate(run)
        for theirs, ours in names.items():
            want = sum(v[theirs] for v in res.values()) / len(res)
            assert round(ev[ours], 4) == round(want, 4), ours
            for q, v in res.items():
                assert ev.per_query[str(ev.measures[list(names.values()).index(ours)])][q] == pytest.approx(
                    v[theirs], abs=1e-9
                )
        want_rr = sum(v["recip_rank"] for v in rr.values()) / len(rr)
        assert ev[f"RR(rel={level})@10"] == pytest.approx(want_rr, abs=1e-12)


def test_a_relevance_level_no_judgment_reaches_is_warned() -> None:
    qrels = {"q": {"a": 1, "b": 0}}
    with pytest.warns(UserWarning, match=r"P\(rel=2\)@5: no judgment reaches that relevance level .* highest grade in the qrels is 1"):
        ev = evaluate(qrels, {"q": {"a": 2.0, "b": 1.0}}, ["P(rel=2)@5", "nDCG@10"])
    assert ev["P(rel=2)@5"] == 0.0 and ev["nDCG@10"] == 1.0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate({"q": {"a": 2}}, {"q": {"a": 1.0}}, ["P(rel=2)@5"])  # reachable: no warning


def test_a_grade_out_of_range_is_a_clear_error() -> None:
    from rankstack.errors import ConfigError

    for big in (2**63, 10**20):  # was a StopIteration (an internal error in the CLI)
        with pytest.raises(ConfigError, match=r"document 'd1': grade .* is out of range"):
            evaluate({"1": {"d1": big, "d2": 1}}, {"1": {"d1": 2.0, "d2": 1.0}}, ["nDCG@10"])
