"""Declarative experiments: config validation, a run on DL19 with golden figures, the reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankstack.errors import ConfigError
from rankstack.experiments.config import load_experiment
from rankstack.experiments.runner import run_experiment

DL19_TOML = """
[experiment]
name = "dl19 test"
measures = ["nDCG@10", "AP", "RR@10"]
baseline = "bm25-shipped"
significance = "{sig}"
output = "out"
cache = "cache"

[[collections]]
name = "dl19"

[[pipelines]]
name = "bm25-shipped"
stages = [{{ stage = "run", run = "bm25" }}]

[[pipelines]]
name = "bm25-local"
stages = [{{ stage = "bm25", k = 100 }}]

[[pipelines]]
name = "rrf"
stages = [{{ stage = "fuse", pipelines = ["bm25-shipped", "bm25-local"], method = "rrf" }}]

[[expected]]
collection = "dl19"
pipeline = "bm25-shipped"
measure = "nDCG@10"
value = 0.5058
tolerance = 0.00005

[[expected]]
collection = "dl19"
pipeline = "bm25-shipped"
measure = "RR@10"
value = 0.1
tolerance = 0.01
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return p


def test_experiment_runs_reports_and_checks(tmp_path):
    spec = load_experiment(_write(tmp_path, DL19_TOML.format(sig="t")))
    report = run_experiment(spec, progress=False)
    by = {r.pipeline: r for r in report.results}
    assert set(by) == {"bm25-shipped", "bm25-local", "rrf"}
    assert by["bm25-shipped"].aggregate["nDCG@10"] == pytest.approx(0.5058, abs=5e-5)
    assert len(by["bm25-shipped"].per_query["nDCG@10"]) == 43
    # significance rows against the baseline, for every other pipeline and measure
    sig = by["rrf"].significance["nDCG@10"]
    assert 0.0 <= sig["p"] <= sig["p_corrected"] <= 1.0
    assert not by["bm25-shipped"].significance
    # the first golden figure holds, the deliberately wrong one fails
    assert [c["ok"] for c in report.checks] == [True, False]
    # efficiency figures
    assert by["bm25-local"].stats["queries_per_s"] > 0 and by["bm25-local"].stats["ms_per_query"] > 0
    # outputs
    blob = json.loads((tmp_path / "out" / "results.json").read_text())
    assert blob["results"][0]["aggregate"]["nDCG@10"] == pytest.approx(0.5058, abs=5e-5)
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("<img src='data:image/png;base64,") == 2  # per-query deltas + quality/latency
    assert "FAIL" in html


def test_experiment_is_deterministic_and_cached(tmp_path):
    spec = load_experiment(_write(tmp_path, DL19_TOML.format(sig="randomization")))
    a = run_experiment(spec, progress=False)
    b = run_experiment(spec, progress=False)
    for ra, rb in zip(a.results, b.results):
        assert ra.per_query == rb.per_query
        assert ra.significance == rb.significance
    assert b.results[1].stats.get("cache") == "hit"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.replace('measures = ["nDCG@10", "AP", "RR@10"]', 'measures = ["nDCG@x"]'), "nDCG@x"),
        (lambda t: t.replace('baseline = "bm25-shipped"', 'baseline = "nope"'), "baseline 'nope'"),
        (lambda t: t.replace('name = "bm25-local"\n', ""), r"\[\[pipelines\]\] #2: missing field 'name'"),
        (lambda t: t.replace("[[collections]]", "[[collections]\n"), "invalid TOML"),
    ],
)
def test_config_errors_name_the_field(tmp_path, mutate, message):
    p = _write(tmp_path, mutate(DL19_TOML.format(sig="t")))
    with pytest.raises(ConfigError, match=message) as e:
        load_experiment(p)
    assert str(p) in str(e.value)
