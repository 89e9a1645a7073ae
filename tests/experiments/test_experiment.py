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
        # #17: a misspelt key is an error naming the table and the known keys, not silently ignored
        (lambda t: t.replace('baseline = "bm25-shipped"', 'baselin = "bm25-shipped"'),
         r"\[experiment\]: unknown key 'baselin' \(did you mean 'baseline'\?\); known keys: name, measures, "
         "baseline"),
        (lambda t: t.replace('name = "dl19"', 'name = "dl19"\nsplit = "test"'),
         r"\[\[collections\]\] #1: unknown key 'split'; known keys: name"),
        (lambda t: t.replace('value = 0.5058', 'vaule = 0.5058'), r"\[\[expected\]\] #1: unknown key 'vaule'"),
        (lambda t: t.replace('name = "rrf"', 'name = "rrf"\nstage = []'), r"#3: unknown key 'stage' "
         r"\(did you mean 'stages'\?\)"),
        # a misspelt stage parameter fails when the file is loaded, naming the pipeline and the stage
        (lambda t: t.replace('{{ stage = "bm25", k = 100 }}', '{{ stage = "bm25", kk = 100 }}'),
         r"pipeline 'bm25-local' stage #1: stage 'bm25' has no parameter 'kk' \(did you mean 'k'\?\); its "
         "parameters: "),
        (lambda t: t.replace('significance = "{sig}"', 'correction = "sidak"'), "correction must be one of"),
    ],
)
def test_config_errors_name_the_field(tmp_path, mutate, message):
    p = _write(tmp_path, mutate(DL19_TOML).format(sig="t"))
    with pytest.raises(ConfigError, match=message) as e:
        load_experiment(p)
    assert str(p) in str(e.value)


def test_every_shipped_experiment_file_passes_the_strict_check():
    root = Path(__file__).resolve().parents[2]
    files = sorted(root.glob("experiments/*.toml")) + sorted(root.glob("examples/*.toml"))
    assert files
    import tomllib

    from rankstack.robust.benchmark import load_benchmark

    for f in files:
        if "benchmark" in tomllib.loads(f.read_text()):  # a robustness benchmark (rankstack robustness)
            load_benchmark(f)
        else:
            load_experiment(f)


def test_output_has_every_run_file_and_provenance(tmp_path):
    from rankstack.data.formats import read_run

    spec = load_experiment(_write(tmp_path, DL19_TOML.format(sig="t")))
    report = run_experiment(spec, progress=False)
    out = tmp_path / "out"
    body = json.loads((out / "results.json").read_text())
    # every pipeline's run, as a TREC run file that evaluates to the recorded figure
    assert sorted(body["runs"]) == ["dl19/bm25-local", "dl19/bm25-shipped", "dl19/rrf"]
    from rankstack.data import datasets
    from rankstack.measures import evaluate

    qrels = datasets.load("dl19").qrels
    for r in report.results:
        run = read_run(out / body["runs"][f"dl19/{r.pipeline}"])
        assert evaluate(qrels, run, ["nDCG@10"])["nDCG@10"] == pytest.approx(r.aggregate["nDCG@10"], abs=1e-12)
    meta = body["meta"]
    import numpy

    import rankstack

    assert meta["rankstack"] == rankstack.__version__ and meta["packages"]["numpy"] == numpy.__version__
    assert meta["python"].count(".") == 2 and meta["machine"]["cpus"] >= 1 and meta["date"].startswith("20")
    assert "baseline = \"bm25-shipped\"" in meta["config"]  # the experiment file itself
    assert body["correction"] == "holm"
    # the experiment file is outside any git tree here: no commit, said as null
    assert meta["git_commit"] is None or len(meta["git_commit"]) == 40


def test_git_commit_is_recorded_inside_a_work_tree(tmp_path):
    import subprocess

    from rankstack.experiments.provenance import git_commit

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    import os

    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-qm", "m"], check=True, env={**os.environ, **env})
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert git_commit(tmp_path) == {"commit": head.strip(), "dirty": False}
    (tmp_path / "f").write_text("y")
    assert git_commit(tmp_path)["dirty"] is True


def test_an_unknown_stage_fails_at_load_time_naming_the_pipeline(tmp_path):
    from rankstack.errors import UnknownStageError

    p = _write(tmp_path, DL19_TOML.replace('{{ stage = "bm25", k = 100 }}', '{{ stage = "bm52" }}').format(sig="t"))
    with pytest.raises(UnknownStageError, match=r"pipeline 'bm25-local' stage #1: unknown stage 'bm52'; known "
                                                r"stages: bm25, "):
        load_experiment(p)
