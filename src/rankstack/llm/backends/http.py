"""OpenAI-compatible HTTP backend (llama.cpp's server, llama-cpp-python's server, vLLM, ...).

* ``endpoint='chat'`` sends ``/v1/chat/completions`` (the server applies the chat template);
  ``endpoint='completions'`` sends ``/v1/completions`` with the prompt formatted here by ``template``
  (``'chatml'``, ``'gemma'`` or ``'raw'``).
* Next-token log-probabilities come from ``logprobs``/``top_logprobs`` (top ``top_logprobs`` tokens).
  A candidate outside the returned top-k gets ``(lowest returned log-prob) - 1`` and is counted in
  :attr:`HTTPBackend.unscored` (the true value is below the lowest returned one).
* Query likelihood uses ``/v1/completions`` with ``echo=true, max_tokens=1, logprobs=echo_top_logprobs``
  (servers must return prompt log-probs, e.g. llama-cpp-python with ``--logits_all true``). OpenAI
  semantics: entry ``i`` of the echoed ``token_logprobs`` is ``log p(token_i | tokens_<i)``.
  llama-cpp-python's server (0.3.x, ``Llama._create_completion``) breaks this for models whose tokenizer
  adds no BOS token (SmolLM2: ``add_bos_token=false``): it drops a leading BOS from the echoed tokens
  but not from the logits rows, so entry ``i`` is ``log p_{i+1}(token_i)``, the distribution that
  predicts the *next* token evaluated at the current one (abetlen/llama-cpp-python#1983). The backend
  detects the alignment per response from the greedy completion token (it is the argmax of the
  distribution that predicted it: the last entry when aligned, the one before when shifted) and, when
  shifted, reads ``log p(token_i | tokens_<i)`` from entry ``i-1``'s ``top_logprobs``; a continuation
  token outside that top-``echo_top_logprobs`` list raises :class:`BackendError` (no silent guess).
* Requests run concurrently through a thread pool, bounded by ``concurrency`` in-flight requests
  across all threads (a semaphore), so several queries can be reranked at once. Failed requests
  (connection errors, 429, 5xx) are retried ``retries`` times with exponential back-off; then a
  :class:`BackendError` names the URL, status and response text.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from rankstack.errors import BackendError, ConfigError
from rankstack.llm.backends.base import (
    Backend,
    Candidate,
    Generation,
    candidate_alternatives,
)
from rankstack.llm.backends.models import TEMPLATES


class HTTPBackend(Backend):
    """Client for an OpenAI-compatible server at ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``)."""

    name = "http"
    thread_safe = True

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        endpoint: str = "chat",
        template: str = "raw",
        api_key: str | None = None,
        concurrency: int = 4,
        retries: int = 3,
        timeout: float = 120.0,
        top_logprobs: int = 20,
        backoff: float = 0.5,
        echo_top_logprobs: int = 1000,
    ):
        from rankstack.optional import require

        httpx = require("httpx", "llm")
        if endpoint not in ("chat", "completions"):
            raise ConfigError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        if template not in (*TEMPLATES, "raw"):
            raise ConfigError(f"unknown template {template!r}; use one of {[*TEMPLATES, 'raw']}")
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.endpoint = endpoint
        self.template = template
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.top_logprobs = int(top_logprobs)
        self.echo_top_logprobs = int(echo_top_logprobs)
        self.echo_alignment: str | None = None  # 'aligned' | 'shifted', as detected by the last loglik
        self._lock = threading.Lock()
        self.concurrency = max(1, int(concurrency))
        api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")  # as OpenAI's clients do
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._httpx = httpx
        self.client = httpx.Client(timeout=timeout, headers=headers,
                                   limits=httpx.Limits(max_connections=self.concurrency))
        self._sem = threading.BoundedSemaphore(self.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency)
        self.unscored = 0

    # -- plumbing ------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        last = ""
        for attempt in range(self.retries + 1):
            with self._sem:
                try:
                    r = self.client.post(url, json=body)
                except self._httpx.TransportError as e:
                    last = f"{type(e).__name__}: {e}"
                else:
                    if r.status_code == 200:
                        try:
                            return r.json()
                        except ValueError:
                            raise BackendError(f"POST {url}: response is not JSON: {r.text[:300]!r}") from None
                    last = f"HTTP {r.status_code}: {r.text[:300]}"
                    if r.status_code not in (408, 409, 429) and r.status_code < 500:
                        raise BackendError(f"POST {url} failed with {last}")
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise BackendError(f"POST {url} failed after {self.retries + 1} attempts: {last}")

    def _map(self, fn, items):
        items = list(items)
        if len(items) <= 1:
            return [fn(x) for x in items]
        return list(self._pool.map(fn, items))

    def format_chat(self, user: str, system: str | None = None) -> str:
        if self.template in TEMPLATES:
            return TEMPLATES[self.template](user, system)
        return f"{system}\n\n{user}\n" if system else f"{user}\n"

    def count_tokens(self, text: str) -> int:
        root = self.base_url[: -len("/v1")]
        try:
            r = self.client.post(f"{root}/extras/tokenize", json={"input": text})
            r.raise_for_status()
            return len(r.json()["tokens"])
        except Exception:  # noqa: BLE001 - servers without a tokenize route: a rough estimate
            return max(1, len(text) // 4)

    def _request(self, prompt: str, raw: bool, **kw: Any) -> tuple[str, dict[str, Any]]:
        if self.endpoint == "chat" and not raw:
            return "/chat/completions", {"model": self.model, "messages": [{"role": "user", "content": prompt}], **kw}
        text = prompt if raw else self.format_chat(prompt)
        if "top_logprobs" in kw:  # completions API: logprobs is the top-k count
            kw["logprobs"] = kw.pop("top_logprobs")
        return "/completions", {"model": self.model, "prompt": text, **kw}

    @staticmethod
    def _usage(resp: dict[str, Any]) -> tuple[int, int]:
        u = resp.get("usage") or {}
        return int(u.get("prompt_tokens", 0) or 0), int(u.get("completion_tokens", 0) or 0)

    @staticmethod
    def _text(resp: dict[str, Any]) -> str:
        ch = (resp.get("choices") or [{}])[0]
        if "message" in ch:
            return (ch["message"] or {}).get("content") or ""
        return ch.get("text") or ""

    # -- primitives ----------------------------------------------------------------------
    def generate(self, prompts, max_tokens, stop=None, temperature=0.0, allowed_tokens=None, raw=False, meter=None):
        extra: dict[str, Any] = {"max_tokens": int(max_tokens), "temperature": float(temperature), "seed": 0}
        if stop:
            extra["stop"] = list(stop)
        if allowed_tokens:  # llama-cpp-python tokenises string keys with logit_bias_type='tokens'
            extra["logit_bias"] = {s: 100.0 for s in allowed_tokens}
            extra["logit_bias_type"] = "tokens"

        def one(p: str) -> Generation:
            resp, pt, ct, lat = self._call(p, raw, meter, extra)
            return Generation(self._text(resp), pt, ct, lat)

        return self._map(one, prompts)

    def _call(self, prompt: str, raw: bool, meter: Any, extra: dict[str, Any]) -> tuple[dict[str, Any], int, int, float]:
        """One request: the response, prompt and completion tokens, latency (metered if asked)."""
        path, body = self._request(prompt, raw, **extra)
        t0 = time.perf_counter()
        resp = self._post(path, body)
        lat = time.perf_counter() - t0
        pt, ct = self._usage(resp)
        if meter is not None:
            meter.add(1, pt, ct, lat)
        return resp, pt, ct, lat

    def _top(self, resp: dict[str, Any]) -> dict[str, float]:
        ch = (resp.get("choices") or [{}])[0]
        lp = ch.get("logprobs") or {}
        if "content" in lp:  # chat format: content[0].top_logprobs = [{token, logprob}]
            content = lp.get("content") or []
            if not content:
                return {}
            return {t["token"]: float(t["logprob"]) for t in content[0].get("top_logprobs", [])}
        tops = lp.get("top_logprobs") or []
        return {k: float(v) for k, v in (tops[0] if tops else {}).items()}

    def next_token_logprobs(self, prompts, candidates: Sequence[Candidate], raw=False, meter=None):
        alts = [{a.strip() for a in candidate_alternatives(c)} for c in candidates]
        k = max(self.top_logprobs, len(candidates))
        extra: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0, "top_logprobs": k}
        if self.endpoint == "chat" and not raw:
            extra["logprobs"] = True

        def one(p: str) -> np.ndarray:
            resp, _, _, _ = self._call(p, raw, meter, extra)
            top = self._top(resp)
            if not top:
                raise BackendError(f"{self.base_url}: the server returned no logprobs (does it support top_logprobs?)")
            floor = min(top.values()) - 1.0
            row = np.empty(len(candidates))
            for j, a in enumerate(alts):
                vals = [v for t, v in top.items() if t.strip() in a]
                if vals:
                    m = max(vals)
                    row[j] = m + math.log(sum(math.exp(v - m) for v in vals))
                else:
                    row[j] = floor
                    self.unscored += 1
            return row

        return np.vstack(self._map(one, prompts)) if prompts else np.empty((0, len(candidates)))

    @staticmethod
    def _echo_alignment(toks: list[str], tops: list[Any], n_prompt: int, generated: str) -> str | None:
        """'aligned' or 'shifted' (see the module docstring), told from the greedy completion token: it
        is the argmax of the distribution that predicted it. Aligned (OpenAI): the generated token is
        echoed as entry ``n_prompt`` with that distribution. Shifted (llama-cpp-python without BOS): the
        last prompt entry carries the distribution that predicted it (the generated token itself is not
        echoed). ``None`` when the response cannot tell (nothing generated)."""

        def argmax_is(i: int, tok: str) -> bool:
            t = tops[i] if 0 <= i < len(tops) else None
            return bool(t) and tok in t and t[tok] >= max(t.values()) - 1e-6

        gen = toks[n_prompt] if len(toks) > n_prompt else generated
        if not gen:
            return None
        a = len(toks) > n_prompt and argmax_is(n_prompt, gen)
        b = argmax_is(n_prompt - 1, gen)
        if a != b:
            return "aligned" if a else "shifted"
        raise BackendError("cannot tell how the server aligns echoed prompt log-probs (the greedy completion "
                           f"token {gen!r} is the argmax of {'both' if a else 'neither'} of the candidate "
                           "distributions); query likelihood over HTTP needs OpenAI echo semantics")

    def loglik(self, prompts, continuations, meter=None):
        def one(pc: tuple[str, str]) -> float:
            p, c = pc
            body = {"model": self.model, "prompt": p + c, "echo": True, "max_tokens": 1,
                    "logprobs": self.echo_top_logprobs, "temperature": 0.0}
            t0 = time.perf_counter()
            resp = self._post("/completions", body)
            lat = time.perf_counter() - t0
            pt, ct = self._usage(resp)
            if meter is not None:
                meter.add(1, pt, ct, lat)
            ch = (resp.get("choices") or [{}])[0]
            lp = ch.get("logprobs") or {}
            offs, vals, toks, tops = (lp.get("text_offset"), lp.get("token_logprobs"), lp.get("tokens"),
                                      lp.get("top_logprobs"))
            if not offs or not vals or not toks or not tops:
                raise BackendError(f"{self.base_url}: echo with logprobs unsupported (start the server with logits_all)")
            full = p + c
            prompt_idx = [i for i, o in enumerate(offs) if o < len(full)]
            text = ch.get("text") or ""
            align = self._echo_alignment(toks, tops, len(prompt_idx),
                                         text[len(full):] if text.startswith(full) else "")
            if align is not None:
                with self._lock:
                    self.echo_alignment = align
            elif self.echo_alignment:  # nothing generated (end of sequence): the server's known alignment
                align = self.echo_alignment
            else:
                raise BackendError(f"{self.base_url}: cannot check the alignment of echoed prompt log-probs "
                                   "(the server generated nothing after the prompt)")
            start = len(p)
            total, n = 0.0, 0
            for i in prompt_idx:
                if offs[i] < start:
                    continue
                if align == "aligned":
                    v = vals[i]
                else:  # shifted: the distribution that predicted token i is entry i-1's
                    v = (tops[i - 1] or {}).get(toks[i]) if i > 0 else None
                    if v is None:
                        raise BackendError(
                            f"{self.base_url}: the server shifts echoed prompt log-probs by one token "
                            f"(llama-cpp-python without a BOS token) and continuation token {toks[i]!r} is not "
                            f"in the previous position's top-{self.echo_top_logprobs} log-probs; raise "
                            "echo_top_logprobs or use a server with OpenAI echo semantics (vLLM, SGLang)")
                if v is None:
                    raise BackendError(f"{self.base_url}: no log-prob for continuation token {toks[i]!r}")
                total += float(v)
                n += 1
            if n == 0:
                raise BackendError(f"{self.base_url}: no continuation tokens found in the echoed prompt")
            return total

        return np.asarray(self._map(one, list(zip(prompts, continuations, strict=True))), dtype=np.float64)

    def config(self) -> dict[str, Any]:
        return {"backend": self.name, "base_url": self.base_url, "model": self.model, "endpoint": self.endpoint,
                "template": self.template}

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.client.close()
