"""Import structure of ``rankstack.data``: no import cycle, every module importable first, light imports.

The cycle check reads the sources with :mod:`ast` and takes every ``import`` / ``from ... import``,
including those inside functions and ``if TYPE_CHECKING:`` blocks, as an edge to the module it names
(``from pkg import name`` is an edge to ``pkg`` and, when ``pkg.name`` is a module, to ``pkg.name``).
A package's ``__init__`` re-exporting its submodules is not a cycle with them: the implicit import of
a parent package is not counted as an edge.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
DATA_PKG = "rankstack.data"


def module_files(src: Path, package: str) -> dict[str, Path]:
    """``module name -> file`` for every ``.py`` file of ``package`` under ``src``."""
    root = src.joinpath(*package.split("."))
    out: dict[str, Path] = {}
    for p in sorted(root.rglob("*.py")):
        parts = list(p.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def import_edges(src: Path, package: str) -> dict[str, set[str]]:
    """``module -> modules of package it imports`` (all import statements, at any depth)."""
    mods = module_files(src, package)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [target] + [f"{target}.{a.name}" for a in node.names]
            for t in targets:
                if t in mods and t != mod:
                    edges[mod].add(t)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the DFS stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle_in_rankstack_data():
    edges = import_edges(SRC, DATA_PKG)
    assert "rankstack.data.formats" in edges and "rankstack.data.docstore" in edges
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle in rankstack.data: " + " -> ".join(cycle or [])


def test_docstore_formats_edges_go_one_way():
    edges = import_edges(SRC, DATA_PKG)
    formats = {m for m in edges if m == "rankstack.data.formats" or m.startswith("rankstack.data.formats.")}
    users = sorted(m for m in formats if "rankstack.data.docstore" in edges[m])
    assert users == ["rankstack.data.formats.collection"]
    assert edges["rankstack.data.docstore"] & formats == {"rankstack.data.formats.docs"}


def test_cycle_check_sees_imports_inside_functions(tmp_path):
    """The pre-split layout (docstore <-> formats, both imports inside functions) is reported."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from pkg.docstore import DocStore\nfrom pkg.formats import read_docs\n")
    (pkg / "formats.py").write_text(
        "def load_collection():\n    from pkg.docstore import DocStore\n    return DocStore\n"
        "def read_docs():\n    return []\n")
    (pkg / "docstore.py").write_text(
        "class DocStore:\n    @classmethod\n    def from_path(cls):\n"
        "        from .formats import read_docs\n        return read_docs()\n")
    edges = import_edges(tmp_path, "pkg")
    assert edges["pkg.formats"] == {"pkg.docstore"} and edges["pkg.docstore"] == {"pkg.formats"}
    assert find_cycle(edges) in (["pkg.docstore", "pkg.formats", "pkg.docstore"],
                                 ["pkg.formats", "pkg.docstore", "pkg.formats"])
    (pkg / "docstore.py").write_text("from pkg import formats\n")  # `from pkg import module` counts too
    assert find_cycle(import_edges(tmp_path, "pkg")) is not None


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120)


def test_every_data_module_imports_first():
    """Each module imported first in a fresh interpreter (an import-order cycle fails here)."""
    mods = sorted(module_files(SRC, DATA_PKG))
    code = (
        "import importlib, subprocess, sys\n"
        f"for m in {mods!r}:\n"
        "    r = subprocess.run([sys.executable, '-c', f'import {m}'], check=False, capture_output=True, text=True)\n"
        "    if r.returncode:\n"
        "        print(m, r.stderr.strip().splitlines()[-1])\n"
    )
    r = _run(code)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


@pytest.mark.parametrize("module", ["rankstack.data", "rankstack.data.formats"])
def test_import_is_light(module):
    heavy = ["torch", "transformers", "sentence_transformers", "ir_datasets", "faiss", "onnxruntime"]
    r = _run(f"import sys, {module}\nprint(sorted(m for m in {heavy!r} if m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_formats_reexports_the_old_names():
    import rankstack.data.formats as f

    old_all = ["DOC_FORMATS", "QRELS_FORMATS", "QUERY_FORMATS", "FormatError", "SmartRecord", "detect_format",
               "load_collection", "read_docs", "read_qrels", "read_queries", "read_run", "read_smart_records",
               "write_docs_jsonl", "write_qrels", "write_queries", "write_run"]
    assert f.__all__ == old_all
    for name in old_all + ["PathLike", "ConfigError", "Collection", "Document", "Qrels", "Query", "Run"]:
        assert getattr(f, name) is not None
    from rankstack.data import formats as pkg
    from rankstack.data.formats import load_collection, read_docs
    from rankstack.data.formats.collection import load_collection as lc
    from rankstack.data.formats.docs import read_docs as rd

    assert pkg is f and load_collection is lc and read_docs is rd
    assert f.log.name == "rankstack.data.formats"  # the logger name of the single-module formats.py
