"""The one construction path: specs become stages in rankstack.stages.build, artifacts are built once,
and every mistake in a spec names where it is and what is known."""

from __future__ import annotations

import pytest

from rankstack import registry
from rankstack.data.records import Collection
from rankstack.errors import ConfigError, UnknownStageError
from rankstack.stages import BM25Retriever, BuildContext, Cutoff, build_pipeline, build_stage
from rankstack.testing import synthetic_collection


@pytest.fixture()
def ctx(tmp_path):
    fx = synthetic_collection()
    coll = Collection(name="synthetic", docs=dict(fx.docs), queries=fx.queries[:4], qrels=None)
    return BuildContext(coll, tmp_path / "cache")


def test_spec_builds_the_registered_stage_with_its_artifact_built_once(ctx, tmp_path):
    st = build_stage({"stage": "bm25", "k": 3}, ctx)
    assert isinstance(st, BM25Retriever) and st.k == 3
    assert (tmp_path / "cache" / "index" / "bm25" / ".complete").exists()
    again = BuildContext(ctx.collection, tmp_path / "cache")
    import rankstack.index.bm25 as bm25

    built = []
    orig = bm25.BM25Index.build
    bm25.BM25Index.build = classmethod(lambda cls, *a, **k: built.append(1) or orig(*a, **k))
    try:
        st2 = build_stage({"stage": "bm25", "k": 3}, again)
    finally:
        bm25.BM25Index.build = orig
    assert built == [] and st2.config() == st.config()  # loaded, not rebuilt
    assert st(ctx.collection.queries).to_dict() == st2(ctx.collection.queries).to_dict()


def test_pipeline_of_specs(ctx):
    pipe = build_pipeline([{"stage": "bm25", "k": 5}, {"stage": "bm25-rerank", "k1": 1.2}, {"stage": "cutoff", "k": 2}],
                          ctx, "pipeline 'p'")
    assert isinstance(pipe.stages[-1], Cutoff)
    run = pipe(ctx.collection.queries)
    assert all(len(v) <= 2 for v in run.values()) and len(run) == 4


def test_a_misspelt_parameter_names_the_stage_and_the_known_ones(ctx):
    with pytest.raises(ConfigError, match=r"pipeline 'p' stage #2: stage 'bm25-rerank' has no parameter 'k11' \(did you mean 'k1'\?\); "
                                          r"its parameters: index, k1, b, norms"):
        build_pipeline([{"stage": "bm25"}, {"stage": "bm25-rerank", "k11": 1.2}], ctx, "pipeline 'p'")
    with pytest.raises(ConfigError, match=r"stage 'cutoff': .*missing 1 required positional argument: 'k'"):
        build_stage({"stage": "cutoff"}, ctx, "here")


def test_unknown_stage_and_untrainable_stage(ctx):
    with pytest.raises(UnknownStageError, match=r"unknown stage 'bm52'; known stages: .*bm25"):
        build_stage({"stage": "bm52"}, ctx)
    with pytest.raises(ConfigError, match=r"stage 'bm25' cannot be trained; 'train' works with "
                                          r"\['cross-encoder', 'dense', 'dense-rerank'\]"):
        build_stage({"stage": "bm25", "train": {"dataset": "scifact/train"}}, ctx)
    with pytest.raises(ConfigError, match="trained by experiments"):
        build_stage({"stage": "cross-encoder", "train": {"dataset": "scifact/train"}}, ctx)


def test_llm_rows_come_from_the_scorer_table():
    from rankstack.llm.scorers import SCORERS

    rows = {e.name: e for e in registry.entries() if e.extra == "llm"}
    assert list(rows) == list(SCORERS)
    assert {n: e.details["strategy"] for n, e in rows.items()} == {n: c.natural_strategy for n, c in SCORERS.items()}
    assert all(e.defaults == {"scorer": n} and e.help for n, e in rows.items())


def test_registering_a_stage_and_a_clash():
    registry.register("toy-cutoff", "rankstack.stages.base:Cutoff", kind="reranker")
    try:
        assert registry.create("toy-cutoff", k=4).k == 4
        with pytest.raises(ConfigError, match="already registered"):
            registry.register("toy-cutoff", "rankstack.stages.base:FromRun")
    finally:
        registry._REGISTRY.pop("toy-cutoff")
