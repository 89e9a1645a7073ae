"""Dense retrieval: resumable encoding, FAISS flat/HNSW indexes on disk, incremental add, DL19 figure."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("faiss")
pytest.importorskip("torch")

from rankstack.data.formats import read_qrels, read_queries, read_run
from rankstack.data.records import Document, Query
from rankstack.encoders.runtime import BiEncoder
from rankstack.errors import StageError
from rankstack.index.dense import DenseIndex, encode_corpus, load_embeddings
from rankstack.measures import evaluate
from rankstack.stages.dense import DenseReranker, DenseRetriever

ROOT = Path(__file__).resolve().parents[2]


def _dl19_docs(n: int | None = None) -> dict[str, Document]:
    docs: dict[str, Document] = {}
    with open(ROOT / "data/trec-dl-2019/collection.tsv", encoding="utf-8") as f:
        for line in f:
            pid, _, text = line.rstrip("\n").partition("\t")
            docs[pid] = Document(pid, text)
            if n is not None and len(docs) >= n:
                break
    return docs


@pytest.fixture(scope="module")
def enc() -> BiEncoder:
    return BiEncoder(max_length=128)


@pytest.fixture(scope="module")
def docs() -> dict[str, Document]:
    return _dl19_docs(40)


def test_resumable_encoding_equals_one_shot(tmp_path, enc, docs):
    d = tmp_path / "enc"
    assert encode_corpus(docs, d, enc, shard_size=8, limit=2, progress=False) is False
    assert sorted(p.name for p in (d / "shards").iterdir()) == ["00000.npy", "00001.npy"]
    first = np.load(d / "shards" / "00000.npy")
    with pytest.raises(StageError, match="missing"):
        load_embeddings(d)
    assert encode_corpus(docs, d, enc, shard_size=8, progress=False) is True  # resumes at shard 2
    np.testing.assert_array_equal(np.load(d / "shards" / "00000.npy"), first)  # kept, not redone
    ids, emb = load_embeddings(d)
    assert ids == list(docs)
    one_shot = enc.encode([x.contents for x in docs.values()], warn=False)
    one_shot /= np.linalg.norm(one_shot, axis=1, keepdims=True)
    np.testing.assert_allclose(emb, one_shot, atol=1e-5)
    # a different corpus in the same directory is refused, naming what differs
    other = dict(list(docs.items())[:-1])
    with pytest.raises(StageError, match="different n"):
        encode_corpus(other, d, enc, shard_size=8, progress=False)


def test_flat_and_hnsw_on_disk_mmap_and_add(tmp_path, enc, docs):
    items = list(docs.values())
    flat = DenseIndex.build(items[:30], tmp_path / "flat", encoder=enc, progress=False)
    hnsw = DenseIndex.build(
        items[:30],
        tmp_path / "hnsw",
        encoder=enc,
        kind="hnsw",
        m=8,
        progress=False,
        encodings_dir=tmp_path / "flat" / "encodings",
    )
    queries = [Query(d.id, d.text) for d in items[:5]]
    for idx_dir in ("flat", "hnsw"):
        loaded = DenseIndex.load(tmp_path / idx_dir)
        assert len(loaded) == 30 and loaded.meta["kind"] == idx_dir
        run = DenseRetriever(loaded, encoder=enc, k=5, ef_search=32)(queries)
        for q in queries:  # a passage's own text finds it first, with cosine ~1
            top, score = run.ranked(q.id)[0]
            assert top == q.id and score == pytest.approx(1.0, abs=1e-4)
    # exact and HNSW agree on this small set
    r1 = DenseRetriever(flat, k=10)(queries)
    r2 = DenseRetriever(hnsw, k=10, ef_search=64)(queries)
    assert all(set(r1[q.id]) == set(r2[q.id]) for q in queries)
    # incremental add, also to a memory-mapped index; then save and reload
    loaded = DenseIndex.load(tmp_path / "flat")
    assert loaded.add(items[30:], encoder=enc) == 10 and len(loaded) == 40
    with pytest.raises(StageError, match="already in the dense index"):
        loaded.add(items[:1], encoder=enc)
    loaded.save(tmp_path / "flat2")
    again = DenseIndex.load(tmp_path / "flat2")
    q = Query("new", items[35].text)
    assert DenseRetriever(again, encoder=enc, k=1)([q]).ranked("new")[0][0] == items[35].id


def test_retriever_needs_an_index():
    with pytest.raises(StageError, match="needs an index"):
        DenseRetriever()
    with pytest.raises(FileNotFoundError, match="no dense index"):
        DenseIndex.load("/nonexistent-dir")


def test_reranker_matches_per_query_scoring(enc, docs):
    items = list(docs)
    from rankstack.data.records import Run

    run = Run({"a": {d: 1.0 for d in items[:6]}, "b": {d: 1.0 for d in items[4:9]}, "c": {}})
    qs = [Query("a", "what is a rba"), Query("b", "symptoms of shingles"), Query("c", "nothing")]
    rr = DenseReranker(docs, encoder=enc)
    out = rr(qs, run)
    assert out.stats["unique_docs"] == 9 and out["c"] == {}
    for q in qs[:2]:
        direct = rr.score(q, [docs[d] for d in run[q.id]])
        np.testing.assert_allclose([out[q.id][d] for d in run[q.id]], direct, atol=1e-5)


@pytest.mark.slow
def test_dl19_bi_encoder_rerank_ndcg():
    """all-MiniLM-L6-v2 re-ranking the DL19 BM25 top-100: nDCG@10 0.6424 (data/PROVENANCE.md)."""
    docs = _dl19_docs()
    run = read_run(ROOT / "data/trec-dl-2019/bm25.top100.trec")
    qrels = read_qrels(ROOT / "data/trec-dl-2019/qrels.txt")
    queries = [q for q in read_queries(ROOT / "data/trec-dl-2019/queries.tsv") if q.id in run]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = DenseReranker(docs)(queries, run)
    assert out.num_items() == 4300
    assert evaluate(qrels, out, ["nDCG@10"])["nDCG@10"] == pytest.approx(0.6424, abs=0.005)


def test_pq_index_compresses_retrieves_and_checks_its_shape(tmp_path, enc):
    """kind="pq" (issue #21's compressed shards): pq_m bytes a vector on disk, loaded memory-mapped, a
    passage's own text still ranks it near the top; bad shapes are ConfigErrors naming the problem."""
    from rankstack.errors import ConfigError
    from rankstack.index.dense import INDEX_FILE, train_pq

    docs = _dl19_docs(300)
    DenseIndex.build(docs, tmp_path / "pq", encoder=enc, kind="pq", pq_m=48, progress=False)
    size = (tmp_path / "pq" / INDEX_FILE).stat().st_size
    assert 300 * 48 <= size < 300 * 48 + 256 * 384 * 4 + 4096  # codes + the codebook, vs 460,800 flat
    loaded = DenseIndex.load(tmp_path / "pq")
    assert loaded.meta["kind"] == "pq" and loaded.meta["pq_m"] == 48 and len(loaded) == 300
    items = list(docs.values())
    queries = [Query(d.id, d.text) for d in items[:20]]
    run = DenseRetriever(loaded, encoder=enc, k=10)(queries)
    top3 = sum(q.id in [d for d, _ in run.ranked(q.id)[:3]] for q in queries)
    assert top3 >= 17, top3  # approximate: most passages find themselves in the top 3
    _, emb = load_embeddings(tmp_path / "pq" / "encodings")
    with pytest.raises(ConfigError, match="pq_m must divide the dimension 384"):
        train_pq(emb, 7)
    with pytest.raises(ConfigError, match="at least 256 training vectors"):
        train_pq(emb[:100], 48)
    with pytest.raises(ConfigError, match="applies to kind='pq'"):
        DenseIndex.from_embeddings(list(docs)[:10], emb[:10], kind="flat", quantizer=train_pq(emb, 48))
    full = train_pq(emb, 48)
    full.add(emb[:1])
    with pytest.raises(ConfigError, match="empty trained PQ index"):
        DenseIndex.from_embeddings(list(docs)[:10], emb[:10], kind="pq", quantizer=full)
