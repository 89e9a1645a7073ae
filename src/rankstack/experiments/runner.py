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

    def trainer(stage: str, table: dict[str, Any], where: str) -> str:
        return trained_model(table, stage, cache_root, where)

    return BuildContext(collection, cache_root / name.replace("/", "_"), trainer=trainer, progress=progress,
                        rebuild=rebuild)


def run_pipeline(pspec: PipelineSpec, ctx: BuildContext, cache: bool = True) -> Run:
    def wrap(st: Stage) -> Stage:
        return Cached(st, ctx.cache_dir / "runs") if cache and not isinstance(st, (Cutoff, FromRun)) else st

    pipe = build_pipeline(list(pspec.stages), ctx, f"pipeline {pspec.name!r}", wrap=wrap)
    assert ctx.collection is not None
    run = pipe(ctx.collection.queries)
    run.name = pspec.name
    return run


def run_experiment(spec: ExperimentSpec, progress: bool = True, cache: bool = True) -> Report:
    from rankstack.measures import Evaluator, significance_table

    cache_root = spec.cache or Path(".rankstack-cache")
    results: list[Result] = []
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
            prog.advance(1)
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
