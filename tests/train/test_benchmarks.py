"""The training benchmarks' data builders on the real collections: the DL19 groups
(``rankstack.train.data.graded_groups`` / ``list_groups``, used by benchmarks/train_dl19_cv.py), the CV
folds and the SciFact train/dev split (``rankstack.train.folds``) shared by both SciFact scripts, and the
DL19 script's own readers and cross-validated fusion."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rankstack.train.folds import holdout_split, kfold_queries

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="module")
def dl19():
    from rankstack.data.formats import read_qrels, read_run

    m = _load("train_dl19_cv")
    d = ROOT / "data/trec-dl-2019"
    return (m, m.read_tsv(str(d / "collection.tsv")), m.read_tsv(str(d / "queries.tsv")),
            read_qrels(str(d / "qrels.txt")), read_run(str(d / "bm25.top100.trec")))


def test_dl19_groups_from_judged_candidates(dl19):
    from rankstack.train.data import graded_groups

    m, passages, queries, qrels, run = dl19
    qids = sorted(q for q in run if q in qrels)
    assert len(qids) == 43
    items = graded_groups(qids, queries, passages, qrels, run, n_neg=7, min_grade=1, seed=42)
    # one group per judged candidate of grade >= 1 that has a lower-graded judged candidate
    assert len(items) == 1343
    assert sum(len(i["docs"]) for i in items) == 10413
    one = graded_groups([qids[0]], queries, passages, qrels, run, n_neg=7, min_grade=1, seed=42)
    assert len(one) == 13
    # graded labels: the head document's grade is strictly above every other label of its group
    assert all(i["labels"][0] > max(i["labels"][1:]) for i in items)
    assert one[2]["labels"] == [3.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 1.0]
    assert len(graded_groups(qids, queries, passages, qrels, run, 7, 2, 42)) == 846
    # deterministic
    again = graded_groups([qids[0]], queries, passages, qrels, run, n_neg=7, min_grade=1, seed=42)
    assert again == one


def test_dl19_list_groups_cover_each_candidate_list_once_per_round(dl19):
    from rankstack.train.data import list_groups

    m, passages, queries, qrels, run = dl19
    qids = sorted(q for q in run if q in qrels)
    items = list_groups(qids[:2], queries, passages, qrels, run, group_size=16, rounds=2, seed=42)
    per_round = sum(len([d for d in run[q] if d in passages]) for q in qids[:2])
    assert per_round == 200
    # without a teacher, groups with no relevant passage are dropped; each kept group has one
    assert all(max(i["labels"]) > 0 for i in items) and all(i["teacher"] is None for i in items)
    assert sum(len(i["docs"]) for i in items) <= 2 * per_round
    teacher = {q: {d: float(k) for k, d in enumerate(sorted(run[q]))} for q in qids[:2]}
    full = list_groups(qids[:2], queries, passages, qrels, run, 16, 2, 42, teacher=teacher)
    assert sum(len(i["docs"]) for i in full) == 2 * per_round  # 2 rounds x every candidate, 7 groups each
    assert len(full) == 2 * 2 * 7
    texts = {passages[d]: d for q in qids[:2] for d in run[q]}
    g = full[0]
    assert g["labels"] == [float(max(qrels[qids[0]].get(texts[t], 0), 0)) for t in g["docs"]]
    assert g["teacher"] == [teacher[qids[0]][texts[t]] for t in g["docs"]]
    # rounds reshuffle: the first groups of the two rounds differ; the same seed gives the same groups
    assert full[0]["docs"] != full[7]["docs"]
    assert list_groups(qids[:2], queries, passages, qrels, run, 16, 2, 42, teacher=teacher) == full


def test_dl19_toy_groups():
    m = _load("train_dl19_cv")
    toy = m.toy_groups(7, 42)
    assert len(toy) == 110  # 100 triples + 10 hard-negative queries
    assert toy[0]["labels"] == [1.0, 0.0] and len(toy[100]["docs"]) == 8


def test_read_tsv_names_the_bad_line(tmp_path):
    m = _load("train_dl19_cv")
    p = tmp_path / "c.tsv"
    p.write_text("1\tok\n2 no tab\n")
    with pytest.raises(ValueError, match=r"c.tsv:2"):
        m.read_tsv(str(p))


def test_scifact_split_matches_cross_encoder_script():
    """Both SciFact scripts hold out the same train queries: ``holdout_split(qrels, dev_holdout, seed)``,
    which is the seeded shuffle the cross-encoder script's published figures used."""
    import random

    from rankstack.data.formats import read_qrels

    qrels = read_qrels(str(ROOT / "data/scifact/qrels/train.tsv"))
    train, dev = holdout_split(qrels, 80, 42)
    assert len(dev) == 80 and len(train) == len(qrels) - 80 == 729
    assert not set(train) & set(dev)
    all_train = sorted(qrels)  # the cross-encoder script's split before it moved into rankstack.train.folds
    random.Random(42).shuffle(all_train)
    assert (train, dev) == (sorted(all_train[80:]), sorted(all_train[:80]))
    for script in ("train_scifact_crossencoder.py", "train_scifact_biencoder.py"):
        src = (ROOT / "benchmarks" / script).read_text()
        assert "train_qids, dev_qids = holdout_split(qrels_train, a.dev_holdout, a.seed)" in src, script


def test_dl19_cv_fusion_reproduces_the_hybrid_teachers_cv_figure(dl19, tmp_path):
    """Cross-validated fusion of BM25 and the shipped bi-encoder reranker run: every fold's weights are
    tuned on the other folds only, and the pooled figure is the hybrid teacher's CV score (0.6579)."""
    from rankstack.data.formats import read_run
    from rankstack.stages.fusion import tune_weights

    m, _, _, qrels, run = dl19
    qids = sorted(q for q in run if q in qrels)
    folds = kfold_queries(qids, 5, 42)
    assert [len(f) for f in folds] == [9, 9, 9, 8, 8] and sorted(q for f in folds for q in f) == qids
    dense_path = str(ROOT / "docs/bench/runs/dl19.dense-rerank.trec.gz")
    out = tmp_path / "fused.trec"
    res = m.cv_fusion([str(ROOT / "data/trec-dl-2019/bm25.top100.trec"), dense_path], folds, qrels, str(out))
    assert res["ndcg10"] == pytest.approx(0.6579, abs=5e-5)
    assert [f["weights"] for f in res["per_fold"]] == [[0.25, 0.75], [0.15, 0.85], [0.25, 0.75], [0.15, 0.85],
                                                        [0.25, 0.75]]
    # fold 1's weights come from the other 34 queries alone: tuning on them again gives the same weights
    dense = read_run(dense_path)
    rest = [q for q in qids if q not in set(folds[1])]
    tw = tune_weights([{q: dict(run[q]) for q in rest}, {q: dict(dense[q]) for q in rest}],
                      {q: qrels[q] for q in rest}, "nDCG@10", method="wsum", norm="zscore")
    assert list(tw["weights"]) == [0.15, 0.85]
    assert len(read_run(str(out))) == 43
    with pytest.raises(ValueError, match=r"bm25.top100.trec: no ranking for queries"):
        m.cv_fusion([str(ROOT / "data/trec-dl-2019/bm25.top100.trec")], [folds[0], folds[1] + ["nope"]], qrels,
                    str(tmp_path / "x.trec"))
