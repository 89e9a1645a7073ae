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


# -- cache blocking: block boundaries ----------------------------------------------------------------


def _blocked(monkeypatch, block: int) -> None:
    monkeypatch.setattr(bm25_module, "_KERNEL_BLOCK", block)


@pytest.mark.parametrize("block", [1, 2, 3, 64, 1000, 4096])
def test_scifact_blocks_bitwise(sf, monkeypatch, block):
    """Any block size gives the numpy path's results, bit for bit (SciFact: 5,183 documents)."""
    _, queries, _, index = sf
    texts = [q.text for q in queries]
    ref = index.search_many(texts, 1000, kernel="numpy")
    ref10 = index.search_many(texts, 10, norms="exact", kernel="numpy")
    _blocked(monkeypatch, block)
    got = index.search_many(texts, 1000, kernel="numba")
    assert len(index._workspace.acc) == block  # the accumulator is one block, not one per document
    assert_same(got, ref)
    assert_same(index.search_many(texts, 10, norms="exact", kernel="numba"), ref10)
    for t in texts[:20]:
        assert index.search(t, 100, kernel="numba") == index.search(t, 100, kernel="numpy")


# 12 documents: with blocks of 4, the matches sit on the first and last id of blocks, documents 4-7 have
# no posting of any query term (a block with nothing to score is skipped), and the matches of one
# query span several blocks, with ties across blocks
EDGES = [
    Document("d00", "apple banana"),  # block 0, first id
    Document("d01", "filler words"),
    Document("d02", "banana"),
    Document("d03", "apple banana"),  # block 0, last id (ties d00)
    Document("d04", "filler"),
    Document("d05", "words"),
    Document("d06", "filler"),
    Document("d07", "words"),  # block 1: no query term
    Document("d08", "apple banana"),  # block 2, first id (ties d00, d03)
    Document("d09", "apple apple cherry"),
    Document("d10", "words"),
    Document("d11", "cherry banana apple"),  # last document, last id of block 2
]


@pytest.mark.parametrize("block", [1, 2, 3, 4, 5, 8, 11, 12, 100])
def test_block_boundaries(monkeypatch, block):
    idx = BM25Index.build(EDGES, None, progress=False)
    queries = ["apple", "banana", "apple banana", "cherry", "banana cherry apple", "filler", "zebra", "words apple"]
    refs = {k: idx.search_many(queries, k, kernel="numpy") for k in (1, 2, 3, 5, 12, 50)}
    assert [d for d, _ in idx.search("apple banana", k=50, kernel="numpy")][:4] == ["d08", "d03", "d00", "d11"]
    _blocked(monkeypatch, block)
    for k, ref in refs.items():  # k beyond the matches (50), and cuts inside a tie that spans blocks
        assert_same(idx.search_many(queries, k, kernel="numba"), ref)
        assert_same(idx.search_many(queries, k, kernel="numba", batch_size=1), ref)
    for q in queries:
        for k in (1, 3, 50):
            assert idx.search(q, k, kernel="numba") == idx.search(q, k, kernel="numpy")
    # first and last document of the collection are found, and the accumulator is clean afterwards
    assert {d for d, _ in idx.search("apple", k=50, kernel="numba")} == {"d00", "d03", "d08", "d09", "d11"}
    assert not idx._workspace.acc.any()


@pytest.mark.parametrize("norms", ["lucene", "exact"])
def test_guessed_threshold_too_high_falls_back(monkeypatch, norms):
    """The kernel guesses a score threshold from the first block (documents in random order of score);
    here the best documents all come first (scores fall with the document id), so the guess keeps fewer
    than k documents and the query is scored again without it: same results as the numpy path."""
    docs = [Document(f"d{i:03d}", "apple " + "filler " * i) for i in range(400)]
    idx = BM25Index.build(docs, None, progress=False)
    scores = [s for _, s in idx.search("apple", k=400, norms=norms, kernel="numpy")]
    assert len(scores) == 400 and scores == sorted(scores, reverse=True)
    _blocked(monkeypatch, 50)
    for k in (1, 10, 60, 100, 150, 399, 400):
        ref = idx.search_many(["apple", "apple filler", "filler"], k, norms=norms, kernel="numpy")
        assert_same(idx.search_many(["apple", "apple filler", "filler"], k, norms=norms, kernel="numba"), ref)
        assert idx.search("apple", k, norms=norms, kernel="numba") == idx.search("apple", k, norms=norms, kernel="numpy")
    assert not idx._workspace.acc.any()


def test_clause_cache(sf):
    """Boost-1 clause scores kept per posting (``clause_cache``) give the same bits as computing them;
    the cache follows k1/b/norms, and queries with repeated words (boost > 1) mix both."""
    _, queries, _, index = sf
    texts = [q.text for q in queries] + ["cancer cancer risk", "cell cell cell division of cells"]
    ref = {p: index.search_many(texts, 100, k1=p[0], b=p[1], norms=p[2], kernel="numpy")
           for p in ((None, None, "lucene"), (1.2, 0.75, "lucene"), (None, None, "exact"))}
    for cache in (False, True, True):  # the second True reuses the kept scores
        index.clause_cache = cache
        for (k1, b, norms), r in ref.items():
            assert_same(index.search_many(texts, 100, k1=k1, b=b, norms=norms, kernel="numba"), r)
            if cache:
                assert index._clauses is not None and index._clauses[0] == (k1 or index.k1, b or index.b, norms)
                assert len(index._clauses[1]) == len(index.post_docs)
    index.clause_cache = True
