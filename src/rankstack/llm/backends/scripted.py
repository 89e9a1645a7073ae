"""A deterministic backend with no model: every output is a seeded hash of the prompt.

``ScriptedBackend`` implements the whole :class:`~rankstack.llm.backends.base.Backend` interface
(next-token log-probabilities, log-likelihoods, generation with the answer formats the scorers ask
for), so every LLM scorer and strategy runs on it in milliseconds, with the same output for the same
prompt in every process. It is what ``rankstack.testing`` runs the stage contract on; it says
nothing about relevance (use a real model for that).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.llm.backends.base import Backend, Candidate, Generation, Meter, candidate_alternatives

__all__ = ["ScriptedBackend"]

_LABEL = re.compile(r"\[([A-Za-z0-9]{1,3})\]|Passage ([A-Z]{1,2}):")


class ScriptedBackend(Backend):
    """``seed`` changes every output; ``tokens_per_word`` sets the token counts it reports."""

    name = "scripted"
    thread_safe = True

    def __init__(self, seed: int = 0, tokens_per_word: float = 1.3):
        self.seed = int(seed)
        self.tokens_per_word = float(tokens_per_word)

    def _h(self, *parts: str) -> float:
        """A number in [0, 1) determined by the parts and the seed."""
        d = hashlib.blake2b("\x1f".join((str(self.seed), *parts)).encode(), digest_size=8).digest()
        return int.from_bytes(d, "little") / 2**64

    def format_chat(self, user: str, system: str | None = None) -> str:
        return (f"<system>{system}</system>\n" if system else "") + f"<user>{user}</user>\n<assistant>"

    def count_tokens(self, text: str) -> int:
        return max(1, round(len(text.split()) * self.tokens_per_word)) if text else 0

    def next_token_logprobs(self, prompts: Sequence[str], candidates: Sequence[Candidate], raw: bool = False,
                            meter: Meter | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        out = np.empty((len(prompts), len(candidates)))
        for i, p in enumerate(prompts):
            for j, c in enumerate(candidates):
                out[i, j] = -0.05 - 8.0 * self._h("next", p, candidate_alternatives(c)[0])
        if meter is not None:
            meter.add(len(prompts), sum(self.count_tokens(p) for p in prompts), len(prompts),
                      time.perf_counter() - t0)
        return out

    def loglik(self, prompts: Sequence[str], continuations: Sequence[str], meter: Meter | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        out = np.array([-self.count_tokens(c) * (0.5 + 4.0 * self._h("loglik", p, c))
                        for p, c in zip(prompts, continuations)])
        if meter is not None:
            meter.add(len(prompts), sum(self.count_tokens(p) + self.count_tokens(c)
                                        for p, c in zip(prompts, continuations)), 0, time.perf_counter() - t0)
        return out

    def generate(self, prompts: Sequence[str], max_tokens: int, stop: Sequence[str] | None = None,
                 temperature: float = 0.0, allowed_tokens: Sequence[str] | None = None, raw: bool = False,
                 meter: Meter | None = None) -> list[Generation]:
        """The passage labels of the prompt in a hashed order, in the format the prompt asks for:
        ``[b] > [a] > ...`` (listwise), ``<think>...</think> <answer>[b]</answer>`` (reasoning),
        ``Passage B`` (pairwise) or ``B`` (setwise)."""
        gens = []
        for p in prompts:
            t0 = time.perf_counter()
            labels = list(dict.fromkeys(a or b for a, b in _LABEL.findall(p)))
            labels.sort(key=lambda lab: self._h("gen", p, lab))
            if not labels:
                text = "I cannot tell."
            elif "<answer>" in p:
                text = f"<think> scripted </think> <answer>[{labels[0]}]</answer>"
            elif "[] > []" in p:
                text = " > ".join(f"[{lab}]" for lab in labels)
            elif "Passage A or Passage B" in p:
                text = f"Passage {labels[0]}"
            else:
                text = labels[0]
            for s in stop or ():
                text = text.split(s)[0]
            words = text.split()
            n = min(len(words), max(1, int(max_tokens)))
            text = " ".join(words[:n])
            g = Generation(text, self.count_tokens(p), self.count_tokens(text), time.perf_counter() - t0)
            if meter is not None:
                meter.add(1, g.prompt_tokens, g.completion_tokens, g.latency)
            gens.append(g)
        return gens

    def config(self) -> dict[str, Any]:
        return {"backend": self.name, "seed": self.seed, "tokens_per_word": self.tokens_per_word}
