"""Training groups from judgments within a candidate run: ``graded_groups`` and ``list_groups``."""

from __future__ import annotations

import pytest

from rankstack.data.records import Document
from rankstack.train.data import GroupedDataset, graded_groups, list_groups

CORPUS = {d: Document(d, f"text {d}") for d in ["h", "m", "m2", "n", "u", "x"]}
QRELS = {"q": {"h": 3, "m": 1, "m2": 1, "n": 0, "gone": 2, "x": -1}}
RUN = {"q": {"h": 1.0, "m": 2.0, "m2": 3.0, "n": 4.0, "u": 5.0, "x": 6.0, "gone": 7.0}}


def test_graded_groups_pair_each_judged_document_with_lower_graded_ones():
    items = graded_groups(["q"], {"q": "query"}, CORPUS, QRELS, RUN, n_neg=2, min_grade=1, seed=1)
    # h (grade 3) against two of m, m2, n, x; m and m2 (grade 1) against n or x (grades 0, -1 -> label 0);
    # "gone" is not in the corpus, "u" is not judged
    heads = [it["docs"][0] for it in items]
    assert heads == ["text h", "text m", "text m2"]
    assert items[0]["labels"][0] == 3.0 and len(items[0]["docs"]) == 3
    assert all(it["labels"][0] > max(it["labels"][1:]) for it in items)
    assert all(set(it["docs"][1:]) <= {"text n", "text x"} for it in items[1:])
    assert all(lab >= 0 for it in items for lab in it["labels"])
    assert items == graded_groups(["q"], {"q": "query"}, CORPUS, QRELS, RUN, 2, 1, 1)
    assert [it["docs"][0] for it in graded_groups(["q"], {"q": "query"}, CORPUS, QRELS, RUN, 2, 2, 1)] == ["text h"]
    ds = GroupedDataset(items)
    assert len(ds) == 3 and ds[2]["idx"] == 2 and ds[2]["teacher"] is None


def test_list_groups_cut_shuffled_candidate_lists():
    items = list_groups(["q"], {"q": "query"}, CORPUS, QRELS, RUN, group_size=4, rounds=2, seed=0)
    # 6 candidates with text -> groups of 4 and 2 per round; a group without relevant document is dropped
    assert all(max(it["labels"]) > 0 for it in items) and len(items) <= 4
    teacher = {"q": {d: float(i) for i, d in enumerate(sorted(RUN["q"]))}}
    full = list_groups(["q"], {"q": "query"}, CORPUS, QRELS, RUN, 4, 2, 0, teacher=teacher)
    assert [len(it["docs"]) for it in full] == [4, 2, 4, 2]
    for it in full:
        ids = [t.removeprefix("text ") for t in it["docs"]]
        assert it["labels"] == [float(max(QRELS["q"].get(d, 0), 0)) for d in ids]
        assert it["teacher"] == [teacher["q"][d] for d in ids]
    assert full[0]["docs"] != full[2]["docs"]  # each round reshuffles
    assert sorted(d for it in full[:2] for d in it["docs"]) == sorted(f"text {d}" for d in CORPUS)
    with pytest.raises(ValueError, match="group_size must be >= 1"):
        list_groups(["q"], {"q": "query"}, CORPUS, QRELS, RUN, 0)
