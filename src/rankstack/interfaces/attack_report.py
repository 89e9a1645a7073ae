"""The HTML section for attacks and certification (issue #19, item 6): success against the edit budget,
and the certified robust query ratio against K, from the JSON files ``rankstack attack`` and
``rankstack certify`` write. ``rankstack robustness A.json C.json ... --html OUT.html`` renders them
(next to a robustness benchmark result, when one is among the files).

* **Success against the edit budget** (:func:`success_by_budget`): for each attack row (victim,
  method, protocol), the share of its attacked targets (skipped ones left out, as in
  ``success_rate``) that succeeded with at most ``b`` words changed, for ``b = 0 .. max_words``. It is
  read from one run at the largest budget, which is exact for searches that stop at their first
  success and change one word a step along a path the budget does not alter: PRADA's greedy
  substitution (words in importance order) and the topic attack's greedy insertion. The fixed-edit
  baselines (stuffing, keyword spam) add as many words as they need (not bounded by ``max_words``), so
  their curve shows how many that was. The curve's last value equals the row's ``success_rate``;
  :func:`success_by_budget` checks that.
* **Certified ratio against K**: ``certified_ratio`` at K = 1..10, 20..90 for each certification
  file (a line per victim); K values that no query reaches (``null``) are left out of the line.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from rankstack.errors import FormatError
from rankstack.experiments.report import CSS, _png, _pyplot


def load_json(path: str | Path, what: str = "a rankstack result (a JSON object)") -> dict[str, Any]:
    """The JSON object in ``path``; a :class:`FormatError` naming the file otherwise (``what``: what it
    should have been)."""
    path = Path(path)
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(out, dict):
        raise FormatError(f"{path}: not {what}")
    return out


def kind_of(result: dict[str, Any]) -> str | None:
    """``"attack"`` (``rankstack attack``), ``"certification"`` (``rankstack certify``), ``"benchmark"``
    (``rankstack robustness FILE.toml``), or ``None``."""
    if isinstance(result.get("attacks"), list) and "victim" in result:
        return "attack"
    if isinstance(result.get("certified_ratio"), dict) and "samples" in result:
        return "certification"
    if all(k in result for k in ("rankers", "tasks", "table")):
        return "benchmark"
    return None


def _label(result: dict[str, Any]) -> str:
    return result.get("model") or result.get("victim") or "?"


def success_by_budget(row: dict[str, Any], max_words: int | None = None) -> list[float] | None:
    """``[share succeeded within b words for b in 0..max_words]`` for one attack row (its
    ``results``), or ``None`` when no target was attacked. ``max_words``: the run's edit budget; the curve
    runs to it or to the most words any result changed, whichever is larger (the fixed-edit baselines
    add more words than ``max_words``), so its last value is the row's ``success_rate``."""
    done = [r for r in row.get("results", []) if r.get("status") != "skipped"]
    if not done:
        return None
    top = max([int(r.get("words_changed", 0)) for r in done] + [int(max_words or 0)])
    curve = [sum(bool(r["success"]) and int(r["words_changed"]) <= b for r in done) / len(done)
             for b in range(top + 1)]
    rate = row.get("success_rate")
    if rate is not None and abs(curve[-1] - rate) > 1e-9:
        raise FormatError(f"attack row {row.get('method')}/{row.get('protocol')}: its results give a success "
                          f"rate of {curve[-1]:.4f} at the full budget, the row says {rate:.4f}")
    return curve


def budget_figure(attacks: list[dict[str, Any]]) -> Any | None:
    plt = _pyplot()
    lines = []
    for res in attacks:
        for row in res["attacks"]:
            if row.get("method") == "topic":
                continue  # cluster queries, not one target: its own figures in the table
            curve = success_by_budget(row, res.get("max_words"))
            if curve is not None:
                lines.append((f"{_label(res)} {row['method']} {row['protocol']}", curve))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    cmap = plt.get_cmap("tab10")
    for i, (name, curve) in enumerate(lines):
        ax.step(range(len(curve)), [100 * v for v in curve], where="post", label=name, color=cmap(i % 10))
    ax.set_xlabel("edit budget (words changed or added, at most)")
    ax.set_ylabel("targets reaching the goal (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return fig


def certified_figure(certs: list[dict[str, Any]]) -> Any | None:
    plt = _pyplot()
    if not certs:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    cmap = plt.get_cmap("tab10")
    for i, c in enumerate(certs):
        pts = sorted((int(k), v) for k, v in c["certified_ratio"].items() if v is not None)
        if pts:
            ax.plot([k for k, _ in pts], [100 * v for _, v in pts], marker="o", ms=3, color=cmap(i % 10),
                    label=f"{_label(c)} (N={c['samples']}, {c.get('queries', '?')} queries)")
    ax.set_xscale("log")
    ax.set_xlabel("K (top-K certified)")
    ax.set_ylabel("certified robust queries (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def _attack_table(attacks: list[dict[str, Any]]) -> str:
    e = html.escape
    head = ("victim", "method", "targets", "attacked", "success", "top 10", "top 50", "avg boost", "perturbation %",
            "victim calls", "s / attack")
    body = []

    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * v:.1f}%"

    def num(v: Any, fmt: str = "{:.1f}") -> str:
        return "–" if v is None else fmt.format(v)

    for res in attacks:
        for row in res["attacks"]:
            g = row.get
            cells = (e(_label(res)), e(f"{row['method']} {row['protocol']}"), num(g("targets"), "{}"),
                     num(g("attacked"), "{}"), pct(g("success_rate")), pct(g("top10_rate")), pct(g("top50_rate")),
                     num(g("avg_boost")), num(g("perturbation")), num(g("victim_queries"), "{}"),
                     num(g("seconds_per_attack"), "{:.2f}"))
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<table class="results"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _cert_table(certs: list[dict[str, Any]]) -> str:
    e = html.escape
    ks = [str(k) for k in (1, 2, 3, 5, 10, 20, 50, 90)]
    body = []
    for c in certs:
        cells = [e(_label(c)), str(c["samples"]), f"{c['mc_error']:.4f}"]
        cells += ["–" if c["certified_ratio"].get(k) is None else f"{100 * c['certified_ratio'][k]:.1f}%" for k in ks]
        body.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    head = ["victim", "N", "MC error", *[f"K={k}" for k in ks]]
    return (f'<table class="results"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def render_section(attacks: list[dict[str, Any]], certs: list[dict[str, Any]]) -> str:
    """The attacks-and-certification section (figures inlined, tables), as an HTML fragment."""
    e = html.escape
    plt = _pyplot()
    parts = []
    for fig, caption in ((budget_figure(attacks), "Success against the edit budget: targets that reached the "
                          "goal with at most b words changed (read from one run at the largest budget; "
                          "exact for greedy searches that stop at their first success)."),
                         (certified_figure(certs), "Certified robust query ratio against K (CertDR randomized "
                          "smoothing; the Monte Carlo error is subtracted).")):
        if fig is None:
            continue
        parts.append(f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{_png(fig)}">'
                     f"<figcaption>{e(caption)}</figcaption></figure>")
        plt.close(fig)
    if attacks:
        parts.append("<h3>Attacks</h3>" + _attack_table(attacks))
    if certs:
        parts.append("<h3>Certification</h3>" + _cert_table(certs))
    return "<h2>Attacks and certification</h2>" + "".join(parts)


def render_page(attacks: list[dict[str, Any]], certs: list[dict[str, Any]], title: str = "Attacks and "
                "certification") -> str:
    e = html.escape
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{e(title)}</h1>{render_section(attacks, certs)}</body></html>\n")
