"""LLM rerankers as a stage: scorer x strategy x backend.

``LLMReranker(scorer, strategy, ...)`` reranks each query's candidates. ``scorer`` is a scorer
name of :data:`rankstack.llm.scorers.SCORERS` (pointwise | qlm | pairwise | setwise | listwise |
first | eliminate | reasoning; the backend is then built from ``model``/``backend``/``base_url``)
or a :class:`~rankstack.llm.scorers.Scorer` instance. It records, per query in
``run.stats["per_query"][qid]``: ``llm_calls``, ``prompt_tokens``, ``completion_tokens``,
``llm_latency_s``, ``repairs`` (parser repairs by name), ``budget_hit``, ``truncated_passages``;
totals in ``run.stats["llm"]``. Prompts and responses can be appended to a JSONL file (``log_path``).
With a thread-safe backend (HTTP) queries run concurrently (``concurrency``).

Every scorer of the table is a registry entry of its own name (:func:`registry_entries`), built by
this one class.
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query
from rankstack.errors import ConfigError
from rankstack.progress import progress_bar
from rankstack.registry import Entry
from rankstack.stages.base import Candidates, Reranker

__all__ = ["LLMReranker", "registry_entries"]

_BACKEND_CACHE: dict[tuple, Any] = {}


def _backend(backend: Any, model: str, base_url: str | None, opts: dict[str, Any] | None) -> Any:
    """A backend instance; backends built by name are cached per (backend, model, url, opts)."""
    from rankstack.llm.backends import Backend, make_backend

    if isinstance(backend, Backend):
        return backend
    backend = {"openai": "http"}.get(backend, backend)
    urls = tuple(base_url) if isinstance(base_url, (list, tuple)) else base_url
    key = (backend, model, urls, tuple(sorted((opts or {}).items())))
    be = _BACKEND_CACHE.get(key)
    if be is None:
        be = _BACKEND_CACHE[key] = make_backend(backend, model, base_url=base_url, **(opts or {}))
    return be


class LLMReranker(Reranker):
    """Rerank candidates with an LLM ``scorer`` under a ``strategy`` (see :mod:`rankstack.llm.strategies`).

    ``scorer``: a name of :data:`~rankstack.llm.scorers.SCORERS` or a ``Scorer`` instance.
    ``strategy``: single | sliding | heapsort | bubble | allpairs (default: the scorer's natural one).
    ``model``: alias (``smollm2``, ``gemma3-270m``), ``.gguf`` path, local directory or hub id (or the
    server's model name with ``backend='http'``). ``backend``: transformers | llamacpp | http (or
    openai), or a :class:`~rankstack.llm.backends.Backend` instance. ``max_calls``/``max_tokens``:
    the per-query budget; ``window``/``stride``/``passes`` (sliding), ``k``/``set_size`` (heapsort,
    bubble): the strategy's parameters. Extra keywords go to the scorer (``max_words``, ``method``,
    ``constrained``, ``max_think_tokens``, setwise ``debias`` = None | "reverse" | "cyclic", first
    ``labels``/``prime``). ``progress`` shows a per-query progress bar with the last query's LLM calls.
    """

    _not_in_key = ("progress", "docs", "log_path", "concurrency", "model", "backend", "base_url",
                   "backend_opts")  # the backend is keyed by its own config() through the scorer

    def __init__(self, scorer: Any = "pointwise", strategy: str | None = None, docs: Any = None, *,
                 model: str = "smollm2", backend: Any = "transformers", base_url: str | None = None,
                 max_calls: int | None = None, max_tokens: int | None = None, window: int = 20,
                 stride: int = 10, passes: int = 1, k: int = 10, set_size: int = 4, log_path: str | None = None,
                 concurrency: int = 1, backend_opts: dict[str, Any] | None = None, name: str | None = None,
                 progress: bool = False, **scorer_opts: Any):
        from rankstack.llm.scorers import SCORERS, Budget, Scorer
        from rankstack.llm.strategies import StrategyConfig, check

        super().__init__(docs)
        if isinstance(scorer, str):
            if scorer not in SCORERS:
                raise ConfigError(f"unknown LLM reranker {scorer!r}; use one of {', '.join(SCORERS)}")
            scorer = SCORERS[scorer](_backend(backend, model, base_url, backend_opts), **scorer_opts)
        elif not (isinstance(scorer, Scorer) or all(hasattr(scorer, a) for a in ("kind", "name", "backend"))):
            raise ConfigError(f"scorer must be a scorer name or a Scorer, got {type(scorer).__name__}")
        elif scorer_opts:
            raise ConfigError(f"scorer options {sorted(scorer_opts)} apply to a scorer built by name")
        self.scorer = scorer
        self.strategy = strategy or getattr(scorer, "natural_strategy", "single")
        check(scorer, self.strategy)
        self.model, self.backend_name, self.base_url, self.backend_opts = model, backend, base_url, backend_opts
        self.max_calls, self.max_tokens = max_calls, max_tokens
        self.window, self.stride, self.passes, self.k, self.set_size = window, stride, passes, k, set_size
        self.budget = Budget(max_calls, max_tokens)
        self.cfg = StrategyConfig(window, stride, passes, k, set_size)
        self.log_path = log_path
        self.concurrency = max(1, int(concurrency))
        self.progress = bool(progress)
        self.name = name or f"llm-{scorer.name}-{self.strategy}"

    @property
    def backend(self) -> Any:
        return self.scorer.backend

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params["backend"] = self.backend
        return params

    def config(self) -> dict[str, Any]:
        return {**super().config(), "llm_backend": self.backend.config()}

    def _one(self, q: Query, docs: list[Document], logger: Any) -> tuple[np.ndarray, Any]:
        from rankstack.llm.scorers import QueryContext
        from rankstack.llm.strategies import rerank

        ctx = QueryContext(q, budget=self.budget, logger=logger)
        scores = rerank(self.scorer, self.strategy, ctx, docs, self.cfg)
        return scores, ctx

    def score_batch(self, batch: Candidates) -> list[np.ndarray]:
        """Each query's prompts; queries run concurrently on a thread-safe backend."""
        from rankstack.llm.scorers import JsonlLogger

        assert batch.docs is not None
        logger = JsonlLogger(self.log_path) if self.log_path else None
        todo = list(zip(batch.queries, batch.docs))
        lock = threading.Lock()
        with progress_bar(len(todo), self.name, unit="query", enabled=self.progress) as bar:
            def work(item: tuple[Query, list[Document]]) -> tuple[np.ndarray, Any]:
                if not item[1]:
                    with lock:
                        bar.advance(1)
                    return np.empty(0), None
                s, ctx = self._one(item[0], item[1], logger)
                with lock:
                    bar.advance(1, calls=ctx.meter.as_dict()["llm_calls"])
                return s, ctx

            try:
                if self.concurrency > 1 and getattr(self.backend, "thread_safe", False):
                    with ThreadPoolExecutor(self.concurrency) as pool:
                        results = list(pool.map(work, todo))
                else:
                    results = [work(t) for t in todo]
            finally:
                if logger is not None:
                    logger.close()
        per_query: dict[str, dict[str, Any]] = {}
        tot = {"llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "llm_latency_s": 0.0,
               "budget_hit_queries": 0, "repairs": 0, "truncated_passages": 0}
        for q, (_, ctx) in zip(batch.queries, results):
            if ctx is None:
                per_query[q.id] = {"llm_calls": 0}
                continue
            rec = {**ctx.meter.as_dict(), "repairs": dict(ctx.repairs), "budget_hit": ctx.budget_hit,
                   "truncated_passages": ctx.truncated}
            per_query[q.id] = rec
            for key in ("llm_calls", "prompt_tokens", "completion_tokens", "llm_latency_s", "truncated_passages"):
                tot[key] += rec[key]
            tot["budget_hit_queries"] += int(ctx.budget_hit)
            tot["repairs"] += sum(ctx.repairs.values())
        if tot["truncated_passages"]:
            limit = getattr(self.scorer, "max_words", "?")
            warnings.warn(f"{self.name}: {tot['truncated_passages']} passage texts (counted per prompt) truncated "
                          f"to {limit} words", UserWarning, stacklevel=4)
        nq = max(1, len(results))
        tot["llm_calls_per_query"] = tot["llm_calls"] / nq
        tot["tokens_per_query"] = (tot["prompt_tokens"] + tot["completion_tokens"]) / nq
        batch.stats.update(per_query=per_query, llm=tot)
        return [s for s, _ in results]


def registry_entries() -> list[Entry]:
    """One registry row per LLM scorer of :data:`rankstack.llm.scorers.SCORERS` (the one table)."""
    from rankstack.llm.scorers import SCORERS

    return [Entry(name, "rankstack.stages.llm:LLMReranker", "llm", "reranker", cls.help,
                  defaults={"scorer": name}, details={"strategy": cls.natural_strategy, "kind": cls.kind})
            for name, cls in SCORERS.items()]
