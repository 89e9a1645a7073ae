"""Negative mining and batch sampling."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.data.records import Run
from rankstack.train.negatives import NegativeMiner, RemineCallback
from rankstack.train.sampling import (
    CurriculumSampler,
    DynamicLossWeighting,
    TopicAwareSampler,
    balanced_margin_pairs,
    difficulty_from_margins,
    kmeans,
)

# query q1: positive p (rank 3, score 8.0); unjudged candidates d1..d10
RUN = Run({
    "q1": {"d1": 10.0, "d2": 9.0, "p": 8.0, "d3": 7.9, "d4": 7.0, "d5": 6.0, "d6": 5.0, "d7": 4.0,
           "d8": 3.0, "d9": 2.0, "d10": 1.0, "n0": 6.5},
    "q2": {"x1": 3.0, "x2": 2.0},
})
QRELS = {"q1": {"p": 1, "n0": 0}, "q2": {"y": 2}}
CORPUS = ["p", "y", "n0"] + [f"d{i}" for i in range(1, 11)] + [f"r{i}" for i in range(50)]


def test_rank_window_excludes_judged_and_top():
    m = NegativeMiner(n=20, rank_window=(2, 8), sample="top")
    got = m.mine(QRELS, RUN, query_ids=["q1"])["q1"].doc_ids
    # ranks: d1 1, d2 2, p 3, d3 4, d4 5, n0 6 (judged), d5 7, d6 8
    assert got == ["d2", "d3", "d4", "d5", "d6"]
    assert m.stats["short"] == 1


def test_margin_ratio_and_teacher_filters():
    m = NegativeMiner(n=20, rank_window=(1, 100), sample="top", margin=1.5)
    assert m.mine(QRELS, RUN, query_ids=["q1"])["q1"].doc_ids[:2] == ["d5", "d6"]  # score <= 8 - 1.5
    assert m.stats["dropped_margin"] == 4  # d1 d2 d3 d4
    m = NegativeMiner(n=20, sample="top", ratio=0.8)
    assert m.mine(QRELS, RUN, query_ids=["q1"])["q1"].doc_ids[0] == "d5"  # <= 6.4
    teacher = {"q1": {"p": 5.0, "d1": 4.9, "d2": 1.0, "d3": 6.0}}
    m = NegativeMiner(n=3, sample="top", teacher_scores=teacher, teacher_margin=0.5)
    assert m.mine(QRELS, RUN, query_ids=["q1"])["q1"].doc_ids == ["d2", "d4", "d5"]
    assert m.stats["dropped_teacher"] == 2


def test_pooling_correction_skip_and_weight():
    m = NegativeMiner(n=3, sample="top", pooling="skip", pooling_temperature=0.5, pooling_threshold=0.3)
    got = m.mine(QRELS, RUN, query_ids=["q1"])["q1"]
    # p_fn = sigmoid((s - 8) / 0.5): d1 .98, d2 .88, d3 .45 (> .3, dropped), d4 .12 kept
    assert got.doc_ids == ["d4", "d5", "d6"] and m.stats["dropped_pooling"] == 3
    m = NegativeMiner(n=2, sample="top", pooling="weight", pooling_temperature=1.0)
    got = m.mine(QRELS, RUN, query_ids=["q1"])["q1"]
    assert got.doc_ids == ["d1", "d2"]
    assert got.weights == pytest.approx([1 - 1 / (1 + np.exp(-2.0)), 1 - 1 / (1 + np.exp(-1.0))])


def test_deterministic_and_order_independent():
    a = NegativeMiner(n=4, strategy="mixed", random_fraction=0.5, seed=3).mine(QRELS, RUN, CORPUS)
    b = NegativeMiner(n=4, strategy="mixed", random_fraction=0.5, seed=3).mine(QRELS, RUN, CORPUS, query_ids=["q2", "q1"])
    assert a["q1"] == b["q1"] and a["q2"] == b["q2"]
    c = NegativeMiner(n=4, strategy="mixed", random_fraction=0.5, seed=4).mine(QRELS, RUN, CORPUS)
    assert a["q1"].doc_ids != c["q1"].doc_ids
    assert a["q1"].sources.count("random") == 2 and a["q1"].sources.count("hard") == 2
    for q in ("q1", "q2"):
        assert not set(a[q].doc_ids) & set(QRELS[q]) and len(set(a[q].doc_ids)) == 4
    # q2 has only 2 candidates: topped up with random ones
    assert a["q2"].sources.count("hard") == 2


def test_errors():
    with pytest.raises(ValueError, match="needs a candidate run"):
        NegativeMiner(strategy="hard").mine(QRELS, None)
    with pytest.raises(ValueError, match="corpus_ids"):
        NegativeMiner(strategy="random").mine(QRELS, RUN)
    with pytest.raises(ValueError, match="rank_window"):
        NegativeMiner(rank_window=(5, 2))


def test_remine_callback_uses_current_model():
    class DS:
        negatives = {"q1": None}

    ds = DS()

    def rescore(model, pool):  # the "model" reverses the pool's order
        return Run({q: {d: -s for d, s in docs.items()} for q, docs in pool.items()})

    cb = RemineCallback(NegativeMiner(n=2, sample="top"), ds, QRELS, RUN, rescore, every_n_steps=2)
    cb.remine(model=object())
    assert ds.negatives["q1"].doc_ids == ["d10", "d9"] and cb.rounds == 1


# ------------------------------------------------------------------ sampling


def test_kmeans_and_topic_aware_batches():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (12, 2)), rng.normal(-5, 0.1, (9, 2))])
    lab = kmeans(x, 3, seed=0)
    assert len(set(lab[:20])) == 1 and len(set(lab[20:32])) == 1 and len(set(lab[32:])) == 1
    assert len(set(lab)) == 3
    assert (kmeans(x, 3, seed=0) == lab).all()
    s = TopicAwareSampler(lab, batch_size=4, seed=1)
    idx = list(s)
    assert len(idx) % 4 == 0
    for b in range(0, len(idx), 4):
        assert len({lab[i] for i in idx[b:b + 4]}) == 1
    assert set(idx) == set(range(len(x)))  # nothing dropped without drop_last
    assert list(TopicAwareSampler(lab, 4, seed=1)) == idx
    s.set_epoch(1)
    assert list(s) != idx
    assert len(list(TopicAwareSampler(lab, 4, seed=1, drop_last=True))) == 4 * (5 + 3 + 2)


def test_balanced_margin_pairs_flattens_margin_distribution():
    pos = [10.0]
    neg = [9.5] + [0.0] * 99  # one hard negative, 99 easy ones
    pairs = balanced_margin_pairs(pos, neg, n_pairs=2000, n_bins=10, rng=np.random.default_rng(0))
    hard = sum(1 for _, j in pairs if j == 0) / len(pairs)
    assert 0.4 < hard < 0.6  # two non-empty bins -> ~half, versus 1% with uniform pair sampling
    assert all(i == 0 for i, _ in pairs)


def test_curriculum_anneals_to_uniform():
    d = difficulty_from_margins([5.0, 1.0, 3.0], [[0.0], [0.9], [2.0]])
    assert d.tolist() == pytest.approx([0.0, 1.0, 0.5])  # margins 5, .1, 1
    cs = CurriculumSampler(d, batch_size=2, anneal_steps=10, lambda0=5.0)
    p0, p10 = cs.probabilities(0), cs.probabilities(10)
    assert p0[0] > p0[2] > p0[1]
    assert p10 == pytest.approx([1 / 3] * 3)
    assert list(CurriculumSampler(d, 2, 10, seed=3)) == list(CurriculumSampler(d, 2, 10, seed=3))
    assert len(list(cs)) == 3


def test_dynamic_loss_weighting():
    w = DynamicLossWeighting(temperature=1.0, momentum=0.5, mix=1.0)
    a = w.weights([0, 1], [2.0, 0.0])
    assert a.sum().item() == pytest.approx(2.0)
    assert a[0].item() == pytest.approx(2 * np.exp(2) / (np.exp(2) + 1), rel=1e-5)
    b = w.weights([0, 1], [0.0, 0.0])  # ema: 1.0 and 0.0
    assert b[0].item() == pytest.approx(2 * np.exp(1) / (np.exp(1) + 1), rel=1e-5)


def test_balanced_margin_sampling_favours_the_rare_hard_negatives():
    """TAS-Balanced's margin bins: one low-margin candidate among 20 easy ones is drawn far more often
    than uniform sampling draws it; without teacher scores for a query it falls back to uniform."""
    qids = [f"q{i}" for i in range(200)]
    cand = {"p": 10.0, "h": 9.0, **{f"e{j}": 8.0 - j * 0.1 for j in range(20)}}
    run = Run({q: cand for q in qids})
    qrels = {q: {"p": 1} for q in qids}
    teacher = {q: {"p": 10.0, "h": 9.5, **{f"e{j}": j / 20 for j in range(20)}} for q in qids}
    bal = NegativeMiner(n=2, sample="balanced", teacher_scores=teacher, seed=3).mine(qrels, run)
    uni = NegativeMiner(n=2, sample="uniform", seed=3).mine(qrels, run)
    hit_bal = sum("h" in bal[q].doc_ids for q in qids) / len(qids)
    hit_uni = sum("h" in uni[q].doc_ids for q in qids) / len(qids)
    assert hit_uni < 0.2 and hit_bal > 0.5
    assert all(len(set(bal[q].doc_ids)) == 2 for q in qids)  # without replacement
    m = NegativeMiner(n=2, sample="balanced", teacher_scores={"q0": teacher["q0"]}, seed=3)
    m.mine(qrels, run, query_ids=["q0", "q1"])
    assert m.stats["unbalanced"] == 1
    with pytest.raises(ValueError, match="teacher_scores"):
        NegativeMiner(sample="balanced")
