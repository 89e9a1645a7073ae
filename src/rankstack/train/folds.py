"""Seeded query splits for training and evaluation: K-fold cross-validation and a held-out subset.

Both sort the query ids first and shuffle them with ``random.Random(seed)``, so a split depends only
on the set of ids and the seed (not on their order), and is the same on every machine and Python
version. Light: no torch.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from rankstack.errors import ConfigError

__all__ = ["kfold_queries", "holdout_split"]


def kfold_queries(qids: Iterable[str], n_folds: int, seed: int) -> list[list[str]]:
    """The ``n_folds`` folds of a cross-validation: the sorted ``qids`` shuffled with ``seed``, the
    ``i``-th query of the shuffle in fold ``i % n_folds``; each fold is sorted. Fold sizes differ by at
    most one (the first folds are the larger)."""
    order = sorted(set(qids))
    if not 1 <= n_folds <= max(len(order), 1):
        raise ConfigError(f"n_folds must be between 1 and the number of queries ({len(order)}), "
                          f"got {n_folds}")
    random.Random(seed).shuffle(order)
    return [sorted(order[i::n_folds]) for i in range(n_folds)]


def holdout_split(qids: Iterable[str], n_holdout: int, seed: int) -> tuple[list[str], list[str]]:
    """``(rest, held_out)``: the sorted ``qids`` shuffled with ``seed``; the first ``n_holdout`` of the
    shuffle are held out (e.g. as dev queries), the others kept; both lists sorted."""
    order = sorted(set(qids))
    if not 0 <= n_holdout <= len(order):
        raise ConfigError(f"n_holdout must be between 0 and the number of queries ({len(order)}), "
                          f"got {n_holdout}")
    random.Random(seed).shuffle(order)
    return sorted(order[n_holdout:]), sorted(order[:n_holdout])
