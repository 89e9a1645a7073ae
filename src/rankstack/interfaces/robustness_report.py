"""The robustness benchmark's HTML report (issue #19): its table and three plots, one self-contained file.

:func:`render_html` reads the JSON that ``rankstack robustness FILE.toml -o OUT.json`` writes
(:func:`rankstack.robust.benchmark.run_benchmark`), so a finished benchmark can be rendered again without
rerunning it: ``rankstack robustness OUT.json --html OUT.html``. The plots:

* **effectiveness**: the measure's mean per ranker, in domain and out of domain, with the 95 %
  bootstrap interval of each mean;
* **query variations**: each variation's change of the mean against the unperturbed queries (and the
  worst variation per query), per ranker;
* **document attacks**: the share of target documents each attack moved into the top K, per ranker.

The images are PNGs inlined as base64 (matplotlib, the ``report`` extra), the style that of the
experiment report.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from rankstack.errors import FormatError
from rankstack.experiments.report import CSS, _png, _pyplot

_REQUIRED = ("name", "measure", "baseline", "rankers", "collections", "tasks", "table")


def load_result(path: str | Path) -> dict[str, Any]:
    """A robustness result written by ``rankstack robustness ... -o OUT.json``; clear errors otherwise."""
    from rankstack.interfaces.attack_report import load_json

    path = Path(path)
    result = load_json(path, f"a robustness result (a JSON object with {', '.join(_REQUIRED)})")
    missing = [k for k in _REQUIRED if k not in result]
    if missing:
        raise FormatError(f"{path}: not a robustness result: missing field(s) {', '.join(missing)} "
                          "(write one with rankstack robustness FILE.toml -o OUT.json)")
    return result


def _names(result: dict[str, Any]) -> list[str]:
    return [r["name"] for r in result["rankers"]]


def _colours(n: int) -> list[Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def _bars(ax: Any, groups: list[str], names: list[str], values: list[list[float | None]],
          errors: list[list[tuple[float, float] | None]] | None = None) -> None:
    """Grouped bars: ``values[g][r]`` for group ``g`` and ranker ``r`` (``None``: no bar)."""
    width = 0.8 / max(len(names), 1)
    for r, (name, colour) in enumerate(zip(names, _colours(len(names)))):
        xs, ys, lo, hi = [], [], [], []
        for g in range(len(groups)):
            v = values[g][r]
            if v is None:
                continue
            xs.append(g + (r - (len(names) - 1) / 2) * width)
            ys.append(v)
            err = errors[g][r] if errors else None
            lo.append(v - err[0] if err else 0.0)
            hi.append(err[1] - v if err else 0.0)
        ax.bar(xs, ys, width * 0.92, label=name, color=colour,
               yerr=[lo, hi] if errors else None, capsize=3 if errors else 0, error_kw={"lw": 0.8})
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _figure(groups: list[str], names: list[str], values: list[list[float | None]], ylabel: str,
            errors: list[list[tuple[float, float] | None]] | None = None, zero_line: bool = False,
            ylim: tuple[float, float] | None = None) -> Any:
    """One grouped-bar figure, the rankers' legend above the axes (clear of the bars)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.5, 1.6 * len(groups) + 2), 3.2 if errors else 3.0))
    _bars(ax, groups, names, values, errors)
    if zero_line:
        ax.axhline(0.0, color="#333333", lw=0.8)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, ncol=min(len(names), 6), loc="lower center", bbox_to_anchor=(0.5, 1.0),
              frameon=False)
    fig.tight_layout()
    return fig


def effectiveness_figure(result: dict[str, Any]) -> Any | None:
    """The measure's mean per ranker and collection (IID, then OOD) with 95 % bootstrap intervals."""
    names = _names(result)
    tasks = result["tasks"]
    groups, values, errors = [], [], []
    for role in ("iid", "ood"):
        for coll, per in (tasks.get(role) or {}).items():
            groups.append(f"{coll} ({role.upper()})")
            values.append([per.get(n, {}).get("mean") for n in names])
            errors.append([tuple(per[n]["ci95"]) if n in per and per[n].get("ci95") else None for n in names])
    if not groups:
        return None
    return _figure(groups, names, values, f"{result['measure']} (mean, 95 % CI)", errors)


def variation_figure(result: dict[str, Any]) -> Any | None:
    """Each query variation's change of the mean against the unperturbed queries, per ranker."""
    names = _names(result)
    rows = [r for r in result["table"] if r["delta_is"] == "vs unperturbed"]
    if not rows:
        return None
    return _figure([r["figure"].split(" (", 1)[0] for r in rows], names,
                   [[r["delta"].get(n) for n in names] for r in rows],
                   f"Δ {result['measure']} vs unperturbed", zero_line=True)


def attack_figure(result: dict[str, Any]) -> Any | None:
    """The share of target documents each document attack moved into the top K, per ranker."""
    names = _names(result)
    rows = [r for r in result["table"] if "success %" in r["figure"]]
    if not rows:
        return None
    return _figure([r["figure"].replace(" success %", "") for r in rows], names,
                   [[r["values"].get(n) for n in names] for r in rows],
                   "targets moved into the top K (%)", ylim=(0, 105))


def _fmt(v: Any, pct: bool) -> str:
    if v is None:
        return "–"
    return f"{v:.1f}" if pct else f"{v:.3f}"


def _table_html(result: dict[str, Any]) -> str:
    e = html.escape
    names = _names(result)
    head = "".join(f"<th>{e(n)}</th>" for n in names)
    body = []
    for row in result["table"]:
        pct = "success %" in row["figure"]
        cells = []
        for n in names:
            v, d, note = row["values"].get(n), row["delta"].get(n), row["notes"].get(n)
            best = n in str(row.get("best") or "").split(" = ")
            text = f'<span class="v">{_fmt(v, pct)}</span>'
            if d is not None and row["delta_is"]:
                text += f'<span class="d">{d:+.1f}</span>' if pct else f'<span class="d">{d:+.3f}</span>'
            if note:
                text += f'<span class="ci">{e(str(note))}</span>'
            cells.append(f'<td class="{"up" if best else ""}">{text}</td>')
        body.append(f'<tr><td class="pipe">{e(row["task"])}</td><td class="pipe">{e(row["collection"])}</td>'
                    f'<td class="pipe">{e(row["figure"])}</td>{"".join(cells)}'
                    f'<td class="pipe">{e(row["delta_is"] or "–")}</td></tr>')
    return (f'<table class="results"><thead><tr><th>task</th><th>collection</th><th>figure</th>{head}'
            f'<th>Δ is</th></tr></thead><tbody>{"".join(body)}</tbody></table>')


def render_html(result: dict[str, Any], attacks: list[dict[str, Any]] | None = None,
                certs: list[dict[str, Any]] | None = None) -> str:
    """The whole report as one HTML page (plots inlined); ``attacks`` and ``certs`` (the JSON of
    ``rankstack attack`` and ``rankstack certify``) add a section
    (:func:`rankstack.interfaces.attack_report.render_section`)."""
    e = html.escape
    plt = _pyplot()
    figures = []
    for fn, caption in ((effectiveness_figure, f"{result['measure']} per ranker, in domain (IID) and out of "
                         "domain (OOD); bars: the mean, whiskers: its 95 % bootstrap interval."),
                        (variation_figure, "Query variations: the change of the mean against the unperturbed "
                         "queries (negative: the ranker lost effectiveness)."),
                        (attack_figure, "Document attacks: targets moved into the top K (the query is never "
                         "edited; every success re-checked on the victim).")):
        fig = fn(result)
        if fig is None:
            continue
        figures.append(f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{_png(fig)}">'
                       f"<figcaption>{e(caption)}</figcaption></figure>")
        plt.close(fig)
    colls = "".join(
        f"<li><b>{e(c)}</b>: {e(str(v.get('role', '')))}, {v.get('queries', '?')} queries, depth "
        f"{v.get('depth', '?')}</li>" for c, v in result["collections"].items())
    seconds = result.get("seconds") or {}

    def spent(name: str) -> str:  # scoring seconds over every collection (the JSON's "seconds")
        total = sum(float(per.get(name, 0.0)) for per in seconds.values() if isinstance(per, dict))
        return f", {total:.1f} s scoring" if total else ""

    rankers = "".join(f"<li><b>{e(r['name'])}</b>{spent(r['name'])}: <code>"
                      f"{e(json.dumps(r.get('stage', {}), sort_keys=True))}</code></li>"
                      for r in result["rankers"])
    extra = ""
    if attacks or certs:
        from rankstack.interfaces.attack_report import render_section

        extra = render_section(list(attacks or []), list(certs or []))
    about = (f"<dl class=\"about\"><dt>measure</dt><dd>{e(result['measure'])}</dd><dt>baseline</dt>"
             f"<dd>{e(result['baseline'])}</dd><dt>seed</dt><dd>{e(str(result.get('seed', '–')))}</dd>"
             f"<dt>bootstrap</dt><dd>{e(str(result.get('bootstrap', '–')))} resamples</dd></dl>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(result['name'])}</title>
<style>{CSS}</style></head><body>
<h1>{e(result['name'])}</h1>
<p class="subtitle">rankstack robustness benchmark: IID variance, out-of-domain generalisation, query
variations and adversarial attacks, each ranker against {e(result['baseline'])}.</p>
{about}
<h2>Collections</h2><ul>{colls}</ul>
<h2>Rankers</h2><ul>{rankers}</ul>
<h2>Plots</h2>
{''.join(figures)}
<h2>Table</h2>
<div class="legend">Each cell: the figure, its Δ (see the last column) and, for means, the 95 % bootstrap
interval. A shaded cell is the task's best ranker.</div>
{_table_html(result)}
{extra}
</body></html>
"""


def write_html(result: dict[str, Any], path: str | Path, attacks: list[dict[str, Any]] | None = None,
               certs: list[dict[str, Any]] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result, attacks, certs), encoding="utf-8")
    return path
