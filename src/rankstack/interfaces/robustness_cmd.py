"""``rankstack robustness FILE.toml``: the five-task robustness benchmark (issue #19, item 6).

The file names the rankers (reranker stage specs), the collections (with their candidates and role)
and the tasks (:mod:`rankstack.robust.benchmark`). The command prints the table as markdown on
standard output and writes the full JSON (every task's figures, per-query values, the table) to
``-o OUT.json``, or to ``[benchmark] output`` when ``-o`` is left out. ``--html OUT.html`` also writes
the HTML report (:mod:`rankstack.interfaces.robustness_report`); given a finished ``.json`` result
instead of a TOML file, the command only renders it (``rankstack robustness OUT.json --html OUT.html``),
with an attacks-and-certification section when ``rankstack attack`` / ``rankstack certify`` outputs
come too (``rankstack robustness OUT.json attack.json certify.json --html OUT.html``; those alone make a
page of their own: :mod:`rankstack.interfaces.attack_report`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def robustness_command(
    files: Annotated[list[Path], typer.Argument(help="robustness benchmark TOML file (experiments/robustness.toml), "
                                                "or finished results (.json) to render with --html: a "
                                                "benchmark result and/or `rankstack attack` and `rankstack "
                                                "certify` outputs")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="JSON file to write (default: the "
                                                   "output field of the file's benchmark table)")] = None,
    queries: Annotated[Optional[int], typer.Option("--queries", help="use at most N (seeded sample) queries "
                                                   "of every collection")] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="also write the HTML report (table and "
                                                 "plots) to this file")] = None,
) -> None:
    """Robustness benchmark: IID variance, OOD, query variations, attacks; BM25 against neural rankers."""
    from rankstack.errors import ConfigError
    from rankstack.robust.benchmark import load_benchmark, markdown, run_benchmark, write_json

    if any(f.suffix == ".json" for f in files):
        _render(files, html, output, queries)
        return
    if len(files) != 1:
        raise ConfigError(f"one benchmark TOML file runs at a time, got {len(files)} files")
    file = files[0]
    spec = load_benchmark(file)
    if queries is not None:
        if queries < 1:
            raise ConfigError(f"--queries must be at least 1, got {queries}")
        for c in spec.collections:
            c.queries = queries if c.queries is None else min(c.queries, queries)
    out = output or spec.output
    if out is None:
        raise ConfigError(f"{file}: no output: give -o OUT.json or [benchmark] output")
    result = run_benchmark(spec, progress=False, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    write_json(result, out)
    typer.echo(markdown(result))
    print(f"-> {out}", file=sys.stderr)
    if html is not None:
        from rankstack.interfaces.robustness_report import write_html

        print(f"-> {write_html(result, html)}", file=sys.stderr)


def _render(files: list[Path], html: Optional[Path], output: Optional[Path], queries: Optional[int]) -> None:
    """Finished results to one HTML page: at most one benchmark result (its report, with an
    attacks-and-certification section when attack or certify outputs come too), or attack and
    certify outputs alone (:mod:`rankstack.interfaces.attack_report`)."""
    from rankstack.errors import ConfigError, FormatError
    from rankstack.interfaces import attack_report as ar
    from rankstack.robust.benchmark import markdown

    first = files[0]
    if html is None:
        raise ConfigError(f"{first}: a finished result only renders: give --html OUT.html")
    if output is not None or queries is not None:
        raise ConfigError(f"{first}: -o and --queries run a benchmark; a finished result only renders")
    benchmark, attacks, certs = [], [], []
    for f in files:
        if f.suffix != ".json":
            raise ConfigError(f"{f}: finished results are .json files; a TOML benchmark runs on its own")
        res = ar.load_json(f)
        kind = ar.kind_of(res)
        if kind is None:  # the benchmark reader names the missing fields
            from rankstack.interfaces.robustness_report import load_result

            load_result(f)
            raise FormatError(f"{f}: neither a robustness benchmark result nor a `rankstack attack` or "
                              "`rankstack certify` output")  # pragma: no cover - load_result raised
        {"benchmark": benchmark, "attack": attacks, "certification": certs}[kind].append((f, res))
    if len(benchmark) > 1:
        raise ConfigError(f"one benchmark result a page, got {len(benchmark)}: {', '.join(str(f) for f, _ in benchmark)}")
    if benchmark:
        from rankstack.interfaces.robustness_report import load_result, write_html

        result = load_result(benchmark[0][0])  # its own checks of the fields
        written = write_html(result, html, attacks=[r for _, r in attacks], certs=[r for _, r in certs])
        typer.echo(markdown(result))
    else:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(ar.render_page([r for _, r in attacks], [r for _, r in certs]), encoding="utf-8")
        written = html
    print(f"-> {written}", file=sys.stderr)
