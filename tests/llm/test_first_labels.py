"""FIRST's passage identifiers: ``labels="letter-nonword"`` leaves out the English words A and I, so a
model whose first answer token is the pronoun "I" no longer picks passage I (Gemma-3-270M did so on
43/43 DL19 queries, docs/bench/llm.md). The model here is a deterministic function of the prompt."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rankstack.data.records import Document, Query
from rankstack.llm.backends.base import Backend
from rankstack.llm.parse import label_for, labels
from rankstack.llm.scorers import FirstScorer, QueryContext

REL = np.linspace(0.0, 1.0, 12)  # doc11 most relevant


class SaysIFirst(Backend):
    """First-token log-probs: the word "I" gets +5; otherwise the label of ``docN`` gets REL[N]."""

    name = "says-i"

    def __init__(self):
        self.prompts: list[str] = []

    def next_token_logprobs(self, prompts, candidates, raw=False, meter=None):
        out = np.empty((len(prompts), len(candidates)))
        for i, p in enumerate(prompts):
            self.prompts.append(p)
            shown = dict(re.findall(r"\[([A-Z])\] doc(\d+)", p))
            for j, cand in enumerate(candidates):
                lab = cand[0] if isinstance(cand, tuple) else cand
                out[i, j] = (5.0 if lab == "I" else 0.0) + REL[int(shown[lab])]
            if meter is not None:
                meter.add(1, 100, 1, 0.0)
        return out


def _rank(style: str):
    be = SaysIFirst()
    docs = [Document(f"d{i}", f"doc{i}") for i in range(12)]
    order, ev = FirstScorer(be, labels=style).rank(QueryContext(Query("q", "query")), docs)
    return order, ev, be.prompts[0]


def test_letter_labels_let_the_word_I_win():
    order, _, prompt = _rank("letter")
    assert order[0] == 8  # passage "I" = the 9th, whatever its relevance
    assert "e.g., [A] > [B]" in prompt and "[I] doc8" in prompt


def test_nonword_labels_rank_by_relevance():
    order, ev, prompt = _rank("letter-nonword")
    assert order == list(range(11, -1, -1))
    assert abs(ev.sum() - 1) < 1e-9
    assert "e.g., [B] > [C]" in prompt and "[A]" not in prompt and "[I]" not in prompt
    assert "[B] doc0" in prompt and "[J] doc7" in prompt


def test_label_styles():
    assert labels(3, "letter-nonword") == ["B", "C", "D"]
    assert label_for(7, "letter-nonword") == "J" and label_for(23, "letter-nonword") == "Z"
    with pytest.raises(ValueError, match="at most 24"):
        label_for(24, "letter-nonword")
    with pytest.raises(ValueError, match="letter-nonword"):
        FirstScorer(SaysIFirst(), labels="greek")
    assert FirstScorer(SaysIFirst(), labels="letter-nonword").config()["labels"] == "letter-nonword"


class AnswersAfterBracket(SaysIFirst):
    """Without a prime the first token is the word "I"; after a primed "[" only identifiers count."""

    def format_chat(self, user, system=None):
        return f"<user>{user}</user><model>"

    def next_token_logprobs(self, prompts, candidates, raw=False, meter=None):
        out = super().next_token_logprobs(prompts, candidates, raw, meter)
        for i, p in enumerate(prompts):
            if raw and p.endswith("<model>["):
                out[i] -= np.array([5.0 if (c[0] if isinstance(c, tuple) else c) == "I" else 0.0 for c in candidates])
            else:
                assert not raw
        return out


def test_prime_starts_the_answer():
    be = AnswersAfterBracket()
    docs = [Document(f"d{i}", f"doc{i}") for i in range(12)]
    ctx = QueryContext(Query("q", "query"))
    plain, _ = FirstScorer(be).rank(ctx, docs)
    primed, _ = FirstScorer(be, prime="[").rank(ctx, docs)
    assert plain[0] == 8 and primed == list(range(11, -1, -1))
    assert be.prompts[-1].startswith("<user>") and be.prompts[-1].endswith("<model>[")
    assert ctx.meter.calls == 2 and FirstScorer(be, prime="[").config()["prime"] == "["
