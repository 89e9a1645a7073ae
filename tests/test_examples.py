"""A third-party stage written only against the public faces (examples/title_boost.py) passes the
shipped contract and runs in an experiment TOML through its plugin list."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from rankstack.testing import check_stage

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("rankstack_plugin_title_boost", ROOT / "examples" / "title_boost.py")
    mod = sys.modules.get(spec.name)
    if mod is None:
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    return mod


def test_third_party_stage_passes_the_contract():
    mod = _load()
    check_stage(lambda docs, **kw: mod.TitleBoost(docs, **kw), name="title-boost")


def test_third_party_stage_runs_in_an_experiment(tmp_path):
    from rankstack.experiments.config import load_experiment
    from rankstack.experiments.runner import run_experiment

    spec = load_experiment(ROOT / "examples" / "title_boost.toml")
    spec.output, spec.cache = tmp_path / "out", tmp_path / "cache"
    report = run_experiment(spec, progress=False)
    got = {r.pipeline: r.aggregate for r in report.results}
    assert got["bm25"]["nDCG@10"] == pytest.approx(0.6789, abs=5e-4)  # Anserini's SciFact BM25
    boosted = got["bm25 >> title-boost"]
    assert boosted["R@100"] == pytest.approx(got["bm25"]["R@100"])  # same candidates, reordered
    assert boosted["nDCG@10"] != pytest.approx(got["bm25"]["nDCG@10"], abs=1e-4)
    assert (tmp_path / "out" / "results.json").exists()


def test_a_plugin_that_is_not_there_is_named(tmp_path):
    from rankstack.errors import ConfigError
    from rankstack.experiments.config import load_experiment

    f = tmp_path / "x.toml"
    f.write_text('[experiment]\nmeasures = ["nDCG@10"]\nplugins = ["nope.py"]\n[[collections]]\nname = "scifact"\n'
                 '[[pipelines]]\nname = "a"\nstages = [{ stage = "bm25" }]\n')
    with pytest.raises(ConfigError, match="plugin 'nope.py': no such file"):
        load_experiment(f)
