"""The interface every LLM backend implements, and the usage meter every call reports to.

A backend turns *user messages* into model prompts (its chat template), and offers three primitives:

* :meth:`Backend.generate` -- greedy (or sampled) text, optionally constrained to a set of strings;
* :meth:`Backend.next_token_logprobs` -- log-probabilities of candidate first tokens (``"Yes"``/``"No"``,
  ``"A"``/``"B"``, passage identifiers) after the prompt: what logit-based rerankers use;
* :meth:`Backend.loglik` -- ``log p(continuation | prompt)`` summed over tokens (query likelihood).

Every call counts LLM calls, prompt and completion tokens and latency into a :class:`Meter` passed by
the caller (one per query), so per-query accounting is exact even when queries run concurrently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: a candidate is one string or alternatives whose first-token probabilities are summed ("Yes", " yes")
Candidate = str | Sequence[str]




@dataclass
class Generation:
    """One completion: its text, token counts and wall-clock latency in seconds."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency: float


@dataclass
class Meter:
    """Counts what a query costs: LLM calls (one per prompt), tokens, seconds. Thread-safe."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, calls: int, prompt_tokens: int, completion_tokens: int, latency: float) -> None:
        with self._lock:
            self.calls += int(calls)
            self.prompt_tokens += int(prompt_tokens)
            self.completion_tokens += int(completion_tokens)
            self.latency += float(latency)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, float]:
        return {
            "llm_calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "llm_latency_s": round(self.latency, 6),
        }


def candidate_alternatives(c: Candidate) -> list[str]:
    return [c] if isinstance(c, str) else list(c)


class Backend:
    """Base class. ``thread_safe`` backends may be called from several threads (HTTP)."""

    name = "backend"
    thread_safe = False

    # -- prompts -------------------------------------------------------------------------
    def format_chat(self, user: str, system: str | None = None) -> str:
        """The model prompt for one user message (chat template + generation prompt)."""
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        raise NotImplementedError

    # -- primitives ----------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[str],
        max_tokens: int,
        stop: Sequence[str] | None = None,
        temperature: float = 0.0,
        allowed_tokens: Sequence[str] | None = None,
        raw: bool = False,
        meter: Meter | None = None,
    ) -> list[Generation]:
        """Complete each prompt (a user message, or the verbatim prompt if ``raw``).

        ``allowed_tokens``: if given, decoding is restricted to the tokens that spell these strings
        (plus end of sequence), e.g. passage identifiers and ``" > "``.
        """
        raise NotImplementedError

    def next_token_logprobs(
        self, prompts: Sequence[str], candidates: Sequence[Candidate], raw: bool = False, meter: Meter | None = None
    ) -> np.ndarray:
        """``[len(prompts), len(candidates)]`` log-probabilities of each candidate's first token as the
        next token (alternatives summed); unscored candidates (outside an API's top-k) get ``-inf``."""
        raise NotImplementedError

    def loglik(
        self, prompts: Sequence[str], continuations: Sequence[str], meter: Meter | None = None
    ) -> np.ndarray:
        """``sum_t log p(continuation_t | prompt, continuation_<t)`` for each (raw) prompt/continuation pair."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"backend": self.name}

    def close(self) -> None:
        """Release resources (HTTP connections, model memory)."""


def timed() -> float:
    return time.perf_counter()
