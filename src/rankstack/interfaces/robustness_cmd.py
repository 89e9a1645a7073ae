"""``rankstack robustness FILE.toml``: the five-task robustness benchmark (issue #19, item 6).

The file names the rankers (reranker stage specs), the collections (with their candidates and role)
and the tasks (:mod:`rankstack.robust.benchmark`). The command prints the table as markdown on
standard output and writes the full JSON (every task's figures, per-query values, the table) to
``-o OUT.json``, or to ``[benchmark] output`` when ``-o`` is left out. ``--html OUT.html`` also writes
the HTML report (:mod:`rankstack.interfaces.robustness_report`); given a finished ``.json`` result
instead of a TOML file, the command only renders it (``rankstack robustness OUT.json --html OUT.html``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def robustness_command(
    file: Annotated[Path, typer.Argument(help="robustness benchmark TOML file (experiments/robustness.toml), "
                                         "or a finished result (.json) to render with --html")],
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

    if file.suffix == ".json":
        from rankstack.interfaces.robustness_report import load_result, write_html

        if html is None:
            raise ConfigError(f"{file}: a finished result only renders: give --html OUT.html")
        if output is not None or queries is not None:
            raise ConfigError(f"{file}: -o and --queries run a benchmark; a finished result only renders")
        result = load_result(file)
        print(f"-> {write_html(result, html)}", file=sys.stderr)
        typer.echo(markdown(result))
        return
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
