"""Ranking losses: hand-computed values, equivalences, invariances, masks, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from rankstack.train import losses as L  # noqa: E402


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def sp(x):  # softplus
    return math.log1p(math.exp(x))


def lse(*xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


# ------------------------------------------------------------------ hand-computed values


def test_bce_value():
    v = L.PointwiseBCE()(t([[0.0, 2.0]]), t([[1.0, 0.0]]))
    assert v.item() == pytest.approx((math.log(2) + sp(2)) / 2, abs=1e-6)


def test_bce_rejects_graded_labels():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        L.PointwiseBCE()(t([[0.0, 2.0]]), t([[2.0, 0.0]]))


def test_mse_value_and_mask():
    assert L.PointwiseMSE()(t([[1.0, 2.0]]), t([[0.0, 0.0]])).item() == pytest.approx(2.5)
    m = torch.tensor([[True, False]])
    assert L.PointwiseMSE()(t([[1.0, 2.0]]), t([[0.0, 0.0]]), m).item() == pytest.approx(1.0)


def test_ranknet_value():
    v = L.RankNet()(t([[2.0, 1.0, 0.0]]), t([[2.0, 1.0, 0.0]]))
    assert v.item() == pytest.approx((2 * sp(-1) + sp(-2)) / 3, abs=1e-6)  # 0.251151
    assert v.item() == pytest.approx(0.251151, abs=1e-6)


def test_hinge_value():
    v = L.PairwiseHinge(margin=1.0)(t([[0.5, 0.0, 0.0]]), t([[1.0, 0.0, 0.0]]))
    assert v.item() == pytest.approx(0.5)
    assert L.PairwiseHinge()(t([[2.0, 1.0, 0.0]]), t([[2.0, 1.0, 0.0]])).item() == pytest.approx(0.0)


def test_margin_mse_value_and_zero_when_margins_match():
    assert L.MarginMSE()(t([[3.0, 1.0]]), t([[5.0, 2.0]])).item() == pytest.approx(1.0)
    # student margins equal teacher margins (teacher shifted by 7) -> 0
    assert L.MarginMSE()(t([[3.0, 1.0, 0.0]]), t([[10.0, 8.0, 7.0]])).item() == pytest.approx(0.0, abs=1e-6)
    assert L.MarginMSE(all_pairs=True)(t([[3.0, 1.0, 0.0]]), t([[10.0, 8.0, 7.0]])).item() == pytest.approx(0.0, abs=1e-6)
    # all pairs of [3,1,0] vs [5,2,0]: (2-3)^2, (3-5)^2, (1-2)^2 -> mean 2
    assert L.MarginMSE(all_pairs=True)(t([[3.0, 1.0, 0.0]]), t([[5.0, 2.0, 0.0]])).item() == pytest.approx(2.0)


def test_softmax_ce_value():
    v = L.SoftmaxCrossEntropy()(t([[1.0, 0.0, 0.0]]), t([[1.0, 0.0, 0.0]]))
    assert v.item() == pytest.approx(math.log(1 + 2 / math.e), abs=1e-6)  # 0.551445
    # two positives of different grade: target (2/3, 1/3)
    v = L.SoftmaxCrossEntropy()(t([[1.0, 0.0, 0.0]]), t([[2.0, 1.0, 0.0]]))
    z = lse(1, 0, 0)
    assert v.item() == pytest.approx(2 / 3 * (z - 1) + 1 / 3 * (z - 0), abs=1e-6)


def test_infonce_one_positive_equals_cross_entropy():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 6, generator=g)
    y = torch.zeros(4, 6)
    tgt = torch.tensor([0, 3, 5, 1])
    y[torch.arange(4), tgt] = 1
    v = L.InfoNCE(temperature=0.1)(s, y)
    assert v.item() == pytest.approx(F.cross_entropy(s / 0.1, tgt).item(), rel=1e-5)


def test_softmax_ce_two_items_equals_ranknet():
    s = t([[0.3, 1.7], [2.0, -1.0]])
    y = t([[1.0, 0.0], [0.0, 1.0]])
    assert L.SoftmaxCrossEntropy()(s, y).item() == pytest.approx(L.RankNet()(s, y).item(), abs=1e-6)


def test_listnet_two_items_equals_soft_ranknet():
    s = t([[0.3, 1.7]])
    y = t([[1.0, 0.0]])
    d = 0.3 - 1.7
    p = 1 / (1 + math.exp(-1.0))  # softmax of labels (1, 0)
    expect = p * sp(-d) + (1 - p) * sp(d)
    assert L.ListNet()(s, y).item() == pytest.approx(expect, abs=1e-6)
    # label temperature -> 0 makes the target one-hot: plain RankNet
    assert L.ListNet(label_temperature=1e-3)(s, y).item() == pytest.approx(L.RankNet()(s, y).item(), abs=1e-5)


def test_listmle_and_plistmle_values():
    s, y = t([[1.0, 2.0, 3.0]]), t([[3.0, 2.0, 1.0]])
    a = lse(1, 2, 3) - 1
    b = lse(2, 3) - 2
    assert L.ListMLE()(s, y).item() == pytest.approx(a + b, abs=1e-5)  # 3.720868
    assert L.PListMLE()(s, y).item() == pytest.approx(3 * a + 1 * b, abs=1e-5)  # weights 2^(n-i)-1 = 3, 1, 0
    # masked item removes one term and shortens the list
    m = torch.tensor([[True, True, False]])
    assert L.ListMLE()(s, y, m).item() == pytest.approx(lse(1, 2) - 1, abs=1e-5)
    assert L.PListMLE()(s, y, m).item() == pytest.approx(1 * (lse(1, 2) - 1), abs=1e-5)


def _allrank_lambdaloss_numpy(s, y, scheme, mu=10.0, k=None, sigma=1.0, eps=1e-10):
    """Straight loop transcription of allRank's lambdaLoss (one list, no padding)."""
    n = len(s)
    order = np.argsort(-s, kind="stable")
    ss, ys = s[order], y[order]
    ideal = np.sort(y)[::-1]
    k = n if k is None else k
    D = np.log2(1 + np.arange(1, n + 1))
    maxdcg = max(((2 ** ideal - 1) / D)[:k].sum(), eps)
    G = (2 ** ys - 1) / maxdcg
    total = 0.0
    for i in range(n):
        for j in range(n):
            if not (ys[i] > ys[j]) or i >= k or j >= k:
                continue
            lr = abs(1 / D[i] - 1 / D[j]) * abs(G[i] - G[j])
            dlt = abs(i - j)
            n2 = abs(1 / np.log2(1 + dlt) - 1 / np.log2(2 + dlt)) * abs(G[i] - G[j]) if dlt > 0 else 0.0
            w = {"lambdarank": lr, "ndcgloss2": n2, "ndcgloss2pp": mu * n2 + lr, None: 1.0}[scheme]
            p = max(1 / (1 + math.exp(-sigma * (ss[i] - ss[j]))), eps)
            total -= math.log2(max(p ** w, eps))
    return total


@pytest.mark.parametrize("scheme", ["lambdarank", "ndcgloss2", "ndcgloss2pp", None])
@pytest.mark.parametrize("k", [None, 3])
def test_lambdaloss_matches_allrank_transcription(scheme, k):
    rng = np.random.default_rng(1)
    s = rng.normal(size=(3, 6))
    y = rng.integers(0, 4, size=(3, 6)).astype(float)
    v = L.LambdaLoss(weighing_scheme=scheme, k=k, reduction="sum")(t(s), t(y))
    expect = sum(_allrank_lambdaloss_numpy(s[i], y[i], scheme, k=k) for i in range(3))
    assert v.item() == pytest.approx(expect, rel=1e-4, abs=1e-5)


def test_lambdaloss_hand_value_and_mu0_is_lambdarank():
    # scores put the irrelevant item first: w = 1 - 1/log2(3) = 0.369070; loss = w * -log2(sigmoid(-1))
    w = 1 - 1 / math.log2(3)
    expect = w * sp(1) / math.log(2)  # 0.699254
    for scheme in ("lambdarank", "ndcgloss2"):
        v = L.LambdaLoss(weighing_scheme=scheme)(t([[0.0, 1.0]]), t([[1.0, 0.0]]))
        assert v.item() == pytest.approx(expect, abs=1e-5)
    s = torch.randn(4, 7, generator=torch.Generator().manual_seed(3))
    y = torch.randint(0, 3, (4, 7), generator=torch.Generator().manual_seed(4)).float()
    a = L.LambdaLoss(weighing_scheme="ndcgloss2pp", mu=0.0)(s, y)
    b = L.LambdaLoss(weighing_scheme="lambdarank")(s, y)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_approx_ndcg_value_and_limit():
    s, y = t([[3.0, 2.0, 1.0]]), t([[1.0, 0.0, 1.0]])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    pos0 = 1 + sig(2 - 3) + sig(1 - 3)
    pos2 = 1 + sig(3 - 1) + sig(2 - 1)
    idcg = 1 + 1 / math.log2(3)
    expect = -(1 / math.log2(1 + pos0) + 1 / math.log2(1 + pos2)) / idcg
    assert L.ApproxNDCG()(s, y).item() == pytest.approx(expect, abs=1e-6)
    # steep sigmoid: exact nDCG of ranking [0, 1, 2] = (1 + 1/log2(4)) / idcg
    assert L.ApproxNDCG(alpha=100)(s, y).item() == pytest.approx(-(1 + 0.5) / idcg, abs=1e-4)


def test_decoupled_softmax_and_group_infonce_values():
    s, y = t([[2.0, 1.0, 0.0]]), t([[1.0, 1.0, 0.0]])
    assert L.DecoupledSoftmax()(s, y).item() == pytest.approx((sp(-2) + sp(-1)) / 2, abs=1e-6)
    assert L.GroupInfoNCE()(s, y).item() == pytest.approx(math.log1p(1 / (math.e**2 + math.e)), abs=1e-6)
    # with one positive all three are the same softmax CE
    y1 = t([[1.0, 0.0, 0.0]])
    ce = L.SoftmaxCrossEntropy()(s, y1).item()
    assert L.DecoupledSoftmax()(s, y1).item() == pytest.approx(ce, abs=1e-6)
    assert L.GroupInfoNCE()(s, y1).item() == pytest.approx(ce, abs=1e-6)


def test_lipo_value():
    w = 1 - 1 / math.log2(3)
    assert L.LiPOLambda()(t([[0.0, 1.0]]), t([[1.0, 0.0]])).item() == pytest.approx(w * sp(1), abs=1e-6)


def test_focal_wrapper():
    s, y = t([[1.0, 0.0, 0.5]]), t([[1.0, 0.0, 0.0]])
    base = L.SoftmaxCrossEntropy()
    assert L.FocalReweighting(base, gamma=0.0)(s, y).item() == pytest.approx(base(s, y).item(), abs=1e-7)
    p = math.e / (math.e + 1 + math.exp(0.5))
    assert L.FocalReweighting(base, gamma=2.0)(s, y).item() == pytest.approx(-((1 - p) ** 2) * math.log(p), abs=1e-6)


def test_pg_rank_reproducible_and_pushes_relevant_up():
    s = torch.zeros(1, 5, requires_grad=True)
    y = t([[0.0, 0.0, 1.0, 0.0, 0.0]])
    loss = L.PLRankPolicyGradient(n_samples=256, k=3, generator=torch.Generator().manual_seed(0))
    loss(s, y).backward()
    g = s.grad[0]
    assert g[2] < 0 and (g[[0, 1, 3, 4]] > 0).all()  # gradient descent raises the relevant item
    a = L.PLRankPolicyGradient(n_samples=8, generator=torch.Generator().manual_seed(5))(torch.randn(2, 4, generator=torch.Generator().manual_seed(1)), t([[1, 0, 0, 2], [0, 1, 0, 0]]))
    b = L.PLRankPolicyGradient(n_samples=8, generator=torch.Generator().manual_seed(5))(torch.randn(2, 4, generator=torch.Generator().manual_seed(1)), t([[1, 0, 0, 2], [0, 1, 0, 0]]))
    assert a.item() == b.item()
    # no relevant item: every reward 0, advantage 0
    assert L.PLRankPolicyGradient(generator=torch.Generator().manual_seed(0))(torch.randn(2, 4), torch.zeros(2, 4)).item() == 0.0


def test_in_batch_scores():
    g = torch.Generator().manual_seed(0)
    q, p, n = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g), torch.randn(3, 2, 8, generator=g)
    s, y, m = L.in_batch_scores(q, p, n, pos_ids=["a", "b", "a"], neg_ids=[["x", "y"], ["z", "b"], ["u", "v"]])
    assert s.shape == (3, 9) and y.sum().item() == 3 and y[1, 1] == 1
    assert not m[0, 2] and not m[2, 0] and not m[1, 6]  # duplicate positives are not negatives
    assert m.sum().item() == 27 - 3
    assert s[0, 0].item() == pytest.approx(F.cosine_similarity(q[0], p[0], dim=0).item(), abs=1e-6)
    # one positive per row: InfoNCE over in-batch scores = cross entropy with targets 0..Q-1
    s2, y2, m2 = L.in_batch_scores(q, p)
    assert L.InfoNCE(temperature=0.05)(s2, y2, m2).item() == pytest.approx(F.cross_entropy(s2 / 0.05, torch.arange(3)).item(), rel=1e-5)


# ------------------------------------------------------------------ generic properties

ALL = [n for n in L.LOSSES]


def make(name):
    if name == "pg_rank":
        return L.get_loss(name, generator=torch.Generator().manual_seed(0))
    return L.get_loss(name)


def data(name, ties=False):
    g = torch.Generator().manual_seed(7)
    s = torch.randn(3, 5, generator=g)
    y = t([[2, 0, 1, 0, 0], [1, 1, 0, 0, 0], [0, 3, 0, 1, 2]])
    if ties:
        s[:, 1] = s[:, 2]
        s[2] = 0.0
    if name == "bce":
        y = (y > 0).float()
    return s, y


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("ties", [False, True])
def test_finite_gradients_with_mask_and_ties(name, ties):
    s, y = data(name, ties)
    s.requires_grad_(True)
    m = torch.ones(3, 5, dtype=torch.bool)
    m[0, 4] = m[1, 3] = m[1, 4] = False
    v = make(name)(s, y, m)
    v.backward()
    assert torch.isfinite(v) and torch.isfinite(s.grad).all()
    assert (s.grad[~m] == 0).all()


@pytest.mark.parametrize("name", ALL)
def test_masked_entries_do_not_contribute(name):
    s, y = data(name)
    m = torch.ones(3, 5, dtype=torch.bool)
    m[:, 3] = False
    s2, y2 = s.clone(), y.clone()
    s2[:, 3] = float("nan")
    s2[0, 3] = float("inf")
    y2[:, 3] = 1.0 if name == "bce" else 9.0
    a = make(name)(s, y, m)
    b = make(name)(s2, y2, m)
    keep = [0, 1, 2, 4]
    c = make(name)(s[:, keep], y[:, keep])  # dropping the column entirely
    assert a.item() == pytest.approx(b.item(), abs=1e-6)
    if name != "pg_rank":  # its Gumbel draws depend on the list width
        assert a.item() == pytest.approx(c.item(), abs=1e-5)


SHIFT_INVARIANT = [n for n in ALL if n not in ("bce", "mse")]


@pytest.mark.parametrize("name", SHIFT_INVARIANT)
def test_score_shift_invariance(name):
    s, y = data(name)
    assert make(name)(s + 3.5, y).item() == pytest.approx(make(name)(s, y).item(), abs=1e-4)


PERM_INVARIANT = [n for n in ALL if n not in ("margin_mse", "pg_rank")]


@pytest.mark.parametrize("name", PERM_INVARIANT)
def test_permutation_invariance(name):
    s, y = data(name)
    if name in ("listmle", "plistmle"):
        y = t([[4, 0, 1, 2, 3], [1, 2, 0, 3, 4], [0, 3, 4, 1, 2]])  # no label ties
    perm = torch.tensor([3, 0, 4, 2, 1])
    assert make(name)(s[:, perm], y[:, perm]).item() == pytest.approx(make(name)(s, y).item(), abs=1e-5)


def test_reduction_and_errors():
    s, y = data("ranknet")
    assert L.RankNet(reduction="none")(s, y).shape == (3,)
    assert L.RankNet(reduction="sum")(s, y).item() == pytest.approx(3 * L.RankNet()(s, y).item(), rel=1e-6)
    with pytest.raises(ValueError, match="labels shape"):
        L.RankNet()(s, y[:, :3])
    with pytest.raises(TypeError, match="bool"):
        L.RankNet()(s, y, torch.ones(3, 5))
    with pytest.raises(ValueError, match="unknown loss"):
        L.get_loss("nope")
    with pytest.raises(ValueError, match="weighing_scheme"):
        L.LambdaLoss(weighing_scheme="bogus")
