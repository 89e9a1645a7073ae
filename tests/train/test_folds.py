"""Seeded query splits (``rankstack.train.folds``): K folds and a held-out subset."""

from __future__ import annotations

import random

import pytest

from rankstack.train.folds import holdout_split, kfold_queries

QIDS = [f"q{i}" for i in range(23)]


def test_kfold_is_the_seeded_round_robin_of_the_sorted_ids():
    folds = kfold_queries(reversed(QIDS), 5, 7)
    order = sorted(QIDS)
    random.Random(7).shuffle(order)
    assert folds == [sorted(order[i::5]) for i in range(5)]
    assert [len(f) for f in folds] == [5, 5, 5, 4, 4]
    assert sorted(q for f in folds for q in f) == sorted(QIDS)
    assert kfold_queries(QIDS, 5, 7) == folds  # the input order does not matter, the seed does
    assert kfold_queries(QIDS, 5, 8) != folds
    assert kfold_queries(QIDS, 1, 7) == [sorted(QIDS)]
    for bad in (0, 24):
        with pytest.raises(ValueError, match="n_folds must be between 1 and the number of queries"):
            kfold_queries(QIDS, bad, 7)


def test_holdout_split_holds_out_the_first_of_the_shuffle():
    rest, held = holdout_split(QIDS, 6, 3)
    order = sorted(QIDS)
    random.Random(3).shuffle(order)
    assert held == sorted(order[:6]) and rest == sorted(order[6:])
    assert holdout_split(list(reversed(QIDS)), 6, 3) == (rest, held)
    assert holdout_split(QIDS, 0, 3) == (sorted(QIDS), [])
    assert holdout_split({q: {} for q in QIDS}, 6, 3) == (rest, held)  # a qrels mapping works too
    with pytest.raises(ValueError, match="n_holdout must be between 0"):
        holdout_split(QIDS, 24, 3)
