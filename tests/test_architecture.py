"""The layers hold (lint-imports, the contract in pyproject.toml), no module import cycle exists,
the ground floor imports nothing above it, and the public faces import what they name."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import import_graph  # noqa: E402


def test_layers_contract_is_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    p = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "1 kept, 0 broken" in p.stdout, p.stdout[-3000:] + p.stderr[-2000:]


def test_no_import_cycle():
    mods, pkgs = import_graph.graph()
    assert len(mods) > 50
    assert import_graph.cycles(mods) == []
    assert pkgs["errors"] == set() and pkgs["registry"] <= {"errors", "optional"}


def test_cycle_finder_finds_a_cycle():
    assert import_graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("face", ["rankstack.stages", "rankstack.index", "rankstack.llm"])
def test_public_faces_resolve(face):
    mod = importlib.import_module(face)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{face}.{name}"


def test_every_error_is_a_rankstack_error_with_its_builtin_base():
    from rankstack import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.RankstackError)
    assert issubclass(errors.FormatError, ValueError) and issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.NotFoundError, KeyError) and issubclass(errors.MissingDependencyError, ImportError)
    assert str(errors.UnknownStageError("unknown stage 'x'")) == "unknown stage 'x'"  # no KeyError quotes


def test_no_bare_value_error_raised_in_the_package():
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "src" / "rankstack").rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if "raise ValueError(" in line]
    assert offenders == []
