"""``rankstack.Experiment(...)``: pt.Experiment's call, rankstack's evaluation and significance."""

from __future__ import annotations

import json

import pytest

import rankstack
from rankstack.data import datasets
from rankstack.data.formats import read_run
from rankstack.errors import ConfigError
from rankstack.measures import evaluate, significance_table
from rankstack.stages.base import FromRun


@pytest.fixture(scope="module")
def dl19():
    return datasets.load("dl19")


def test_experiment_table_equals_the_evaluation_and_the_significance_table(dl19, tmp_path):
    bm25 = FromRun(read_run(dl19.meta["runs"]["bm25"]), name="bm25")
    top10 = bm25 % 10
    table = rankstack.Experiment([bm25, top10], dl19, measures=["nDCG@10", "AP"], names=["bm25", "bm25%10"],
                                 baseline=0, correction="bonferroni", save_dir=tmp_path / "out")
    assert [r["name"] for r in table] == ["bm25", "bm25%10"]
    run = read_run(dl19.meta["runs"]["bm25"])
    want = evaluate(dl19.qrels, run, ["nDCG@10", "AP"])
    assert table.row("bm25")["nDCG@10"] == pytest.approx(0.5058, abs=5e-5)
    assert table.row("bm25")["AP"] == pytest.approx(want["AP"], abs=1e-12)
    # the cut run loses AP but not nDCG@10; its p-value is significance_table's, corrected over the family
    row = table.row("bm25%10")
    assert row["nDCG@10"] == pytest.approx(want["nDCG@10"], abs=1e-12)
    assert row["AP"] < want["AP"] and row["AP -"] > 0 and row["AP +"] == 0
    ap_cut = evaluate(dl19.qrels, run.cut(10), ["AP"]).query_values("AP")
    sig = significance_table(want.query_values("AP"), {"x": ap_cut}, test="t", correction="bonferroni")[0]
    assert row["AP p-value"] == pytest.approx(sig.p) and row["AP p-value corrected"] == pytest.approx(sig.p_corrected)
    assert row["AP reject"] is sig.significant is True
    assert row["AP delta"] == pytest.approx(row["AP"] - table.row("bm25")["AP"])
    assert "AP p-value" not in table.row("bm25")  # the baseline is not compared with itself
    # written as the TOML runner writes: results.json with provenance, a run file per system, the report
    body = json.loads((tmp_path / "out" / "results.json").read_text())
    assert body["meta"]["config"]["correction"] == "bonferroni" and body["meta"]["rankstack"] == rankstack.__version__
    assert read_run(tmp_path / "out" / body["runs"]["dl19/bm25%10"]).to_dict() == top10(dl19.queries).to_dict()
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000
    # per-query rows and a printable table
    assert {r["qid"] for r in table.per_query} == {q.id for q in dl19.queries}
    assert "bm25%10" in str(table)


def test_experiment_argument_errors(dl19):
    bm25 = FromRun(read_run(dl19.meta["runs"]["bm25"]), name="bm25")
    with pytest.raises(ConfigError, match="baseline 'x' is neither an index nor one of"):
        rankstack.Experiment([bm25], dl19, baseline="x")
    with pytest.raises(ConfigError, match="system names must differ"):
        rankstack.Experiment([bm25, bm25], dl19)
    with pytest.raises(ConfigError, match="no qrels"):
        rankstack.Experiment([bm25], list(dl19.queries))
    with pytest.raises(ConfigError, match="correction must be one of"):
        rankstack.Experiment([bm25], dl19, correction="sidak")
    with pytest.raises(ConfigError, match="nDCG@x"):
        rankstack.Experiment([bm25], dl19, measures=["nDCG@x"])
