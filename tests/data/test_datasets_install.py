"""Known datasets from an installed (non-editable) package: the data lookup must not need the source tree.

An installed package is simulated by a copy of ``src/rankstack`` in a bare ``site`` folder (no ``src``,
no ``pyproject.toml`` above it) put first on ``PYTHONPATH``, run from a directory with no ``data/``.
Before, the only way such a copy found SciFact was ``RANKSTACK_DATA``: it looked for the checkout's
``data/`` at ``Path(__file__).parents[3]``, which for an installed package is an unrelated folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rankstack.data import datasets

ROOT = Path(__file__).resolve().parents[2]
DATA = next((d for d in (ROOT / "data", ROOT.parent / "shared" / "data") if (d / "scifact").is_dir()), ROOT / "data")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("install") / "site-packages"
    shutil.copytree(ROOT / "src" / "rankstack", site / "rankstack", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def run_installed(site: Path, tmp: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    cwd = tmp / "elsewhere"
    cwd.mkdir(exist_ok=True)
    e = {k: v for k, v in os.environ.items() if k not in ("RANKSTACK_DATA", "XDG_DATA_HOME", "PYTHONPATH")}
    e.update(PYTHONPATH=str(site), HOME=str(tmp / "home"), XDG_DATA_HOME=str(tmp / "xdg"), **env)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=e, capture_output=True, text=True, timeout=120)


PROBE = """
import json, rankstack
from rankstack.data import datasets
out = {"file": rankstack.__file__, "checkout": str(datasets._checkout_data()),
       "dirs": [str(d) for d in datasets.data_dirs()]}
try:
    c = datasets.load("scifact")
    out.update(docs=len(c.docs), queries=len(c.queries), folder=c.meta["folder"])
except FileNotFoundError as e:
    out["error"] = str(e)
print(json.dumps(out))
"""


def test_installed_copy_without_data_says_where_it_looked_and_how_to_point_it(installed, tmp_path):
    p = run_installed(installed, tmp_path, PROBE)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["file"].startswith(str(installed)) and out["checkout"] == "None"
    assert str(ROOT / "data") not in out["dirs"]
    msg = out["error"]
    assert "dataset 'scifact' not found locally" in msg and "RANKSTACK_DATA" in msg
    assert str(tmp_path / "elsewhere" / "data" / "scifact") in msg  # ./data
    assert str(tmp_path / "xdg" / "rankstack" / "scifact") in msg  # the user data directory


def test_installed_copy_finds_the_user_data_directory(installed, tmp_path):
    user = tmp_path / "xdg" / "rankstack"
    user.mkdir(parents=True)
    (user / "scifact").symlink_to(DATA / "scifact", target_is_directory=True)
    out = json.loads(run_installed(installed, tmp_path, PROBE).stdout)
    assert (out.get("docs"), out.get("queries")) == (5183, 300), out
    assert out["folder"] == str(user / "scifact")


def test_installed_copy_finds_rankstack_data_and_shared_data(installed, tmp_path):
    out = json.loads(run_installed(installed, tmp_path, PROBE, RANKSTACK_DATA=str(DATA)).stdout)
    assert out.get("docs") == 5183 and out["folder"] == str(DATA / "scifact"), out
    shared = tmp_path / "shared" / "data"  # ../shared/data of the working directory
    shared.mkdir(parents=True)
    (shared / "scifact").symlink_to(DATA / "scifact", target_is_directory=True)
    out = json.loads(run_installed(installed, tmp_path, PROBE).stdout)
    assert out.get("docs") == 5183 and out["folder"] == str(shared / "scifact"), out


def test_installed_cli_lists_the_known_datasets(installed, tmp_path):
    p = run_installed(installed, tmp_path, "from rankstack.interfaces.cli import main; main(['datasets'])",
                      RANKSTACK_DATA=str(DATA), COLUMNS="200")
    assert p.returncode == 0, p.stderr
    for name in datasets.KNOWN:
        assert name in p.stdout
    assert "not found" in p.stdout or str(DATA) in p.stdout


def test_the_checkout_is_only_the_last_fallback(monkeypatch, tmp_path):
    assert datasets._checkout_data() == ROOT / "data"  # this test runs from the source tree
    monkeypatch.delenv("RANKSTACK_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert datasets.data_dirs() == [tmp_path / "data", tmp_path.parent / "shared" / "data",
                                    tmp_path / "xdg" / "rankstack", ROOT / "data"]
    monkeypatch.setattr(datasets, "_checkout_data", lambda: None)  # as installed
    with pytest.raises(FileNotFoundError, match="looked in: .*Set RANKSTACK_DATA"):
        datasets.locate("dl19")
