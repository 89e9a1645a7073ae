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
  per server (a semaphore each), so several queries can be reranked at once. Failed requests
  (connection errors, 408/409/429, 5xx) are retried ``retries`` times with exponential back-off; then a
  :class:`BackendError` names the URL, status and response text.
* **A backend pool** (issue #21): ``base_url`` may name several servers of the same model (a list, or
  one string with commas: ``"http://a:8000,http://b:8000"``). Each request goes to the server with
  the fewest requests in flight (ties in turn); a server whose request fails is set aside for the
  back-off time and the request is retried on the others at once, so a server that dies mid-run costs
  no request and no answer, and one that comes back is used again. Greedy decoding (temperature 0,
  seed 0) makes the answers independent of which server gave them. :attr:`HTTPBackend.served` counts
  the answers per server and :attr:`HTTPBackend.failovers` the failed attempts on a pool (each sends
  its request on to another server while attempts remain). Ray
  workers (:mod:`rankstack.scale`) rebuild the backend from the stage's spec, so every worker shares
  the same pool.
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
    """Client for an OpenAI-compatible server at ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``), or
    for a pool of them (a list of URLs, or one string with commas; see the module docstring)."""

    name = "http"
    thread_safe = True

    def __init__(
        self,
        base_url: str | Sequence[str],
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
        self.urls = pool_urls(base_url)
        self.base_url = self.urls[0] if len(self.urls) == 1 else ",".join(self.urls)
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
        n = len(self.urls)
        self.client = httpx.Client(timeout=timeout, headers=headers,
                                   limits=httpx.Limits(max_connections=self.concurrency * n))
        self._sems = [threading.BoundedSemaphore(self.concurrency) for _ in self.urls]
        self._inflight = [0] * n
        self._down_until = [0.0] * n
        self._fails = [0] * n  # consecutive failures per server: how long it is set aside
        self._turn = 0
        self.served = dict.fromkeys(self.urls, 0)
        self.failovers = 0
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency * n)
        self.unscored = 0

    # -- plumbing ------------------------------------------------------------------------
    def _pick(self, avoid: set[int]) -> tuple[int, float]:
        """The server for the next attempt (fewest in flight among those up, ties in turn, preferring
        one this request has not failed on) and how long to wait before using it (0 when one is up)."""
        with self._lock:
            now = time.monotonic()
            n = len(self.urls)
            order = [(self._turn + j) % n for j in range(n)]
            self._turn = (self._turn + 1) % n
            up = [i for i in order if self._down_until[i] <= now]
            fresh = [i for i in up if i not in avoid] or up
            if fresh:
                i = min(fresh, key=lambda i: self._inflight[i])  # min keeps the first of equals
                self._inflight[i] += 1
                return i, 0.0
            i = min(order, key=lambda i: self._down_until[i])
            self._inflight[i] += 1
            return i, self._down_until[i] - now

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors: list[str] = []
        failed: set[int] = set()
        for attempt in range(self.retries + 1):
            i, wait = self._pick(failed)
            url = f"{self.urls[i]}{path}"
            try:
                if wait > 0:
                    time.sleep(wait)
                with self._sems[i]:
                    try:
                        r = self.client.post(url, json=body)
                    except self._httpx.TransportError as e:
                        last = f"{type(e).__name__}: {e}"
                    else:
                        if r.status_code == 200:
                            try:
                                out = r.json()
                            except ValueError:
                                raise BackendError(f"POST {url}: response is not JSON: {r.text[:300]!r}") from None
                            with self._lock:
                                self.served[self.urls[i]] += 1
                                self._down_until[i], self._fails[i] = 0.0, 0
                            return out
                        last = f"HTTP {r.status_code}: {r.text[:300]}"
                        if r.status_code not in (408, 409, 429) and r.status_code < 500:
                            raise BackendError(f"POST {url} failed with {last}")
            finally:
                with self._lock:
                    self._inflight[i] -= 1
            errors.append(f"{url}: {last}")
            failed.add(i)
            with self._lock:  # set the server aside; the next attempt goes to another one at once
                self._fails[i] += 1
                self._down_until[i] = time.monotonic() + self.backoff * 2 ** (min(self._fails[i], 7) - 1)
                if len(self.urls) > 1:
                    self.failovers += 1
        where = self.urls[0] + path if len(self.urls) == 1 else f"{path} on a pool of {len(self.urls)} servers"
        raise BackendError(f"POST {where} failed after {self.retries + 1} attempts: " + "; ".join(errors))

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
        root = self.urls[0][: -len("/v1")]
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
        return {"backend": self.name, "base_url": self.base_url if len(self.urls) == 1 else list(self.urls),
                "model": self.model, "endpoint": self.endpoint,
                "template": self.template}

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.client.close()


def pool_urls(base_url: str | Sequence[str]) -> list[str]:
    """The server URLs of ``base_url`` (one URL, a comma-separated string, or a list), each ending in
    ``/v1``; an empty or repeated entry is a :class:`ConfigError`."""
    items = base_url.split(",") if isinstance(base_url, str) else list(base_url)
    urls = []
    for u in items:
        if not isinstance(u, str) or not u.strip():
            raise ConfigError(f"base_url: empty or non-string server URL in {base_url!r}")
        u = u.strip().rstrip("/")
        urls.append(u if u.endswith("/v1") else u + "/v1")
    if not urls:
        raise ConfigError("base_url names no server")
    if len(set(urls)) != len(urls):
        raise ConfigError(f"base_url names a server twice: {base_url!r}")
    return urls
