"""The gate every HTTP request passes before the routes: an ASGI middleware (no body is parsed before
it has been let through).

In order:

1. **metrics** -- every answer is counted by route template and status, and timed;
2. **shutting down** -- once a shutdown began (SIGTERM), new requests get 503 with ``Retry-After``
   while those in flight finish;
3. **API keys** -- with keys configured, ``Authorization: Bearer KEY`` is required (401 without; the
   probes and the docs -- ``/health``, ``/metrics``, ``/openapi.json``, ``/docs``, the page ``/`` and
   ``/static/`` -- stay open);
4. **rate limit** -- optional, per key (per client address without keys): a token bucket of ``rate``
   requests a second (burst ``max(1, rate)``), 429 with ``Retry-After`` beyond it;
5. **payload size** -- a ``Content-Length`` over ``max_payload_bytes`` is a 413 before reading, and
   so is a body that turns out longer while it is read (chunked, or a lying header).

Every refusal answers TEI's JSON error shape ``{"error", "error_type"}``.
"""

from __future__ import annotations

import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from rankstack.errors import ConfigError

__all__ = ["Gate", "RateLimiter", "parse_rate", "OPEN_PATHS"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: paths served without an API key (probes, the API description, the web page and its files)
OPEN_PATHS = frozenset({"/health", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/",
                        "/favicon.ico"})
OPEN_PREFIXES = ("/static/",)


def parse_rate(text: str | float | None) -> float | None:
    """``"10/s"``, ``"600/min"``, ``"5"`` -> requests per second (``None``: no limit)."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        rate = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        num, _, unit = s.partition("/")
        per = {"": 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
               "h": 3600.0, "hour": 3600.0}.get(unit)
        try:
            rate = float(num) / per if per else float("nan")
        except ValueError:
            rate = float("nan")
    if not math.isfinite(rate) or rate <= 0:
        raise ConfigError(f"a rate limit is N/s, N/min or N/hour with N > 0, got {text!r}")
    return rate


class RateLimiter:
    """Token buckets, one per key: ``rate`` tokens a second, ``burst`` at most."""

    def __init__(self, rate: float, burst: float | None = None, max_keys: int = 10_000):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """0 if a request is allowed now, else the seconds until one is."""
        now = time.monotonic() if now is None else now
        tokens, t = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - t) * self.rate)
        if tokens >= 1.0:
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                self._buckets.clear()  # bounded memory: forget every bucket (they refill anyway)
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers") or []:
        if k.lower() == name:
            return v
    return None


async def send_error(send: Send, status: int, error_type: str, message: str,
                     headers: Iterable[tuple[str, str]] = (), **extra: Any) -> None:
    body = json.dumps({"error": message, "error_type": error_type, **extra}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.lower().encode(), str(v).encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


class Gate:
    """The ASGI middleware of the module docstring. ``state`` is the service state (its ``config``,
    ``metrics``, ``draining`` flag and ``active`` count of requests being handled)."""

    def __init__(self, app: Any, state: Any):
        self.app = app
        self.state = state
        cfg = state.config
        self.keys = tuple(k.encode() for k in cfg.api_keys)
        self.limiter = RateLimiter(cfg.rate_limit) if cfg.rate_limit else None
        self.max_payload = int(cfg.max_payload_bytes)
        self.retry_after = str(int(math.ceil(cfg.retry_after_s)))

    def _route(self, scope: Scope) -> str:
        """The route template a request matches (``other`` for anything else: bounded label values)."""
        from starlette.routing import Match

        for r in getattr(self.state.app, "routes", []):
            try:
                m, _ = r.matches(scope)
            except Exception:  # noqa: BLE001 - a route that cannot tell
                continue
            if m is Match.FULL:
                return getattr(r, "path", "other")
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state, metrics = self.state, self.state.metrics
        t0 = time.perf_counter()
        route = self._route(scope)
        status_box = [500]

        async def send_wrapper(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                status_box[0] = int(msg["status"])
            await send(msg)

        state.active += 1
        metrics.inflight.inc()
        try:
            await self._gate(scope, receive, send_wrapper)
        finally:
            state.active -= 1
            metrics.inflight.dec()
            metrics.requests.labels(route, str(status_box[0])).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - t0)

    async def _gate(self, scope: Scope, receive: Receive, send: Send) -> None:
        state, metrics = self.state, self.state.metrics
        path = scope.get("path", "")
        if state.draining:
            metrics.rejected.labels("shutting_down").inc()
            await send_error(send, 503, "unhealthy", "the service is shutting down",
                             [("retry-after", self.retry_after), ("connection", "close")])
            return
        open_path = path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
        key = ""
        if self.keys and not open_path:
            auth = _header(scope, b"authorization") or b""
            scheme, _, token = auth.partition(b" ")
            token = token.strip()
            if scheme.lower() != b"bearer" or not any(hmac.compare_digest(token, k) for k in self.keys):
                metrics.rejected.labels("unauthorized").inc()
                await send_error(send, 401, "unauthorized",
                                 "a valid API key is required: Authorization: Bearer KEY",
                                 [("www-authenticate", "Bearer")])
                return
            key = token.decode("latin-1")
        if self.limiter is not None and not open_path:
            who = key or "addr:" + str((scope.get("client") or ("?",))[0])
            wait = self.limiter.take(who)
            if wait > 0:
                metrics.rejected.labels("rate_limited").inc()
                await send_error(send, 429, "rate_limited", "rate limit exceeded",
                                 [("retry-after", str(max(1, int(math.ceil(wait)))))])
                return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        cl = _header(scope, b"content-length")
        if cl is not None:
            try:
                n = int(cl)
                if n < 0:
                    raise ValueError
            except ValueError:
                await send_error(send, 400, "validation", f"invalid Content-Length {cl[:40]!r}")
                return
            if n > self.max_payload:
                metrics.rejected.labels("payload_too_large").inc()
                await send_error(send, 413, "payload_too_large",
                                 f"payload of {n} bytes is over the limit of {self.max_payload} bytes",
                                 [("connection", "close")])
                return
        # read the body (bounded), then hand it on as one message
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return  # the client went away (a truncated body): nothing to answer
            body = msg.get("body", b"")
            size += len(body)
            if size > self.max_payload:
                metrics.rejected.labels("payload_too_large").inc()
                await send_error(send, 413, "payload_too_large",
                                 f"payload over the limit of {self.max_payload} bytes",
                                 [("connection", "close")])
                return
            chunks.append(body)
            if not msg.get("more_body", False):
                break
        data = b"".join(chunks)
        sent = [False]

        async def replay() -> dict[str, Any]:
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
