"""Search over an index, for people and programs: ``POST /v1/search``, ``GET /v1/pipelines``,
``GET /v1/queries`` and the web page (``GET /``, ``/static/*``), as one FastAPI router.

:class:`SearchService` opens a directory written by ``rankstack index`` (``index --dense``), builds
each named pipeline once with :func:`rankstack.stages.build.build_stage` (the one construction path;
models load once, at start-up) and answers a query with the ranked documents, **each stage's score**
of every document, the passage text, the spans of it that match the query's terms (for ``<mark>``)
and, where judgments are loaded, the judged label of each document and the query's nDCG@10.

Pipelines are experiment-style: the ``stages`` list exactly as an experiment TOML writes it, e.g.
``[{stage = "bm25", k = 100}, {stage = "cutoff", k = 20}, {stage = "cross-encoder", model = "..."}]``.
Without any, the service offers ``bm25``; ``bm25>>rerank`` (BM25's top ``rerank_depth`` re-ranked by
the ``reranker`` spec) when one is given; ``dense`` and ``hybrid`` (RRF of ``bm25`` and ``dense``)
when the index directory has a dense index.

How each stage's score is found: a pipeline's stages run one after the other on the query and every
intermediate run is kept (a ``Pipeline`` a stage factory returns is taken apart into its steps), so a
document's score in each step is read from that step's run. Cutoffs (``%k``) change no score and are
not listed. ``{stage = "fuse", pipelines = [...]}`` fuses other pipelines *of the service* by name,
as in an experiment: those pipelines run first on the same query (each once per request), and the
fusion is built per request from their runs (``ctx.runs``, through ``build_stage``); each input
pipeline's final score is listed under its name, next to the fused score. A fusion of live stages
that a factory returns as one ``Fuse`` object (not reachable from a spec) is shown as one stage.
A document a step did not rank (e.g. one only the other input of a fusion found) has ``null`` there.

The page uses only this API. Errors are JSON ``{"error": message, "error_type": kind}``: an empty
query 400, an unknown pipeline 404 (naming the known ones), a malformed request or ``k`` outside
1..1000 422, an LLM backend that failed 503 (``Retry-After``); any other rankstack error while
running the pipeline 422.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi import Query as QueryParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from rankstack.data.records import Qrels, Query, Run
from rankstack.errors import BackendError, ConfigError, RankstackError
from rankstack.stages.base import Cutoff, Pipeline, Stage
from rankstack.stages.build import BuildContext, build_stage, check_spec

__all__ = ["DEFAULT_RERANK_DEPTH", "STATIC_DIR", "SearchError", "SearchRequest", "SearchResponse",
           "SearchService"]

#: the page's files (index.html, app.js, style.css): plain HTML, CSS and JavaScript, no build step
STATIC_DIR = Path(__file__).resolve().parent / "static"
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
#: BM25 candidates re-ranked by the default ``bm25>>rerank`` pipeline
DEFAULT_RERANK_DEPTH = 20
MAX_K = 1000
#: a word of a passage, for marking: letters and digits, joined by the characters Lucene's tokenizer
#: joins words with (``e.g.``, ``don't``, ``3.5``); the index's analyzer decides what each word is
_WORD = re.compile(r"\w+(?:['’.:·,]\w+)*")


# -- the API's shapes (OpenAPI) ---------------------------------------------------------------------
class SearchRequest(BaseModel):
    """``POST /v1/search``."""

    query: str = Field(description="the query text (not empty)")
    pipeline: str | None = Field(None, description="a pipeline name (GET /v1/pipelines); default: the first")
    k: int = Field(10, ge=1, le=MAX_K, description="results to return (1..1000)")
    return_text: bool = Field(True, description="return each document's text and the spans that match "
                                                "the query")
    query_id: str | None = Field(None, description="the id of a loaded query (GET /v1/queries): its judgments "
                                                   "give each result's label and the query's nDCG@10")


class Highlights(BaseModel):
    title: list[list[int]] = Field(default_factory=list, description="[start, end) offsets in the title")
    text: list[list[int]] = Field(default_factory=list, description="[start, end) offsets in the text")


class SearchHit(BaseModel):
    rank: int
    id: str
    score: float
    title: str
    text: str | None
    stages: dict[str, float | None] = Field(description="the score each stage of the pipeline gave the "
                                                        "document (null: that stage did not rank it)")
    label: int | None = Field(description="the judged label (null: no judgment, or no query_id)")
    highlights: Highlights | None = Field(None, description="spans matching the query's terms, as JavaScript "
                                                            "string offsets (UTF-16 code units)")


class SearchResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    pipeline: str
    query: str
    query_id: str | None = None
    query_terms: list[str] = Field(default_factory=list, description="the query's terms after analysis")
    k: int
    results: list[SearchHit]
    total: int = Field(description="documents the pipeline ranked (before the cut to k)")
    ndcg_at_10: float | None = Field(None, alias="ndcg@10", description="nDCG@10 of the pipeline's whole "
                                     "ranking, when qrels are loaded and query_id is judged")
    judged: bool = Field(False, description="query_id has judgments")
    stage_names: list[str] = Field(default_factory=list,
                                   description="the keys of each result's 'stages', in order")
    took_ms: float
    stage_ms: dict[str, float]
    warnings: list[str] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: str
    error_type: str


class PipelineInfo(BaseModel):
    name: str
    description: str
    stages: list[dict[str, Any]]


class UnavailablePipeline(BaseModel):
    name: str
    reason: str


class PipelinesResponse(BaseModel):
    default: str | None
    pipelines: list[PipelineInfo]
    unavailable: list[UnavailablePipeline] = Field(default_factory=list)
    index: dict[str, Any]
    qrels: bool
    queries: int


class QueryInfo(BaseModel):
    id: str
    text: str
    judged: bool


class QueriesResponse(BaseModel):
    queries: list[QueryInfo]
    total: int = Field(description="loaded queries that match the filter")
    qrels: bool


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in ((400, "empty query"), (404, "unknown pipeline"),
                       (422, "malformed request, k out of range, or a pipeline that cannot answer it"),
                       (503, "an LLM backend failed; retry"))
}


def _error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "error_type": error_type}, status_code=status, headers=headers)


class SearchError(RankstackError):
    """A request :meth:`SearchService.search` cannot answer: ``status`` and ``error_type`` are the
    HTTP answer's (400 ``empty_query``, 404 ``unknown_pipeline``)."""

    def __init__(self, status: int, error_type: str, message: str):
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class _JSONErrors(APIRoute):
    """A route whose request-validation errors are ``{"error", "error_type"}`` (422), as every other
    error of this router, whatever exception handlers the application has."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as e:
                errs = e.errors()
                parts = []
                for err in errs[:3]:
                    loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
                    parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
                detail = [{"type": str(err.get("type")), "loc": [str(x) for x in err.get("loc", ())],
                           "msg": str(err.get("msg"))} for err in errs]  # not the input: it may be any bytes
                content = {"error": "; ".join(parts) or "invalid request", "error_type": "validation_error",
                           "detail": detail}
                return JSONResponse(content, status_code=422)

        return route


# -- pipelines --------------------------------------------------------------------------------------
@dataclass
class _Step:
    """One step of a pipeline: a stage built at start-up, or a fusion of other pipelines (``fuse``,
    built per request from their runs)."""

    key: str
    where: str
    stage: Stage | None = None
    spec: dict[str, Any] | None = None
    inputs: list[str] = field(default_factory=list)
    scored: bool = True


@dataclass
class _Pipeline:
    name: str
    specs: list[dict[str, Any]]
    steps: list[_Step]

    @property
    def description(self) -> str:
        parts = []
        for s in self.steps:
            parts.append(f"fuse({', '.join(s.inputs)})" if s.inputs else s.key)
        return " >> ".join(parts)


@dataclass
class _Outcome:
    run: Run
    scores: list[tuple[str, Run]]
    ms: dict[str, float]
    total_ms: float


def _as_specs(value: Any, where: str) -> list[dict[str, Any]]:
    """A pipeline given as a stage list, a ``[[pipelines]]``-style table (``stages = [...]``) or one
    stage spec."""
    if isinstance(value, Mapping) and "stages" in value:
        value = value["stages"]
    elif isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ConfigError(f"{where}: a pipeline is a non-empty list of stage specs ({{'stage': NAME, ...}})")
    specs = []
    for j, s in enumerate(value):
        if not isinstance(s, Mapping) or "stage" not in s:
            raise ConfigError(f"{where} stage #{j + 1}: each stage is a table with a 'stage' field")
        specs.append(dict(s))
    return specs


def _spec_key(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def _unique(key: str, taken: set[str]) -> str:
    out, n = key, 2
    while out in taken:
        out, n = f"{key}#{n}", n + 1
    taken.add(out)
    return out


def _flatten(stage: Stage) -> list[Stage]:
    if isinstance(stage, Pipeline):
        return [s for inner in stage.stages for s in _flatten(inner)]
    return [stage]


def _utf16(text: str, spans: list[list[int]]) -> list[list[int]]:
    """Code-point offsets as JavaScript string offsets (characters beyond the BMP count twice)."""
    if not spans or text.isascii() or all(ord(c) <= 0xFFFF for c in text):
        return spans
    extra = [0] * (len(text) + 1)
    for i, c in enumerate(text):
        extra[i + 1] = extra[i] + (ord(c) > 0xFFFF)
    return [[s + extra[s], e + extra[e]] for s, e in spans]


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


class SearchService:
    """Named pipelines over one index directory, with optional queries and judgments; see the module
    docstring. Build it with :meth:`from_index` or :meth:`from_pipeline_file`; mount :meth:`router`."""

    def __init__(
        self,
        index_dir: Path,
        candidates: Mapping[str, list[list[dict[str, Any]]]],
        *,
        qrels: Any = None,
        queries: Any = None,
        cache_dir: Path | None = None,
        default: str | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)
        if not (self.index_dir / "docstore").exists():
            raise ConfigError(f"{self.index_dir}: not an index directory (no docstore): build it with "
                              f"rankstack index COLLECTION -o {self.index_dir}")
        self.ctx = BuildContext(index_dir=self.index_dir, cache_dir=cache_dir, progress=False)
        self.docs = self.ctx.docs
        self.qrels: Qrels | None = _load_qrels(qrels)
        self.queries: dict[str, str] = _load_queries(queries)
        self._lock = threading.Lock()
        self._built: dict[str, Stage] = {}
        self.pipelines: dict[str, _Pipeline] = {}
        self.unavailable: dict[str, str] = {}
        for name, alternatives in candidates.items():
            reasons = []
            for specs in alternatives:
                try:
                    self.pipelines[name] = self._compile(name, specs)
                    break
                except Exception as e:  # noqa: BLE001 -- e.g. a pipeline of a file meant for another collection
                    reasons.append(str(e) if isinstance(e, RankstackError) else f"{type(e).__name__}: {e}")
            else:
                self.unavailable[name] = "; ".join(reasons)
        self._check_fusions()
        if not self.pipelines:
            raise ConfigError(f"{self.index_dir}: no pipeline could be built: "
                              + "; ".join(f"{n}: {r}" for n, r in self.unavailable.items()))
        if default is not None and default not in self.pipelines:
            raise ConfigError(f"default pipeline {default!r} is not one of {', '.join(self.pipelines)}")
        self.default = default or next(iter(self.pipelines))
        self._analyzer = self._find_analyzer()
        self.manifest: dict[str, Any] = {}
        try:
            self.manifest = json.loads((self.index_dir / "manifest.json").read_text())
        except (OSError, ValueError):
            pass

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_index(
        cls,
        index_dir: Path,
        pipelines: dict[str, Any] | None = None,
        *,
        qrels: Any = None,
        queries: Any = None,
        reranker: dict[str, Any] | None = None,
        cache_dir: Path | None = None,
        rerank_depth: int = DEFAULT_RERANK_DEPTH,
        default: str | None = None,
    ) -> SearchService:
        """The service over ``index_dir`` (a ``rankstack index`` directory).

        ``pipelines``: name -> stage list (or ``{"stages": [...]}``); without it: ``bm25``,
        ``bm25>>rerank`` with a ``reranker`` spec (``{"stage": "cross-encoder", "model": ...}``; BM25's
        top ``rerank_depth``), and ``dense`` and ``hybrid`` if the index has a dense index.
        ``qrels``: a ``Qrels``/mapping or a qrels file; ``queries``: a list of ``Query``, a mapping id ->
        text or a queries file. A pipeline that cannot be built is listed as unavailable (with why)
        in ``GET /v1/pipelines``; the service fails only when none can be built.
        """
        index_dir = Path(index_dir)
        if pipelines:
            cands = {str(n): [_as_specs(p, f"pipeline {n!r}")] for n, p in pipelines.items()}
        else:
            cands = {"bm25": [[{"stage": "bm25", "k": MAX_K}]]}
            if reranker is not None:
                cands["bm25>>rerank"] = [_rerank_specs(reranker, rerank_depth)]
            if (index_dir / "dense").is_dir():
                cands["dense"] = [[{"stage": "dense", "k": MAX_K}]]
                cands["hybrid"] = [[{"stage": "fuse", "pipelines": ["bm25", "dense"], "method": "rrf"}]]
        return cls(index_dir, cands, qrels=qrels, queries=queries, cache_dir=cache_dir, default=default)

    @classmethod
    def from_pipeline_file(
        cls,
        index_dir: Path,
        toml_path: Path,
        *,
        collection: str | None = None,
        **kwargs: Any,
    ) -> SearchService:
        """The ``[[pipelines]]`` of an experiment TOML (``[experiment] plugins`` are loaded too), or its
        top-level ``stages = [...]`` (one pipeline named by the file's stem). A name
        defined more than once (one per collection) is built from the first definition that builds
        here, trying first those for ``collection`` (default: the collection the index manifest names).
        With ``reranker`` (and ``rerank_depth``), ``bm25>>rerank`` is added to the file's pipelines.
        Other keywords as :meth:`from_index`."""
        from rankstack.experiments.config import load_plugins, pipeline_tables, read_toml

        toml_path = Path(toml_path)
        raw = read_toml(toml_path, "pipeline")
        exp = raw.get("experiment", {})
        if isinstance(exp, Mapping) and exp.get("plugins"):
            load_plugins(exp["plugins"], toml_path.parent, f"{toml_path} [experiment]")
        tables = pipeline_tables(raw, toml_path)
        if collection is None:
            try:
                coll = json.loads((Path(index_dir) / "manifest.json").read_text()).get("collection")
                collection = Path(str(coll)).name if coll else None
            except (OSError, ValueError):
                collection = None
        mine: dict[str, list[list[dict[str, Any]]]] = {}
        others: dict[str, list[list[dict[str, Any]]]] = {}
        for i, t in enumerate(tables):
            where = f"{toml_path} [[pipelines]] #{i + 1}"
            if not isinstance(t, Mapping) or not isinstance(t.get("name"), str):
                raise ConfigError(f"{where}: a pipeline needs a 'name'")
            specs = _as_specs(t.get("stages"), f"{toml_path} pipeline {t['name']!r}")
            only = t.get("collections")
            target = mine if (only is None or collection in only) else others
            target.setdefault(t["name"], []).append(specs)
            mine.setdefault(t["name"], [])
        cands = {n: alts + others.get(n, []) for n, alts in mine.items()}
        reranker = kwargs.pop("reranker", None)
        depth = kwargs.pop("rerank_depth", DEFAULT_RERANK_DEPTH)
        if reranker is not None and "bm25>>rerank" not in cands:  # the file's pipelines and BM25 -> reranker
            cands["bm25>>rerank"] = [_rerank_specs(reranker, depth)]
        return cls(Path(index_dir), cands, **kwargs)

    def _build(self, spec: dict[str, Any], where: str) -> Stage:
        key = _spec_key(spec)
        if key not in self._built:  # the same spec in two pipelines: one stage (one model in memory)
            self._built[key] = build_stage(spec, self.ctx, where)
        return self._built[key]

    def _compile(self, name: str, specs: list[dict[str, Any]]) -> _Pipeline:
        steps: list[_Step] = []
        taken: set[str] = set()
        for j, spec in enumerate(specs):
            where = f"pipeline {name!r} stage #{j + 1}"
            if spec.get("stage") == "fuse":
                check_spec(spec, where)
                inputs = spec.get("pipelines")
                if not isinstance(inputs, list) or not inputs or not all(isinstance(n, str) for n in inputs):
                    raise ConfigError(f"{where}: a fuse stage needs 'pipelines' (names of other pipelines)")
                # the parameters are checked now, with empty runs; the fusion is built per query
                probe = build_stage(spec, BuildContext(runs={n: Run({}) for n in inputs}), where)
                steps.append(_Step(_unique(probe.name, taken), where, spec=spec, inputs=list(inputs)))
                continue
            if spec.get("stage") == "run" and "run" in spec and self.ctx.collection is None:
                raise ConfigError(f"{where}: run = {spec['run']!r} names a run that a collection ships; a service "
                                  "over an index directory has none (give path = FILE)")
            for st in _flatten(self._build(spec, where)):
                cut = isinstance(st, Cutoff)
                steps.append(_Step(st.name if cut else _unique(st.name, taken), where, stage=st, scored=not cut))
        first = steps[0]
        if first.stage is not None and first.stage.needs_candidates:
            raise ConfigError(f"{first.where}: {first.key!r} re-ranks candidates; a pipeline over an index starts "
                              "with a retriever (bm25, dense) or a fusion")
        return _Pipeline(name, specs, steps)

    def _check_fusions(self) -> None:
        """A fusion of pipelines that are not there (or unavailable, or itself) makes its pipeline
        unavailable, transitively."""
        changed = True
        while changed:
            changed = False
            for name, p in list(self.pipelines.items()):
                for s in p.steps:
                    bad = [n for n in s.inputs if n not in self.pipelines or n == name]
                    if bad:
                        why = ", ".join(f"{n!r} ({self._why_not(n, name)})" for n in bad)
                        self.unavailable[name] = f"{s.where}: fuses {why}"
                        del self.pipelines[name]
                        changed = True
                        break
        # cycles through other pipelines
        state: dict[str, int] = {}

        def visit(n: str, path: list[str]) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                raise ConfigError(f"pipelines fuse each other in a cycle: {' -> '.join([*path, n])}")
            state[n] = 1
            for s in self.pipelines[n].steps:
                for m in s.inputs:
                    visit(m, [*path, n])
            state[n] = 2

        for n in list(self.pipelines):
            visit(n, [])

    def _why_not(self, n: str, fused_by: str) -> str:
        if n == fused_by:
            return "itself"
        return "unavailable" if n in self.unavailable else "no such pipeline"

    def _find_analyzer(self) -> Any:
        try:
            return self.ctx.bm25_index().analyzer
        except (RankstackError, OSError):
            from rankstack.index.analysis import default_analyzer

            return default_analyzer()

    def close(self) -> None:
        """Release the document store and the stages (models)."""
        self._built.clear()
        self.pipelines.clear()
        close = getattr(self.docs, "close", None)
        if callable(close):
            close()

    # -- running ----------------------------------------------------------------------------------
    def _run(self, name: str, query: Query, memo: dict[str, _Outcome]) -> _Outcome:
        if name in memo:
            return memo[name]
        p = self.pipelines[name]
        t_start = time.perf_counter()
        run: Run | None = None
        scores: list[tuple[str, Run]] = []
        ms: dict[str, float] = {}
        taken: set[str] = set()
        for step in p.steps:
            if step.inputs:
                outs = {n: self._run(n, query, memo) for n in step.inputs}
                for n, o in outs.items():
                    scores.append((_unique(n, taken), o.run))
                    ms[n] = o.total_ms
                t0 = time.perf_counter()
                ctx = BuildContext(runs={n: o.run for n, o in outs.items()})
                stage = build_stage(step.spec or {}, ctx, step.where)
                run = stage([query], run)
                key = step.key
            else:
                assert step.stage is not None
                t0 = time.perf_counter()
                run = step.stage([query], run)
                key = step.key
            ms[key] = ms.get(key, 0.0) + 1000 * (time.perf_counter() - t0)
            if step.scored:
                scores.append((_unique(key, taken), run))
        assert run is not None
        out = _Outcome(run, scores, ms, 1000 * (time.perf_counter() - t_start))
        memo[name] = out
        return out

    def search(self, req: SearchRequest) -> dict[str, Any]:
        """The answer to one ``POST /v1/search`` (a dict in :class:`SearchResponse`'s shape). Raises
        :class:`SearchError` for an empty query or an unknown pipeline."""
        t0 = time.perf_counter()
        if not req.query.strip():
            raise SearchError(400, "empty_query", "the query is empty")
        name = req.pipeline if req.pipeline is not None else self.default
        if name not in self.pipelines:
            raise SearchError(404, "unknown_pipeline",
                              f"no pipeline {name!r}; known: {', '.join(self.pipelines)}")
        qid = req.query_id if req.query_id is not None else "query"
        query = Query(qid, req.query)
        with self._lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = self._run(name, query, {})
            ranked = out.run.ranked(qid)
            top = ranked[: req.k]
            ids = [d for d, _ in top]
            docs = self.docs.get_many(ids) if hasattr(self.docs, "get_many") else [self.docs[d] for d in ids]
            terms = set(self._analyzer.analyze(req.query)) if req.return_text else set()
            by_stage = [(key, r.get(qid, {})) for key, r in out.scores]
            judged = self.qrels is not None and req.query_id is not None and req.query_id in self.qrels
            grades = self.qrels.get(req.query_id, {}) if judged and self.qrels is not None else {}
            results = []
            for rank, ((doc_id, score), doc) in enumerate(zip(top, docs), start=1):
                if not math.isfinite(score):
                    raise RankstackError(f"pipeline {name!r}: a non-finite score ({score}) for document "
                                         f"{doc_id!r}")
                hit: dict[str, Any] = {
                    "rank": rank, "id": doc_id, "score": float(score), "title": doc.title,
                    "text": doc.text if req.return_text else None,
                    "stages": {key: _finite(s.get(doc_id)) for key, s in by_stage},
                    "label": (int(grades[doc_id]) if doc_id in grades else None) if judged else None,
                }
                if req.return_text:
                    hit["highlights"] = {"title": self._spans(doc.title, terms),
                                         "text": self._spans(doc.text, terms)}
                results.append(hit)
            ndcg = None
            if judged and self.qrels is not None:
                from rankstack.measures import evaluate

                ev = evaluate({qid: self.qrels[qid]}, {qid: out.run.get(qid, {})}, ["nDCG@10"])
                ndcg = float(ev.query_values("nDCG@10")[qid])
        return {
            "pipeline": name, "query": req.query, "query_id": req.query_id,
            "query_terms": sorted(terms) if req.return_text else sorted(set(self._analyzer.analyze(req.query))),
            "k": req.k, "results": results, "total": len(ranked), "ndcg@10": ndcg, "judged": judged,
            "stage_names": [key for key, _ in out.scores],
            "took_ms": 1000 * (time.perf_counter() - t0), "stage_ms": out.ms,
            "warnings": list(dict.fromkeys(str(w.message) for w in caught)),
        }

    def _spans(self, text: str, terms: set[str]) -> list[list[int]]:
        """``[start, end)`` of each word of ``text`` whose analysed form is one of ``terms``."""
        if not text or not terms:
            return []
        words = list(_WORD.finditer(text))
        analysed = self._analyzer.analyze_many([m.group() for m in words])
        spans = [[m.start(), m.end()] for m, a in zip(words, analysed) if any(t in terms for t in a)]
        return _utf16(text, spans)

    # -- what the page lists ------------------------------------------------------------------------
    def pipelines_info(self) -> dict[str, Any]:
        dense = (self.index_dir / "dense").is_dir()
        return {
            "default": self.default,
            "pipelines": [{"name": p.name, "description": p.description, "stages": _jsonable(p.specs)}
                          for p in self.pipelines.values()],
            "unavailable": [{"name": n, "reason": r} for n, r in self.unavailable.items()],
            "index": {"name": self.index_dir.name, "documents": len(self.docs), "dense": dense,
                      "collection": self.manifest.get("collection")},
            "qrels": self.qrels is not None, "queries": len(self.queries),
        }

    def queries_info(self, q: str | None = None, judged: bool | None = None,
                     limit: int = 1000) -> dict[str, Any]:
        needle = (q or "").strip().lower()
        out = []
        total = 0
        for qid, text in self.queries.items():
            is_judged = self.qrels is not None and qid in self.qrels
            if judged is not None and is_judged != judged:
                continue
            if needle and needle not in text.lower() and needle != qid.lower():
                continue
            total += 1
            if len(out) < limit:
                out.append({"id": qid, "text": text, "judged": is_judged})
        return {"queries": out, "total": total, "qrels": self.qrels is not None}

    # -- HTTP ---------------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        """``POST /v1/search``, ``GET /v1/pipelines``, ``GET /v1/queries``, the page at ``GET /`` and
        its files at ``GET /static/{name}``."""
        r = APIRouter(route_class=_JSONErrors)
        svc = self

        @r.post("/v1/search", response_model=SearchResponse, response_model_by_alias=True, responses=_ERRORS,
                tags=["search"], summary="Search the index with a pipeline")
        def search(body: SearchRequest) -> Any:
            """Ranked documents with each stage's score, the text with the query's terms located, and,
            with judgments loaded and a judged ``query_id``, each result's label and nDCG@10."""
            try:
                return svc.search(body)
            except SearchError as e:
                return _error(e.status, e.error_type, str(e))
            except BackendError as e:
                return _error(503, "backend_unavailable", str(e), {"Retry-After": "1"})
            except RankstackError as e:
                return _error(422, type(e).__name__, str(e))

        @r.get("/v1/pipelines", response_model=PipelinesResponse, tags=["search"],
               summary="The pipelines this service searches with")
        def pipelines() -> Any:
            return svc.pipelines_info()

        @r.get("/v1/queries", response_model=QueriesResponse, tags=["search"], summary="The loaded queries")
        def queries(q: str | None = QueryParam(None, description="text (or id) to look for"),
                    judged: bool | None = QueryParam(None, description="only queries with (without) judgments"),
                    limit: int = QueryParam(1000, ge=1, le=100_000)) -> Any:
            return svc.queries_info(q, judged, limit)

        @r.get("/", include_in_schema=False)
        def page() -> Any:
            return _static("index.html")

        @r.get("/static/{name}", include_in_schema=False)
        def static(name: str) -> Any:
            return _static(name)

        return r


def _static(name: str) -> Response:
    path = STATIC_DIR / name
    if (os.sep in name or "/" in name or name.startswith(".") or path.suffix not in _STATIC_TYPES
            or not path.is_file()):
        return _error(404, "not_found", f"no file {name!r}")
    return FileResponse(path, media_type=_STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


def _rerank_specs(reranker: Any, depth: Any) -> list[dict[str, Any]]:
    """``bm25>>rerank``: BM25's top ``depth`` re-ranked by the ``reranker`` spec."""
    if not isinstance(reranker, Mapping) or "stage" not in reranker:
        raise ConfigError("reranker: a stage spec, e.g. {'stage': 'cross-encoder', 'model': ...}")
    depth = int(depth)
    if depth < 1:
        raise ConfigError(f"rerank_depth must be >= 1, got {depth}")
    return [{"stage": "bm25", "k": max(depth, 100)}, {"stage": "cutoff", "k": depth}, dict(reranker)]


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _load_qrels(qrels: Any) -> Qrels | None:
    if qrels is None:
        return None
    if isinstance(qrels, (str, os.PathLike)):
        from rankstack.data.formats import read_qrels

        return read_qrels(qrels)
    if isinstance(qrels, Qrels):
        return qrels
    if isinstance(qrels, Mapping):
        return Qrels(qrels)
    raise ConfigError(f"qrels: a Qrels, a mapping or a file, got {type(qrels).__name__}")


def _load_queries(queries: Any) -> dict[str, str]:
    if queries is None:
        return {}
    if isinstance(queries, (str, os.PathLike)):
        from rankstack.data.formats import read_queries

        queries = read_queries(queries)
    if isinstance(queries, Mapping):
        return {str(k): str(v) for k, v in queries.items()}
    if isinstance(queries, Iterable):
        out = {}
        for q in queries:
            if not isinstance(q, Query):
                raise ConfigError(f"queries: Query records, a mapping or a file, got a {type(q).__name__}")
            out[q.id] = q.text
        return out
    raise ConfigError(f"queries: Query records, a mapping or a file, got {type(queries).__name__}")
