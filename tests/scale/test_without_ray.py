"""Without Ray: ``import rankstack`` and every CLI command import no Ray; using the runner says how to
install it (issue #21). Runs whether or not ray is installed (each check in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

NO_IMPORT = r"""
import sys
import rankstack, rankstack.scale
from typer.testing import CliRunner
from rankstack.interfaces.cli import app
names = sorted(c.name or c.callback.__name__ for c in app.registered_commands)
assert len(names) >= 10, names
runner = CliRunner()
for name in names:
    res = runner.invoke(app, [name, "--help"])
    assert res.exit_code == 0, (name, res.output)
bad = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))
assert not bad, bad[:5]
print(len(names), "commands")
"""

BLOCKED = r"""
import sys
sys.modules["ray"] = None  # as if ray were not installed
from rankstack.errors import MissingDependencyError
from rankstack.scale import encode_corpus_ray
try:
    encode_corpus_ray([], "/nonexistent", {"model": "x"})
except MissingDependencyError as e:
    print("MSG", e)
"""


def _py(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_rankstack_and_every_cli_command_import_no_ray():
    assert "commands" in _py(NO_IMPORT)


def test_missing_ray_names_the_extra():
    out = _py(BLOCKED)
    assert "MSG ray is not installed: install it with pip install 'rankstack[ray]'" in out


def test_experiment_ray_key_is_checked(tmp_path):
    """``[experiment] ray``: true, an address or a table of known keys; anything else names the file."""
    import pytest

    from rankstack.errors import ConfigError
    from rankstack.experiments.config import load_experiment

    body = '\n[[collections]]\nname = "dl19"\n[[pipelines]]\nname = "b"\nstages = [{ stage = "bm25" }]\n'
    cases = {"true": {}, '"ray://head:10001"': {"address": "ray://head:10001"}, "false": None,
             "{ workers = 3, cpus_per_worker = 0.5 }": {"workers": 3, "cpus_per_worker": 0.5}}
    for val, want in cases.items():
        p = tmp_path / "ok.toml"
        p.write_text(f'[experiment]\nmeasures = ["nDCG@10"]\nray = {val}\n{body}')
        assert load_experiment(p).ray == want
    for val, msg in (("3", "must be true, an address or a table"), ("{ worker = 2 }", "no key 'worker'"),
                     ("{ workers = 0 }", "ray.workers must be an integer >= 1"), ('""', "empty address"),
                     ("{ cpus_per_worker = -1 }", "cpus_per_worker must be a number > 0")):
        p = tmp_path / "bad.toml"
        p.write_text(f'[experiment]\nmeasures = ["nDCG@10"]\nray = {val}\n{body}')
        with pytest.raises(ConfigError, match=msg) as e:
            load_experiment(p)
        assert "bad.toml [experiment]" in str(e.value)
