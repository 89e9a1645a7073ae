"""Teacher scores for run-based training data: ``pin_positives`` (label correction of a teacher) and
``GroupedDataset.from_run`` with negative rounds and teacher scores."""

from __future__ import annotations

import pytest

from rankstack.data.records import Document, Run
from rankstack.train.data import GroupedDataset, pin_positives
from rankstack.train.negatives import NegativeMiner


def test_pin_positives_lifts_only_misranked_judged_documents():
    teacher = {"q": {"a": 3.0, "p": 2.0, "b": 1.0, "h": 2.5, "m": 0.2}}
    qrels = {"q": {"p": 1, "h": 2, "b": 0}}
    got = pin_positives(teacher, qrels, margin=1.0)["q"]
    # grade 1: p must beat a (3.0, unjudged = grade 0) and b by 1 -> 4.0
    # grade 2: h must beat p (now 4.0) and a by 1 -> 5.0
    assert got == {"a": 3.0, "p": 4.0, "b": 1.0, "h": 5.0, "m": 0.2}
    # a teacher that already respects the judgments is unchanged (negatives keep their order)
    ok = {"q": {"h": 9.0, "p": 7.0, "a": 3.0, "b": 1.0}}
    assert pin_positives(ok, qrels, margin=1.0) == ok
    # margin 0: ties are allowed, not lifted further
    assert pin_positives({"q": {"a": 3.0, "p": 3.0}}, {"q": {"p": 1}}, margin=0.0)["q"]["p"] == 3.0
    # min_grade=2 leaves grade-1 documents where the teacher put them
    assert pin_positives(teacher, qrels, margin=1.0, min_grade=2)["q"]["p"] == 2.0
    # the input is not modified
    assert teacher["q"]["p"] == 2.0


def test_pin_positives_adds_unscored_judged_documents_and_keeps_unjudged_queries():
    got = pin_positives({"q": {"a": 1.0}, "z": {"x": 0.5}}, {"q": {"p": 1}}, margin=0.5)
    assert got == {"q": {"a": 1.0, "p": 1.5}, "z": {"x": 0.5}}
    with pytest.raises(ValueError, match="margin"):
        pin_positives({}, {}, margin=-1)


CORPUS = {d: Document(d, f"text {d}") for d in ["p", "p2", "a", "b", "c", "d", "r"]}
QRELS = {"q": {"p": 1, "p2": 1}}
RUN = Run({"q": {"a": 4.0, "p": 3.5, "b": 3.0, "c": 2.0, "d": 1.0, "p2": 0.5}})


def test_from_run_rounds_give_fresh_negatives_per_round():
    miner = NegativeMiner(n=2, seed=7)
    rounds = [miner.mine(QRELS, RUN, round_=r) for r in range(3)]
    ds = GroupedDataset.from_run({"q": "query"}, CORPUS, QRELS, rounds)
    assert len(ds) == 6  # 3 rounds x 2 positives
    for i in range(6):
        r = i // 2
        assert ds[i]["docs"][1:] == [f"text {d}" for d in rounds[r]["q"].doc_ids]
    assert ds[0]["docs"][0] == "text p" and ds[1]["docs"][0] == "text p2"
    # rounds differ (seeded per round), and the same rounds give the same data
    assert {tuple(r["q"].doc_ids) for r in rounds} != {tuple(rounds[0]["q"].doc_ids)}
    again = GroupedDataset.from_run({"q": "query"}, CORPUS, QRELS, [miner.mine(QRELS, RUN, round_=r) for r in range(3)])
    assert [again[i]["docs"] for i in range(6)] == [ds[i]["docs"] for i in range(6)]
    with pytest.raises(ValueError, match="no rounds"):
        GroupedDataset.from_run({"q": "query"}, CORPUS, QRELS, [])


def test_from_run_teacher_scores_follow_the_documents():
    negs = {"q": NegativeMiner(n=3, sample="top", strategy="mixed", random_fraction=1 / 3, seed=1)
            .mine(QRELS, RUN, corpus_ids=["r"])["q"]}
    assert negs["q"].sources == ["hard", "hard", "random"] and negs["q"].doc_ids[2] == "r"
    teacher = pin_positives({"q": {d: -s for d, s in RUN["q"].items()}}, QRELS, margin=1.0)
    ds = GroupedDataset.from_run({"q": "query"}, CORPUS, QRELS, negs, teacher=teacher)
    it = ds[0]
    # positive p pinned to max(unjudged) + 1 = -1.0 + 1; a -> -4.0, b -> -3.0; r unscored -> the query's floor
    assert it["docs"] == ["text p", "text a", "text b", "text r"]
    assert it["teacher"] == [0.0, -4.0, -3.0, -4.0]
    assert ds.teacher_missing == 1
    assert ds[1]["teacher"][0] == 0.0  # p2 (teacher -0.5 < -1 + 1) lifted to the same floor
    with pytest.raises(KeyError, match="no teacher scores"):
        GroupedDataset.from_run({"q": "query"}, CORPUS, QRELS, negs, teacher={"other": {"a": 1.0}})


def test_hybrid_teacher_fuses_tunes_and_pins():
    from rankstack.stages.fusion import fuse_runs, tune_weights
    from rankstack.train.teacher import hybrid_teacher

    bm25 = {"q": {"a": 9.0, "p": 5.0, "b": 4.0, "c": 1.0}, "r": {"x": 3.0, "y": 2.0, "z": 1.0}}
    dense = {"q": {"a": 0.1, "p": 0.9, "b": 0.5, "c": 0.4}, "r": {"x": 0.2, "y": 0.8, "z": 0.1}}
    qrels = {"q": {"p": 1}, "r": {"y": 2, "x": 1}}
    teacher, w = hybrid_teacher([bm25, dense], qrels, margin=0.5)
    tuned = tune_weights([bm25, dense], qrels, "nDCG@10", method="wsum", norm="zscore")["weights"]
    assert w == tuned
    fused = fuse_runs([bm25, dense], "wsum", "zscore", w)
    assert hybrid_teacher([bm25, dense], qrels, pin=False)[0] == {q: dict(fused[q]) for q in fused}
    assert teacher == pin_positives(fused, qrels, margin=0.5)
    # fixed weights: no tuning; pinning lifts the judged documents above the rest
    fixed, w2 = hybrid_teacher([bm25, dense], qrels, weights=[1, 0], margin=1.0)
    assert w2 == [1.0, 0.0]
    assert fixed["q"]["p"] == pytest.approx(max(v for d, v in fixed["q"].items() if d != "p") + 1.0)
    assert fixed["r"]["y"] > fixed["r"]["x"] > fixed["r"]["z"]
