"""Setwise position debiasing (``SetwiseScorer(debias=...)``) against a model with a known, pure
position preference: label log-prob = bias[position] + relevance[passage]. The model is a small
deterministic function of the prompt text (it reads which passage is shown under which label), so the
right answers are known exactly; the real-model effect is measured in docs/bench/llm.md."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rankstack.data.records import Document, Query
from rankstack.llm.backends.base import Backend
from rankstack.llm.scorers import Budget, QueryContext, SetwiseScorer
from rankstack.llm.strategies import StrategyConfig, rerank

REL = np.array([0.0, 0.3, 1.2, 0.6, 0.9, 0.1, 0.45, 1.0, 0.2, 0.75])  # relevance of doc0..doc9


class PositionBiasedModel(Backend):
    """Answers a setwise prompt with label log-probs ``bias[j] + REL[doc shown at label j]``."""

    name = "biased"

    def __init__(self, bias):
        self.bias = np.asarray(bias, dtype=float)
        self.prompts: list[str] = []

    def next_token_logprobs(self, prompts, candidates, raw=False, meter=None):
        out = np.empty((len(prompts), len(candidates)))
        for i, p in enumerate(prompts):
            self.prompts.append(p)
            shown = [int(m) for m in re.findall(r"doc(\d+)", p)]
            assert len(shown) == len(candidates)
            z = np.array([self.bias[j] + REL[d] for j, d in enumerate(shown)])
            out[i] = z - np.log(np.exp(z).sum()) - 0.7  # log-probs, some mass on other tokens
            if meter is not None:
                meter.add(1, 100, 1, 0.0)
        return out


def docs(ids):
    return [Document(f"doc{i}", f"text of doc{i}") for i in ids]


def ctx():
    return QueryContext(Query("q", "a query"))


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


FIRST_WINS = [4.0, 0.0, 0.0, 0.0]  # "always answer A"


def test_plain_setwise_follows_the_position():
    p = SetwiseScorer(PositionBiasedModel(FIRST_WINS)).select(ctx(), docs([0, 1, 2, 3]))
    assert int(np.argmax(p)) == 0  # doc0 is the least relevant but is shown first
    np.testing.assert_allclose(p, softmax(np.array(FIRST_WINS) + REL[[0, 1, 2, 3]]), atol=1e-12)
    assert p[0] > 0.89


@pytest.mark.parametrize("bias", [FIRST_WINS, [0.0, 2.5, -1.0, 0.7], [3.0, -2.0, 0.0, 5.0]])
def test_cyclic_removes_any_position_preference_exactly(bias):
    be = PositionBiasedModel(bias)
    c = ctx()
    p = SetwiseScorer(be, debias="cyclic").select(c, docs([0, 1, 2, 3]))
    np.testing.assert_allclose(p, softmax(REL[[0, 1, 2, 3]]), atol=1e-12)
    assert c.meter.calls == 4  # one prompt per rotation
    # every passage was shown once under every label
    shown = [[int(m) for m in re.findall(r"doc(\d+)", pr)] for pr in be.prompts]
    for d in range(4):
        assert sorted(s.index(d) for s in shown) == [0, 1, 2, 3]


def test_reverse_removes_a_linear_preference_but_not_first_wins():
    lin = [1.5, 1.0, 0.5, 0.0]  # linear in the position: reversal cancels it
    p = SetwiseScorer(PositionBiasedModel(lin), debias="reverse").select(ctx(), docs([0, 1, 2, 3]))
    np.testing.assert_allclose(p, softmax(REL[[0, 1, 2, 3]]), atol=1e-12)
    # first-wins is split between the first and the last passage shown (documented limitation)
    c = ctx()
    p = SetwiseScorer(PositionBiasedModel(FIRST_WINS), debias="reverse").select(c, docs([0, 1, 2, 3]))
    assert c.meter.calls == 2
    assert int(np.argmax(p)) == 3 and p[0] > p[2]  # doc2 is the most relevant, doc0/doc3 got the bias


def test_heapsort_with_cyclic_debias_recovers_the_true_order_and_budget_counts_calls():
    n = 10
    model = PositionBiasedModel(FIRST_WINS)
    true_top = list(np.argsort(-REL))
    cfg = StrategyConfig(k=5, set_size=4)
    plain = rerank(SetwiseScorer(model), "heapsort", ctx(), docs(range(n)), cfg)
    # first-wins: the root never moves, so the heap returns incoming rank 0 first (not the most relevant)
    assert int(np.argmax(plain)) == 0
    c = ctx()
    s = rerank(SetwiseScorer(model, debias="cyclic"), "heapsort", c, docs(range(n)), cfg)
    assert list(np.argsort(-s)[:5]) == true_top[:5]
    assert c.meter.calls > 4  # every select over k passages costs k calls (k rotations)
    # a budget is counted in LLM calls: a cyclic select over 4 passages needs 4 of them
    c2 = QueryContext(Query("q", "a query"), budget=Budget(max_calls=6))
    rerank(SetwiseScorer(model, debias="cyclic"), "heapsort", c2, docs(range(n)), cfg)
    assert c2.meter.calls <= 6 and c2.budget_hit


def test_bad_debias_is_rejected():
    with pytest.raises(ValueError, match="debias"):
        SetwiseScorer(PositionBiasedModel(FIRST_WINS), debias="shuffle")
