"""llama.cpp in-process through llama-cpp-python (optional: ``pip install llama-cpp-python``).

Runs GGUF files natively quantised (no de-quantisation), one prompt at a time. Constrained decoding
uses ``logit_bias`` on the allowed strings' tokens. Logits: the model is created with
``logits_all=False`` (the output layer runs on the last position only: with Gemma 3's 262k-token
vocabulary, computing and copying logits for every prompt position cost more than the transformer
body), and the last position's logits are read from the context after ``Llama.eval``. Query likelihood
feeds the continuation one token at a time on the KV cache. Consecutive prompts reuse the KV cache of
their longest common token prefix (chat template, instructions, a shared query).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.errors import BackendError
from rankstack.llm.backends.base import (
    Backend,
    Candidate,
    Generation,
    candidate_alternatives,
)
from rankstack.llm.backends.models import TEMPLATES, resolve_model


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


class LlamaCppBackend(Backend):
    """A GGUF model run by llama.cpp. ``model``: alias or ``.gguf`` path."""

    name = "llamacpp"

    def __init__(self, model: str, n_ctx: int = 4096, threads: int | None = None, template: str | None = None,
                 seed: int = 0, n_batch: int = 512):
        from rankstack.optional import require

        llama_cpp = require("llama_cpp", "llm")
        self.model_name = model
        self.ref = resolve_model(model)
        if not self.ref.gguf_path:
            raise BackendError(f"the llama.cpp backend needs a .gguf file or alias, got {model!r}")
        self.llm = llama_cpp.Llama(model_path=self.ref.gguf_path, n_ctx=n_ctx, logits_all=False, verbose=False,
                                   n_threads=threads, n_threads_batch=threads, seed=seed, n_batch=n_batch)
        self._n_vocab = self.llm.n_vocab()
        self.n_ctx = n_ctx
        self.template = template or self.ref.template or "auto"

    def format_chat(self, user: str, system: str | None = None) -> str:
        if self.template in TEMPLATES:
            return TEMPLATES[self.template](user, system)
        tmpl = self.llm.metadata.get("tokenizer.chat_template")
        if tmpl:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            return env.from_string(tmpl).render(messages=msgs, add_generation_prompt=True,
                                                bos_token="", eos_token="")
        return f"{user}\n"

    def _tok(self, text: str, bos: bool = True) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self._tok(text, bos=False))

    def _check_len(self, n: int) -> None:
        if n >= self.n_ctx:
            raise BackendError(f"prompt of {n} tokens does not fit n_ctx={self.n_ctx}; raise n_ctx")

    def generate(self, prompts, max_tokens, stop=None, temperature=0.0, allowed_tokens=None, raw=False, meter=None):
        bias = None
        if allowed_tokens:
            allowed = {t for s in allowed_tokens for t in self._tok(s, bos=False)} | {self.llm.token_eos()}
            # push every other token down: a bias on the allowed ones is what the API offers
            bias = {t: 100.0 for t in allowed}
        out = []
        for p in prompts:
            text = p if raw else self.format_chat(p)
            t0 = time.perf_counter()
            r = self.llm.create_completion(text, max_tokens=int(max_tokens), stop=list(stop or []) or None,
                                           temperature=float(temperature), logit_bias=bias, seed=0)
            lat = time.perf_counter() - t0
            u = r.get("usage", {})
            g = Generation(r["choices"][0]["text"], int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0)), lat)
            out.append(g)
            if meter is not None:
                meter.add(1, g.prompt_tokens, g.completion_tokens, lat)
        return out

    def _eval_last(self, tokens: list[int]) -> np.ndarray:
        """Evaluate ``tokens`` (reusing the KV cache of the longest prefix shared with what the context
        holds) and return the logits of the last position."""
        self._check_len(len(tokens))
        llm = self.llm
        held = llm.input_ids[: llm.n_tokens]
        m = min(len(held), len(tokens) - 1)  # always evaluate at least the last token
        same = np.flatnonzero(held[:m] != np.asarray(tokens[:m], dtype=held.dtype))
        keep = int(same[0]) if same.size else m
        llm.n_tokens = keep  # eval() drops the KV cache from n_tokens on
        llm.eval(tokens[keep:])
        return self._last_logits()

    def _last_logits(self) -> np.ndarray:
        # with logits_all=False the context holds one row of logits: the last evaluated position
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self._n_vocab,)).astype(np.float64)

    def next_token_logprobs(self, prompts, candidates: Sequence[Candidate], raw=False, meter=None):
        groups = []
        for c in candidates:
            ids = sorted({self._tok(a, bos=False)[0] for a in candidate_alternatives(c) if self._tok(a, bos=False)})
            if not ids:
                raise BackendError(f"candidate {c!r} has no tokens")
            groups.append(ids)
        out = np.empty((len(prompts), len(candidates)))
        for i, p in enumerate(prompts):
            toks = self._tok(p if raw else self.format_chat(p))
            t0 = time.perf_counter()
            lp = _log_softmax(self._eval_last(toks))
            for j, ids in enumerate(groups):
                v = lp[ids]
                out[i, j] = v.max() + np.log(np.exp(v - v.max()).sum())
            if meter is not None:
                meter.add(1, len(toks), 1, time.perf_counter() - t0)
        return out

    def loglik(self, prompts, continuations, meter=None):
        out = np.empty(len(prompts))
        for i, (p, c) in enumerate(zip(prompts, continuations, strict=True)):
            pt, ct = self._tok(p), self._tok(c, bos=False)
            self._check_len(len(pt) + len(ct))
            t0 = time.perf_counter()
            logits = self._eval_last(pt)  # predicts ct[0]
            total = 0.0
            for k, t in enumerate(ct):
                total += float(_log_softmax(logits)[t])
                if k + 1 < len(ct):
                    self.llm.eval([t])  # one token on the KV cache: the logits that predict ct[k+1]
                    logits = self._last_logits()
            out[i] = total
            if meter is not None:
                meter.add(1, len(pt) + len(ct), 0, time.perf_counter() - t0)
        return out

    def config(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name, "template": self.template}

    def close(self) -> None:
        try:
            self.llm.close()
        except Exception:  # noqa: BLE001
            pass
