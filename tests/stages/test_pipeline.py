"""The stage algebra (>>, %, +), caching and efficiency figures."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.data.records import Document, Query, Run, ranked_items
from rankstack.errors import StageError
from rankstack.stages.base import Cached, Cutoff, FromRun, Pipeline, Reranker


class Overlap(Reranker):
    """Scores a document by the number of query terms it contains (a real, if simple, scorer)."""

    name = "overlap"

    def __init__(self, docs=None):
        super().__init__(docs)
        self.calls = 0

    def score(self, query, docs):
        self.calls += 1
        terms = set(query.text.lower().split())
        return np.array([len(terms & set(d.text.lower().split())) for d in docs], dtype=float)


DOCS = {
    "d1": Document("d1", "the cat sat on the mat"),
    "d2": Document("d2", "a dog and a cat"),
    "d3": Document("d3", "stock markets fell"),
    "d4": Document("d4", "cat cat dog mat"),
}
QUERIES = [Query("q1", "cat mat"), Query("q2", "dog"), Query("q3", "nothing here")]
RUN = Run({"q1": {"d1": 1.0, "d2": 3.0, "d3": 2.0, "d4": 0.5}, "q2": {"d2": 1.0, "d3": 1.0}})


def test_ranked_items_trec_eval_order():
    # score desc, ties by doc id desc (trec_eval's comp_sim_docno)
    assert ranked_items({"a": 1.0, "b": 1.0, "c": 2.0, "aa": 1.0}) == [
        ("c", 2.0), ("b", 1.0), ("aa", 1.0), ("a", 1.0)]


def test_pipeline_rerank_and_cutoff():
    first = FromRun(RUN, name="bm25", missing="warn")  # q3 is not in RUN: an empty ranking, warned
    pipe = first % 3 >> Overlap(DOCS)
    assert isinstance(pipe, Pipeline)
    assert [s.name for s in pipe.stages] == ["bm25", "%3", "overlap"]
    with pytest.warns(UserWarning, match=r"run 'bm25' has no ranking for 1 of the 3 queries asked \('q3'\)"):
        out = pipe(QUERIES)
    # q1's top 3 by first-stage score: d2, d3, d1; overlap scores: d2=1, d3=0, d1=2
    assert out.ranked("q1") == [("d1", 2.0), ("d2", 1.0), ("d3", 0.0)]
    assert "d4" not in out["q1"]
    assert out.ranked("q3") == []
    # efficiency figures from every step, and totals
    names = [s["name"] for s in out.stats["stages"]]
    assert names == ["bm25", "%3", "overlap"]
    rer = out.stats["stages"][-1]
    assert rer["items"] == 5 and rer["queries"] == 3 and rer["items_per_s"] > 0
    assert out.stats["wall_s"] >= rer["wall_s"]


def test_plus_is_combsum():
    a = FromRun(Run({"q1": {"d1": 1.0, "d2": 2.0}}), name="a")
    b = FromRun(Run({"q1": {"d2": 1.0, "d3": 5.0}}), name="b")
    out = (a + b)([Query("q1", "x")])
    assert out["q1"] == pytest.approx({"d1": 1.0, "d2": 3.0, "d3": 5.0})


def test_reranker_missing_text_names_document():
    with pytest.raises(StageError, match="d3.*q1|q1.*d3"):
        (FromRun(RUN) >> Overlap({k: v for k, v in DOCS.items() if k != "d3"}))(QUERIES[:2])


def test_a_query_the_run_does_not_answer_is_an_error_by_default():
    # #16: a stage that cannot answer a query says how many and which, and by default fails
    with pytest.raises(StageError, match=r"run 'bm25' has no ranking for 1 of the 3 queries asked \('q3'\).*"
                                         r"missing = \"warn\""):
        (FromRun(RUN, name="bm25") >> Overlap(DOCS))(QUERIES)
    # a reranker given a run without the query: the same, naming the reranker
    with pytest.raises(StageError, match=r"overlap: the incoming run has no candidates for 1 of the 3 queries "
                                         r"\('q3'\)"):
        Overlap(DOCS)(QUERIES, RUN)
    # the option keeps going, with a warning and the count in the stats
    with pytest.warns(UserWarning, match="no ranking for 1 of the 3"):
        out = FromRun(RUN, name="bm25", missing="warn")(QUERIES)
    assert out["q3"] == {} and out.stats["queries_not_in_run"] == 1


def test_reranker_without_candidates_is_an_error():
    with pytest.raises(StageError, match="candidate run"):
        Overlap(DOCS)(QUERIES)


def test_cutoff_validates():
    with pytest.raises(ValueError):
        Cutoff(-1)


def test_cache_hits_on_same_config_and_inputs(tmp_path):
    rer = Overlap(DOCS)
    cached = Cached(rer, tmp_path)
    first = FromRun(RUN, name="bm25", missing="warn")
    r1 = (first >> cached)(QUERIES)
    r2 = (first >> cached)(QUERIES)
    assert rer.calls == 2  # two queries with candidates, computed once
    assert cached.hits == 1 and cached.misses == 1
    assert r1.to_dict() == r2.to_dict()
    # another input run is another key
    (FromRun(RUN.cut(1), name="bm25", missing="warn") >> cached)(QUERIES)
    assert cached.misses == 2
