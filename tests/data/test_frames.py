"""PyTerrier-shaped pandas frames: Run.to_df() / Run.from_df(), topics and qrels frames
(rankstack.data.frames): round trips keep scores and order (ties too), and malformed frames are
refused with a FormatError naming the column or the rows, never collapsed silently."""

from __future__ import annotations

import sys

import pytest

pd = pytest.importorskip("pandas")

from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.data import frames
from rankstack.data.records import Query, Run
from rankstack.errors import FormatError, MissingDependencyError, NotFoundError

RUN = Run({"q1": {"d1": 1.0, "d2": 2.5, "d3": 2.5, "d10": 2.5}, "q2": {"x": -1.0}}, name="toy")
QUERIES = [Query("q1", "first query"), Query("q2", "second")]


def _lists(run: Run) -> dict[str, list[tuple[str, float]]]:
    return {q: run.ranked(q) for q in run}


# -- Run <-> results frame ------------------------------------------------------------------------
def test_to_df_has_pyterrier_columns_and_zero_based_ranks_in_trec_eval_order():
    df = RUN.to_df()
    assert list(df.columns) == ["qid", "docno", "score", "rank"]
    assert df["score"].dtype == "float64" and df["rank"].dtype == "int64"
    q1 = df[df["qid"] == "q1"]
    # ties (2.5) by document id descending, as Run.ranked and trec_eval order them
    assert q1["docno"].tolist() == [d for d, _ in RUN.ranked("q1")] == ["d3", "d2", "d10", "d1"]
    assert q1["rank"].tolist() == [0, 1, 2, 3]
    assert df[df["qid"] == "q2"]["rank"].tolist() == [0]


def test_to_df_with_queries_adds_the_query_column():
    df = RUN.to_df(QUERIES)
    assert list(df.columns) == ["qid", "query", "docno", "score", "rank"]
    assert set(zip(df["qid"], df["query"])) == {("q1", "first query"), ("q2", "second")}
    assert RUN.to_df({"q1": "a", "q2": "b"})["query"].tolist() == ["a"] * 4 + ["b"]


def test_to_df_names_a_query_without_text():
    with pytest.raises(NotFoundError, match="'q2'"):
        RUN.to_df([Query("q1", "only one")])


def test_round_trip_keeps_scores_order_and_ties():
    back = Run.from_df(RUN.to_df(QUERIES), name="back")
    assert back == RUN and _lists(back) == _lists(RUN)
    assert back.name == "back" and Run.from_df(RUN.to_df()).name == "run"
    assert back.fingerprint() == RUN.fingerprint()


def test_from_df_reads_scores_not_the_rank_column_or_row_order():
    df = RUN.to_df().sample(frac=1.0, random_state=3)
    df["rank"] = list(range(len(df)))[::-1]  # a rank column that contradicts the scores is not read
    assert _lists(Run.from_df(df)) == _lists(RUN)
    assert _lists(Run.from_df(df.drop(columns=["rank"]))) == _lists(RUN)


def test_from_df_converts_integer_ids_and_keeps_extra_columns_out():
    df = pd.DataFrame({"qid": [1, 1, 2], "docno": [10, 11, 10], "score": [1, 2, 3], "text": ["a", "b", "c"]})
    run = Run.from_df(df)
    assert run.to_dict() == {"1": {"10": 1.0, "11": 2.0}, "2": {"10": 3.0}}
    assert isinstance(run["1"]["10"], float)


def test_empty_frames_and_empty_rankings():
    empty = Run({"q": {}}).to_df()
    assert len(empty) == 0 and list(empty.columns) == ["qid", "docno", "score", "rank"]
    assert len(Run.from_df(empty)) == 0
    assert len(Run.from_df(pd.DataFrame(columns=["qid", "docno", "score"]))) == 0


def test_a_plain_mapping_is_ordered_as_run_ranked():
    assert frames.run_to_frame(RUN.to_dict())["docno"].tolist() == RUN.to_df()["docno"].tolist()


@pytest.mark.parametrize("column", ["qid", "docno", "score"])
def test_a_missing_column_is_named(column):
    df = RUN.to_df().drop(columns=[column])
    with pytest.raises(FormatError, match=f"no column '{column}'"):
        Run.from_df(df)


def test_not_a_frame():
    with pytest.raises(FormatError, match="expected a pandas DataFrame, got dict"):
        Run.from_df({"qid": ["1"], "docno": ["d"], "score": [1.0]})


def test_duplicate_pairs_are_an_error_never_collapsed():
    df = pd.DataFrame({"qid": ["1", "1", "2", "1"], "docno": ["a", "b", "a", "a"], "score": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(FormatError, match=r"row 3: duplicate \(qid, docno\) pair \('1', 'a'\), first at row 0"):
        Run.from_df(df)
    # an integer id and its string are the same id
    with pytest.raises(FormatError, match="duplicate"):
        Run.from_df(pd.DataFrame({"qid": ["1", "1"], "docno": ["7", 7], "score": [1.0, 2.0]}))


def test_bad_scores_and_ids_name_the_row():
    base = {"qid": ["1", "1"], "docno": ["a", "b"], "score": [1.0, 2.0]}
    with pytest.raises(FormatError, match=r"row 1: score is missing \(NaN\)"):
        Run.from_df(pd.DataFrame({**base, "score": [1.0, float("nan")]}))
    with pytest.raises(FormatError, match="row 0: score 'high' is not a number"):
        Run.from_df(pd.DataFrame({**base, "score": ["high", 1.0]}))
    with pytest.raises(FormatError, match="booleans"):
        Run.from_df(pd.DataFrame({**base, "score": [True, False]}))
    with pytest.raises(FormatError, match="row 1: docno nan is not an id"):
        Run.from_df(pd.DataFrame({**base, "docno": ["a", None]}))
    with pytest.raises(FormatError, match="row 0: qid 1.0 is not an id.*dtype=str"):
        Run.from_df(pd.DataFrame({**base, "qid": [1.0, 2.0]}))


def test_without_pandas_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'rankstack\[pyterrier\]'"):
        RUN.to_df()


_ids = st.sampled_from([f"d{i}" for i in range(12)])


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["1", "2", "q3"]),
                       st.dictionaries(_ids, st.sampled_from([0.0, 1.0, 1.5, -2.0, 1e-300, 7.25]), min_size=1)))
def test_round_trip_property(data):
    run = Run(data)
    df = run.to_df()
    back = Run.from_df(df)
    assert back == run and _lists(back) == _lists(run)
    for q in run:  # ranks are 0..n-1 in the order of Run.ranked
        rows = df[df["qid"] == q]
        assert rows["rank"].tolist() == list(range(len(run[q])))
        assert list(zip(rows["docno"], rows["score"])) == run.ranked(q)


# -- topics frames --------------------------------------------------------------------------------
def test_topics_round_trip_and_errors():
    df = frames.topics_to_frame(QUERIES)
    assert list(df.columns) == ["qid", "query"] and df["qid"].tolist() == ["q1", "q2"]
    assert frames.topics_from_frame(df) == {"q1": "first query", "q2": "second"}
    with pytest.raises(FormatError, match="row 1: qid 'q1' twice"):
        frames.topics_from_frame(pd.DataFrame({"qid": ["q1", "q1"], "query": ["a", "a"]}))
    with pytest.raises(FormatError, match="row 0: the query of 'q1' is (None|nan), not a string"):
        frames.topics_from_frame(pd.DataFrame({"qid": ["q1"], "query": [None]}))
    with pytest.raises(FormatError, match="no column 'query'"):
        frames.topics_from_frame(pd.DataFrame({"qid": ["q1"]}))
    # a results frame repeats each query on every row: allowed, with one text per qid
    res = RUN.to_df(QUERIES)
    assert frames.topics_from_frame(res, repeated=True) == {"q1": "first query", "q2": "second"}
    res.loc[1, "query"] = "changed"
    with pytest.raises(FormatError, match="two query texts"):
        frames.topics_from_frame(res, repeated=True)


# -- qrels frames ---------------------------------------------------------------------------------
def test_qrels_round_trip_and_errors():
    qrels = {"1": {"a": 1, "b": 0}, "2": {"a": 2}}
    df = frames.qrels_to_frame(qrels)
    assert list(df.columns) == ["qid", "docno", "label"] and df["label"].dtype == "int64"
    assert frames.qrels_from_frame(df) == qrels
    assert frames.qrels_from_frame(df.astype({"label": "float64"})) == qrels  # 1.0 is a grade
    with pytest.raises(FormatError, match="row 0: label 0.5 is not a whole number"):
        frames.qrels_from_frame(pd.DataFrame({"qid": ["1"], "docno": ["a"], "label": [0.5]}))
    with pytest.raises(FormatError, match="no column 'label'"):
        frames.qrels_from_frame(df.rename(columns={"label": "relevance"}))
    with pytest.raises(FormatError, match=r"row 1: duplicate \(qid, docno\) pair \('1', 'a'\)"):
        frames.qrels_from_frame(pd.DataFrame({"qid": ["1", "1"], "docno": ["a", "a"], "label": [1, 0]}))
