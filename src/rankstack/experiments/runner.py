"""Run an :class:`ExperimentSpec`: build each pipeline per collection, run it (cached), evaluate it,
compare it with the baseline, check golden figures."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rankstack.data import datasets
from rankstack.data.records import Collection, Run
from rankstack.errors import ConfigError
from rankstack.experiments.config import ExperimentSpec, PipelineSpec
from rankstack.experiments.results import Report, Result
from rankstack.progress import progress_bar
from rankstack.stages.base import Cached, Cutoff, FromRun, Stage
from rankstack.stages.build import BuildContext, build_pipeline


def context_for(name: str, collection: Collection, cache_root: Path, progress: bool = True,
                rebuild: bool = False) -> BuildContext:
    """The build context of collection ``name`` in an experiment: artifacts built once under
    ``cache_root/<name>``, models of ``train`` tables trained once under ``cache_root/models``."""
    from rankstack.experiments.training import trained_model

    retrained: dict[str, str] = {}  # with rebuild: each table trained again once, not once per stage using it

    def trainer(stage: str, table: dict[str, Any], where: str) -> str:
        key = json.dumps([stage, table], sort_keys=True, default=str)
        if key not in retrained:
            retrained[key] = trained_model(table, stage, cache_root, where, rebuild=rebuild)
        return retrained[key]

    return BuildContext(collection, cache_root / name.replace("/", "_"), trainer=trainer, progress=progress,
                        rebuild=rebuild)


def run_pipeline(pspec: PipelineSpec, ctx: BuildContext, cache: bool = True, ray: dict[str, Any] | None = None,
                 worker_context: Any = None) -> Run:
    """Build and run one pipeline. With ``ray`` (``[experiment] ray``'s keywords), every retriever and
    reranker runs on a Ray actor pool (:class:`rankstack.scale.RayStage`), each worker rebuilding it from
    its spec in ``worker_context()``; the run cache is shared with in-process runs (same keys)."""
    specs = iter(pspec.stages)

    def wrap(st: Stage) -> Stage:
        spec = next(specs)
        if ray is not None and _on_ray(spec):
            from rankstack.scale import RayStage

            st = RayStage(st, spec, worker_context, workers=ray.get("workers"),
                          cpus_per_worker=ray.get("cpus_per_worker", 1),
                          queries_per_batch=ray.get("queries_per_batch", 8))
        return Cached(st, ctx.cache_dir / "runs") if cache and not isinstance(st, (Cutoff, FromRun)) else st

    pipe = build_pipeline(list(pspec.stages), ctx, f"pipeline {pspec.name!r}", wrap=wrap)
    assert ctx.collection is not None
    run = pipe(ctx.collection.queries)
    run.name = pspec.name
    return run


def _on_ray(spec: dict[str, Any]) -> bool:
    """Retrievers and rerankers go to Ray workers; cut-offs, fixed runs and fusions of earlier
    pipelines' runs stay in process (they are cheap, and fusion reads this process's runs)."""
    from rankstack import registry

    entry = registry.resolve_entry(spec["stage"])
    return entry.kind in ("retriever", "reranker") and entry.name != "cutoff"


def _worker_context(name: str, cache_root: str, cwd: str) -> BuildContext:
    """A Ray worker's build context for collection ``name``: the driver's working directory, the same
    collection and artifact cache (built by the driver before any worker asks)."""
    import os

    os.chdir(cwd)
    return context_for(name, datasets.load(name), Path(cache_root), progress=False)


def run_experiment(spec: ExperimentSpec, progress: bool = True, cache: bool = True) -> Report:
    import functools
    import os

    from rankstack.measures import Evaluator

    cache_root = spec.cache or Path(".rankstack-cache")
    if spec.ray is not None:
        from rankstack.scale import init_ray

        init_ray(spec.ray.get("address"))
    results: list[Result] = []
    runs: dict[tuple[str, str], Run] = {}
    jobs = [(c, p) for c in spec.collections for p in spec.pipelines_for(c)]
    with progress_bar(len(jobs), "experiment", unit="pipeline", enabled=progress, leave=False) as prog:
        by_coll: dict[str, BuildContext] = {}
        for cname, pspec in jobs:
            prog.describe(f"{cname}: {pspec.name}")
            if cname not in by_coll:
                coll = datasets.load(cname)
                by_coll[cname] = context_for(cname, coll, cache_root, progress, rebuild=not cache)
            ctx = by_coll[cname]
            t0 = time.perf_counter()
            run = run_pipeline(pspec, ctx, cache=cache, ray=spec.ray,
                               worker_context=functools.partial(_worker_context, cname, str(cache_root.resolve()),
                                                                os.getcwd()))
            ctx.runs[pspec.name] = run
            runs[cname, pspec.name] = run
            if ctx.collection.qrels is None:
                raise ConfigError(f"collection {cname!r} has no qrels to evaluate with")
            evaluator = Evaluator(ctx.collection.qrels, spec.measures)
            results.append(_result(cname, pspec.name, run, evaluator, spec.measures, len(ctx.collection.queries),
                                   time.perf_counter() - t0))
            prog.advance(1)
    if spec.baseline:
        for cname in spec.collections:
            compare_with_baseline([r for r in results if r.collection == cname], spec.baseline, spec.measures,
                                  spec.significance, spec.alpha, spec.correction)
    checks = []
    for e in spec.expected:
        r = next((r for r in results if r.collection == e.collection and r.pipeline == e.pipeline), None)
        got = None if r is None else r.aggregate.get(e.measure)
        ok = got is not None and abs(got - e.value) <= e.tolerance
        checks.append({"collection": e.collection, "pipeline": e.pipeline, "measure": e.measure,
                       "expected": e.value, "tolerance": e.tolerance, "got": got, "ok": ok})
    from rankstack.experiments.provenance import provenance

    report = Report(spec, results, checks, meta=provenance(spec.text, where=spec.path.parent))
    if spec.output:
        write_outputs(report, spec.output, runs if spec.write_runs else {})
    return report


def _result(collection: str, name: str, run: Run, evaluator: Any, measures: list[str], n_queries: int,
            wall_s: float) -> Result:
    ev = evaluator.evaluate(run)
    stats = dict(run.stats)
    stats.setdefault("wall_s", wall_s)
    stats["ms_per_query"] = 1000.0 * float(stats["wall_s"]) / max(1, n_queries)
    return Result(collection, name, {m: ev[m] for m in measures}, {m: ev.query_values(m) for m in measures}, stats)


def compare_with_baseline(results: list[Result], baseline: str, measures: list[str], test: str = "t",
                          alpha: float = 0.05, correction: str = "holm") -> None:
    """Fill each result's ``significance`` against the result named ``baseline`` (one collection)."""
    from rankstack.measures import significance_table

    base = next((r for r in results if r.pipeline == baseline), None)
    if base is None:
        return
    others = [r for r in results if r is not base]
    for m in measures:
        rows = significance_table(base.per_query[m], {r.pipeline: r.per_query[m] for r in others},
                                  test=test, alpha=alpha, correction=correction)  # type: ignore[arg-type]
        for r, row in zip(others, rows):
            r.significance[m] = asdict(row)


def write_outputs(report: Report, out: Path, runs: dict[tuple[str, str], Run]) -> None:
    """``results.json``, ``report.html`` and, for each pipeline, ``runs/<collection>/<pipeline>.trec``."""
    from rankstack.data.formats import write_run
    from rankstack.experiments.report import write_html

    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for (cname, pname), run in runs.items():
        path = out / "runs" / _safe(cname) / f"{_safe(pname)}.trec"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_run(run, path, tag=_safe(pname))
        files[f"{cname}/{pname}"] = str(path.relative_to(out))
    body = report.to_json()
    body["runs"] = files
    (out / "results.json").write_text(json.dumps(body, indent=1, default=float))
    write_html(report, out / "report.html")


def _safe(name: str) -> str:
    """A name usable as a file name and a run tag (no path separators or whitespace)."""
    return "".join(c if c.isalnum() or c in "-_.+@()" else "_" for c in name) or "_"
