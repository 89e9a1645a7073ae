"""``rankstack robustness FILE.toml``: the five-task robustness benchmark (issue #19, item 6).

The file names the rankers (reranker stage specs), the collections (with their candidates and role)
and the tasks (:mod:`rankstack.robust.benchmark`). The command prints the table as markdown on
standard output and writes the full JSON (every task's figures, per-query values, the table) to
``-o OUT.json``, or to ``[benchmark] output`` when ``-o`` is left out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def robustness_command(
    file: Annotated[Path, typer.Argument(help="robustness benchmark TOML file (experiments/robustness.toml)")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="JSON file to write (default: the "
                                                   "output field of the file's benchmark table)")] = None,
    queries: Annotated[Optional[int], typer.Option("--queries", help="use at most N (seeded sample) queries "
                                                   "of every collection")] = None,
) -> None:
    """Robustness benchmark: IID variance, OOD, query variations, attacks; BM25 against neural rankers."""
    from rankstack.errors import ConfigError
    from rankstack.robust.benchmark import load_benchmark, markdown, run_benchmark, write_json

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
