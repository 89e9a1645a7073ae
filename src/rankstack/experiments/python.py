"""``Experiment(...)``: the experiment runner as one Python call, mirroring PyTerrier's
``pt.Experiment(retr_systems, topics, qrels, eval_metrics, names=..., baseline=..., correction=...)``.

Systems are built stages (``bm25 >> ce % 10``) or runs already computed; topics are queries (a
list of :class:`~rankstack.data.records.Query`, a queries file, or a :class:`Collection` whose
qrels are then the default); the result is an :class:`ExperimentTable`: one row per system with
each measure and, against a baseline, PyTerrier's columns (``+``, ``-``, ``p-value``,
``p-value corrected``, ``reject``). ``table.report`` is the same :class:`Report` a TOML experiment
gives (``table.write_html(path)``), and ``save_dir`` writes ``results.json``, the report and each
system's run file, as the TOML runner does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rankstack.data.records import Collection, Qrels, Query, Run
from rankstack.errors import ConfigError
from rankstack.experiments.config import CORRECTIONS, ExperimentSpec, PipelineSpec
from rankstack.experiments.results import Report, Result
from rankstack.experiments.runner import _result, compare_with_baseline, write_outputs
from rankstack.stages.base import Stage

__all__ = ["Experiment", "ExperimentTable"]


class ExperimentTable(Sequence[dict[str, Any]]):
    """The rows of an :func:`Experiment`, in the order of the systems (a sequence of dicts)."""

    def __init__(self, rows: list[dict[str, Any]], report: Report, per_query: list[dict[str, Any]]):
        self.rows = rows
        self.report = report
        self.per_query = per_query

    def __getitem__(self, i):  # type: ignore[override]
        return self.rows[i]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def row(self, name: str) -> dict[str, Any]:
        for r in self.rows:
            if r["name"] == name:
                return r
        raise KeyError(f"no system named {name!r}; systems: {[r['name'] for r in self.rows]}")

    def to_df(self, perquery: bool = False) -> Any:
        """A pandas DataFrame (PyTerrier's shape); ``perquery`` gives ``name, qid, measure, value`` rows."""
        from rankstack.optional import require

        pd = require("pandas", "pyterrier")
        return pd.DataFrame(self.per_query if perquery else self.rows)

    def write_html(self, path: str | os.PathLike) -> Path:
        from rankstack.experiments.report import write_html

        return write_html(self.report, path)

    def __str__(self) -> str:
        cols = list(self.rows[0]) if self.rows else []
        cells = [[_fmt(r.get(c)) for c in cols] for r in self.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)

    __repr__ = __str__


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def _topics(topics: Any) -> tuple[list[Query], Qrels | None, str]:
    if isinstance(topics, Collection):
        return list(topics.queries), topics.qrels, topics.name
    if isinstance(topics, (str, os.PathLike)):
        from rankstack.data.formats import read_queries

        return read_queries(topics), None, Path(topics).stem
    qs = list(topics)
    if not all(isinstance(q, Query) for q in qs):
        bad = next(q for q in qs if not isinstance(q, Query))
        raise ConfigError(f"Experiment: topics must be Query objects, a queries file or a Collection; got a "
                          f"{type(bad).__name__}")
    return qs, None, "topics"


def _qrels(qrels: Any, default: Qrels | None) -> Qrels:
    if qrels is None:
        if default is None:
            raise ConfigError("Experiment: no qrels (pass qrels=, or topics as a Collection with qrels)")
        return default
    if isinstance(qrels, (str, os.PathLike)):
        from rankstack.data.formats import read_qrels

        return read_qrels(qrels)
    if isinstance(qrels, Qrels):
        return qrels
    if isinstance(qrels, Mapping):
        return Qrels({str(q): {str(d): int(g) for d, g in j.items()} for q, j in qrels.items()})
    raise ConfigError(f"Experiment: qrels must be Qrels, a mapping or a qrels file, got {type(qrels).__name__}")


def Experiment(  # noqa: N802 - named like pt.Experiment, which it mirrors
    systems: Sequence[Stage | Run],
    topics: Any,
    qrels: Any = None,
    measures: Sequence[str] | str = ("nDCG@10",),
    names: Sequence[str] | None = None,
    baseline: int | str | None = None,
    test: str = "t",
    correction: str = "holm",
    alpha: float = 0.05,
    save_dir: str | os.PathLike | None = None,
    name: str = "experiment",
) -> ExperimentTable:
    """Run each system on ``topics``, evaluate it on ``qrels`` with ``measures`` and compare it with
    ``baseline`` (an index into ``systems`` or a name). See the module docstring."""
    from rankstack.experiments.provenance import provenance
    from rankstack.measures import Evaluator, parse_measures

    systems = list(systems)
    if not systems:
        raise ConfigError("Experiment: no systems")
    measures = [measures] if isinstance(measures, str) else list(measures)
    parse_measures(measures)  # a bad measure fails before any system runs
    if names is None:
        names = [getattr(s, "name", None) or f"system {i + 1}" for i, s in enumerate(systems)]
    names = [str(n) for n in names]
    if len(names) != len(systems):
        raise ConfigError(f"Experiment: {len(names)} names for {len(systems)} systems")
    if len(set(names)) != len(names):
        raise ConfigError(f"Experiment: system names must differ, got {names}; pass names=[...]")
    if correction not in CORRECTIONS:
        raise ConfigError(f"Experiment: correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if test not in ("t", "randomization"):
        raise ConfigError(f"Experiment: test must be 't' or 'randomization', got {test!r}")
    base_name: str | None
    if baseline is None:
        base_name = None
    elif isinstance(baseline, int) and not isinstance(baseline, bool):
        if not 0 <= baseline < len(systems):
            raise ConfigError(f"Experiment: baseline={baseline} is not an index into the {len(systems)} systems")
        base_name = names[baseline]
    elif baseline in names:
        base_name = str(baseline)
    else:
        raise ConfigError(f"Experiment: baseline {baseline!r} is neither an index nor one of {names}")
    queries, default_qrels, cname = _topics(topics)
    judged = _qrels(qrels, default_qrels)
    evaluator = Evaluator(judged, measures)
    results: list[Result] = []
    runs: dict[tuple[str, str], Run] = {}
    for sname, system in zip(names, systems):
        t0 = time.perf_counter()
        if isinstance(system, Stage):
            run = system(queries)
        elif isinstance(system, Mapping):
            run = system if isinstance(system, Run) else Run(system)
        else:
            raise ConfigError(f"Experiment: system {sname!r} is a {type(system).__name__}, not a stage or a run")
        runs[cname, sname] = run
        results.append(_result(cname, sname, run, evaluator, measures, len(queries), time.perf_counter() - t0))
    if base_name is not None:
        compare_with_baseline(results, base_name, measures, test, alpha, correction)
    spec = ExperimentSpec(name=name, path=Path.cwd() / f"{name}.py", collections=[cname],
                          pipelines=[PipelineSpec(n, []) for n in names], measures=measures, baseline=base_name,
                          significance=test, alpha=alpha, correction=correction,
                          output=Path(save_dir) if save_dir is not None else None)
    config = {"systems": {n: s.config() if isinstance(s, Stage) else {"run": runs[cname, n].fingerprint()}
                          for n, s in zip(names, systems)},
              "topics": cname, "queries": len(queries), "measures": measures, "baseline": base_name,
              "test": test, "correction": correction, "alpha": alpha}
    report = Report(spec, results, [], meta=provenance(config))
    if save_dir is not None:
        write_outputs(report, Path(save_dir), runs)
    rows, per_query = [], []
    for r in results:
        row: dict[str, Any] = {"name": r.pipeline}
        for m in measures:
            row[m] = r.aggregate[m]
        for m in measures:
            sig = r.significance.get(m)
            if sig is None:
                continue
            base = next(b for b in results if b.pipeline == base_name)
            common = [q for q in r.per_query[m] if q in base.per_query[m]]
            row[f"{m} +"] = sum(r.per_query[m][q] > base.per_query[m][q] for q in common)
            row[f"{m} -"] = sum(r.per_query[m][q] < base.per_query[m][q] for q in common)
            row[f"{m} delta"] = sig["delta"]
            row[f"{m} p-value"] = sig["p"]
            row[f"{m} p-value corrected"] = sig["p_corrected"]
            row[f"{m} reject"] = sig["significant"]
        row["ms/query"] = r.stats["ms_per_query"]
        rows.append(row)
        per_query.extend({"name": r.pipeline, "qid": q, "measure": m, "value": v}
                         for m in measures for q, v in sorted(r.per_query[m].items()))
    return ExperimentTable(rows, report, per_query)
