"""Fusion: hand-computed RRF / CombSUM / CombMNZ / weighted sums, agreement with ranx, tuning, ``+``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankstack.data.formats import read_qrels, read_run
from rankstack.data.records import Query, Run
from rankstack.measures import evaluate
from rankstack.stages.base import FromRun, Fuse
from rankstack.stages.fusion import fuse_runs, tune_weights

ROOT = Path(__file__).resolve().parents[2]
A = Run({"q": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}, name="a")
B = Run({"q": {"d2": 10.0, "d4": 6.0}, "q2": {"x": 1.0}}, name="b")


def test_rrf_by_hand():
    f = fuse_runs([A, B], "rrf", rrf_k=60)
    assert f["q"] == pytest.approx({"d1": 1 / 61, "d2": 1 / 62 + 1 / 61, "d3": 1 / 63, "d4": 1 / 62})
    assert f["q2"] == pytest.approx({"x": 1 / 61})
    w = fuse_runs([A, B], "rrf", weights=[2.0, 0.5], rrf_k=0)
    assert w["q"]["d2"] == pytest.approx(2 / 2 + 0.5 / 1)


def test_rrf_ties_ranked_in_trec_eval_order():
    tied = Run({"q": {"a": 1.0, "b": 1.0}})
    f = fuse_runs([tied], "rrf", rrf_k=60)
    assert f["q"] == pytest.approx({"b": 1 / 61, "a": 1 / 62})  # doc id descending ranks first


def test_combsum_combmnz_minmax_zscore_by_hand():
    s = fuse_runs([A, B], "combsum")
    assert s["q"] == pytest.approx({"d1": 3, "d2": 12, "d3": 1, "d4": 6})
    mm = fuse_runs([A, B], "combsum", norm="minmax")
    assert mm["q"] == pytest.approx({"d1": 1.0, "d2": 0.5 + 1.0, "d3": 0.0, "d4": 0.0})
    mnz = fuse_runs([A, B], "combmnz", norm="minmax")
    assert mnz["q"] == pytest.approx({"d1": 1.0, "d2": 3.0, "d3": 0.0, "d4": 0.0})
    z = fuse_runs([A, B], "combsum", norm="zscore")
    sd = np.std([3, 2, 1])
    assert z["q"] == pytest.approx({"d1": 1 / sd, "d2": 0.0 + 1.0, "d3": -1 / sd, "d4": -1.0})
    ws = fuse_runs([A, B], "wsum", norm="minmax", weights=[0.3, 0.7])
    assert ws["q"] == pytest.approx({"d1": 0.3, "d2": 0.15 + 0.7, "d3": 0.0, "d4": 0.0})
    assert fuse_runs([Run({"q": {"a": 2.0, "b": 2.0}})], "combsum", norm="minmax")["q"] == {
        "a": 1.0,
        "b": 1.0,
    }


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown fusion method 'max'"):
        fuse_runs([A], "max")
    with pytest.raises(ValueError, match="unknown normalisation"):
        fuse_runs([A], "rrf", norm="l2")
    with pytest.raises(ValueError, match="1 weights for 2 runs"):
        fuse_runs([A, B], "wsum", weights=[1.0])


@pytest.fixture(scope="module")
def dl19():
    run = read_run(ROOT / "data/trec-dl-2019/bm25.top100.trec")
    qrels = read_qrels(ROOT / "data/trec-dl-2019/qrels.txt")
    # a second, different ranking of the same candidates: BM25 scores damped by the passage id parity
    other = Run(
        {q: {d: s * (0.5 if int(d) % 2 else 1.0) for d, s in run[q].items()} for q in run}, name="other"
    )
    return run, other, qrels


@pytest.mark.slow
def test_wsum_minmax_agrees_with_ranx(dl19):
    """ranx.fuse(norm="min-max", method="wsum") on real runs (one method: ranx's numba JIT costs
    about a minute per method on a busy 2-core machine, the reason rankstack does not call it)."""
    ranx = pytest.importorskip("ranx")
    run, other, _ = dl19
    ours = fuse_runs([run, other], "wsum", "minmax", weights=[0.3, 0.7])
    theirs = ranx.fuse(
        [ranx.Run(run.to_dict()), ranx.Run(other.to_dict())],
        norm="min-max",
        method="wsum",
        params={"weights": [0.3, 0.7]},
    ).to_dict()
    assert set(ours) == set(theirs) and len(ours) == 43
    for q in run:
        assert set(ours[q]) == set(theirs[q])
        for d, s in ours[q].items():
            assert s == pytest.approx(theirs[q][d], rel=1e-5, abs=1e-6), (q, d)


def test_tune_weights_and_stage(dl19):
    run, other, qrels = dl19
    res = tune_weights([run, other], qrels, "nDCG@10", grid=[0.0, 0.25, 0.5, 0.75, 1.0])
    assert len(res["table"]) == 5 and res["score"] == max(s for _, s in res["table"])
    fused = fuse_runs([run, other], "wsum", "minmax", res["weights"])
    assert evaluate(qrels, fused, ["nDCG@10"])["nDCG@10"] == pytest.approx(res["score"], abs=1e-12)
    # weight 1 on the BM25 run reproduces BM25's own nDCG@10 (0.5058)
    only_bm25 = dict(res["table"])[(1.0, 0.0)]
    assert only_bm25 == pytest.approx(0.5058, abs=5e-4)


def test_plus_operator_is_combsum():
    queries = [Query("q", "x"), Query("q2", "y"), Query("q3", "none")]
    stage = FromRun(A, missing="warn") + FromRun(B, missing="warn")
    assert isinstance(stage, Fuse) and stage.method == "combsum"
    out = stage(queries)
    assert out["q"] == pytest.approx({"d1": 3, "d2": 12, "d3": 1, "d4": 6})
    assert out["q3"] == {} and out.stats["wall_s"] > 0
    three = (FromRun(A, missing="warn") + FromRun(B, missing="warn")) + FromRun(A, missing="warn")
    assert len(three.stages) == 3
    assert three(queries)["q"]["d1"] == pytest.approx(6.0)
    rrf = Fuse([A, B], method="rrf")
    assert rrf(queries)["q"]["d2"] == pytest.approx(1 / 62 + 1 / 61)
