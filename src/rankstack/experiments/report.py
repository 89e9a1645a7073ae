"""Experiment output: a rich table for the terminal and a self-contained HTML report.

The HTML report (:func:`write_html`) is meant to be read on screen and printed (A4). Everything is
visible text: nothing is only in hover text.

* **The table**, one per collection: each measure's mean, and for every pipeline but the baseline
  its difference from the baseline (``Δ``, over the queries both answer), the 95 % confidence
  interval of that difference, and the p-value, uncorrected and corrected for the family of
  pipelines compared with the baseline (the correction is named). ``▲``/``▼``: significantly better
  or worse than the baseline (corrected p <= alpha).
* **The interval** (:func:`delta_interval`) matches the test: with the paired t-test, the Student
  t-interval of the mean per-query difference (it excludes 0 exactly when the uncorrected t-test
  p < 0.05); with the randomization test, a percentile bootstrap (10,000 resamples of the queries,
  ``numpy.random.default_rng(0)``). Neither is corrected for multiple comparisons.
* **Latency** (:func:`latencies`): milliseconds per query summed over a pipeline's stages, as each
  stage measured when it was computed (a cache hit keeps the time of the run that filled it). A
  fusion counts the pipelines it fuses; a computation that two inputs share (the same stages on the
  same collection, e.g. the BM25 under both BM25 and BM25 >> cross-encoder) counts once. A shipped
  run's own retrieval time is unknown: such latencies are marked ``†``.
* **Per-query plots** (:func:`per_query_figure`): per collection, one panel per pipeline and measure
  of the sorted per-query differences from the baseline (the per-query values without a baseline),
  every panel of a measure on one y scale.
* **Footer**: versions (``Report.meta`` when the runner fills it) and the experiment's config.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.errors import ConfigError
from rankstack.experiments.results import Report, Result

#: the confidence level of the intervals in the report
CI_LEVEL = 0.95
#: bootstrap resamples and seed (intervals beside the randomization test)
N_BOOTSTRAP = 10_000
BOOTSTRAP_SEED = 0

CORRECTION_NAMES = {"holm": "Holm–Bonferroni", "bonferroni": "Bonferroni", "none": "no correction"}
#: the correction's name in a table cell (none: no corrected p-value is shown)
SHORT_CORRECTION = {"holm": "Holm", "bonferroni": "Bonf.", "none": ""}
TEST_NAMES = {"t": "two-sided paired t-test", "randomization": "two-sided paired randomization test"}


def _mark(r: Result, m: str) -> str:
    row = r.significance.get(m)
    if not row or not row.get("significant"):
        return ""
    return "▲" if row["delta"] > 0 else "▼"


def _correction(report: Report) -> str:
    for r in report.results:
        for row in r.significance.values():
            if row.get("correction"):
                return str(row["correction"])
    return str(getattr(report.spec, "correction", "holm"))


# -- confidence intervals ------------------------------------------------------------------------
def ci_method(test: str) -> str:
    """The interval that goes with a significance test: ``"t"`` or ``"bootstrap"``."""
    return "t" if test == "t" else "bootstrap"


def _paired(base: Mapping[str, float], system: Mapping[str, float]) -> np.ndarray:
    """Per-query differences ``system - base`` over the queries both have (as the significance rows)."""
    qids = [q for q in base if q in system]
    return np.fromiter((float(system[q]) - float(base[q]) for q in qids), dtype=np.float64, count=len(qids))


def delta_interval(
    base: Mapping[str, float],
    system: Mapping[str, float],
    method: str = "t",
    level: float = CI_LEVEL,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Confidence interval of the mean per-query difference ``system - base`` (queries both have).

    ``method="t"``: Student's t-interval, ``mean ± t(level, n-1) · sd / sqrt(n)``. ``"bootstrap"``:
    the percentile interval of ``n_boot`` means of queries resampled with replacement, drawn with
    ``numpy.random.default_rng(seed)`` (same inputs, same interval). NaNs when fewer than 2 queries.
    """
    if not 0 < level < 1:
        raise ConfigError(f"confidence level must be in (0, 1), got {level}")
    d = _paired(base, system)
    n = d.size
    if n < 2:
        return (math.nan, math.nan)
    mean = float(d.mean())
    if method == "t":
        from scipy import stats

        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
        return (mean - half, mean + half)
    if method == "bootstrap":
        if n_boot < 1:
            raise ConfigError(f"n_boot must be >= 1, got {n_boot}")
        rng = np.random.default_rng(seed)
        means = np.empty(n_boot)
        chunk = max(1, 2_000_000 // n)
        for start in range(0, n_boot, chunk):
            stop = min(n_boot, start + chunk)
            means[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
        lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
        return (float(lo), float(hi))
    raise ConfigError(f"interval method must be 't' or 'bootstrap', got {method!r}")


@dataclass
class Comparison:
    """One cell's comparison with the baseline."""

    delta: float
    p: float
    p_corrected: float
    significant: bool
    ci: tuple[float, float]
    n_queries: int


def comparisons(report: Report) -> dict[tuple[str, str, str], Comparison]:
    """``(collection, pipeline, measure) -> Comparison`` for every pipeline with a significance row."""
    spec = report.spec
    method = ci_method(spec.significance)
    out: dict[tuple[str, str, str], Comparison] = {}
    for cname in _collections(report):
        rs = [r for r in report.results if r.collection == cname]
        base = next((r for r in rs if r.pipeline == spec.baseline), None)
        if base is None:
            continue
        for r in rs:
            for m, row in r.significance.items():
                if r is base or m not in base.per_query or m not in r.per_query:
                    continue
                out[(cname, r.pipeline, m)] = Comparison(
                    delta=float(row["delta"]), p=float(row["p"]), p_corrected=float(row["p_corrected"]),
                    significant=bool(row.get("significant")),
                    ci=delta_interval(base.per_query[m], r.per_query[m], method),
                    n_queries=int(row.get("n_queries", len(_paired(base.per_query[m], r.per_query[m])))),
                )
    return out


def _collections(report: Report) -> list[str]:
    names = list(report.spec.collections)
    names += [r.collection for r in report.results if r.collection not in names]
    return names


# -- latency -------------------------------------------------------------------------------------
@dataclass
class Latency:
    """A pipeline's milliseconds per query: ``total`` = its own stages + the inputs it fuses."""

    total_ms: float
    own_ms: float
    inputs: list[str] = field(default_factory=list)  # the pipelines fused, directly or not
    shipped: bool = False  # a precomputed run is among the stages: its retrieval time is not known

    @property
    def inputs_ms(self) -> float:
        return self.total_ms - self.own_ms


def _n_queries(r: Result) -> int:
    n = r.stats.get("queries")
    if n:
        return int(n)
    return max((len(v) for v in r.per_query.values()), default=1) or 1


def _stage_ms(r: Result, n_stages: int) -> list[float] | None:
    """Each stage's ms per query, from the stats each stage recorded (kept through the cache)."""
    steps = [s for s in r.stats.get("stages") or [] if isinstance(s, Mapping) and "wall_s" in s]
    if n_stages == 1 and steps:
        steps = steps[-1:]  # a lone fusion lists its inputs' steps before its own
    if len(steps) != n_stages:
        return None
    return [1000.0 * float(s["wall_s"]) / max(1, int(s.get("queries") or _n_queries(r))) for s in steps]


def _total_ms(r: Result) -> float:
    if "wall_s" in r.stats:
        return 1000.0 * float(r.stats["wall_s"]) / max(1, _n_queries(r))
    return float(r.stats.get("ms_per_query", 0.0))


def latencies(report: Report) -> dict[tuple[str, str], Latency]:
    """``(collection, pipeline) -> Latency``; see the module doc for what is counted."""
    spec = report.spec
    by = {(r.collection, r.pipeline): r for r in report.results}
    parts: dict[tuple[str, str], tuple[dict[str, float], float, set[str], bool]] = {}

    def resolve(cname: str, name: str, stack: tuple[str, ...]) -> tuple[dict[str, float], float, set[str], bool]:
        """(component key -> ms, own ms, input names, shipped) of one pipeline."""
        if (cname, name) in parts:
            return parts[(cname, name)]
        r = by[(cname, name)]
        pspec = next((p for p in spec.pipelines_for(cname) if p.name == name), None)
        stages = list(pspec.stages) if pspec is not None else []
        comps: dict[str, float] = {}
        inputs: set[str] = set()
        shipped = False
        own = 0.0
        per = _stage_ms(r, len(stages)) if stages else None
        for s in stages:
            if s.get("stage") == "run":
                shipped = True
            if s.get("stage") == "fuse":
                for other in s.get("pipelines") or []:
                    if other in stack or (cname, other) not in by:
                        continue
                    c, _, ins, sh = resolve(cname, other, (*stack, other))
                    comps.update(c)
                    inputs |= {other, *ins}
                    shipped |= sh
        if per is not None:
            for i, ms in enumerate(per):
                key = json.dumps([cname, stages[: i + 1]], sort_keys=True, default=str)
                comps[key] = ms
                own += ms
        else:  # stage times unknown: the pipeline's wall time as one component
            own = _total_ms(r)
            comps[json.dumps([cname, "pipeline", name])] = own
        parts[(cname, name)] = (comps, own, inputs, shipped)
        return parts[(cname, name)]

    out: dict[tuple[str, str], Latency] = {}
    for (cname, name) in by:
        comps, own, inputs, shipped = resolve(cname, name, (name,))
        out[(cname, name)] = Latency(total_ms=sum(comps.values()), own_ms=own, inputs=sorted(inputs),
                                     shipped=shipped)
    return out


# -- the terminal table --------------------------------------------------------------------------
def render_table(report: Report):
    from rich.table import Table

    spec = report.spec
    corr = CORRECTION_NAMES.get(_correction(report), _correction(report))
    t = Table(title=f"{spec.name}  (marks: significant vs {spec.baseline}, {spec.significance}-test, {corr})"
              if spec.baseline else spec.name)
    t.add_column("collection")
    t.add_column("pipeline")
    for m in spec.measures:
        t.add_column(m, justify="right")
    t.add_column("ms/query", justify="right")
    t.add_column("items/s", justify="right")
    lat = latencies(report)
    for r in report.results:
        cells = [f"{r.aggregate[m]:.4f}{_mark(r, m)}" for m in spec.measures]
        la = lat[(r.collection, r.pipeline)]
        t.add_row(r.collection, r.pipeline, *cells, f"{la.total_ms:.1f}{'†' if la.shipped else ''}",
                  f"{r.stats.get('items_per_s', 0):,.0f}")
    return t


def render_checks(report: Report):
    from rich.table import Table

    t = Table(title="golden figures")
    for c in ("collection", "pipeline", "measure", "expected", "got", "ok"):
        t.add_column(c)
    for c in report.checks:
        t.add_row(c["collection"], c["pipeline"], c["measure"], f"{c['expected']:.4f}±{c['tolerance']:g}",
                  _fmt(c["got"]),
                  "[green]ok[/]" if c["ok"] else "[red]FAIL[/]")
    return t


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


# -- plots -----------------------------------------------------------------------------------------
WIN, LOSS, TIE = "#2a9d8f", "#e76f51", "#999999"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, dpi: int = 110) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _symmetric_limit(deltas: Sequence[Sequence[float]]) -> float:
    top = max((abs(float(d)) for ds in deltas for d in ds), default=0.0)
    return 1.05 * top if top > 0 else 1.0


def _delta_panel(ax, deltas: list[float], title: str, measure: str, ylim: float, xlabel: bool) -> None:
    colors = [WIN if d > 0 else LOSS if d < 0 else TIE for d in deltas]
    ax.bar(range(len(deltas)), deltas, color=colors, width=1.0)
    ax.axhline(0, color="black", lw=0.6)
    if deltas:
        mean = float(np.mean(deltas))
        ax.axhline(mean, color="#264653", lw=0.8, ls="--")
    ax.set_ylim(-ylim, ylim)
    ax.set_xlim(-0.5, max(len(deltas), 1) - 0.5)
    ax.set_title(title, fontsize=8.5)
    ax.set_ylabel(f"Δ {measure}", fontsize=8)
    if xlabel:
        ax.set_xlabel("queries, sorted by Δ", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(axis="y", alpha=0.3)


def _counts(deltas: Sequence[float]) -> str:
    win = sum(d > 0 for d in deltas)
    loss = sum(d < 0 for d in deltas)
    return f"+{win} / −{loss} / ={len(deltas) - win - loss}"


def per_query_delta_figure(
    baseline: Mapping[str, float],
    systems: Mapping[str, Mapping[str, float]],
    measure: str,
    baseline_name: str = "baseline",
    marks: Mapping[str, str] | None = None,
) -> Any:
    """A matplotlib figure with one panel per system: its per-query ``measure`` minus the baseline's,
    sorted (wins green, losses red, the mean dashed), titled with the win/loss/tie counts (queries
    missing from one side count as 0). Every panel has the same y scale. ``marks``: a suffix per
    system title (e.g. a significance mark)."""
    plt = _pyplot()
    per = {}
    for name, pq in systems.items():
        qids = sorted(set(baseline) | set(pq))
        per[name] = sorted(pq.get(q, 0.0) - baseline.get(q, 0.0) for q in qids)
    ylim = _symmetric_limit(list(per.values()))
    fig, axes = plt.subplots(len(systems), 1, figsize=(9, 2.4 * len(systems)), squeeze=False)
    for i, (ax, (name, deltas)) in enumerate(zip(axes[:, 0], per.items())):
        _delta_panel(ax, deltas, f"{name} − {baseline_name}: {measure} per query ({_counts(deltas)})"
                     f"{(marks or {}).get(name, '')}", measure, ylim, xlabel=i == len(per) - 1)
    fig.tight_layout()
    return fig


def per_query_figure(report: Report, collection: str) -> Any | None:
    """Per-query plots of one collection: a row per pipeline, a column per measure.

    With a baseline: each pipeline's sorted per-query difference from it (the baseline's queries;
    a query a pipeline did not answer counts as 0, as trec_eval ``-c``); without: each pipeline's
    sorted per-query values. Each column (one measure) has one y scale across the pipelines.
    ``None`` when there is nothing to plot."""
    spec = report.spec
    rs = [r for r in report.results if r.collection == collection]
    base = next((r for r in rs if r.pipeline == spec.baseline), None)
    rows = [r for r in rs if r is not base] if base is not None else rs
    measures = [m for m in spec.measures if all(m in r.per_query for r in rows + ([base] if base else []))]
    if not rows or not measures:
        return None
    plt = _pyplot()
    width = 7.4
    height = 0.6 + 1.55 * len(rows)
    fig, axes = plt.subplots(len(rows), len(measures), figsize=(width, height), squeeze=False)
    for j, m in enumerate(measures):
        if base is not None:
            bq = base.per_query[m]
            data = [sorted(float(r.per_query[m].get(q, 0.0)) - float(v) for q, v in bq.items()) for r in rows]
            ylim = _symmetric_limit(data)
            for i, (r, deltas) in enumerate(zip(rows, data)):
                _delta_panel(axes[i, j], deltas, f"{r.pipeline} {_mark(r, m)}\n{_counts(deltas)}", m, ylim,
                             xlabel=i == len(rows) - 1)
        else:
            data = [sorted(r.per_query[m].values(), reverse=True) for r in rows]
            top = max((max(d) for d in data if d), default=1.0) or 1.0
            for i, (r, vals) in enumerate(zip(rows, data)):
                ax = axes[i, j]
                ax.bar(range(len(vals)), vals, color="#457b9d", width=1.0)
                ax.set_ylim(0, 1.05 * top)
                ax.set_title(f"{r.pipeline}: mean {np.mean(vals) if vals else 0:.4f}", fontsize=8.5)
                ax.set_ylabel(m, fontsize=8)
                if i == len(rows) - 1:
                    ax.set_xlabel("queries, sorted by value", fontsize=8)
                ax.tick_params(labelsize=7)
                ax.grid(axis="y", alpha=0.3)
    fig.tight_layout(h_pad=0.6, w_pad=0.8)
    return fig


def latency_figure(report: Report, collection: str) -> Any:
    """The first measure against latency (ms per query with the inputs, log scale), one point per pipeline."""
    plt = _pyplot()
    spec = report.spec
    m0 = spec.measures[0]
    lat = latencies(report)
    rs = [r for r in report.results if r.collection == collection]
    fig, ax = plt.subplots(figsize=(6.2, 3.0))
    for r in rs:
        la = lat[(r.collection, r.pipeline)]
        x = max(la.total_ms, 1e-3)
        ax.scatter([x], [r.aggregate[m0]], s=36, color="#264653" if r.pipeline == spec.baseline else "#e9c46a",
                   edgecolor="#264653", zorder=3)
        ax.annotate(f"{r.pipeline}{_mark(r, m0)}{'†' if la.shipped else ''}", (x, r.aggregate[m0]), fontsize=7.5,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("latency: ms per query, inputs included (log scale)", fontsize=8.5)
    ax.set_ylabel(f"{m0} (mean over queries)", fontsize=8.5)
    ax.tick_params(labelsize=7.5)
    ax.set_title(f"{collection}: {m0} against latency", fontsize=9.5)
    ax.grid(alpha=0.3, which="both")
    ax.margins(x=0.25, y=0.15)
    fig.tight_layout()
    return fig


def _plots(report: Report) -> list[tuple[str, str, str, str]]:
    """(collection, kind, caption, base64 PNG) of every plot."""
    plt = _pyplot()
    spec = report.spec
    out = []
    for cname in _collections(report):
        if not any(r.collection == cname for r in report.results):
            continue
        fig = per_query_figure(report, cname)
        if fig is not None:
            if any(r.pipeline == spec.baseline and r.collection == cname for r in report.results):
                what = spec.baseline
                cap = ("{c}: each query's difference from {what} (pipeline − baseline), sorted; green: better, "
                       "red: worse, dashed: the mean Δ; +wins / −losses / =ties. One y scale per measure.")
            else:
                what = ""
                cap = "{c}: each query's value, sorted. One y scale per measure."
            out.append((cname, "per-query", cap.format(c=cname, what=what), _png(fig)))
            plt.close(fig)
        fig = latency_figure(report, cname)
        cap = (f"{cname}: mean {spec.measures[0]} against latency (ms per query, inputs included; "
               "▲/▼ significant against the baseline)")
        out.append((cname, "latency", cap, _png(fig)))
        plt.close(fig)
    return out


# -- HTML ------------------------------------------------------------------------------------------
def _num(x: float, digits: int = 4, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    s = f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"
    return s.replace("-", "−")


def _ms(x: float) -> str:
    """Milliseconds to 3 significant digits (a shipped run reads in microseconds)."""
    return "–" if x is None or math.isnan(x) else f"{x:.3g}"


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _breakable(text: str) -> str:
    """``text`` escaped, with a line-break opportunity after ``>``, ``,``, ``(``, ``/``, ``_``, ``+``."""
    return "".join(html.escape(ch) + ("<wbr>" if ch in ">,(/_+" else "") for ch in text)


def _stage_summary(stages: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for s in stages:
        name = str(s.get("stage"))
        if name == "fuse":
            parts.append(f"{s.get('method', 'fuse')}({', '.join(map(str, s.get('pipelines') or []))})")
        elif name == "cutoff":
            parts.append(f"top {s.get('k')}")
        elif name == "run":
            parts.append(f"run {s.get('run') or Path(str(s.get('path', ''))).name}")
        else:
            parts.append(name)
    return " → ".join(parts)


def _meta(report: Report) -> dict[str, Any]:
    """``Report.meta`` where the runner fills it, completed with what this process knows."""
    meta = dict(getattr(report, "meta", {}) or {})
    if not meta.get("rankstack"):
        from rankstack.version import __version__

        meta["rankstack"] = __version__
    meta.setdefault("python", platform.python_version())
    if "packages" not in meta:
        from importlib import metadata

        pk = {}
        for name in ("numpy", "scipy", "matplotlib"):
            try:
                pk[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                pass
        meta["packages"] = pk
    if meta.get("config") is None and getattr(report.spec, "text", None):
        meta["config"] = report.spec.text
    return meta


def _plain(val: Any) -> str:
    """A meta value as one line of text: a table as ``key value, ...``."""
    if isinstance(val, Mapping):
        return ", ".join(f"{k} {_plain(v)}" for k, v in val.items())
    if isinstance(val, list | tuple):
        return ", ".join(map(_plain, val))
    return "–" if val is None else str(val)


def _footer(report: Report, ids: Mapping[Any, str]) -> str:
    meta = _meta(report)
    e = html.escape
    rows = [("rankstack", str(meta.get("rankstack")))]
    if "python" in meta:
        rows.append(("Python", _plain(meta["python"])))
    if "git_commit" in meta:
        sha = meta["git_commit"]
        dirty = meta.get("git_dirty")
        rows.append(("git commit", "not recorded (not a git checkout)" if not sha else
                     f"{sha}{' (with uncommitted changes)' if dirty else ''}"))
    for key in ("date", "machine"):
        if key in meta:
            rows.append((key, _plain(meta[key])))
    known = {"rankstack", "python", "git_commit", "git_dirty", "date", "machine", "packages", "config"}
    for key in sorted(k for k in meta if k not in known):
        rows.append((key, _plain(meta[key])))
    packages = meta.get("packages") or {}
    pk = ", ".join(f"{e(str(k))} {e(str(v))}" for k, v in sorted(packages.items()))
    spec = report.spec
    rows.append(("experiment file", str(getattr(spec, "path", "")) or "–"))
    vrows = "".join(f"<tr><th scope='row'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    if pk:
        vrows += f"<tr><th scope='row'>packages</th><td class='packages'>{pk}</td></tr>"
    config = meta.get("config")
    if isinstance(config, Mapping):
        config = json.dumps(config, indent=2, default=str)
    cfg = (f"<h3>Configuration</h3><pre class='config'>{e(str(config).rstrip())}</pre>" if config else "")
    return (f"<footer id='footer'><h2>Versions and configuration</h2><table class='versions'>{vrows}</table>"
            f"{_pipelines_table(report, ids)}{cfg}</footer>")


CSS = """
:root{--ink:#1d2b36;--muted:#5b6770;--rule:#d5dbe0;--up:#1b7f5b;--down:#b3261e;--band:#f4f7f9}
*{box-sizing:border-box}
body{font-family:"DejaVu Sans",system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);margin:2em auto;
 max-width:1100px;padding:0 1.2em;line-height:1.35;font-size:15px}
h1{font-size:1.6em;margin:0 0 .2em}h2{font-size:1.25em;margin:1.4em 0 .5em;border-bottom:2px solid var(--ink);
 padding-bottom:.15em}h3{font-size:1.05em;margin:1.2em 0 .4em}
.subtitle{color:var(--muted);margin:0 0 1em}
dl.about{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:.6em 0 1em}
dl.about dt{font-weight:600}dl.about dd{margin:0}
.legend{background:var(--band);border-left:4px solid var(--ink);padding:.6em 1em;margin:1em 0;font-size:.92em}
.legend ul{margin:.3em 0;padding-left:1.2em}.legend li{margin:.15em 0}
table{border-collapse:collapse;margin:.4em 0 1em;font-variant-numeric:tabular-nums}
table.results{width:100%}
th,td{border:1px solid var(--rule);padding:5px 7px;vertical-align:top}
thead th{background:var(--ink);color:#fff;font-weight:600;text-align:center}
table.results td{text-align:right}
td.pipe{text-align:left!important;overflow-wrap:anywhere;min-width:8.5em}
td.pipe .name{font-weight:600;color:inherit;text-decoration:none;display:block}
a{color:#1d5c8c}
table.pipelines td.stages{font-family:"DejaVu Sans Mono",monospace;font-size:.8em;overflow-wrap:anywhere}
.small{display:block;font-size:.8em;color:var(--muted);white-space:normal}
.v{font-weight:600;font-size:1.05em}
.mark{font-weight:700;margin-left:.15em}
td.up .mark,td.up .d{color:var(--up)}td.down .mark,td.down .d{color:var(--down)}
td.up{background:#eaf6f0}td.down{background:#fbeceb}
tr.baseline td{background:var(--band)}
.d,.ci,.p{display:block;font-size:.82em;white-space:nowrap}.p{white-space:normal}.nw{white-space:nowrap}
.ci,.p{color:var(--muted)}
.lat .v{font-weight:600}
figure{margin:1em 0;text-align:center}
figure img{max-width:100%;height:auto}
figcaption{font-size:.88em;color:var(--muted);margin-top:.3em}
.ok{color:var(--up);font-weight:600}.fail{color:var(--down);font-weight:700}
table.checks td:nth-child(n+4){text-align:right}
table.versions th{text-align:left;background:var(--band);font-weight:600;white-space:nowrap}
table.versions td{overflow-wrap:anywhere}
td.packages{font-size:.9em}
pre.config{background:var(--band);border:1px solid var(--rule);padding:.6em .8em;font-size:.78em;
 white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.3}
footer{margin-top:2em}
@page{size:A4;margin:13mm 12mm 14mm 12mm}
@media print{
 body{margin:0;max-width:none;padding:0;font-size:9.5pt}
 h1{font-size:16pt}h2{font-size:12.5pt;margin-top:0}
 section.collection+section.collection,section.checks{break-before:page}
 h2{break-after:avoid}
 table,tr,figure,.legend,dl.about{break-inside:avoid}
 thead{display:table-header-group}
 th,td{padding:3px 4px}
 .d,.ci,.p{font-size:.78em}
 thead th{background:#1d2b36!important;color:#fff!important}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 figure img{max-height:200mm;width:auto}
 figure.latency img{max-height:68mm}
 pre.config{break-inside:auto;font-size:7pt}
 table.versions,table.pipelines{break-inside:auto}
 a{color:inherit;text-decoration:none}
}
"""


def _anchors(report: Report) -> dict[Any, str]:
    """HTML ids: ``collection -> "c<i>"`` (its section), ``(collection, pipeline) -> "p<i>-<j>"`` (the
    pipeline's definition in the footer, which its name in the table links to)."""
    ids: dict[Any, str] = {}
    for i, cname in enumerate(_collections(report)):
        ids[cname] = f"c{i}"
        for j, r in enumerate(r for r in report.results if r.collection == cname):
            ids[(cname, r.pipeline)] = f"p{i}-{j}"
    return ids


def _inline_toml(val: Any) -> str:
    """A stage spec as TOML writes it inline: ``{ stage = "bm25", k = 1000 }``."""
    if isinstance(val, Mapping):
        return "{ " + ", ".join(f"{k} = {_inline_toml(v)}" for k, v in val.items()) + " }"
    if isinstance(val, list | tuple):
        return "[" + ", ".join(_inline_toml(v) for v in val) + "]"
    if isinstance(val, bool):
        return "true" if val else "false"
    if isinstance(val, str | int | float):
        return json.dumps(val)
    return json.dumps(str(val))


def _pipelines_table(report: Report, ids: Mapping[Any, str]) -> str:
    e = html.escape
    rows = []
    for cname in _collections(report):
        for r in (r for r in report.results if r.collection == cname):
            pspec = next((p for p in report.spec.pipelines_for(cname) if p.name == r.pipeline), None)
            stages = "<br>".join(e(_inline_toml(st)) for st in (pspec.stages if pspec else []))
            rows.append(f"<tr id='{ids[(cname, r.pipeline)]}'><td>{e(cname)}</td><td>{_breakable(r.pipeline)}</td>"
                        f"<td class='stages'>{stages or '–'}</td></tr>")
    return ("<h3>Pipelines</h3><table class='pipelines'><thead><tr><th>collection</th><th>pipeline</th>"
            f"<th>stages</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _result_table(report: Report, cname: str, comps: Mapping[tuple[str, str, str], Comparison],
                  lat: Mapping[tuple[str, str], Latency], ids: Mapping[Any, str]) -> str:
    spec = report.spec
    e = html.escape
    corr = SHORT_CORRECTION.get(_correction(report), _correction(report))
    head = "".join(f"<th scope='col'>{e(m)}</th>" for m in spec.measures)
    body = []
    for r in (r for r in report.results if r.collection == cname):
        pspec = next((p for p in spec.pipelines_for(cname) if p.name == r.pipeline), None)
        is_base = r.pipeline == spec.baseline
        cells = []
        for m in spec.measures:
            val = r.aggregate.get(m)
            c = comps.get((cname, r.pipeline, m))
            cls = ""
            extra = ""
            mark = ""
            if c is not None:
                if c.significant:
                    cls = "up" if c.delta > 0 else "down"
                    mark = "▲" if c.delta > 0 else "▼"
                corrected = (f" · <span class='nw'>{e(corr)} {_p(c.p_corrected)}</span>" if corr else "")
                extra = (f"<span class='d'>Δ {_num(c.delta, sign=True)}</span>"
                         f"<span class='ci'>[{_num(c.ci[0], sign=True)}, {_num(c.ci[1], sign=True)}]</span>"
                         f"<span class='p'><span class='nw'>p {_p(c.p)}</span>{corrected}</span>")
            elif is_base and spec.baseline:
                extra = "<span class='d small'>baseline</span>"
            cells.append(f"<td class='m {cls}'><span class='v'>{_num(val) if val is not None else '–'}</span>"
                         f"<span class='mark'>{mark}</span>{extra}</td>")
        la = lat[(r.collection, r.pipeline)]
        lat_cell = f"<span class='v'>{_ms(la.total_ms)}{'†' if la.shipped else ''}</span>"
        if la.inputs:
            lat_cell += f"<span class='small'>own {_ms(la.own_ms)} + inputs {_ms(la.inputs_ms)}</span>"
        summary = _stage_summary(pspec.stages) if pspec is not None else ""
        body.append(
            f"<tr class='{'baseline' if is_base else ''}'><td class='pipe'><a class='name' "
            f"href='#{ids[(cname, r.pipeline)]}'>{_breakable(r.pipeline)}</a>"
            f"<span class='small'>{_breakable(summary)}</span></td>{''.join(cells)}<td class='lat'>{lat_cell}</td></tr>")
    return (f"<table class='results'><thead><tr><th scope='col'>pipeline</th>{head}"
            f"<th scope='col'>ms / query</th></tr></thead><tbody>{''.join(body)}</tbody></table>")


def _legend(report: Report) -> str:
    spec = report.spec
    corr = _correction(report)
    test = TEST_NAMES.get(spec.significance, spec.significance)
    method = ci_method(spec.significance)
    if method == "t":
        ci = ("95 % CI: Student's t-interval of the mean per-query Δ (not corrected for multiple comparisons; "
              "it excludes 0 exactly when the uncorrected p < 0.05).")
    else:
        ci = (f"95 % CI: percentile bootstrap of the mean per-query Δ ({N_BOOTSTRAP:,} resamples of the queries, "
              f"seed {BOOTSTRAP_SEED}; not corrected for multiple comparisons).")
    items = [
        "Each cell: the measure's mean over the collection's queries, in bold.",
    ]
    if spec.baseline:
        items += [
            (f"Δ: the pipeline's mean minus the baseline's (<b>{html.escape(spec.baseline)}</b>), over the "
             "queries both answer."),
            ci,
            f"p: {test}, uncorrected"
            + (f"; {SHORT_CORRECTION[corr]}: the p-value after the {CORRECTION_NAMES[corr]} correction for the "
               "pipelines compared with the baseline on the same collection and measure."
               if SHORT_CORRECTION.get(corr) else " (no multiple-comparison correction)."),
            (f"<b>▲</b> / <b>▼</b>, shaded: significantly better / worse than the baseline "
             f"(corrected p ≤ α = {spec.alpha:g}). No mark: not significant."),
        ]
    items.append("ms / query: the pipeline's stages, summed, as each measured when computed (cache hits keep "
                 "that time); a fusion adds the pipelines it fuses, and stages they share count once. "
                 "†: includes a precomputed (shipped) run, whose own retrieval time is not known.")
    return "<div class='legend'><b>How to read the tables</b><ul>" + "".join(
        f"<li>{i}</li>" for i in items) + "</ul></div>"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML document (see the module doc)."""
    spec = report.spec
    e = html.escape
    comps = comparisons(report)
    lat = latencies(report)
    plots = _plots(report)
    meta = _meta(report)
    ids = _anchors(report)
    sections = []
    for cname in _collections(report):
        if not any(r.collection == cname for r in report.results):
            continue
        n_q = max((_n_queries(r) for r in report.results if r.collection == cname), default=0)
        figs = "".join(
            f"<figure class='{kind}'><img src='data:image/png;base64,{b64}' alt='{e(cap)}'>"
            f"<figcaption>{e(cap)}</figcaption></figure>"
            for c, kind, cap, b64 in plots if c == cname)
        sections.append(
            f"<section class='collection' id='{ids[cname]}'><h2>{e(cname)} <span class='small' "
            f"style='display:inline'>({n_q} queries)</span></h2>{_result_table(report, cname, comps, lat, ids)}"
            f"<section class='plots'>{figs}</section></section>")
    checks = ""
    if report.checks:
        rows = "".join(
            f"<tr><td>{e(c['collection'])}</td><td>{e(c['pipeline'])}</td><td>{e(c['measure'])}</td>"
            f"<td>{c['expected']:.4f} ± {c['tolerance']:g}</td><td>{_fmt(c['got'])}</td>"
            f"<td class='{'ok' if c['ok'] else 'fail'}'>{'ok' if c['ok'] else 'FAIL'}</td></tr>"
            for c in report.checks)
        checks = ("<section class='checks' id='checks'><h2>Golden figures</h2><table class='checks'><thead><tr>"
                  "<th>collection</th><th>pipeline</th><th>measure</th><th>expected</th><th>got</th><th>check</th>"
                  f"</tr></thead><tbody>{rows}</tbody></table></section>")
    about = [("collections", ", ".join(_collections(report))), ("measures", ", ".join(spec.measures))]
    if spec.baseline:
        corr = _correction(report)
        about += [("baseline", spec.baseline),
                  ("significance", (f"{TEST_NAMES.get(spec.significance, spec.significance)}, "
                                    f"{CORRECTION_NAMES.get(corr, corr)} correction, α = {spec.alpha:g}"))]
    if meta.get("date"):
        about.append(("run", str(meta["date"])))
    dl = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in about)
    toc = [(ids[c], c) for c in _collections(report) if any(r.collection == c for r in report.results)]
    toc += [("checks", "golden figures")] if report.checks else []
    toc.append(("footer", "versions and configuration"))
    dl += "<dt>contents</dt><dd>" + " · ".join(f"<a href='#{i}'>{e(t)}</a>" for i, t in toc) + "</dd>"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(spec.name)}</title>
<style>{CSS}</style></head><body>
<header><h1>{e(spec.name)}</h1><p class="subtitle">rankstack {e(str(meta.get('rankstack')))} experiment report</p>
<dl class="about">{dl}</dl>{_legend(report)}</header>
<main>{''.join(sections)}{checks}</main>
{_footer(report, ids)}
</body></html>"""


def write_html(report: Report, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_html(report), encoding="utf-8")
    return path
