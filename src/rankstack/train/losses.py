"""Learning-to-rank losses with one signature.

Every loss is a :class:`torch.nn.Module` (sentence-transformers style) called as::

    loss(scores: Tensor[Q, L], labels: Tensor[Q, L], mask: BoolTensor[Q, L] | None = None) -> Tensor[]

* ``scores``: model scores, one row per query, one column per candidate (e.g. ``[pos, neg_1..neg_n]``).
* ``labels``: relevance grades (or teacher scores for distillation losses) of the same shape.
* ``mask``: ``True`` where the entry is real. Masked entries never contribute to the value or the
  gradient (they are padding of ragged lists).

Each loss computes a per-query loss (``reduction="none"`` returns it, shape ``[Q]``) and reduces it with
``"mean"`` (default; the mean over queries that have at least one valid entry) or ``"sum"``. Rows
without anything to learn from (e.g. no positive for a contrastive loss, no ordered pair for a pairwise
loss) contribute 0 but still count in the mean, like allRank/TF-Ranking.

All computations run in float32 whatever the input dtype (bf16 autocast safe).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rankstack.errors import ConfigError

__all__ = [
    "RankingLoss",
    "PointwiseBCE",
    "PointwiseMSE",
    "RankNet",
    "PairwiseHinge",
    "MarginMSE",
    "SoftmaxCrossEntropy",
    "InfoNCE",
    "ListNet",
    "ListMLE",
    "PListMLE",
    "LambdaLoss",
    "ApproxNDCG",
    "DecoupledSoftmax",
    "GroupInfoNCE",
    "PLRankPolicyGradient",
    "LiPOLambda",
    "lambda_weights",
    "FocalReweighting",
    "in_batch_scores",
    "LOSSES",
    "get_loss",
]

_NEG = -1e30  # stands in for -inf: exp() underflows to 0 but no inf-inf NaNs


def _dcg_discount(positions: Tensor) -> Tensor:
    """``log2(1 + rank)`` for 1-based ranks (Järvelin & Kekäläinen's discount as in trec_eval)."""
    return torch.log2(1.0 + positions.float())


class RankingLoss(nn.Module):
    """Base class: validates inputs, masks, computes :meth:`per_query` and reduces it."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    # subclasses implement this: scores/labels float32, mask bool (all same shape [Q, L])
    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, scores: Tensor, labels: Tensor, mask: Tensor | None = None) -> Tensor:
        scores, labels, mask = _check(scores, labels, mask, type(self).__name__)
        per_q = self.per_query(scores, labels, mask)
        return _reduce(per_q, mask, self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


def _check(scores: Tensor, labels: Tensor, mask: Tensor | None, name: str) -> tuple[Tensor, Tensor, Tensor]:
    if not isinstance(scores, Tensor) or not isinstance(labels, Tensor):
        raise TypeError(f"{name}: scores and labels must be torch tensors")
    if scores.dim() == 1:
        scores = scores.unsqueeze(0)
        labels = labels.unsqueeze(0) if labels.dim() == 1 else labels
        mask = mask.unsqueeze(0) if mask is not None and mask.dim() == 1 else mask
    if scores.dim() != 2:
        raise ConfigError(f"{name}: scores must be [Q, L], got shape {tuple(scores.shape)}")
    if labels.shape != scores.shape:
        raise ConfigError(f"{name}: labels shape {tuple(labels.shape)} != scores shape {tuple(scores.shape)}")
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    else:
        if mask.shape != scores.shape:
            raise ConfigError(f"{name}: mask shape {tuple(mask.shape)} != scores shape {tuple(scores.shape)}")
        if mask.dtype != torch.bool:
            raise TypeError(f"{name}: mask must be a bool tensor (True = valid entry), got {mask.dtype}")
    labels = labels.detach().float()
    if not torch.isfinite(labels[mask]).all():
        raise ConfigError(f"{name}: labels contain NaN/inf at unmasked entries")
    scores = scores.float()
    # neutralise masked entries so that NaN/inf padding cannot leak through arithmetic
    scores = torch.where(mask, scores, torch.zeros((), dtype=scores.dtype, device=scores.device))
    labels = torch.where(mask, labels, torch.zeros((), dtype=labels.dtype, device=labels.device))
    return scores, labels, mask


def _reduce(per_q: Tensor, mask: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return per_q
    if reduction == "sum":
        return per_q.sum()
    rows = mask.any(dim=1)
    n = rows.sum().clamp(min=1)
    return (per_q * rows).sum() / n


def _pairs(labels: Tensor, mask: Tensor) -> Tensor:
    """``[Q, L, L]`` bool: ``labels[i] > labels[j]``, both valid."""
    valid = mask[:, :, None] & mask[:, None, :]
    return valid & (labels[:, :, None] > labels[:, None, :])


def _masked_log_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    return torch.log_softmax(scores.masked_fill(~mask, _NEG), dim=1)


# --------------------------------------------------------------------------------------- pointwise


class PointwiseBCE(RankingLoss):
    """Pointwise binary cross-entropy on logits (the monoBERT / sentence-transformers
    ``CrossEncoder`` ``BinaryCrossEntropyLoss`` objective; Nogueira & Cho 2019, "Passage Re-ranking with
    BERT"). Labels must lie in [0, 1] (binary relevance or soft targets); per query, the mean over
    valid entries."""

    def __init__(self, pos_weight: float | None = None, reduction: str = "mean"):
        super().__init__(reduction)
        self.pos_weight = pos_weight

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        if ((labels[mask] < 0) | (labels[mask] > 1)).any():
            raise ConfigError("PointwiseBCE: labels must be in [0, 1]; rescale graded labels first")
        pw = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=scores.device)
        el = F.binary_cross_entropy_with_logits(scores, labels, reduction="none", pos_weight=pw)
        el = el * mask
        return el.sum(1) / mask.sum(1).clamp(min=1)


class PointwiseMSE(RankingLoss):
    """Pointwise squared error ``(s - y)^2`` (regression on grades or teacher scores; the
    sentence-transformers ``MSELoss`` for cross-encoder distillation). Per query, mean over valid
    entries."""

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        el = (scores - labels).pow(2) * mask
        return el.sum(1) / mask.sum(1).clamp(min=1)


# ---------------------------------------------------------------------------------------- pairwise


def _mean_over_pairs(loss: Callable[[Tensor], Tensor], scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Per query, the mean of ``loss(s_i - s_j)`` over the valid pairs with ``y_i > y_j``."""
    pairs = _pairs(labels, mask)
    el = loss(scores[:, :, None] - scores[:, None, :]) * pairs
    return el.sum((1, 2)) / pairs.sum((1, 2)).clamp(min=1)


class RankNet(RankingLoss):
    """RankNet pairwise logistic loss (Burges et al. 2005, "Learning to Rank using Gradient Descent"):
    for every valid pair with ``y_i > y_j``: ``log(1 + exp(-sigma (s_i - s_j)))``; per query, the mean
    over such pairs (allRank's ``rankNet`` averages over all pairs of the batch)."""

    def __init__(self, sigma: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.sigma = sigma

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        return _mean_over_pairs(lambda diff: F.softplus(-self.sigma * diff), scores, labels, mask)


class PairwiseHinge(RankingLoss):
    """Pairwise hinge (margin ranking) loss, RankSVM's objective (Herbrich et al. 2000; Joachims 2002):
    ``max(0, margin - (s_i - s_j))`` for valid pairs with ``y_i > y_j``; per query, mean over pairs."""

    def __init__(self, margin: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = margin

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        return _mean_over_pairs(lambda diff: F.relu(self.margin - diff), scores, labels, mask)


class MarginMSE(RankingLoss):
    """Margin-MSE (Hofstätter et al. 2020, "Improving Efficient Neural Ranking Models with
    Cross-Architecture Knowledge Distillation"): ``labels`` are *teacher scores*; the student's margin
    ``s_0 - s_j`` between the first item (the positive) and each other valid item regresses onto the
    teacher's margin ``t_0 - t_j``. Per query, the mean over ``j``. ``all_pairs=True`` uses every pair
    ``i < j`` instead of anchoring on column 0."""

    def __init__(self, all_pairs: bool = False, reduction: str = "mean"):
        super().__init__(reduction)
        self.all_pairs = all_pairs

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        if self.all_pairs:
            sd = scores[:, :, None] - scores[:, None, :]
            td = labels[:, :, None] - labels[:, None, :]
            sel = torch.triu(mask[:, :, None] & mask[:, None, :], diagonal=1)
            el = (sd - td).pow(2) * sel
            return el.sum((1, 2)) / sel.sum((1, 2)).clamp(min=1)
        sel = mask[:, 1:] & mask[:, :1]
        el = ((scores[:, :1] - scores[:, 1:]) - (labels[:, :1] - labels[:, 1:])).pow(2) * sel
        return el.sum(1) / sel.sum(1).clamp(min=1)


# ---------------------------------------------------------------------------------------- listwise


class SoftmaxCrossEntropy(RankingLoss):
    """Softmax cross-entropy (TF-Ranking's ``SoftmaxLoss``; Bruch et al. 2019, "An Analysis of the
    Softmax Cross Entropy Loss for Learning-to-Rank"): target distribution ``y / sum(y)`` over valid
    entries, ``-sum_i p_i log softmax(s / T)_i``. With one positive this is ordinary softmax CE
    (= InfoNCE, = sentence-transformers' ``MultipleNegativesRankingLoss`` with hard negatives).
    Rows with no positive label contribute 0. Negative labels are an error."""

    def __init__(self, temperature: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        if temperature <= 0:
            raise ConfigError("temperature must be > 0")
        self.temperature = temperature

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        if (labels[mask] < 0).any():
            raise ConfigError(f"{type(self).__name__}: labels must be >= 0")
        logp = _masked_log_softmax(scores / self.temperature, mask)
        total = labels.sum(1, keepdim=True)
        p = labels / total.clamp(min=1e-12)
        return -(p * logp * mask).sum(1)


class InfoNCE(SoftmaxCrossEntropy):
    """InfoNCE (van den Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding";
    the DPR / MNRL contrastive loss): softmax cross-entropy of the positive against negatives at
    temperature ``T`` (default 0.05, as for cosine similarities). Build in-batch scores with
    :func:`in_batch_scores`; with more than one positive the target spreads uniformly over them."""

    def __init__(self, temperature: float = 0.05, reduction: str = "mean"):
        super().__init__(temperature=temperature, reduction=reduction)


def in_batch_scores(
    query_emb: Tensor,
    pos_emb: Tensor,
    neg_emb: Tensor | None = None,
    similarity: str = "cos",
    pos_ids: Sequence[str] | None = None,
    neg_ids: Sequence[Sequence[str]] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Scores of every query against all positives of the batch (in-batch negatives, Henderson et al.
    2017; Karpukhin et al. 2020) plus all hard negatives of the batch.

    ``query_emb [Q, d]``, ``pos_emb [Q, d]`` (positive of query ``q`` in row ``q``), ``neg_emb
    [Q, n, d]``. Returns ``scores [Q, Q + Q*n]``, ``labels`` (1 at column ``q`` of row ``q``) and a
    ``mask``. If ``pos_ids``/``neg_ids`` (document ids) are given, columns holding the same document as
    the row's positive (a duplicate positive of another query: a false in-batch negative) are masked.
    """
    if similarity not in ("cos", "dot"):
        raise ConfigError("similarity must be 'cos' or 'dot'")
    q, p = query_emb, pos_emb
    if q.shape != p.shape:
        raise ConfigError(f"query_emb {tuple(q.shape)} and pos_emb {tuple(p.shape)} differ")
    docs = p
    ids: list[str] | None = list(pos_ids) if pos_ids is not None else None
    if neg_emb is not None:
        if neg_emb.dim() != 3 or neg_emb.shape[0] != q.shape[0]:
            raise ConfigError(f"neg_emb must be [Q, n, d], got {tuple(neg_emb.shape)}")
        docs = torch.cat([p, neg_emb.reshape(-1, neg_emb.shape[-1])], dim=0)
        if ids is not None:
            if neg_ids is None:
                raise ConfigError("neg_ids is required with pos_ids when neg_emb is given")
            ids += [d for row in neg_ids for d in row]
    if similarity == "cos":
        q = F.normalize(q, dim=-1)
        docs = F.normalize(docs, dim=-1)
    scores = q @ docs.T
    n_q = q.shape[0]
    labels = torch.zeros_like(scores)
    labels[torch.arange(n_q), torch.arange(n_q)] = 1.0
    mask = torch.ones_like(scores, dtype=torch.bool)
    if ids is not None:
        for r in range(n_q):
            for c, d in enumerate(ids):
                if c != r and d == ids[r]:
                    mask[r, c] = False
    return scores, labels, mask


class ListNet(RankingLoss):
    """ListNet top-one loss (Cao et al. 2007, "Learning to Rank: From Pairwise Approach to Listwise
    Approach"), as in allRank's ``listNet``: cross-entropy between ``softmax(y / label_temperature)``
    and ``softmax(s)`` over valid entries. On two items it equals RankNet with the soft target
    ``sigmoid(y_1 - y_2)``."""

    def __init__(self, label_temperature: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.label_temperature = label_temperature

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        p = torch.softmax((labels / self.label_temperature).masked_fill(~mask, _NEG), dim=1) * mask
        logp = _masked_log_softmax(scores, mask)
        return -(p * logp).sum(1)


def _plackett_luce_nll(scores: Tensor, order: Tensor, mask: Tensor) -> Tensor:
    """Per-position negative log-likelihood ``[Q, L]`` of permutation ``order`` under Plackett-Luce
    with logits ``scores``; masked items must be placed last by ``order``; their terms are 0."""
    s = torch.gather(scores, 1, order)
    m = torch.gather(mask, 1, order)
    s_m = s.masked_fill(~m, _NEG)
    # logsumexp over positions i..L: reverse cumulative logsumexp
    lse = torch.logcumsumexp(s_m.flip(1), dim=1).flip(1)
    return (lse - s) * m


def _order_by_labels(labels: Tensor, mask: Tensor, generator: torch.Generator | None) -> Tensor:
    key = labels.masked_fill(~mask, float("-inf"))
    if generator is not None:  # random tie-breaking, as allRank shuffles before sorting
        perm = torch.stack([torch.randperm(key.shape[1], generator=generator) for _ in range(key.shape[0])])
        perm = perm.to(key.device)
        key_p = torch.gather(key, 1, perm)
        idx = torch.sort(key_p, dim=1, descending=True, stable=True).indices
        return torch.gather(perm, 1, idx)
    return torch.sort(key, dim=1, descending=True, stable=True).indices


class ListMLE(RankingLoss):
    """ListMLE (Xia et al. 2008, "Listwise Approach to Learning to Rank: Theory and Algorithm"): the
    negative Plackett-Luce log-likelihood of the ideal ranking (items sorted by label). Ties in labels
    are broken by position (stable) or at random with ``generator`` (allRank shuffles). Per query, the
    sum over positions."""

    def __init__(self, generator: torch.Generator | None = None, reduction: str = "mean"):
        super().__init__(reduction)
        self.generator = generator

    def position_weights(self, n_valid: Tensor, length: int, device: torch.device) -> Tensor | None:
        return None

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        order = _order_by_labels(labels, mask, self.generator)
        nll = _plackett_luce_nll(scores, order, mask)
        w = self.position_weights(mask.sum(1), scores.shape[1], scores.device)
        if w is not None:
            nll = nll * w
        return nll.sum(1)


class PListMLE(ListMLE):
    """Position-aware ListMLE (Lan et al. 2014, "Position-Aware ListMLE: A Sequential Learning Process
    for Ranking"): the ListMLE term of rank ``i`` (1-based) weighted by ``2^(n - i) - 1`` where ``n`` is
    the number of valid items (TF-Ranking's ``create_p_list_mle_lambda_weight``). With
    ``normalize=True`` the weights of a list are divided by their sum (keeps long lists finite)."""

    def __init__(
        self, normalize: bool = False, generator: torch.Generator | None = None, reduction: str = "mean"
    ):
        super().__init__(generator=generator, reduction=reduction)
        self.normalize = normalize

    def position_weights(self, n_valid: Tensor, length: int, device: torch.device) -> Tensor:
        ranks = torch.arange(1, length + 1, device=device, dtype=torch.float64)[None, :]
        w = torch.pow(2.0, (n_valid[:, None].double() - ranks)) - 1.0
        w = w.clamp(min=0.0)
        if self.normalize:
            w = w / w.sum(1, keepdim=True).clamp(min=1e-12)
        elif not torch.isfinite(w.float()).all():
            raise ConfigError("PListMLE: 2^(n-i) overflows float32 for lists this long; use normalize=True")
        return w.float()


_SCHEMES = ("lambdarank", "ndcgloss2", "ndcgloss2pp", "ndcgloss1", None)


class LambdaLoss(RankingLoss):
    """LambdaLoss (Wang et al. 2018, "The LambdaLoss Framework for Ranking Metric Optimization"),
    following allRank's ``lambdaLoss`` exactly: items are sorted by the model's scores; for each pair of
    ranks ``(i, j)`` with ``y_i > y_j`` (within the top ``k`` ranks if ``k`` is set) the loss is
    ``-log2(sigmoid(sigma (s_i - s_j)) ** w_ij)``, where, with gains ``G = (2^y - 1) / maxDCG`` and
    discounts ``D_i = log2(1 + i)``:

    * ``"lambdarank"``: ``w = |1/D_i - 1/D_j| |G_i - G_j|`` (LambdaRank's delta-nDCG);
    * ``"ndcgloss2"``: ``w = |1/D_|i-j| - 1/D_(|i-j|+1)| |G_i - G_j|`` (NDCG-Loss2, a bound on nDCG);
    * ``"ndcgloss2pp"``: ``mu * ndcgloss2 + lambdarank`` (NDCG-Loss2++); ``mu=0`` is LambdaRank;
    * ``"ndcgloss1"``: ``w = G_i / D_i`` over all valid pairs;
    * ``None``: ``w = 1`` (RankNet in log base 2, over pairs sorted by score).

    ``reduction="sum"`` (allRank's default) sums over pairs and queries; ``"mean"`` (our default) is
    the per-query sum averaged over queries.
    """

    def __init__(
        self,
        weighing_scheme: str | None = "ndcgloss2pp",
        k: int | None = None,
        sigma: float = 1.0,
        mu: float = 10.0,
        eps: float = 1e-10,
        reduction: str = "mean",
    ):
        super().__init__(reduction)
        if weighing_scheme not in _SCHEMES:
            raise ConfigError(f"weighing_scheme must be one of {_SCHEMES}, got {weighing_scheme!r}")
        self.weighing_scheme = weighing_scheme
        self.k, self.sigma, self.mu, self.eps = k, sigma, mu, eps

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        n = scores.shape[1]
        dev = scores.device
        key = scores.detach().masked_fill(~mask, float("-inf"))
        idx = torch.sort(key, dim=1, descending=True, stable=True).indices
        s_sorted = torch.gather(scores, 1, idx)
        y_sorted = torch.gather(labels, 1, idx)
        m_sorted = torch.gather(mask, 1, idx)
        y_ideal = torch.sort(labels.masked_fill(~mask, 0.0), dim=1, descending=True).values.clamp(min=0)
        pos = torch.arange(1, n + 1, device=dev)
        D = _dcg_discount(pos)[None, :]
        k = n if self.k is None else min(self.k, n)
        max_dcg = ((torch.pow(2.0, y_ideal) - 1) / D)[:, :k].sum(1).clamp(min=self.eps)
        G = (torch.pow(2.0, y_sorted.clamp(min=0)) - 1) / max_dcg[:, None] * m_sorted

        valid = m_sorted[:, :, None] & m_sorted[:, None, :]
        if self.weighing_scheme == "ndcgloss1":
            sel = valid.clone()
        else:
            sel = valid & (y_sorted[:, :, None] > y_sorted[:, None, :])
        topk = torch.zeros(n, n, dtype=torch.bool, device=dev)
        topk[:k, :k] = True
        sel = sel & topk

        w = self._weights(G, D)
        diff = (s_sorted[:, :, None] - s_sorted[:, None, :]).clamp(min=-1e8, max=1e8)
        # log2(clamp(sigmoid(x)^w, eps)) written stably: w * logsigmoid(x) / ln 2, floored at log2(eps)
        logp = torch.clamp(F.logsigmoid(self.sigma * diff), min=math.log(self.eps))
        losses = torch.clamp(w * logp, min=math.log(self.eps)) / math.log(2.0)
        return -(losses * sel).sum((1, 2))

    def _weights(self, G: Tensor, D: Tensor) -> Tensor | float:
        s = self.weighing_scheme
        if s is None:
            return 1.0
        if s == "ndcgloss1":
            return (G / D)[:, :, None]
        lambdarank = torch.abs(1.0 / D[:, :, None] - 1.0 / D[:, None, :]) * torch.abs(G[:, :, None] - G[:, None, :])
        if s == "lambdarank":
            return lambdarank
        n = G.shape[1]
        pos = torch.arange(1, n + 1, device=G.device)
        delta = torch.abs(pos[:, None] - pos[None, :])
        deltas = torch.abs(_inv_d(delta) - _inv_d(delta + 1)) * (delta > 0)
        ndcg2 = deltas[None, :, :] * torch.abs(G[:, :, None] - G[:, None, :])
        if s == "ndcgloss2":
            return ndcg2
        return self.mu * ndcg2 + lambdarank


def _inv_d(i: Tensor) -> Tensor:
    """``1 / log2(1 + i)`` for ``i >= 1`` (0 where ``i == 0``, unused)."""
    i = i.float()
    return torch.where(i > 0, 1.0 / torch.log2(1.0 + i.clamp(min=1)), torch.zeros_like(i))


class ApproxNDCG(RankingLoss):
    """ApproxNDCG (Qin, Liu & Li 2010, "A General Approximation Framework for Direct Optimization of
    Information Retrieval Measures"), as allRank's ``approxNDCGLoss``: the rank of item ``i`` is
    approximated by ``1 + sum_{j != i} sigmoid(alpha (s_j - s_i))`` and the loss is ``-nDCG`` computed
    with these smooth ranks (gains ``2^y - 1``, ideal DCG over all valid items)."""

    def __init__(self, alpha: float = 1.0, eps: float = 1e-10, reduction: str = "mean"):
        super().__init__(reduction)
        self.alpha, self.eps = alpha, eps

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        n = scores.shape[1]
        y_ideal = torch.sort(labels.masked_fill(~mask, 0.0), dim=1, descending=True).values.clamp(min=0)
        D = _dcg_discount(torch.arange(1, n + 1, device=scores.device))[None, :]
        max_dcg = ((torch.pow(2.0, y_ideal) - 1) / D).sum(1).clamp(min=self.eps)
        G = (torch.pow(2.0, labels.clamp(min=0)) - 1) * mask / max_dcg[:, None]
        pair = mask[:, :, None] & mask[:, None, :]
        pair = pair & ~torch.eye(n, dtype=torch.bool, device=scores.device)[None]
        diff = scores[:, :, None] - scores[:, None, :]  # s_i - s_j
        approx_pos = 1.0 + (torch.sigmoid(-self.alpha * diff).clamp(min=self.eps) * pair).sum(2)
        return -(G / torch.log2(1.0 + approx_pos)).sum(1)


# ------------------------------------------------------------------------------ multiple positives


class _MultiPositive(RankingLoss):
    """Base of the losses over several positives (``labels > 0``) with a softmax temperature."""

    def __init__(self, temperature: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.temperature = temperature

    def scaled(self, scores: Tensor, labels: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``scores / T`` and the mask of valid positives."""
        return scores / self.temperature, (labels > 0) & mask


class DecoupledSoftmax(_MultiPositive):
    """DecoupledSoftmax (Gupta et al. 2024, "Dual-Encoders for Extreme Multi-Label Classification",
    ICLR): with several positives (``labels > 0``), each positive ``p`` gets its own softmax whose
    denominator holds ``p`` and the negatives only -- the other positives are excluded so they do not
    compete. Per query: ``-mean_p [s_p/T - log(exp(s_p/T) + sum_{n in N} exp(s_n/T))]``."""

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        s, pos = self.scaled(scores, labels, mask)
        neg = (labels <= 0) & mask
        neg_lse = torch.logsumexp(s.masked_fill(~neg, _NEG), dim=1, keepdim=True)  # [Q, 1]
        denom = torch.logaddexp(s, neg_lse.expand_as(s))
        el = (denom - s) * pos
        return el.sum(1) / pos.sum(1).clamp(min=1)


class GroupInfoNCE(_MultiPositive):
    """Group InfoNCE (multiple-instance NCE, Miech et al. 2020, "End-to-End Learning of Visual
    Representations from Uncurated Instructional Videos", MIL-NCE): all positives of a query form one
    group in the numerator, ``-log(sum_{p in P} exp(s_p/T) / sum_{j} exp(s_j/T))``. ``group_ids`` is
    not needed: positives are ``labels > 0``."""

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        s, pos = self.scaled(scores, labels, mask)
        num = torch.logsumexp(s.masked_fill(~pos, _NEG), dim=1)
        den = torch.logsumexp(s.masked_fill(~mask, _NEG), dim=1)
        return (den - num) * pos.any(1)


# ------------------------------------------------------------------------------ policy gradient


def _ndcg_of_orders(orders: Tensor, labels: Tensor, mask: Tensor, k: int | None) -> Tensor:
    """nDCG@k (gains 2^y - 1) of rankings ``orders [Q, M, L]``; 0 for lists with no gain."""
    q, m, n = orders.shape
    k = n if k is None else min(k, n)
    y = torch.gather(labels[:, None, :].expand(q, m, n), 2, orders)
    v = torch.gather(mask[:, None, :].expand(q, m, n), 2, orders)
    D = _dcg_discount(torch.arange(1, n + 1, device=labels.device))
    gains = (torch.pow(2.0, y.clamp(min=0)) - 1) * v
    dcg = (gains / D)[..., :k].sum(-1)
    ideal = torch.sort(labels.masked_fill(~mask, 0.0).clamp(min=0), dim=1, descending=True).values
    idcg = ((torch.pow(2.0, ideal) - 1) / D)[:, :k].sum(-1)
    return torch.where(idcg[:, None] > 0, dcg / idcg.clamp(min=1e-12)[:, None], torch.zeros_like(dcg))


class PLRankPolicyGradient(RankingLoss):
    """Plackett-Luce policy gradient with a ranking-metric reward (Neural PG-Rank, Gao et al. 2023,
    "Policy-Gradient Training of Language Models for Ranking"): ``n_samples`` rankings are drawn from the
    Plackett-Luce distribution of the scores with the Gumbel trick (sort ``s/T + Gumbel``), each is
    rewarded with nDCG@k against the labels, and REINFORCE with a leave-one-out mean baseline gives
    ``-mean_m (R_m - b_m) log P(pi_m)``. The value is a surrogate (its gradient is the policy gradient);
    pass ``generator`` for reproducible samples."""

    def __init__(
        self,
        n_samples: int = 8,
        k: int | None = 10,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ):
        super().__init__(reduction)
        if n_samples < 2:
            raise ConfigError("n_samples must be >= 2 for the leave-one-out baseline")
        self.n_samples, self.k, self.temperature, self.generator = n_samples, k, temperature, generator

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        q, n = scores.shape
        m = self.n_samples
        s = scores / self.temperature
        u = torch.rand((q, m, n), generator=self.generator, dtype=torch.float32).to(s.device)
        gumbel = -torch.log(-torch.log(u.clamp(min=1e-20, max=1 - 1e-7)))
        key = (s.detach()[:, None, :] + gumbel).masked_fill(~mask[:, None, :], float("-inf"))
        orders = torch.sort(key, dim=2, descending=True, stable=True).indices  # [Q, M, L]
        with torch.no_grad():
            reward = _ndcg_of_orders(orders, labels, mask, self.k)  # [Q, M]
            baseline = (reward.sum(1, keepdim=True) - reward) / (m - 1)
            adv = reward - baseline
        s_rep = s[:, None, :].expand(q, m, n).reshape(q * m, n)
        mask_rep = mask[:, None, :].expand(q, m, n).reshape(q * m, n)
        nll = _plackett_luce_nll(s_rep, orders.reshape(q * m, n), mask_rep).sum(1).view(q, m)
        return (adv * nll).mean(1)  # nll = -log P, so this is -mean adv * log P


# ------------------------------------------------------------------------------ LiPO


class LiPOLambda(RankingLoss):
    """LiPO-lambda (Liu et al. 2024, "LiPO: Listwise Preference Optimization through Learning-to-Rank"):
    ``-sum_{y_i > y_j} Delta_ij log sigmoid(s_i - s_j)`` with the LambdaRank weight
    ``Delta_ij = |G_i - G_j| |1/D(tau_i) - 1/D(tau_j)|``, ``G = 2^y - 1``, ``D(tau) = log2(1 + tau)``
    and ``tau`` the rank of the item under the current scores. In LiPO the scores are the DPO rewards
    ``beta log(pi/pi_ref)``; here any scores. Per query, the sum over pairs."""

    def __init__(self, sigma: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.sigma = sigma

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        key = scores.detach().masked_fill(~mask, float("-inf"))
        order = torch.sort(key, dim=1, descending=True, stable=True).indices
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order))
        inv_d = 1.0 / _dcg_discount(ranks)
        G = (torch.pow(2.0, labels.clamp(min=0)) - 1) * mask
        delta = torch.abs(G[:, :, None] - G[:, None, :]) * torch.abs(inv_d[:, :, None] - inv_d[:, None, :])
        pairs = _pairs(labels, mask)
        diff = scores[:, :, None] - scores[:, None, :]
        return (delta * F.softplus(-self.sigma * diff) * pairs).sum((1, 2))


def lambda_weights(scores: Tensor, labels: Tensor, mask: Tensor | None = None) -> Tensor:
    """LiPO-lambda's (and LambdaRank's) pair weights ``[Q, L, L]``: ``Delta_ij = |G_i - G_j| |1/D(tau_i) -
    1/D(tau_j)|`` with ``G = 2^y - 1``, ``D(tau) = log2(1 + tau)`` and ``tau`` the 1-based rank of each
    item under ``scores`` (descending, ties in list order), where ``y_i > y_j`` and both are valid; 0
    elsewhere. No gradient flows through the weights. The same weights :class:`LiPOLambda` applies."""
    scores, labels, mask = _check(scores, labels, mask, "lambda_weights")
    key = scores.detach().masked_fill(~mask, float("-inf"))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order))
    inv_d = 1.0 / _dcg_discount(ranks)
    G = (torch.pow(2.0, labels.detach().clamp(min=0)) - 1) * mask
    delta = torch.abs(G[:, :, None] - G[:, None, :]) * torch.abs(inv_d[:, :, None] - inv_d[:, None, :])
    return delta * _pairs(labels, mask)


# ------------------------------------------------------------------------------ wrappers


class FocalReweighting(RankingLoss):
    """Focal-style reweighting of hard queries (after Lin et al. 2017, "Focal Loss for Dense Object
    Detection"): each query's loss ``l_q`` of the wrapped loss is multiplied by ``(1 - exp(-l_q))^gamma``
    (``exp(-l_q)`` is the probability of the positive when the wrapped loss is a one-positive softmax
    CE, so this is exactly the focal loss there; for other losses it is a monotone hardness weight).
    ``gamma = 0`` gives the wrapped loss back. ``detach_weights`` stops gradients through the weight."""

    def __init__(self, loss: RankingLoss, gamma: float = 2.0, detach_weights: bool = False, reduction: str = "mean"):
        super().__init__(reduction)
        self.loss = loss
        self.gamma, self.detach_weights = gamma, detach_weights

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        lq = self.loss.per_query(scores, labels, mask)
        w = (1.0 - torch.exp(-lq)).clamp(min=0.0) ** self.gamma
        if self.detach_weights:
            w = w.detach()
        return w * lq


# ------------------------------------------------------------------------------ registry


LOSSES: dict[str, type[RankingLoss]] = {
    "bce": PointwiseBCE,
    "mse": PointwiseMSE,
    "ranknet": RankNet,
    "hinge": PairwiseHinge,
    "margin_mse": MarginMSE,
    "softmax_ce": SoftmaxCrossEntropy,
    "infonce": InfoNCE,
    "listnet": ListNet,
    "listmle": ListMLE,
    "plistmle": PListMLE,
    "lambdaloss": LambdaLoss,
    "approx_ndcg": ApproxNDCG,
    "decoupled_softmax": DecoupledSoftmax,
    "group_infonce": GroupInfoNCE,
    "pg_rank": PLRankPolicyGradient,
    "lipo": LiPOLambda,
}


def get_loss(name: str, **kwargs: object) -> RankingLoss:
    """Build a loss by its short name (``LOSSES`` keys), e.g. ``get_loss("lambdaloss", mu=5)``."""
    try:
        cls = LOSSES[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}") from None
    return cls(**kwargs)  # type: ignore[arg-type]
