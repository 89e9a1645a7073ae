"""``rankstack serve``: the command line of the service, and the uvicorn server it runs.

:func:`serve_command` is a plain function with typer annotations (``app.command("serve")(serve_command)``
registers it); ``python -m rankstack.interfaces.service.command`` runs it on its own.

:class:`GracefulServer` is uvicorn's server with a graceful shutdown: on SIGTERM (or SIGINT) the
service starts *draining* -- new requests get 503 with ``Retry-After`` (``/health`` too, so a load
balancer stops sending), requests in flight and the queued work finish -- and once nothing is left
(and at least ``--drain-seconds`` have passed) uvicorn stops: it closes the listening socket and the
idle connections, then runs the app's shutdown. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, Optional

import typer

from rankstack.errors import ConfigError
from rankstack.optional import require

__all__ = ["serve_command", "GracefulServer", "build_config", "main"]

log = logging.getLogger("rankstack.service")


def _server_class() -> Any:
    uvicorn = require("uvicorn", "serve")

    class _GracefulServer(uvicorn.Server):
        """uvicorn's ``Server`` that drains before it stops (see the module docstring)."""

        def __init__(self, config: Any, state: Any, drain_s: float = 0.0, drain_timeout_s: float = 60.0):
            super().__init__(config)
            self.state = state
            self.drain_s = float(drain_s)
            self.drain_timeout_s = float(drain_timeout_s)
            self._loop: asyncio.AbstractEventLoop | None = None
            self._draining = False

        async def serve(self, sockets: Any = None) -> None:
            self._loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self._draining or self.should_exit or self._loop is None:
                super().handle_exit(sig, frame)
                return
            self._captured_signals.append(sig)
            self.begin_drain()

        def begin_drain(self) -> None:
            """Start draining (from any thread); uvicorn stops when it is done."""
            if self._draining:
                return
            self._draining = True
            self.state.draining = True
            log.info("draining: new requests get 503; waiting for %d in flight", self.state.active)
            assert self._loop is not None
            self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self._drain()))

        async def _drain(self) -> None:
            t0 = time.monotonic()
            idle_since: float | None = None
            while time.monotonic() - t0 < self.drain_timeout_s:
                busy = self.state.active > 0 or self.state.batcher.depth > 0
                now = time.monotonic()
                if busy:
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                # idle for 50 ms (not between two requests of a client) and the minimum drain passed
                if idle_since is not None and now - idle_since >= 0.05 and now - t0 >= self.drain_s:
                    break
                await asyncio.sleep(0.01)
            self.should_exit = True

    return _GracefulServer


def GracefulServer(config: Any, state: Any, drain_s: float = 0.0, drain_timeout_s: float = 60.0) -> Any:
    """A :class:`uvicorn.Server` for ``config`` that drains ``state``'s service before it stops."""
    return _server_class()(config, state, drain_s, drain_timeout_s)


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` options (a value is JSON if it parses: numbers, booleans, objects; else a string)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option takes KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def build_config(
    index_dir: Optional[Path] = None, *, pipeline: Optional[Path] = None, reranker: Optional[str] = None,
    model: Optional[str] = None, backend: Optional[str] = None, base_url: Optional[str] = None,
    option: Optional[list[str]] = None, embed_model: str = "auto", host: str = "127.0.0.1", port: int = 8080,
    max_batch_pairs: int = 128, max_wait_ms: float = 5.0, max_queue: int = 64,
    max_queue_seconds: Optional[float] = None, max_docs: int = 1000,
    max_payload_bytes: int = 2_000_000, request_timeout: float = 30.0, auto_truncate: bool = True,
    api_key: Optional[list[str]] = None, rate_limit: Optional[str] = None, retry_after: float = 1.0,
    model_name: Optional[str] = None, drain_timeout: float = 60.0, qrels: Optional[str] = None,
    queries: Optional[str] = None,
) -> Any:
    """The :class:`~rankstack.interfaces.service.app.ServiceConfig` of the command line's options."""
    from rankstack.interfaces.service.app import ServiceConfig
    from rankstack.interfaces.service.limits import parse_rate

    opts = parse_options(option)
    if backend is not None:
        opts["backend"] = backend
    if base_url is not None:
        opts["base_url"] = base_url
    keys = list(api_key or [])
    keys += [k.strip() for k in os.environ.get("RANKSTACK_API_KEYS", "").split(",") if k.strip()]
    try:
        rate = parse_rate(rate_limit)
    except ValueError as e:
        raise ConfigError(f"--rate-limit: {e}") from None
    return ServiceConfig(
        index_dir=index_dir, pipeline=pipeline, reranker=reranker, model=model, reranker_options=opts,
        embed_model=None if embed_model in ("none", "off", "") else embed_model, host=host, port=port,
        max_batch_pairs=max_batch_pairs, max_wait_ms=max_wait_ms, max_queue=max_queue,
        max_queue_s=max_queue_seconds, max_docs=max_docs, max_payload_bytes=max_payload_bytes,
        request_timeout_s=request_timeout, auto_truncate=auto_truncate,
        api_keys=tuple(dict.fromkeys(keys)), rate_limit=rate, retry_after_s=retry_after, model_name=model_name,
        drain_timeout_s=drain_timeout, qrels=qrels, queries=queries)


def run(config: Any, *, log_level: str = "info", drain_s: float = 0.0, ready: Any = None) -> None:
    """Build the app of ``config`` and serve it with :class:`GracefulServer` until a signal."""
    uvicorn = require("uvicorn", "serve")
    from rankstack.interfaces.service.app import create_app

    app = create_app(config)
    state = app.state.rankstack
    ucfg = uvicorn.Config(app, host=config.host, port=config.port, log_level=log_level, lifespan="on",
                          timeout_graceful_shutdown=config.drain_timeout_s + config.request_timeout_s,
                          access_log=log_level == "debug")
    server = GracefulServer(ucfg, state, drain_s, config.drain_timeout_s)
    if ready is not None:
        ready(server)
    server.run()


def serve_command(
    index_dir: Annotated[Optional[Path], typer.Argument(
        help="an index directory (rankstack index): also serves POST /v1/search and the page at /")] = None,
    pipeline: Annotated[Optional[Path], typer.Option(
        "--pipeline", help="a TOML of pipelines (pipelines tables: name, stages); its last reranker serves /rerank "
                           "when --reranker/--model are not given")] = None,
    qrels: Annotated[Optional[str], typer.Option(
        "--qrels", help="the page: judgments (a qrels file, known dataset or ir_datasets id) to show labels "
                        "and per-query nDCG@10")] = None,
    queries: Annotated[Optional[str], typer.Option(
        "--queries", help="the page: queries to pick from (a queries file, known dataset or ir_datasets id; "
                          "with --qrels, its judged ones)")] = None,
    reranker: Annotated[Optional[str], typer.Option(
        "--reranker", help="the reranker of /rerank, a registry name (default: cross-encoder)")] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", help="the reranker's model: a directory, hub id or shipped name (an LLM alias/GGUF for the "
                        "LLM rerankers)")] = None,
    backend: Annotated[Optional[str], typer.Option(
        "--backend", help="cross-encoder: torch|onnx; LLM rerankers: transformers|llamacpp|openai")] = None,
    base_url: Annotated[Optional[str], typer.Option(
        "--base-url", help="LLM rerankers with --backend openai: the OpenAI-compatible server")] = None,
    option: Annotated[Optional[list[str]], typer.Option(
        "--option", "-O", help="a reranker spec parameter KEY=VALUE (JSON values), repeatable: -O max_length=256 "
                               "-O quantize=int8")] = None,
    embed_model: Annotated[str, typer.Option(
        "--embed-model", help="bi-encoder of /v1/embeddings: auto (the packaged all-MiniLM-L6-v2 when installed), "
                              "a directory / hub id, or none")] = "auto",
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8080,
    max_batch_pairs: Annotated[int, typer.Option(
        "--max-batch-pairs", help="micro-batching: pairs per stage call at most")] = 128,
    max_wait_ms: Annotated[float, typer.Option(
        "--max-wait-ms", help="micro-batching: how long the oldest request waits for others")] = 5.0,
    max_queue: Annotated[int, typer.Option(
        "--max-queue", help="requests queued at most; beyond: 429 with Retry-After")] = 64,
    max_queue_seconds: Annotated[Optional[float], typer.Option(
        "--max-queue-seconds", help="seconds of queued work at most, estimated from the measured time per pair; "
                                    "beyond: 429 (default: half the request timeout, at most 10)")] = None,
    max_docs: Annotated[int, typer.Option(
        "--max-docs", help="documents (or inputs) per request at most; beyond: 413")] = 1000,
    max_payload_bytes: Annotated[int, typer.Option(
        "--max-payload-bytes", help="request body size at most; beyond: 413")] = 2_000_000,
    request_timeout: Annotated[float, typer.Option(
        "--request-timeout", help="seconds a request may wait and be scored; then partial results (504 if none)")
    ] = 30.0,
    auto_truncate: Annotated[bool, typer.Option(
        "--auto-truncate/--no-auto-truncate", help="truncate texts over the model's limit when a request does "
                                                   "not say (truncate=false: 422)")] = True,
    api_key: Annotated[Optional[list[str]], typer.Option(
        "--api-key", help="require Authorization: Bearer KEY (repeatable; also $RANKSTACK_API_KEYS, "
                          "comma-separated); off by default")] = None,
    rate_limit: Annotated[Optional[str], typer.Option(
        "--rate-limit", help="requests per key (per client without keys), e.g. 10/s or 600/min; beyond: 429")
    ] = None,
    retry_after: Annotated[float, typer.Option(
        "--retry-after", help="the Retry-After seconds of 429 and 503 answers")] = 1.0,
    model_name: Annotated[Optional[str], typer.Option(
        "--model-name", help="the model name answers carry (default: the model's name)")] = None,
    drain_seconds: Annotated[float, typer.Option(
        "--drain-seconds", help="on SIGTERM, answer 503 for at least this long before closing (load "
                                "balancers); in-flight requests always finish")] = 0.0,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's: debug|info|warning|error")] = "info",
) -> None:
    """Serve rerank (TEI and Cohere/Jina shapes), embeddings (OpenAI shape), search, health and metrics over HTTP."""
    cfg = build_config(index_dir, pipeline=pipeline, reranker=reranker, model=model, backend=backend,
                       base_url=base_url, option=option, embed_model=embed_model, host=host, port=port,
                       max_batch_pairs=max_batch_pairs, max_wait_ms=max_wait_ms, max_queue=max_queue,
                       max_queue_seconds=max_queue_seconds, max_docs=max_docs,
                       max_payload_bytes=max_payload_bytes, request_timeout=request_timeout,
                       auto_truncate=auto_truncate, api_key=api_key, rate_limit=rate_limit,
                       retry_after=retry_after, model_name=model_name, qrels=qrels, queries=queries)
    if not cfg.api_keys and host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host} without API keys (--api-key)", file=sys.stderr)
    run(cfg, log_level=log_level, drain_s=drain_seconds)


def main(argv: list[str] | None = None) -> None:
    """``python -m rankstack.interfaces.service.command [ARGS]``: ``serve_command`` on its own."""
    from rankstack.errors import RankstackError

    app = typer.Typer(add_completion=False)
    app.command()(serve_command)
    try:
        app(args=argv, standalone_mode=False)
    except RankstackError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:
        if any(c.__name__ == "ClickException" for c in type(e).__mro__):
            e.show()  # type: ignore[attr-defined]
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        raise


if __name__ == "__main__":
    main()
