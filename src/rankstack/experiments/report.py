"""Experiment output: a rich table for the terminal and a self-contained HTML report.

The HTML report embeds (as PNG) a per-query delta plot of every pipeline against the baseline and a
quality-against-latency plot per collection. Significance marks: ``▲``/``▼`` for a significant
improvement/degradation against the baseline after Holm correction (p < alpha).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rankstack.experiments.results import Report, Result


def _mark(r: Result, m: str) -> str:
    row = r.significance.get(m)
    if not row or not row.get("significant"):
        return ""
    return "▲" if row["delta"] > 0 else "▼"


def render_table(report: Report):
    from rich.table import Table

    spec = report.spec
    t = Table(title=f"{spec.name}  (marks: significant vs {spec.baseline}, {spec.significance}-test, Holm)"
              if spec.baseline else spec.name)
    t.add_column("collection")
    t.add_column("pipeline")
    for m in spec.measures:
        t.add_column(m, justify="right")
    t.add_column("ms/query", justify="right")
    t.add_column("items/s", justify="right")
    for r in report.results:
        cells = [f"{r.aggregate[m]:.4f}{_mark(r, m)}" for m in spec.measures]
        t.add_row(r.collection, r.pipeline, *cells, f"{r.stats.get('ms_per_query', 0):.1f}",
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


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def per_query_delta_figure(
    baseline: Mapping[str, float],
    systems: Mapping[str, Mapping[str, float]],
    measure: str,
    baseline_name: str = "baseline",
    marks: Mapping[str, str] | None = None,
) -> Any:
    """A matplotlib figure with one panel per system: its per-query ``measure`` minus the baseline's,
    sorted (wins green, losses red), titled with the win/loss/tie counts (queries missing from one side
    count as 0). ``marks``: a suffix per system title (e.g. a significance mark)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(systems), 1, figsize=(9, 2.4 * len(systems)), squeeze=False)
    for ax, (name, pq) in zip(axes[:, 0], systems.items()):
        qids = sorted(set(baseline) | set(pq))
        deltas = sorted(pq.get(q, 0.0) - baseline.get(q, 0.0) for q in qids)
        colors = ["#2a9d8f" if d > 0 else "#e76f51" if d < 0 else "#999999" for d in deltas]
        ax.bar(range(len(deltas)), deltas, color=colors, width=1.0)
        ax.axhline(0, color="black", lw=0.6)
        win = sum(d > 0 for d in deltas)
        loss = sum(d < 0 for d in deltas)
        ax.set_title(f"{name} − {baseline_name}: {measure} per query "
                     f"(+{win} / −{loss} / ={len(deltas) - win - loss}){(marks or {}).get(name, '')}", fontsize=9)
        ax.set_ylabel(f"Δ {measure}")
    fig.tight_layout()
    return fig


def _plots(report: Report) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = report.spec
    m0 = spec.measures[0]
    out = []
    for cname in spec.collections:
        rs = [r for r in report.results if r.collection == cname]
        base = next((r for r in rs if r.pipeline == spec.baseline), None)
        if base is not None:
            others = [r for r in rs if r is not base]
            if others:
                fig = per_query_delta_figure(base.per_query[m0], {r.pipeline: r.per_query[m0] for r in others},
                                             m0, base.pipeline, marks={r.pipeline: _mark(r, m0) for r in others})
                out.append((f"{cname}: per-query {m0} against {base.pipeline}", _png(fig)))
                plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in rs:
            x = max(float(r.stats.get("ms_per_query", 0.0)), 1e-3)
            ax.scatter([x], [r.aggregate[m0]], s=40)
            ax.annotate(f"{r.pipeline}{_mark(r, m0)}", (x, r.aggregate[m0]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms per query, log scale)")
        ax.set_ylabel(m0)
        ax.set_title(f"{cname}: quality against latency", fontsize=10)
        ax.grid(alpha=0.3)
        out.append((f"{cname}: {m0} against latency", _png(fig)))
        plt.close(fig)
    return out


def write_html(report: Report, path: str | Path) -> Path:
    spec = report.spec
    rows = []
    for r in report.results:
        cells = []
        for m in spec.measures:
            sig = r.significance.get(m)
            title = f"p={sig['p']:.3g}, p_holm={sig['p_corrected']:.3g}" if sig else ""
            cells.append(f"<td title='{html.escape(title)}'>{r.aggregate[m]:.4f}{_mark(r, m)}</td>")
        rows.append(
            f"<tr><td>{html.escape(r.collection)}</td><td>{html.escape(r.pipeline)}</td>{''.join(cells)}"
            f"<td>{r.stats.get('ms_per_query', 0):.1f}</td><td>{r.stats.get('items_per_s', 0):,.0f}</td></tr>"
        )
    head = "".join(f"<th>{html.escape(m)}</th>" for m in spec.measures)
    checks = "".join(
        f"<tr><td>{c['collection']}</td><td>{c['pipeline']}</td><td>{c['measure']}</td>"
        f"<td>{c['expected']:.4f} ± {c['tolerance']:g}</td><td>{_fmt(c['got'])}</td>"
        f"<td class='{'ok' if c['ok'] else 'fail'}'>{'ok' if c['ok'] else 'FAIL'}</td></tr>"
        for c in report.checks
    )
    figs = "".join(
        f"<figure><img src='data:image/png;base64,{b64}' alt='{html.escape(t)}'><figcaption>{html.escape(t)}"
        f"</figcaption></figure>" for t, b64 in _plots(report)
    )
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(spec.name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(-n+2){{text-align:left}}
.ok{{color:green}}.fail{{color:red;font-weight:bold}}figure{{margin:1.5em 0}}</style></head><body>
<h1>{html.escape(spec.name)}</h1>
<p>Baseline: <b>{html.escape(str(spec.baseline))}</b>; ▲/▼: significant ({spec.significance}-test, Holm-corrected,
alpha={spec.alpha}) against the baseline on the same collection. Hover a cell for p-values.</p>
<table><tr><th>collection</th><th>pipeline</th>{head}<th>ms/query</th><th>items/s</th></tr>{''.join(rows)}</table>
{'<h2>Golden figures</h2><table><tr><th>collection</th><th>pipeline</th><th>measure</th><th>expected</th><th>got</th><th></th></tr>' + checks + '</table>' if report.checks else ''}
<h2>Plots</h2>{figs}</body></html>"""
    path = Path(path)
    path.write_text(doc, encoding="utf-8")
    return path
