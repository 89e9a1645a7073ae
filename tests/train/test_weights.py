"""Per-negative weights (pooling-bias correction) reach every loss: a weighted entry is kept in a step
with probability equal to its weight."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rankstack.train.trainer import _sample_weighted_mask  # noqa: E402


def test_unit_weights_leave_mask_and_random_stream_alone():
    mask = torch.tensor([[True, True, True, False]])
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    assert _sample_weighted_mask(mask, torch.ones(1, 4)) is mask
    assert _sample_weighted_mask(mask, None) is mask
    assert torch.equal(torch.random.get_rng_state(), before)


def test_weighted_negatives_are_kept_with_their_weight():
    torch.manual_seed(1)
    mask = torch.tensor([[True, True, True, True, False]]).repeat(20000, 1)
    weights = torch.tensor([[1.0, 1.0, 0.3, 0.0, 0.5]]).repeat(20000, 1)
    out = _sample_weighted_mask(mask, weights)
    kept = out.float().mean(0)
    assert kept[0] == 1.0 and kept[1] == 1.0  # the positive and an unweighted negative: always
    assert kept[2] == pytest.approx(0.3, abs=0.015)  # a likely false negative: 30 % of the steps
    assert kept[3] == 0.0  # weight 0: never
    assert kept[4] == 0.0  # padding stays padding whatever its weight


def test_miner_pooling_weights_flow_into_the_collated_batch():
    from rankstack.train.data import GroupedDataset
    from rankstack.train.negatives import NegativeMiner

    qrels = {"q": {"p": 1}}
    run = {"q": {"p": 10.0, "close": 9.9, "far": 1.0, "far2": 0.5}}
    mined = NegativeMiner(n=3, pooling="weight", pooling_temperature=0.5).mine(qrels, run)
    ds = GroupedDataset.from_run({"q": "text"}, {d: d for d in run["q"]}, qrels, mined)
    w = dict(zip(mined["q"].doc_ids, ds[0]["weights"][1:]))
    assert w["close"] < 0.6 and w["far"] > 0.99  # the near-positive candidate is down-weighted
