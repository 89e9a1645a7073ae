"""Measures beyond rankstack's own kernels, handed to ir_measures (issue #17, item 3).

Every value is checked against ir_measures itself, run on the same files read by ir_measures' own
readers (``read_trec_qrels`` / ``read_trec_run``), per query and in aggregate, on TREC DL 2019
(43 judged queries, the BM25 top-100 run).
"""

from __future__ import annotations

import math
import pickle
import sys
import warnings
from pathlib import Path

import pytest

from rankstack.data.formats import read_qrels, read_run
from rankstack.errors import ConfigError
from rankstack.measures import (
    MEASURE_NAMES,
    Evaluator,
    ExternalMeasure,
    Measure,
    evaluate,
    measure_provider,
    parse_measure,
    parse_measures,
    significance_table,
)

irm = pytest.importorskip("ir_measures")

ROOT = Path(__file__).resolve().parents[2]
DL19 = ROOT / "data" / "trec-dl-2019"
QRELS, RUN = DL19 / "qrels.txt", DL19 / "bm25.top100.trec"
HAS_CWL = irm.cwl_eval.is_available()
needs_cwl = pytest.mark.skipif(not HAS_CWL, reason="RBP is computed by ir_measures' cwl_eval provider: "
                               "pip install cwl-eval")

# text -> (ir_measures' canonical spelling, the provider that answers)
EXTERNAL = {
    "bpref": ("Bpref", "pytrec_eval"),
    "infAP": ("infAP", "pytrec_eval"),
    "ERR@10": ("ERR@10", "gdeval"),
    "ERR@20": ("ERR@20", "gdeval"),
    "SetP": ("SetP", "pytrec_eval"),
    "SetR": ("SetR", "pytrec_eval"),
    "SetF": ("SetF", "pytrec_eval"),
    "SetF(beta=0.5)": ("SetF(beta=0.5)", "pytrec_eval"),
    "SetP(rel=2)": ("SetP(rel=2)", "pytrec_eval"),
    "nDCG(judged_only=True)@10": ("nDCG(judged_only=True)@10", "pytrec_eval"),
    "nDCG(judged_only=True)@100": ("nDCG(judged_only=True)@100", "pytrec_eval"),
    "AP(judged_only=True)": ("AP(judged_only=True)", "pytrec_eval"),
    "P(judged_only=True)@10": ("P(judged_only=True)@10", "pytrec_eval"),
    "nDCG(dcg='exp-log2')@10": ("nDCG(dcg='exp-log2')@10", "gdeval"),
    "nDCG(gains={0:0,1:1,2:3,3:7})@10": ("nDCG(gains={2:3,3:7})@10", "pytrec_eval"),
    "IPrec@0.5": ("IPrec@0.5", "pytrec_eval"),
    "NumRet": ("NumRet", "pytrec_eval"),
    "Compat(p=0.8)": ("Compat(p=0.8)", "compat"),
}
RBP = {"RBP(rel=1,p=0.8)": ("RBP(rel=1)", "cwl_eval"), "RBP(rel=2,p=0.5)": ("RBP(rel=2,p=0.5)", "cwl_eval")}
ALL_EXTERNAL = [*EXTERNAL, *[pytest.param(t, marks=needs_cwl) for t in RBP]]


@pytest.fixture(scope="module")
def ours() -> tuple[dict, dict]:
    return read_qrels(QRELS).to_dict(), read_run(RUN).to_dict()


@pytest.fixture(scope="module")
def theirs() -> tuple[list, list]:
    return list(irm.read_trec_qrels(str(QRELS))), list(irm.read_trec_run(str(RUN)))


def _irm_values(measure: object, qrels: object, run: object) -> tuple[dict[str, float], float]:
    per_query = {m.query_id: float(m.value) for m in irm.iter_calc([measure], qrels, run)}
    return per_query, float(irm.calc_aggregate([measure], qrels, run)[measure])


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("text", ALL_EXTERNAL)
def test_equals_ir_measures_on_dl19(text: str, ours: tuple[dict, dict], theirs: tuple[list, list]) -> None:
    canonical, provider = {**EXTERNAL, **RBP}[text]
    ev = evaluate(*ours, [text])
    assert list(ev) == [canonical]
    assert ev.provider(text) == f"ir_measures ({provider})"
    per_query, aggregate = _irm_values(irm.parse_measure(canonical), *theirs)
    got = ev.query_values(text)
    assert set(got) == set(per_query) and len(got) == 43
    bad = {q: (got[q], per_query[q]) for q in got if not _close(got[q], per_query[q])}
    assert not bad
    assert _close(ev[text], aggregate)


def test_judged_only_removes_unjudged_documents(ours: tuple[dict, dict]) -> None:
    """The BM25 top 100 has unjudged passages (Judged@100 < 1): judged_only changes nDCG@100, AP, P@100."""
    texts = ["Judged@100", "nDCG@100", "nDCG(judged_only=True)@100", "AP", "AP(judged_only=True)"]
    ev = evaluate(*ours, texts)
    assert ev["Judged@100"] < 1
    assert ev["nDCG(judged_only=True)@100"] > ev["nDCG@100"]
    assert ev["AP(judged_only=True)"] > ev["AP"]
    assert ev.provider("nDCG@100") == "rankstack"
    assert ev.provider("nDCG(judged_only=True)@100") == "ir_measures (pytrec_eval)"


@pytest.mark.parametrize("text", ["nDCG@10", "nDCG", "AP", "AP@100", "P@10", "P(rel=2)@10", "R@100", "Rprec",
                                  "Success@10", "RR", "RR@10", "Judged@10", "Judged"])
def test_core_measures_stay_on_rankstack_and_agree_with_ir_measures(
    text: str, ours: tuple[dict, dict], theirs: tuple[list, list]
) -> None:
    m = parse_measure(text)
    assert isinstance(m, Measure) and measure_provider(text) == "rankstack"
    ev = evaluate(*ours, [text])
    assert ev.provider(text) == "rankstack" and ev.providers == {str(m): "rankstack"}
    per_query, aggregate = _irm_values(irm.parse_measure(str(m)), *theirs)
    assert all(_close(v, per_query[q]) for q, v in ev.query_values(text).items())
    assert _close(ev[text], aggregate)


def test_ir_measures_objects_are_accepted(ours: tuple[dict, dict]) -> None:
    core = parse_measure(irm.nDCG @ 10)
    assert isinstance(core, Measure) and core == parse_measure("nDCG@10")
    assert parse_measure(irm.P(rel=2) @ 5) == parse_measure("P(rel=2)@5")
    assert parse_measure(irm.MAP @ 100) == parse_measure("AP@100")
    assert parse_measure(irm.nDCG(judged_only=False) @ 10) == parse_measure("nDCG@10")
    err = parse_measure(irm.ERR @ 10)
    assert isinstance(err, ExternalMeasure) and err == parse_measure("ERR@10") and err.provider == "gdeval"
    assert isinstance(parse_measure(irm.nDCG(judged_only=True) @ 10), ExternalMeasure)
    ev = evaluate(*ours, [irm.nDCG @ 10, irm.ERR @ 10, irm.Bpref, "SetP"])
    assert list(ev) == ["nDCG@10", "ERR@10", "Bpref", "SetP"]
    assert ev[irm.Bpref] == ev["bpref"] == ev["BPref"]
    assert ev.query_values(irm.ERR @ 10) == ev.per_query["ERR@10"]
    assert ev.providers == {"nDCG@10": "rankstack", "ERR@10": "ir_measures (gdeval)",
                            "Bpref": "ir_measures (pytrec_eval)", "SetP": "ir_measures (pytrec_eval)"}
    assert ev.provider(irm.nDCG @ 10) == "rankstack"


def test_spellings_round_trip_and_dedupe() -> None:
    ms = parse_measures(["bpref", "Bpref", "BPref", "set_P", "SetP", "err@10", "ERR@10", "nDCG@10"])
    assert [str(m) for m in ms] == ["Bpref", "SetP", "ERR@10", "nDCG@10"]
    for text in [*EXTERNAL, "iprec_at_recall_0.50"]:
        m = parse_measure(text)
        assert isinstance(m, ExternalMeasure)
        assert parse_measure(str(m)) == m
        assert pickle.loads(pickle.dumps(m)) == m
    assert parse_measure("iprec_at_recall_0.50") == parse_measure("IPrec@0.5")
    assert measure_provider("ERR@10") == "ir_measures (gdeval)"


def _edited_run(run: dict) -> tuple[dict, list[str]]:
    """DL19's run less 3 judged queries, with one empty ranking and one query the qrels do not have."""
    rd = {q: dict(d) for q, d in run.items()}
    qs = sorted(rd)
    for q in qs[:3]:
        del rd[q]
    rd[qs[3]] = {}
    rd["999999"] = {"7": 2.0, "8": 1.0}
    return rd, qs[:3]


@pytest.mark.parametrize("all_judged", [False, True])
def test_query_sets_as_ir_measures_and_trec_eval(ours: tuple[dict, dict], all_judged: bool) -> None:
    """ir_measures averages over every qrels query, a query missing from the run scoring its default (0):
    trec_eval's -c, rankstack's all_judged=True. Without it, rankstack averages every measure, core or
    not, over the run's judged queries; the per-query values are ir_measures' own either way."""
    qrels, run = ours
    rd, dropped = _edited_run(run)
    texts = ["Bpref", "infAP", "ERR@10", "SetF", "nDCG(judged_only=True)@10", "NumRet", "nDCG@10"]
    if HAS_CWL:
        texts.append("RBP(rel=1)")
    ev = evaluate(qrels, rd, texts, all_judged=all_judged)
    assert len(ev.queries) == (43 if all_judged else 40)
    assert ev.ignored_run_queries == 1 and ev.missing_run_queries == 3
    for m in ev.measures:
        im = irm.parse_measure(str(m))
        per_query, aggregate = _irm_values(im, qrels, rd)
        got = ev.query_values(m)
        assert set(got) == set(per_query) - (set() if all_judged else set(dropped))
        assert all(_close(v, per_query[q]) for q, v in got.items()), m
        if all_judged:
            assert _close(ev[m], aggregate), m
        else:
            agg = im.aggregator()
            for v in got.values():
                agg.add(v)
            assert _close(ev[m], agg.result()), m


def test_remove_query_doc_is_applied_before_ir_measures(ours: tuple[dict, dict]) -> None:
    qrels, run = ours
    q0 = sorted(run)[0]
    rd = {q: dict(d) for q, d in run.items()}
    rd[q0][q0] = 1e9  # the query's own id, ranked first
    ev = evaluate(qrels, rd, ["Bpref", "ERR@10"], remove_query_doc=True)
    clean = evaluate(qrels, run, ["Bpref", "ERR@10"])
    assert ev.per_query == clean.per_query


def test_one_evaluator_many_runs_and_significance(ours: tuple[dict, dict]) -> None:
    qrels, run = ours
    worse = {q: {d: -s for d, s in docs.items()} for q, docs in run.items()}  # the ranking reversed
    ev = Evaluator(qrels, ["ERR@10", "Bpref", "nDCG@10"])
    a, b = ev.evaluate(run), ev.evaluate(worse)
    assert a.per_query == evaluate(qrels, run, ["ERR@10", "Bpref", "nDCG@10"]).per_query
    assert b["ERR@10"] < a["ERR@10"]
    (row,) = significance_table(a, {"reversed": b}, measure="ERR@10")
    assert row.measure == "ERR@10" and row.n_queries == 43 and row.significant


def test_unusable_queries_for_pytrec_eval_are_not_handed_to_it() -> None:
    qrels = {"1": {"a": 1, "b": 0}, "2": {"c": -1, "d": -2}}  # trec_eval is undefined on query 2
    run = {"1": {"a": 1.0, "b": 2.0}, "2": {"c": 1.0}}
    ev = evaluate(qrels, run, ["Bpref", "SetP", "AP"])
    assert ev.per_query["SetP"] == {"1": 0.5, "2": 0.0}
    assert ev.per_query["AP"] == {"1": 0.5, "2": 0.0}
    assert ev.per_query["Bpref"]["2"] == 0.0


def test_no_query_gives_nan_for_external_measures_too(ours: tuple[dict, dict]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ev = evaluate(ours[0], {"nope": {"x": 1.0}}, ["Bpref", "nDCG@10"])
    assert math.isnan(ev["Bpref"]) and math.isnan(ev["nDCG@10"])


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("RBP(p=0.8)", ["RBP", "rel=REQUIRED", "'RBP(p=0.8)'"]),  # no provider computes graded RBP
        ("Bpref@10", ["bad measure 'Bpref@10'", "cutoff", "Bpref takes rel"]),
        ("SetF(beta='x')", ["invalid param beta='x'", "SetF takes"]),
        ("P(level=2)@5", ["unknown parameter 'level'", "unsupported params found"]),
        ("nDGC@10", ["unknown measure 'nDGC'", "ir_measures' other measures", "Bpref", "ERR",
                     *MEASURE_NAMES]),
        ("foo", ["unknown measure 'foo'", "measure not found: foo", *MEASURE_NAMES]),
        ("RR(judged_only=True)@10", ["no ir_measures provider computes it", "msmarco"]),
    ],
)
def test_bad_measures_explain(text: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        parse_measure(text)
    for f in fragments:
        assert f in str(err.value)


def test_missing_provider_says_what_to_install() -> None:
    if irm.pyndeval.is_available():
        pytest.skip("pyndeval is installed")
    with pytest.raises(ConfigError, match=r"alpha_nDCG@10.*pyndeval \(pip install"):
        parse_measure("alpha_nDCG@10")


def test_gdeval_needs_numeric_query_ids() -> None:
    with pytest.raises(ConfigError, match="gdeval, which reads only numeric query ids"):
        evaluate({"q1": {"a": 1}}, {"q1": {"a": 1.0}}, ["ERR@10"])


def test_without_ir_measures(monkeypatch: pytest.MonkeyPatch, ours: tuple[dict, dict]) -> None:
    monkeypatch.setitem(sys.modules, "ir_measures", None)  # import ir_measures -> ImportError
    for text in ["ERR@10", "bpref", "SetP", "nDCG(judged_only=True)@10"]:
        with pytest.raises(ConfigError, match=r"ir_measures, which is not installed: install it with "
                                              r"pip install 'rankstack\[measures\]'"):
            parse_measure(text)
    with pytest.raises(ConfigError) as err:
        parse_measure("foo")
    msg = str(err.value)
    assert "unknown measure 'foo'" in msg and "pip install 'rankstack[measures]'" in msg
    assert all(name in msg for name in MEASURE_NAMES)
    with pytest.raises(ConfigError, match="rankstack"):
        evaluate(*ours, ["nDCG@10", "infAP"])
    ev = evaluate(*ours, ["nDCG@10", "P(rel=2)@5", "Judged@10"])  # the core set needs no ir_measures
    assert ev.providers == dict.fromkeys(["nDCG@10", "P(rel=2)@5", "Judged@10"], "rankstack")
    assert ev["nDCG@10"] == pytest.approx(0.5058, abs=1e-4)
