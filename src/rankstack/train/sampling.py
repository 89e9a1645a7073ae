"""Batch composition for learning to rank.

* :func:`kmeans` + :class:`TopicAwareSampler`: TAS (Hofstätter et al. 2021, "Efficiently Teaching an
  Effective Dense Retriever with Balanced Topic Aware Sampling"): queries are clustered once with
  k-means on their embeddings; every batch is drawn from a single cluster.
* :func:`balanced_margin_pairs`: TAS-Balanced's pair sampling -- (positive, negative) pairs of a query
  are binned by teacher margin ``t_pos - t_neg`` into equal-width bins and sampled uniformly over the
  non-empty bins, so that low-margin (hard) pairs are not drowned by the many easy ones.
* :class:`CurriculumSampler`: curriculum learning (Bengio et al. 2009; for rankers MacAvaney et al.
  2020, "Training Curricula for Open Domain Answer Re-Ranking"): samples are drawn with probability
  ``∝ exp(-lambda(t) * difficulty)`` where ``lambda`` anneals linearly from ``lambda0`` to 0 (uniform)
  over ``anneal_steps`` batches. :func:`difficulty_from_margins` is one heuristic (small retriever
  margin between positive and negatives = hard).
* :class:`DynamicLossWeighting`: loss-based dynamic reweighting -- each training group keeps an
  exponential moving average of its loss; a batch's per-query losses are reweighted by
  ``B * softmax(ema / temperature)`` (hard groups count more), mixed with uniform weights by ``mix``.

All samplers are deterministic given ``seed`` (and epoch, via ``set_epoch``), and plug into
:func:`rankstack.train.trainer.train_cross_encoder` / ``train_bi_encoder`` (``train_sampler=``,
``loss_weighting=``). They yield *indices* such that consecutive ``batch_size`` chunks form the batches,
which is what ``transformers.Trainer``'s ``DataLoader`` builds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rankstack.errors import ConfigError

__all__ = [
    "kmeans",
    "TopicAwareSampler",
    "balanced_margin_pairs",
    "CurriculumSampler",
    "difficulty_from_margins",
    "DynamicLossWeighting",
]


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007) on rows of ``x``;
    returns a cluster id per row. Deterministic for a seed; empty clusters are re-seeded with the point
    farthest from its centroid."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if not 1 <= k <= n:
        raise ConfigError(f"k must be in [1, {n}], got {k}")
    rng = np.random.default_rng(seed)
    centers = [x[rng.integers(n)]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        c = x[rng.choice(n, p=p)]
        centers.append(c)
        d2 = np.minimum(d2, ((x - c) ** 2).sum(1))
    c = np.stack(centers)
    labels = np.zeros(n, dtype=np.int64)
    for it in range(iters):
        dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        new = dist.argmin(1)
        for j in range(k):
            if not (new == j).any():
                far = dist[np.arange(n), new].argmax()
                new[far] = j
        if it > 0 and (new == labels).all():
            break
        labels = new
        c = np.stack([x[labels == j].mean(0) for j in range(k)])
    return labels


class TopicAwareSampler:
    """Yields dataset indices so that each consecutive chunk of ``batch_size`` comes from one cluster
    (TAS). Per epoch: each cluster's members are shuffled and cut into batches; a cluster's leftover
    (< batch_size) is dropped (``drop_last=True``, TAS) or emitted as a short batch padded with other
    members of the same cluster (``drop_last=False``); the batches are then shuffled."""

    def __init__(self, clusters: Sequence[int], batch_size: int, seed: int = 0, drop_last: bool = False):
        if batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        self.clusters = np.asarray(clusters)
        self.batch_size, self.seed, self.drop_last = batch_size, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        out: list[list[int]] = []
        for c in np.unique(self.clusters):
            idx = np.flatnonzero(self.clusters == c)
            idx = idx[rng.permutation(len(idx))]
            full = len(idx) // self.batch_size
            for b in range(full):
                out.append(idx[b * self.batch_size:(b + 1) * self.batch_size].tolist())
            rest = idx[full * self.batch_size:]
            if len(rest) and not self.drop_last:
                pad = rng.choice(idx, self.batch_size - len(rest), replace=len(idx) < self.batch_size)
                out.append(rest.tolist() + pad.tolist())
        order = rng.permutation(len(out))
        return [out[i] for i in order]

    def __iter__(self) -> Iterator[int]:
        for b in self.batches():
            yield from b

    def __len__(self) -> int:
        return sum(len(b) for b in self.batches())


def balanced_margin_pairs(
    pos_scores: Sequence[float],
    neg_scores: Sequence[float],
    n_pairs: int,
    n_bins: int = 10,
    rng: np.random.Generator | None = None,
) -> list[tuple[int, int]]:
    """TAS-Balanced pair sampling for one query: all (positive ``i``, negative ``j``) pairs are binned
    by teacher margin ``pos_scores[i] - neg_scores[j]`` into ``n_bins`` equal-width bins; each of the
    ``n_pairs`` draws picks a non-empty bin uniformly, then a pair uniformly within it (with
    replacement). Returns ``(i, j)`` index pairs."""
    rng = rng or np.random.default_rng(0)
    p = np.asarray(pos_scores, dtype=np.float64)
    n = np.asarray(neg_scores, dtype=np.float64)
    if len(p) == 0 or len(n) == 0:
        raise ConfigError("need at least one positive and one negative score")
    margins = (p[:, None] - n[None, :]).ravel()
    lo, hi = margins.min(), margins.max()
    if hi == lo:
        bins = np.zeros(len(margins), dtype=np.int64)
    else:
        bins = np.minimum(((margins - lo) / (hi - lo) * n_bins).astype(np.int64), n_bins - 1)
    groups = [np.flatnonzero(bins == b) for b in range(n_bins)]
    groups = [g for g in groups if len(g)]
    out = []
    for _ in range(n_pairs):
        g = groups[rng.integers(len(groups))]
        flat = int(g[rng.integers(len(g))])
        out.append(divmod(flat, len(n)))
    return out


def difficulty_from_margins(pos_scores: Sequence[float], neg_scores: Sequence[Sequence[float]]) -> np.ndarray:
    """A difficulty per group in [0, 1]: 1 - rank-normalised margin ``pos - max(neg)`` (retriever or
    teacher scores); the smaller the margin, the harder the group."""
    m = np.array([p - (max(ns) if len(ns) else -np.inf) for p, ns in zip(pos_scores, neg_scores)], dtype=np.float64)
    m = np.where(np.isfinite(m), m, np.nanmax(np.where(np.isfinite(m), m, np.nan)) if np.isfinite(m).any() else 0)
    ranks = m.argsort().argsort().astype(np.float64)
    return 1.0 - ranks / max(len(m) - 1, 1)


class CurriculumSampler:
    """Draws ``num_samples`` indices per epoch with probability ``∝ exp(-lambda(t) * difficulty)``, where
    ``t`` counts batches drawn so far (across epochs) and ``lambda(t) = lambda0 * max(0, 1 -
    t / anneal_steps)``: easy groups first, uniform after ``anneal_steps`` batches. Lazy, so the
    schedule follows training progress; deterministic for a seed."""

    def __init__(self, difficulty: Sequence[float], batch_size: int, anneal_steps: int, lambda0: float = 5.0,
                 seed: int = 0, num_samples: int | None = None):
        self.difficulty = np.asarray(difficulty, dtype=np.float64)
        self.batch_size, self.anneal_steps, self.lambda0, self.seed = batch_size, max(1, anneal_steps), lambda0, seed
        self.num_samples = num_samples or len(self.difficulty)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def probabilities(self, step: int) -> np.ndarray:
        lam = self.lambda0 * max(0.0, 1.0 - step / self.anneal_steps)
        w = np.exp(-lam * (self.difficulty - self.difficulty.min()))
        return w / w.sum()

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        steps_per_epoch = math.ceil(self.num_samples / self.batch_size)
        base = self.epoch * steps_per_epoch
        for s in range(steps_per_epoch):
            p = self.probabilities(base + s)
            n = min(self.batch_size, self.num_samples - s * self.batch_size)
            yield from rng.choice(len(p), size=n, replace=False if n <= len(p) else True, p=p).tolist()

    def __len__(self) -> int:
        return self.num_samples


class DynamicLossWeighting:
    """Loss-based dynamic reweighting of the groups of a batch: ``w = B * softmax(ema / temperature)``
    mixed as ``(1 - mix) + mix * w``, where ``ema`` is each group's moving average of its loss
    (initialised with its first loss). Weights average to 1 within a batch."""

    def __init__(self, temperature: float = 1.0, momentum: float = 0.9, mix: float = 0.5):
        if temperature <= 0 or not 0 <= momentum < 1 or not 0 <= mix <= 1:
            raise ConfigError("need temperature > 0, 0 <= momentum < 1, 0 <= mix <= 1")
        self.temperature, self.momentum, self.mix = temperature, momentum, mix
        self.ema: dict[int, float] = {}

    def weights(self, idx: Sequence[int], losses: Any) -> Any:
        import torch

        losses = torch.as_tensor(losses, dtype=torch.float32)
        vals = []
        for i, l in zip(idx, losses.tolist()):
            prev = self.ema.get(int(i))
            cur = l if prev is None else self.momentum * prev + (1 - self.momentum) * l
            self.ema[int(i)] = cur
            vals.append(cur)
        v = torch.tensor(vals)
        w = len(vals) * torch.softmax(v / self.temperature, dim=0)
        return (1 - self.mix) + self.mix * w
