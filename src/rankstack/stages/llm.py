"""LLM rerankers as a stage: scorer x strategy x backend.

``LLMReranker(scorer, strategy, backend)`` reranks each query's candidates and records, per query in
``run.stats["per_query"][qid]``: ``llm_calls``, ``prompt_tokens``, ``completion_tokens``,
``llm_latency_s``, ``repairs`` (parser repairs by name), ``budget_hit``, ``truncated_passages``; totals
in ``run.stats["llm"]``. Prompts and responses can be appended to a JSONL file (``log_path``).
With a thread-safe backend (HTTP) queries run concurrently (``concurrency``).

:func:`make_llm_reranker` is the factory the CLI and the registry call.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query, Run
from rankstack.stages.base import Reranker, StageError


class LLMReranker(Reranker):
    """Rerank candidates with an LLM ``scorer`` under a ``strategy`` (see :mod:`rankstack.llm.strategies`)."""

    def __init__(self, scorer: Any, strategy: str | None = None, docs: Any = None, budget: Any = None,
                 strategy_config: Any = None, log_path: str | None = None, concurrency: int = 1,
                 name: str | None = None, progress: bool = False):
        from rankstack.llm.scorers import Budget
        from rankstack.llm.strategies import NATURAL, StrategyConfig, check

        super().__init__(docs)
        self.scorer = scorer
        self.strategy = strategy or NATURAL.get(scorer.name, "single")
        check(scorer, self.strategy)
        self.budget = budget or Budget()
        self.cfg = strategy_config or StrategyConfig()
        self.log_path = log_path
        self.concurrency = max(1, int(concurrency))
        self.progress = bool(progress)
        self.name = name or f"llm-{scorer.name}-{self.strategy}"

    @property
    def backend(self) -> Any:
        return self.scorer.backend

    def config(self) -> dict[str, Any]:
        return {"class": "LLMReranker", "name": self.name, **self.scorer.config(), "strategy": self.strategy,
                **self.cfg.as_dict(), "budget": dict(self.budget.__dict__), **self.backend.config()}

    def _one(self, q: Query, docs: list[Document], logger: Any) -> tuple[np.ndarray, Any]:
        from rankstack.llm.scorers import QueryContext
        from rankstack.llm.strategies import rerank

        ctx = QueryContext(q, budget=self.budget, logger=logger)
        scores = rerank(self.scorer, self.strategy, ctx, docs, self.cfg)
        return scores, ctx

    def score(self, query: Query, docs: list[Document]) -> np.ndarray:
        return self._one(query, docs, None)[0]

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        from rankstack.llm.scorers import JsonlLogger

        assert run is not None
        logger = JsonlLogger(self.log_path) if self.log_path else None
        todo = []
        for q in queries:
            ids = [d for d, _ in run.ranked(q.id)]
            todo.append((q, ids, self.documents(q, ids) if ids else []))

        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc=self.name, unit="query")
        lock = threading.Lock()

        def work(item):
            q, ids, docs = item
            if not ids:
                s, ctx = np.empty(0), None
            else:
                s, ctx = self._one(q, docs, logger)
            if bar is not None:
                with lock:
                    bar.update(1)
                    if ctx is not None:
                        bar.set_postfix(calls=ctx.meter.as_dict()["llm_calls"], refresh=False)
            return q, ids, s, ctx

        try:
            if self.concurrency > 1 and getattr(self.backend, "thread_safe", False):
                with ThreadPoolExecutor(self.concurrency) as pool:
                    results = list(pool.map(work, todo))
            else:
                results = [work(t) for t in todo]
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()
        out: dict[str, dict[str, float]] = {}
        per_query: dict[str, dict[str, Any]] = {}
        tot = {"llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "llm_latency_s": 0.0,
               "budget_hit_queries": 0, "repairs": 0, "truncated_passages": 0}
        items = 0
        for q, ids, s, ctx in results:
            s = np.asarray(s, dtype=np.float64)
            if s.shape != (len(ids),):
                raise StageError(f"{self.name}: {s.shape} scores for {len(ids)} candidates of query {q.id!r}")
            out[q.id] = dict(zip(ids, s.tolist()))
            items += len(ids)
            if ctx is None:
                per_query[q.id] = {"llm_calls": 0}
                continue
            rec = {**ctx.meter.as_dict(), "repairs": dict(ctx.repairs), "budget_hit": ctx.budget_hit,
                   "truncated_passages": ctx.truncated}
            per_query[q.id] = rec
            for k in ("llm_calls", "prompt_tokens", "completion_tokens", "llm_latency_s", "truncated_passages"):
                tot[k] += rec[k]
            tot["budget_hit_queries"] += int(ctx.budget_hit)
            tot["repairs"] += sum(ctx.repairs.values())
        if tot["truncated_passages"]:
            limit = getattr(self.scorer, "max_words", "?")
            warnings.warn(f"{self.name}: {tot['truncated_passages']} passage texts (counted per prompt) truncated "
                          f"to {limit} words", UserWarning, stacklevel=2)
        nq = max(1, len(results))
        tot["llm_calls_per_query"] = tot["llm_calls"] / nq
        tot["tokens_per_query"] = (tot["prompt_tokens"] + tot["completion_tokens"]) / nq
        stats = {"items": items, "stages": list(run.stats.get("stages", [])), "per_query": per_query, "llm": tot}
        return Run._wrap(out, name=self.name, stats=stats)


_BACKEND_CACHE: dict[tuple, Any] = {}


def make_llm_reranker(
    reranker: str = "pointwise",
    strategy: str | None = None,
    model: str = "smollm2",
    backend: str | Any = "transformers",
    base_url: str | None = None,
    docs: Any = None,
    max_calls: int | None = None,
    max_tokens: int | None = None,
    window: int = 20,
    stride: int = 10,
    passes: int = 1,
    k: int = 10,
    set_size: int = 4,
    log_path: str | None = None,
    concurrency: int = 1,
    backend_opts: dict[str, Any] | None = None,
    progress: bool = False,
    **scorer_opts: Any,
) -> LLMReranker:
    """Build an LLM reranker by names.

    ``reranker``: pointwise | qlm | pairwise | setwise | listwise | first | eliminate | reasoning.
    ``strategy``: single | sliding | heapsort | bubble | allpairs (default: the scorer's natural one).
    ``model``: alias (``smollm2``, ``gemma3-270m``), ``.gguf`` path, local directory or hub id (or the
    server's model name with ``backend='http'``). ``backend``: transformers | llamacpp | http, or a
    :class:`~rankstack.llm.backends.Backend` instance. Backends are cached per (backend, model, url, opts)
    within the process. Extra keywords go to the scorer (``max_words``, ``method``, ``constrained``,
    ``max_think_tokens``, setwise ``debias`` = None | "reverse" | "cyclic"). ``progress`` shows a
    per-query progress bar (tqdm, on stderr) with the last query's LLM calls.
    """
    from rankstack.llm.backends import Backend, make_backend
    from rankstack.llm.scorers import SCORERS, Budget
    from rankstack.llm.strategies import StrategyConfig

    if reranker not in SCORERS:
        raise ValueError(f"unknown LLM reranker {reranker!r}; use one of {', '.join(SCORERS)}")
    if isinstance(backend, Backend):
        be = backend
    else:
        key = (backend, model, base_url, tuple(sorted((backend_opts or {}).items())))
        be = _BACKEND_CACHE.get(key)
        if be is None:
            be = make_backend(backend, model, base_url=base_url, **(backend_opts or {}))
            _BACKEND_CACHE[key] = be
    scorer = SCORERS[reranker](be, **scorer_opts)
    return LLMReranker(scorer, strategy, docs=docs, budget=Budget(max_calls, max_tokens),
                       strategy_config=StrategyConfig(window, stride, passes, k, set_size), log_path=log_path,
                       concurrency=concurrency, progress=progress)


def _factory(reranker: str):
    def make(**kw: Any) -> LLMReranker:
        return make_llm_reranker(reranker, **kw)

    make.__name__ = f"make_{reranker}"
    make.__doc__ = f"The {reranker!r} LLM reranker; keywords as :func:`make_llm_reranker`."
    return make


pointwise = _factory("pointwise")
qlm = _factory("qlm")
pairwise = _factory("pairwise")
setwise = _factory("setwise")
listwise = _factory("listwise")
first = _factory("first")
eliminate = _factory("eliminate")
reasoning = _factory("reasoning")
