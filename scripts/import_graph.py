#!/usr/bin/env python3
"""rankstack's import graph, from its own imports (grimp, the graph import-linter builds; imports
inside functions included): the package-level edges and every import cycle between modules.

    .venv/bin/python scripts/import_graph.py          # prints the edges and the cycles; exit 1 if any cycle

Its output is the "Import graph" section of docs/architecture.md; tests/test_architecture.py checks
that there is no cycle and that `lint-imports` (the layers contract in pyproject.toml) passes.
"""

from __future__ import annotations

import sys
from collections import defaultdict


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> modules it imports, package -> packages it imports) for rankstack."""
    import grimp

    g = grimp.build_graph("rankstack")
    mods: dict[str, set[str]] = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    pkgs: dict[str, set[str]] = defaultdict(set)
    for m, deps in mods.items():
        for d in deps:
            a, b = _top(m), _top(d)
            if a != b:
                pkgs[a].add(b)
    return mods, pkgs


def _top(m: str) -> str:
    parts = m.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def cycles(mods: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in mods.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(mods):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    mods, pkgs = graph()
    print(f"{len(mods)} modules; package-level imports (from each package's modules, functions included):")
    for a in sorted(pkgs):
        print(f"  {a:12s} -> {', '.join(sorted(pkgs[a]))}")
    cyc = cycles(mods)
    print(f"import cycles between modules: {len(cyc)}")
    for c in cyc:
        print("  " + " <-> ".join(c))
    return 1 if cyc else 0


if __name__ == "__main__":
    sys.exit(main())
