"""Lucene-equivalent BM25: index build/save/load, scoring, retrieval on SciFact and DL19."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from rankstack.data.records import Document, Query, Run
from rankstack.errors import StageError
from rankstack.index.bm25 import LENGTH_TABLE, BM25Index, byte4_to_int, int_to_byte4
from rankstack.stages.bm25 import BM25Reranker, BM25Retriever

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT / "data" / "scifact"
DL19 = ROOT / "data" / "trec-dl-2019"


# -- small helpers (read the files directly; no dependency on rankstack.data.formats) ---------------


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


def ndcg10(run: Run, qrels) -> float:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    res = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run.to_dict())
    return sum(res.get(q, {}).get("ndcg_cut_10", 0.0) for q in qrels) / len(qrels)


@pytest.fixture(scope="module")
def sf():
    docs, queries, qrels = scifact()
    return docs, queries, qrels, BM25Index.build(docs, None, progress=False)


TOY = [
    Document("d1", "cancer cells grow fast", "Cancer"),
    Document("d2", "healthy cells"),
    Document("d3", "the growth of cancer cells in mice and the cells of humans " * 7 + "tumour"),
    Document("d4", "the of and"),  # only stop words: never retrieved, not in docCount
    Document("d5", "healthy cells"),  # a twin of d2 (ties)
]


# -- Lucene's SmallFloat length encoding -----------------------------------------------------------


def test_smallfloat_matches_lucene():
    # values printed by Lucene 9's SmallFloat.intToByte4 / byte4ToInt
    assert int_to_byte4(np.arange(24)).tolist() == list(range(24))
    assert int_to_byte4([25, 30, 40, 100, 150, 200, 255, 300, 1000]).tolist() == [25, 30, 40, 57, 63, 67, 70, 72, 87]
    assert int(byte4_to_int(255)) == 2013265944 and int(byte4_to_int(254)) == 1879048216
    assert LENGTH_TABLE[:24].tolist() == list(range(24))
    # decoding is monotone and never overshoots
    assert (np.diff(LENGTH_TABLE) > 0).all()
    x = np.arange(0, 5000)
    assert (byte4_to_int(int_to_byte4(x)) <= x).all()
    assert (int_to_byte4(byte4_to_int(np.arange(256))) == np.arange(256)).all()


# -- scoring by hand -------------------------------------------------------------------------------


def test_scores_follow_lucene_formula():
    idx = BM25Index.build(TOY, None, progress=False)
    assert idx.doc_count == 4 and idx.num_docs == 5
    lengths = dict(zip(idx.doc_ids.tolist(), idx.doc_lengths.tolist()))
    assert lengths["d4"] == 0 and lengths["d1"] == 5  # "cancer cancer cell grow fast"
    avgdl = sum(lengths.values()) / 4
    k1, b = 0.9, 0.4

    def bm25(term_df, tf, dl):
        idf = math.log(1 + (4 - term_df + 0.5) / (term_df + 0.5))
        dl = int(LENGTH_TABLE[int(int_to_byte4(dl))])
        return idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))

    got = dict(idx.search("cancer healthy", k=10))
    assert set(got) == {"d1", "d2", "d3", "d5"}
    assert got["d1"] == pytest.approx(bm25(2, 2, 5), rel=1e-6)
    assert got["d3"] == pytest.approx(bm25(2, 7, lengths["d3"]), rel=1e-6)
    assert lengths["d3"] == 43 and int(LENGTH_TABLE[int(int_to_byte4(43))]) == 42  # quantised
    assert got["d2"] == pytest.approx(bm25(2, 1, 2), rel=1e-6)
    # a repeated query word is a boost of 2: exactly twice the score
    assert dict(idx.search("cancer cancer"))["d1"] == 2 * dict(idx.search("cancer"))["d1"]


def test_k1_b_change_scores_and_norms():
    idx = BM25Index.build(TOY, None, progress=False)
    base = dict(idx.search("cancer cells"))
    other = dict(idx.search("cancer cells", k1=1.2, b=0.75))
    assert set(base) == set(other) and all(base[d] != other[d] for d in base)
    # b = 0: no length normalisation, so d2 and d1 get the same "cells" score
    flat = dict(idx.search("cells", b=0.0))
    assert flat["d1"] == flat["d2"]
    # exact lengths differ from Lucene's quantised ones only for documents longer than 23 terms
    exact = dict(idx.search("cancer", norms="exact"))
    lucene = dict(idx.search("cancer"))
    assert exact["d1"] == lucene["d1"] and exact["d3"] != lucene["d3"]
    r1 = BM25Retriever(idx, k1=1.2, b=0.75)([Query("q", "cancer cells")])
    assert r1["q"] == pytest.approx(other)
    with pytest.raises(ValueError, match="b must be in"):
        BM25Retriever(idx, b=1.5)


def test_ties_in_trec_eval_order_and_cut():
    idx = BM25Index.build(TOY, None, progress=False)
    full = idx.search("healthy", k=10)
    assert [d for d, _ in full] == ["d5", "d2"] and full[0][1] == full[1][1]
    # retrieving 1 keeps the tied document trec_eval ranks first (larger id), like run.cut(1)
    assert [d for d, _ in idx.search("healthy", k=1)] == ["d5"]
    run = BM25Retriever(idx, k=10)([Query("q", "healthy")])
    assert run.cut(1)["q"] == dict(idx.search("healthy", k=1))


def test_empty_query_warns_and_returns_empty():
    idx = BM25Index.build(TOY, None, progress=False)
    qs = [Query("stop", "The of and to"), Query("oov", "zebra"), Query("ok", "cancer")]
    with pytest.warns(UserWarning, match="2 queries have no indexed term"):
        run = BM25Retriever(idx)(qs)
    assert run["stop"] == {} and run["oov"] == {} and len(run["ok"]) == 2
    assert idx.search("the") == []


def test_bad_input():
    with pytest.raises(ValueError, match="duplicate document id 'a'"):
        BM25Index.build([Document("a", "x"), Document("b", "y"), Document("a", "z")], None, progress=False)
    with pytest.raises(ValueError, match="fields must be one of"):
        BM25Index.build(TOY, None, fields="body", progress=False)
    with pytest.raises(TypeError, match="Document records"):
        BM25Index.build(["just a string"], None, progress=False)


def test_fields():
    title_only = BM25Index.build(TOY, None, fields="title", progress=False)
    assert [d for d, _ in title_only.search("cancer")] == ["d1"]
    text_only = BM25Index.build(TOY, None, fields="text", progress=False)
    assert int(text_only.doc_lengths[0]) == 4


# -- persistence -----------------------------------------------------------------------------------


def test_save_load_mmap_round_trip(sf, tmp_path):
    docs, queries, qrels, index = sf
    index.save(tmp_path / "idx")
    loaded = BM25Index.load(tmp_path / "idx", mmap=True)
    assert isinstance(loaded.post_docs, np.memmap) and isinstance(loaded.doc_ids, np.memmap)
    assert loaded.fingerprint == index.fingerprint and loaded.vocab == index.vocab
    assert loaded.meta == index.meta
    a = BM25Retriever(index, k=100)(queries[:50])
    b = BM25Retriever(tmp_path / "idx", k=100)(queries[:50])
    assert a.to_dict() == b.to_dict()
    c = BM25Retriever(BM25Index.load(tmp_path / "idx", mmap=False), k=100)(queries[:50])
    assert c.to_dict() == a.to_dict()
    assert BM25Retriever(tmp_path / "idx").config()["index"] == {"fingerprint": index.fingerprint}
    # the cache key follows the index's content, not where it lives
    assert BM25Retriever(tmp_path / "idx").config() == BM25Retriever(index).config()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json is missing"):
        BM25Index.load(tmp_path)
    BM25Index.build(TOY, tmp_path / "i", progress=False)
    (tmp_path / "i" / "post_tfs.npy").unlink()
    with pytest.raises(FileNotFoundError, match="post_tfs.npy is missing"):
        BM25Index.load(tmp_path / "i")


# -- real collections ------------------------------------------------------------------------------


@pytest.mark.slow
def test_scifact_ndcg_equals_anserini(sf):
    docs, queries, qrels, index = sf
    assert index.num_docs == 5183 and len(queries) == 300
    run = BM25Retriever(index, k=1000)(queries)
    # Anserini 0.22.1 (Lucene 9, k1=0.9 b=0.4, flat title+text index): 0.6789
    assert abs(ndcg10(run, qrels) - 0.6789) < 5e-4
    # scores of Anserini's run (printed to 4 decimals)
    assert run["1"]["10608397"] == pytest.approx(6.5988, abs=1e-4)
    assert run["3"]["3672261"] == pytest.approx(16.3881, abs=1e-4)
    assert run["100"]["4381486"] == pytest.approx(12.1341, abs=1e-4)
    assert run.ranked("3")[0][0] == "3672261"
    # exact (unquantised) lengths: what bm25s-style BM25 computes with this analyzer
    exact = BM25Retriever(index, k=1000, norms="exact")(queries)
    assert abs(ndcg10(exact, qrels) - 0.6777) < 5e-4
    # batch size does not change anything
    assert BM25Retriever(index, k=1000, batch_size=7)(queries).to_dict() == run.to_dict()


@pytest.mark.slow
def test_dl19_retrieval_is_deterministic(tmp_path):
    docs = []
    with open(DL19 / "collection.tsv", encoding="utf-8") as f:
        for line in f:
            pid, text = line.rstrip("\n").split("\t", 1)
            docs.append(Document(pid, text))
    queries = []
    with open(DL19 / "queries.tsv", encoding="utf-8") as f:
        for line in f:
            qid, text = line.rstrip("\n").split("\t", 1)
            queries.append(Query(qid, text))
    assert len(docs) == 4297 and len(queries) == 43
    a = BM25Index.build(docs, tmp_path / "a", progress=False)
    b = BM25Index.build(list(reversed(docs)), None, progress=False, batch_size=100)
    assert len(a.vocab) == len(b.vocab)
    r1 = BM25Retriever(a, k=100)(queries)
    r2 = BM25Retriever(BM25Index.load(tmp_path / "a"), k=100)(queries)
    r3 = BM25Retriever(b, k=100)(queries)
    assert r1.fingerprint() == r2.fingerprint() == r3.fingerprint()
    assert sum(len(v) for v in r1.values()) == 43 * 100


def test_reranker_matches_retriever(sf):
    docs, queries, qrels, index = sf
    qs = queries[:20]
    first = BM25Retriever(index, k=50)(qs)
    rescored = BM25Reranker(index)(qs, first)
    assert rescored.to_dict() == first.to_dict()
    other = BM25Reranker(index, k1=1.2, b=0.75)(qs, first)
    assert other.to_dict() != first.to_dict()
    bad = Run({qs[0].id: {"no-such-doc": 1.0}})
    with pytest.raises(StageError, match="'no-such-doc'.*not in the BM25 index"):
        BM25Reranker(index)(qs[:1], bad)


def test_registry_creates_bm25(sf, tmp_path):
    from rankstack.registry import create

    index = BM25Index.build(TOY, tmp_path / "toy", progress=False)
    stage = create("bm25", index=tmp_path / "toy", k=3)
    assert isinstance(stage, BM25Retriever) and stage.index.fingerprint == index.fingerprint
