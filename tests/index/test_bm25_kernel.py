"""The compiled (numba) BM25 query kernel gives exactly the numpy path's results (issue #22).

Bitwise: same document indices in the same order, same float32 scores (compared as bits), on SciFact
at k=1000 and small k, Lucene and exact norms, other k1/b, in-memory and memory-mapped indexes, and
on a toy collection whose ties straddle the cut.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from rankstack.data.records import Document, Query
from rankstack.errors import ConfigError
from rankstack.index import bm25 as bm25_module
from rankstack.index.bm25 import BM25Index
from rankstack.stages.bm25 import BM25Retriever

pytest.importorskip("numba")

SCIFACT = Path(__file__).resolve().parents[2] / "data" / "scifact"


def scifact():
    docs = [Document(d["_id"], d["text"], d.get("title", "")) for d in map(json.loads, open(SCIFACT / "corpus.jsonl"))]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(SCIFACT / "qrels" / "test.tsv") as f:
        next(f)
        for line in f:
            q, d, r = line.rstrip("\n").split("\t")
            qrels[q][d] = int(r)
    queries = [Query(d["_id"], d["text"]) for d in map(json.loads, open(SCIFACT / "queries.jsonl")) if d["_id"] in qrels]
    return docs, queries, dict(qrels)


@pytest.fixture(scope="module")
def sf():
    docs, queries, qrels = scifact()
    return docs, queries, qrels, BM25Index.build(docs, None, progress=False)


def assert_same(a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]]) -> None:
    assert len(a) == len(b)
    for (ia, sa), (ib, sb) in zip(a, b):
        assert ia.dtype == ib.dtype == np.int64 and sa.dtype == sb.dtype == np.float32
        assert ia.tolist() == ib.tolist()
        assert sa.view(np.int32).tolist() == sb.view(np.int32).tolist()  # bit for bit


def test_auto_uses_the_compiled_kernel(sf):
    index = sf[3]
    assert index.kernel == "auto" and index._use_numba(None) is not None  # the default path is compiled
    assert index._use_numba("numpy") is None
    with pytest.raises(ConfigError, match="kernel must be one of"):
        index.search("cancer", kernel="fortran")


@pytest.mark.parametrize("norms", ["lucene", "exact"])
def test_scifact_k1000_bitwise(sf, norms):
    _, queries, _, index = sf
    texts = [q.text for q in queries]
    ref = index.search_many(texts, 1000, norms=norms, kernel="numpy")
    got = index.search_many(texts, 1000, norms=norms, kernel="numba")
    assert_same(got, ref)
    assert sum(len(i) for i, _ in got) > 250_000  # most queries fill their 1000 (a real comparison)
    # one query a call: same results, and (doc_id, score) pairs identical to the numpy path
    for t in texts[:60]:
        assert index.search(t, 1000, norms=norms, kernel="numba") == index.search(t, 1000, norms=norms, kernel="numpy")


def test_scifact_small_k_other_params_and_batches(sf):
    _, queries, _, index = sf
    texts = [q.text for q in queries]
    for k, k1, b in ((1, None, None), (10, None, None), (37, 1.2, 0.75), (10, 0.0, 0.0), (10, 2.0, 1.0)):
        ref = index.search_many(texts, k, k1=k1, b=b, kernel="numpy")
        assert_same(index.search_many(texts, k, k1=k1, b=b, kernel="numba"), ref)
        assert_same(index.search_many(texts, k, k1=k1, b=b, kernel="numba", batch_size=7), ref)
    # top 10 is the head of top 1000
    head = [(i[:10], s[:10]) for i, s in index.search_many(texts, 1000, kernel="numba")]
    assert_same(index.search_many(texts, 10, kernel="numba"), head)


def test_memmap_index_bitwise(sf, tmp_path):
    _, queries, _, index = sf
    index.save(tmp_path / "idx")
    loaded = BM25Index.load(tmp_path / "idx", mmap=True)
    assert isinstance(loaded.post_docs, np.memmap)
    texts = [q.text for q in queries]
    ref = index.search_many(texts, 1000, kernel="numpy")
    assert_same(loaded.search_many(texts, 1000, kernel="numba"), ref)
    assert_same(loaded.search_many(texts, 1000, kernel="numpy"), ref)


def test_scifact_ndcg_through_the_kernel(sf):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    _, queries, qrels, index = sf
    run = BM25Retriever(index, k=1000)(queries)  # default kernel="auto": the compiled one
    res = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run.to_dict())
    ndcg = sum(res.get(q, {}).get("ndcg_cut_10", 0.0) for q in qrels) / len(qrels)
    assert abs(ndcg - 0.6789) < 5e-4  # Anserini 0.22.1's figure
    assert run["3"]["3672261"] == pytest.approx(16.3881, abs=1e-4)


# -- ties at the cut, edge cases --------------------------------------------------------------------

TIES = [
    Document("a", "apple banana"),
    Document("c", "apple banana"),
    Document("b", "apple banana"),
    Document("e", "apple banana"),
    Document("d", "apple banana"),
    Document("x", "apple apple banana banana cherry"),
    Document("y", "cherry"),
    Document("z", "the of"),  # stop words only
]


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_ties_straddling_the_cut(kernel):
    idx = BM25Index.build(TIES, None, progress=False)
    full = idx.search("apple", k=10, kernel=kernel)
    tied = [d for d, s in full if s == full[1][1]]
    assert tied == ["e", "d", "c", "b", "a"]  # five equal scores, ids descending
    assert [d for d, _ in full][0] == "x"
    # the cut at k keeps the tied documents trec_eval ranks first
    assert [d for d, _ in idx.search("apple", k=3, kernel=kernel)] == ["x", "e", "d"]
    assert [d for d, _ in idx.search("apple", k=1, kernel=kernel)] == ["x"]
    for k in range(0, 9):
        ref = idx.search_many(["apple", "banana cherry", "cherry"], k, kernel="numpy")
        assert_same(idx.search_many(["apple", "banana cherry", "cherry"], k, kernel=kernel), ref)


def test_edge_cases():
    idx = BM25Index.build(TIES, None, progress=False)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
    for kernel in ("numba", "numpy"):
        assert idx.search("", kernel=kernel) == [] and idx.search("the of", kernel=kernel) == []
        assert idx.search("zebra", kernel=kernel) == []
        assert idx.search("apple", k=0, kernel=kernel) == []
        assert len(idx.search("apple", k=10**9, kernel=kernel)) == 6  # k beyond the matches
        got = idx.search_many(["", "zebra", "apple", "cherry"], 5, kernel=kernel)
        assert_same(got[:2], [empty, empty])
        assert len(got[2][0]) == 5 and len(got[3][0]) == 2
        assert idx.search_many([], 5, kernel=kernel) == []
        with pytest.raises(ConfigError, match="k must be >= 0"):
            idx.search_many(["apple"], -1, kernel=kernel)
    # the accumulator is left clean between calls (a stale score would change the next query)
    a = idx.search("apple", kernel="numba")
    idx.search("cherry banana", k=1, kernel="numba")
    assert idx.search("apple", kernel="numba") == a


def test_numba_missing(monkeypatch):
    from rankstack.errors import MissingDependencyError

    idx = BM25Index.build(TIES, None, progress=False)
    monkeypatch.setattr(bm25_module, "_kernel_module", MissingDependencyError("numba is not installed: ..."))
    assert idx._use_numba("auto") is None  # falls back to numpy
    assert [d for d, _ in idx.search("apple", k=3)] == ["x", "e", "d"]
    with pytest.raises(MissingDependencyError, match="kernel='numba'"):
        idx.search("apple", kernel="numba")
