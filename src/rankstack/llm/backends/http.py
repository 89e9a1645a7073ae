"""OpenAI-compatible HTTP backend (llama.cpp's server, llama-cpp-python's server, vLLM, ...).

* ``endpoint='chat'`` sends ``/v1/chat/completions`` (the server applies the chat template);
  ``endpoint='completions'`` sends ``/v1/completions`` with the prompt formatted here by ``template``
  (``'chatml'``, ``'gemma'`` or ``'raw'``).
* Next-token log-probabilities come from ``logprobs``/``top_logprobs`` (top ``top_logprobs`` tokens).
  A candidate outside the returned top-k gets ``(lowest returned log-prob) - 1`` and is counted in
  :attr:`HTTPBackend.unscored` (the true value is below the lowest returned one).
* Query likelihood uses ``/v1/completions`` with ``echo=true, max_tokens=0|1, logprobs=1`` (servers must
  return prompt log-probs, e.g. llama-cpp-python with ``--logits_all true``).
* Requests run concurrently through a thread pool, bounded by ``concurrency`` in-flight requests
  across all threads (a semaphore), so several queries can be reranked at once. Failed requests
  (connection errors, 429, 5xx) are retried ``retries`` times with exponential back-off; then a
  :class:`BackendError` names the URL, status and response text.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from rankstack.llm.backends.base import Backend, BackendError, Candidate, Generation, Meter, candidate_alternatives
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
    ):
        from rankstack.stages.registry import require

        httpx = require("httpx", "llm")
        if endpoint not in ("chat", "completions"):
            raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        if template not in (*TEMPLATES, "raw"):
            raise ValueError(f"unknown template {template!r}; use one of {[*TEMPLATES, 'raw']}")
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.endpoint = endpoint
        self.template = template
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.top_logprobs = int(top_logprobs)
        self.concurrency = max(1, int(concurrency))
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

    def loglik(self, prompts, continuations, meter=None):
        def one(pc: tuple[str, str]) -> float:
            p, c = pc
            body = {"model": self.model, "prompt": p + c, "echo": True, "max_tokens": 1, "logprobs": 1,
                    "temperature": 0.0}
            t0 = time.perf_counter()
            resp = self._post("/completions", body)
            lat = time.perf_counter() - t0
            pt, ct = self._usage(resp)
            if meter is not None:
                meter.add(1, pt, ct, lat)
            lp = (resp.get("choices") or [{}])[0].get("logprobs") or {}
            offs, toks = lp.get("text_offset"), lp.get("token_logprobs")
            if not offs or not toks:
                raise BackendError(f"{self.base_url}: echo with logprobs unsupported (start the server with logits_all)")
            start = len(p)
            total, n = 0.0, 0
            for off, v in zip(offs, toks):
                if off >= start and off < len(p) + len(c) and v is not None:
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
