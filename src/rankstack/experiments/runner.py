"""Run an :class:`ExperimentSpec`: build each pipeline per collection, run it (cached), evaluate it,
compare it with the baseline, check golden figures."""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rankstack.data import datasets
from rankstack.data.records import Collection, Run
from rankstack.experiments.config import ConfigError, ExperimentSpec, PipelineSpec
from rankstack.stages.base import Cached, Cutoff, FromRun, Pipeline, Stage
from rankstack.stages.registry import entry_kind, resolve


@dataclass
class Context:
    """What a stage factory may need: the collection and a per-collection cache directory."""

    collection: Collection
    cache_dir: Path
    runs: dict[str, Run] = field(default_factory=dict)  # earlier pipelines' runs, by name

    @property
    def docs(self) -> Any:
        return self.collection.docs


def build_stage(spec: dict[str, Any], ctx: Context, where: str) -> Stage:
    params = {k: v for k, v in spec.items() if k != "stage"}
    name = spec["stage"]
    if "train" in params:  # a model trained (once, then cached) by the experiment itself
        from rankstack.experiments.training import trained_model

        if "model" in params:
            raise ConfigError(f"{where}: give either 'model' or 'train' (whose 'model' is the backbone), not both")
        params["model"] = trained_model(params.pop("train"), name, ctx.cache_dir.parent, where)
    if name == "run":
        return _run_stage(params, ctx, where)
    if name == "cutoff":
        if "k" not in params:
            raise ConfigError(f"{where}: a cutoff stage needs 'k'")
        return Cutoff(int(params["k"]))
    if name == "fuse":
        return _fuse_stage(params, ctx, where)
    if name in _ADAPTERS:
        return _ADAPTERS[name](ctx, params)
    factory = resolve(name)
    from_spec = getattr(factory, "from_spec", None)
    if from_spec is not None:
        return from_spec(ctx, **params)
    sig = inspect.signature(factory)
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    if "docs" not in params and ("docs" in sig.parameters or (takes_kwargs and entry_kind(name) == "reranker")):
        params["docs"] = ctx.docs
    try:
        return factory(**params)
    except TypeError as e:
        raise ConfigError(f"{where}: stage {name!r}: {e}") from None


def _bm25_index(ctx: Context) -> Any:
    """The collection's BM25 index, built once into the cache directory."""
    from rankstack.stages.bm25 import BM25Index

    path = ctx.cache_dir / "index" / "bm25"
    if (path / ".complete").exists():
        return BM25Index.load(path)
    docs = ctx.docs.values() if isinstance(ctx.docs, dict) else ctx.docs
    index = BM25Index.build(docs, path, progress=False)
    (path / ".complete").write_text("ok")
    return index


def _bm25(ctx: Context, params: dict[str, Any]) -> Stage:
    from rankstack.stages.bm25 import BM25Retriever

    return BM25Retriever(_bm25_index(ctx), **params)


def _bm25_rerank(ctx: Context, params: dict[str, Any]) -> Stage:
    from rankstack.stages.bm25 import BM25Reranker

    return BM25Reranker(_bm25_index(ctx), **params)


def _dense(ctx: Context, params: dict[str, Any]) -> Stage:
    """Dense retrieval over the collection's FAISS index, built (resumably) once per model and kind."""
    import hashlib

    from rankstack.encoders.runtime import BiEncoder
    from rankstack.stages.dense import DenseIndex, DenseRetriever

    model = params.pop("model", None)
    kind = params.pop("kind", "flat")
    enc_opts = {k: params.pop(k) for k in ("backend", "quantize") if k in params}
    tag = hashlib.sha256(json.dumps([model, kind, enc_opts], sort_keys=True).encode()).hexdigest()[:12]
    path = ctx.cache_dir / "index" / f"dense-{tag}"
    encoder = BiEncoder(model, **enc_opts)
    if (path / ".complete").exists():
        index = DenseIndex.load(path)
    else:
        docs = list(ctx.docs.values()) if isinstance(ctx.docs, dict) else ctx.docs
        index = DenseIndex.build(docs, path, encoder=encoder, kind=kind, progress=True)
        (path / ".complete").write_text("ok")
    return DenseRetriever(index, encoder=encoder, **params)


#: stages that need an index built from the collection (by registry name)
_ADAPTERS: dict[str, Any] = {"bm25": _bm25, "bm25-rerank": _bm25_rerank, "dense": _dense}


def _run_stage(params: dict[str, Any], ctx: Context, where: str) -> Stage:
    from rankstack.data.formats import read_run

    if "run" in params:
        runs = ctx.collection.meta.get("runs", {})
        if params["run"] not in runs:
            raise ConfigError(f"{where}: collection {ctx.collection.name!r} ships no run {params['run']!r}")
        path = runs[params["run"]]
    elif "path" in params:
        path = params["path"]
    else:
        raise ConfigError(f"{where}: a run stage needs 'run' (a shipped run's name) or 'path'")
    run = read_run(path)
    run.name = params.get("name", Path(path).stem)
    return FromRun(run, name=run.name, source=str(path))


def _fuse_stage(params: dict[str, Any], ctx: Context, where: str) -> Stage:
    from rankstack.stages.fusion import Fuse

    names = params.pop("pipelines", None)
    if not names:
        raise ConfigError(f"{where}: a fuse stage needs 'pipelines' (names of earlier pipelines)")
    missing = [n for n in names if n not in ctx.runs]
    if missing:
        raise ConfigError(f"{where}: fuse refers to {missing}, which must be earlier pipelines")
    depth = params.pop("depth", None)  # fuse only each run's top-`depth` (e.g. the reranked depth)
    runs = {n: ctx.runs[n] if depth is None else ctx.runs[n].cut(int(depth)) for n in names}
    return Fuse([FromRun(r, name=n, source=r.fingerprint()) for n, r in runs.items()], **params)


@dataclass
class Result:
    collection: str
    pipeline: str
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]  # measure -> qid -> value
    stats: dict[str, Any]
    significance: dict[str, dict[str, Any]] = field(default_factory=dict)  # measure -> row


@dataclass
class Report:
    spec: ExperimentSpec
    results: list[Result]
    checks: list[dict[str, Any]]

    @property
    def failed_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["ok"]]

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.spec.name,
            "measures": self.spec.measures,
            "baseline": self.spec.baseline,
            "significance": self.spec.significance,
            "results": [r.__dict__ for r in self.results],
            "checks": self.checks,
        }


def run_pipeline(pspec: PipelineSpec, ctx: Context, cache: bool = True) -> Run:
    stages = []
    for j, s in enumerate(pspec.stages):
        st = build_stage(dict(s), ctx, f"pipeline {pspec.name!r} stage #{j + 1}")
        if cache and not isinstance(st, (Cutoff, FromRun)):
            st = Cached(st, ctx.cache_dir / "runs")
        stages.append(st)
    pipe = stages[0] if len(stages) == 1 else Pipeline(stages)
    run = pipe(ctx.collection.queries)
    run.name = pspec.name
    return run


def run_experiment(spec: ExperimentSpec, progress: bool = True, cache: bool = True) -> Report:
    from rankstack.measures import Evaluator, significance_table

    cache_root = spec.cache or Path(".rankstack-cache")
    results: list[Result] = []
    jobs = [(c, p) for c in spec.collections for p in spec.pipelines_for(c)]
    prog = _progress(progress)
    with prog:
        task = prog.add_task("experiment", total=len(jobs))
        by_coll: dict[str, Context] = {}
        for cname, pspec in jobs:
            prog.update(task, description=f"{cname}: {pspec.name}")
            if cname not in by_coll:
                coll = datasets.load(cname)
                by_coll[cname] = Context(coll, cache_root / cname.replace("/", "_"))
            ctx = by_coll[cname]
            t0 = time.perf_counter()
            run = run_pipeline(pspec, ctx, cache=cache)
            ctx.runs[pspec.name] = run
            if ctx.collection.qrels is None:
                raise ConfigError(f"collection {cname!r} has no qrels to evaluate with")
            ev = Evaluator(ctx.collection.qrels, spec.measures).evaluate(run)
            agg = {m: ev[m] for m in spec.measures}
            perq = {m: ev.query_values(m) for m in spec.measures}
            stats = dict(run.stats)
            stats.setdefault("wall_s", time.perf_counter() - t0)
            stats["ms_per_query"] = 1000.0 * float(stats["wall_s"]) / max(1, len(ctx.collection.queries))
            results.append(Result(cname, pspec.name, agg, perq, stats))
            prog.advance(task)
    if spec.baseline:
        for cname in spec.collections:
            base = next((r for r in results if r.collection == cname and r.pipeline == spec.baseline), None)
            if base is None:
                continue
            others = [r for r in results if r.collection == cname and r is not base]
            for m in spec.measures:
                rows = significance_table(
                    base.per_query[m], {r.pipeline: r.per_query[m] for r in others},
                    test=spec.significance, alpha=spec.alpha, correction="holm",
                )
                for r, row in zip(others, rows):
                    r.significance[m] = asdict(row)
    checks = []
    for e in spec.expected:
        r = next((r for r in results if r.collection == e.collection and r.pipeline == e.pipeline), None)
        got = None if r is None else r.aggregate.get(e.measure)
        ok = got is not None and abs(got - e.value) <= e.tolerance
        checks.append({"collection": e.collection, "pipeline": e.pipeline, "measure": e.measure,
                       "expected": e.value, "tolerance": e.tolerance, "got": got, "ok": ok})
    report = Report(spec, results, checks)
    if spec.output:
        spec.output.mkdir(parents=True, exist_ok=True)
        (spec.output / "results.json").write_text(json.dumps(report.to_json(), indent=1, default=float))
        from rankstack.experiments.report import write_html

        write_html(report, spec.output / "report.html")
    return report


def _progress(enabled: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), disable=not enabled, transient=True)
