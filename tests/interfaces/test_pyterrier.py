"""PyTerrier interop without Java (rankstack.interfaces.pyterrier): a rankstack stage is a
pt.Transformer, a pt.Transformer is a rankstack stage, both directions compose, and pt.Experiment over
rankstack's BM25 on SciFact gives Anserini's nDCG@10 = 0.6789, equal to rankstack's own evaluation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pt = pytest.importorskip("pyterrier")
pd = pytest.importorskip("pandas")

from rankstack.data import datasets
from rankstack.data.records import Document, Query, Run
from rankstack.errors import ConfigError, FormatError, StageError
from rankstack.index.bm25 import BM25Index
from rankstack.interfaces.pyterrier import (
    from_pyterrier,
    qrels_from_df,
    qrels_to_df,
    queries_from_df,
    queries_to_df,
    to_pyterrier,
)
from rankstack.measures import evaluate
from rankstack.stages.base import Reranker
from rankstack.testing import check_stage, synthetic_collection

FX = synthetic_collection()  # its 'no-candidates' query makes every reranker warn once
pytestmark = [pytest.mark.filterwarnings("ignore:.*no candidates:UserWarning"),
              # PyTerrier's own add_ranks under pandas 3 (drop(inplace=True)), not rankstack's
              pytest.mark.filterwarnings("ignore:The inplace keyword")]


def overlap(query: str, text: str) -> float:
    """Query words in the text: a score with many ties."""
    words = set(text.replace(".", "").split())
    return float(sum(w in words for w in query.split()))


class Overlap(Reranker):
    """The rankstack reranker that computes what the PyTerrier lambdas below compute."""

    name = "overlap"

    def score(self, query: Query, docs: list[Document]) -> np.ndarray:
        return np.array([overlap(query.text, d.text) for d in docs])


def pt_overlap() -> object:
    return pt.apply.doc_score(lambda row: overlap(row["query"], row["text"]))


class ToyRetriever(pt.Transformer):
    """A PyTerrier retriever written against pt.Transformer only: every document with a query word,
    scored by overlap, rows in a scrambled order (PyTerrier's own ranks break ties by row order)."""

    def __init__(self, docs: dict[str, Document]):
        self.docs = docs

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        rows = [{"qid": r.qid, "query": r.query, "docno": d.id, "score": overlap(r.query, d.text)}
                for r in topics.itertuples() for d in sorted(self.docs.values(), key=lambda d: d.id)]
        out = pd.DataFrame(rows, columns=["qid", "query", "docno", "score"])
        out = out[out["score"] > 0].sample(frac=1.0, random_state=0)
        return pt.model.add_ranks(out)


def lists(run: Run) -> dict[str, list[tuple[str, float]]]:
    return {q: run.ranked(q) for q in run}


@pytest.fixture(scope="module")
def toy_bm25():
    return BM25Index.build(FX.docs.values(), None, progress=False)


# -- rankstack stages as PyTerrier transformers ---------------------------------------------------
def test_a_retriever_takes_topics_and_gives_ranked_results(toy_bm25):
    bm25 = toy_bm25.retriever(k=5)
    t = to_pyterrier(bm25)
    assert isinstance(t, pt.Transformer) and repr(t) == "rankstack(bm25)"
    topics = queries_to_df(FX.queries).assign(topic_field="x")
    res = t(topics)
    assert list(res.columns) == ["qid", "query", "docno", "score", "rank", "topic_field"]
    assert (res["topic_field"] == "x").all()  # topic columns are carried over
    expected = bm25(FX.queries)
    assert lists(Run.from_df(res)) == {q: v for q, v in lists(expected).items() if v}
    for _, g in res.groupby("qid", sort=False):
        assert g["rank"].tolist() == list(range(len(g)))
    assert pt.inspect.transformer_outputs(t, ["qid", "query"])[:5] == ["qid", "query", "docno", "score", "rank"]


def test_a_reranker_reranks_exactly_the_frames_candidates():
    t = to_pyterrier(Overlap(FX.docs))
    cands = FX.run.to_df(FX.queries).assign(text_len=lambda d: d["docno"].map(lambda x: len(FX.docs[x].text)))
    res = t(cands)
    assert set(zip(res["qid"], res["docno"])) == set(zip(cands["qid"], cands["docno"]))
    assert lists(Run.from_df(res)) == {q: v for q, v in lists(Overlap(FX.docs)(FX.queries, FX.run)).items() if v}
    merged = res.merge(cands[["qid", "docno", "text_len"]], on=["qid", "docno"], suffixes=("", "_in"))
    assert (merged["text_len"] == merged["text_len_in"]).all()  # per-document columns are carried over
    with pytest.raises(StageError, match="overlap is a reranker: give it a results frame"):
        t(queries_to_df(FX.queries))
    with pytest.raises(FormatError, match="no column 'query'"):
        t(cands.drop(columns=["query"]))
    with pytest.raises(pt.validate.InputValidationError):
        pt.inspect.transformer_outputs(t, ["qid", "query"])
    assert len(t(cands.iloc[:0])) == 0


def test_rankstack_and_pyterrier_transformers_compose_in_pyterrier(toy_bm25):
    bm25 = toy_bm25.retriever(k=5)
    add_text = pt.apply.generic(lambda df: df.assign(text=df["docno"].map(lambda d: FX.docs[d].text)))
    pipe = to_pyterrier(bm25) >> add_text >> pt_overlap()
    got = Run.from_df(pipe(queries_to_df(FX.queries)))
    want = (bm25 >> Overlap(FX.docs))(FX.queries)
    assert lists(got) == {q: v for q, v in lists(want).items() if v}


# -- PyTerrier transformers as rankstack stages ---------------------------------------------------
def test_a_pyterrier_reranker_in_a_rankstack_pipeline_equals_the_rankstack_computation(toy_bm25):
    bm25 = toy_bm25.retriever(k=5)
    wrapped = from_pyterrier(pt_overlap(), name="pt-overlap", docs=FX.docs)
    got = (bm25 >> wrapped)(FX.queries)
    want = (bm25 >> Overlap(FX.docs))(FX.queries)
    assert got.to_dict() == want.to_dict() and lists(got) == lists(want)
    assert set(got) == {q.id for q in FX.queries}  # every query asked, an empty one too
    assert got.name == "bm25 >> pt-overlap" and [s["name"] for s in got.stats["stages"]] == ["bm25", "pt-overlap"]
    # the same on a fixed candidate run, with its empty and single-candidate queries
    with pytest.warns(UserWarning, match="no candidates"):
        got = wrapped(FX.queries, FX.run)
    assert lists(got) == lists(Overlap(FX.docs)(FX.queries, FX.run))


def test_a_pyterrier_retriever_feeds_a_rankstack_reranker():
    retriever = from_pyterrier(ToyRetriever(FX.docs), name="toy")
    first = retriever(FX.queries)
    assert set(first) == {q.id for q in FX.queries}
    # PyTerrier ranked ties by (scrambled) row order; the run ranks them as rankstack does
    ties = 0
    for q in first:
        ranked = first.ranked(q)
        for (d1, s1), (d2, s2) in itertools.pairwise(ranked):
            assert s1 > s2 or (s1 == s2 and d1 > d2)
            ties += s1 == s2
    assert ties > 10
    pipe = retriever % 3 >> Overlap(FX.docs)
    assert lists(pipe(FX.queries)) == lists(Overlap(FX.docs)(FX.queries, first.cut(3)))
    assert lists(retriever(FX.queries)) == lists(first)  # deterministic


def test_the_adapters_round_trip_to_the_same_stage_and_pass_the_contract():
    # a rankstack stage through PyTerrier and back is the same stage
    check_stage(lambda docs, **kw: from_pyterrier(to_pyterrier(Overlap(docs)), **{"rerank": True, "key": "ov1", **kw}),
                name="round-trip")
    # a PyTerrier scorer with its documents' texts, keyed by name
    check_stage(lambda docs, **kw: from_pyterrier(pt_overlap(), docs=docs, **{"rerank": True, "key": "ov1", **kw}),
                name="pt-overlap")
    back = from_pyterrier(to_pyterrier(Overlap(FX.docs)), rerank=True)
    assert lists(back(FX.queries, FX.run)) == lists(Overlap(FX.docs)(FX.queries, FX.run))


def test_candidate_semantics_and_bad_outputs_are_errors():
    def frame_fn(fn):
        return from_pyterrier(pt.apply.generic(fn), name="bad", rerank=True)

    qs = FX.queries[:1]
    with pytest.raises(StageError, match=r"dropped 1 of the 5 candidates.*% k"):
        frame_fn(lambda df: df.iloc[1:])(qs, FX.run)
    with pytest.raises(StageError, match="added 1 document"):
        frame_fn(lambda df: pd.concat([df, df.iloc[:1].assign(docno="new")]))(qs, FX.run)
    with pytest.raises(StageError, match="not asked: 'other'"):
        frame_fn(lambda df: df.assign(qid="other"))(qs, FX.run)
    with pytest.raises(StageError, match="cannot read.*score is missing"):
        frame_fn(lambda df: df.assign(score=np.nan))(qs, FX.run)
    with pytest.raises(StageError, match="cannot read.*duplicate"):
        frame_fn(lambda df: pd.concat([df, df.iloc[:1]]))(qs, FX.run)
    with pytest.raises(StageError, match="cannot read.*no column 'docno'"):
        frame_fn(lambda df: df[["qid", "score"]])(qs, FX.run)
    with pytest.raises(StageError, match="bad re-ranks a candidate run"):
        frame_fn(lambda df: df)(qs)
    with pytest.raises(StageError, match=r"no text for document 'd\d+' \(query 'q0'\)"):
        from_pyterrier(pt_overlap(), docs={}, rerank=True)(qs, FX.run)
    with pytest.raises(StageError, match="no candidates for 1 of the 1"):
        from_pyterrier(pt_overlap(), docs=FX.docs)([Query("zz", "x")], FX.run)
    with pytest.raises(ConfigError, match="PyTerrier transformer"):
        from_pyterrier(lambda df: df)
    with pytest.raises(ConfigError, match="rankstack Stage"):
        to_pyterrier(pt_overlap())


def test_rerank_false_is_a_retriever_that_ignores_an_incoming_run():
    wrapped = from_pyterrier(ToyRetriever(FX.docs), rerank=False)
    assert lists(wrapped(FX.queries, FX.run)) == lists(wrapped(FX.queries))


def test_the_cache_key_is_the_identity_unless_a_key_is_given():
    a, b = from_pyterrier(pt_overlap()), from_pyterrier(pt_overlap())
    assert a.config() != b.config()  # no content fingerprint: never a stale cache hit
    k1, k2 = from_pyterrier(pt_overlap(), key="v1"), from_pyterrier(pt_overlap(), key="v1")
    assert k1.config() == k2.config() != from_pyterrier(pt_overlap(), key="v2").config()


def test_topics_and_qrels_frames_as_records():
    qs = queries_from_df(queries_to_df(FX.queries))
    assert qs == FX.queries
    qrels = qrels_from_df(qrels_to_df({"q0": {"d001": 1, "d002": 0}}), name="toy")
    assert qrels.to_dict() == {"q0": {"d001": 1, "d002": 0}} and qrels.name == "toy"
    with pytest.raises(FormatError, match="twice"):
        queries_from_df(pd.DataFrame({"qid": ["1", "1"], "query": ["a", "b"]}))


# -- SciFact: pt.Experiment over rankstack's BM25 --------------------------------------------------
@pytest.fixture(scope="module")
def scifact(tmp_path_factory):
    coll = datasets.load("scifact")
    index = BM25Index.build(coll.docs.values(), tmp_path_factory.mktemp("scifact-bm25") / "index", progress=False)
    return coll, index


def test_pt_experiment_over_rankstack_bm25_gives_anserinis_scifact_figure(scifact):
    coll, index = scifact
    assert len(coll.queries) == 300
    bm25 = index.retriever(k=1000)
    topics, qrels = queries_to_df(coll.queries), qrels_to_df(coll.qrels)
    res = pt.Experiment([to_pyterrier(bm25)], topics, qrels, eval_metrics=["ndcg_cut_10"], perquery=True)
    per_query = dict(zip(res["qid"], res["value"]))
    mean = float(np.mean(list(per_query.values())))
    assert round(mean, 4) == 0.6789  # Anserini 0.22.1 (Lucene 9, k1=0.9 b=0.4): 0.6789
    ours = evaluate(coll.qrels, bm25(coll.queries), ["nDCG@10"])
    assert mean == pytest.approx(ours["nDCG@10"], abs=1e-12)
    assert all(per_query[q] == pytest.approx(v, abs=1e-12) for q, v in ours.per_query["nDCG@10"].items())
    agg = pt.Experiment([to_pyterrier(bm25)], topics, qrels, eval_metrics=["ndcg_cut_10"])
    assert round(float(agg["ndcg_cut_10"].iloc[0]), 4) == 0.6789
    assert not pt.java.started()  # PyTerrier's core, no JVM
