"""Encoder benchmarks on CPU against sentence-transformers, same model, same texts, same run.

    HF_HUB_OFFLINE=1 python benchmarks/bench_encoders.py encode --limit 1000
    HF_HUB_OFFLINE=1 python benchmarks/bench_encoders.py cross --limit 4300
    HF_HUB_OFFLINE=1 python benchmarks/bench_encoders.py int8
    HF_HUB_OFFLINE=1 python benchmarks/bench_encoders.py memory
    HF_HUB_OFFLINE=1 python benchmarks/bench_encoders.py scifact [--cache DIR]

encode: SciFact documents (title + " " + text) -> docs/s of SentenceTransformer.encode (defaults) and
rankstack's BiEncoder (torch, ONNX fp32, ONNX int8), ratios, min cosine vs sentence-transformers.
cross:  DL19 BM25 top-100 pairs -> pairs/s of CrossEncoder.predict (defaults) and CrossEncoderModel
        (a seeded random head on all-MiniLM-L6-v2: no trained cross-encoder ships here; speed and
        equality do not depend on the head), max |diff|.
int8:   DL19 bi-encoder re-ranking nDCG@10, ONNX fp32 vs int8.
memory: peak RSS of scoring 1,000 candidates of 512 tokens with the cross-encoder (fresh process).
scifact: exact and HNSW dense retrieval on SciFact test (nDCG@10, recall@100 of HNSW vs exact,
        queries/s), BM25 + dense hybrids (RRF; interpolation tuned on the train queries).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _scifact_texts(limit: int | None) -> list[str]:
    out = []
    with open(ROOT / "data/scifact/corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            out.append(f"{d['title']} {d['text']}".strip())
            if limit and len(out) >= limit:
                break
    return out


THREADS = 1  # set from --threads: the peer (torch) and every rankstack model run this many


def bench_encode(limit: int, cache: str) -> None:
    from sentence_transformers import SentenceTransformer

    from rankstack.encoders.runtime import BiEncoder, default_model_path

    texts = _scifact_texts(limit)
    st = SentenceTransformer(default_model_path(), device="cpu")
    st.encode(texts[:8])
    t_st, ref = _timed(lambda: st.encode(texts))
    print(f"encode {len(texts)} SciFact docs; sentence-transformers {len(texts) / t_st:.1f} docs/s")
    for name, kw in [
        ("torch", {}),
        ("onnx-fp32", {"backend": "onnx"}),
        ("onnx-int8", {"backend": "onnx", "quantize": "int8"}),
    ]:
        enc = BiEncoder(cache_dir=cache, threads=THREADS, **kw)
        enc.encode(texts[:8], warn=False)  # load / export outside the timing
        t, e = _timed(lambda: enc.encode(texts, warn=False))  # noqa: B023 (called at once)
        cos = (e * ref).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(ref, axis=1)
        print(
            f"  rankstack {name:10s} {len(texts) / t:7.1f} docs/s  x{t_st / t:.2f} vs ST  min cos {cos.min():.6f} mean {cos.mean():.6f}"
        )


def _dl19():

    from rankstack.data.formats import read_qrels, read_queries, read_run
    from rankstack.data.records import Document

    run = read_run(ROOT / "data/trec-dl-2019/bm25.top100.trec")
    qs = [q for q in read_queries(ROOT / "data/trec-dl-2019/queries.tsv") if q.id in run]
    docs = {}
    with open(ROOT / "data/trec-dl-2019/collection.tsv", encoding="utf-8") as f:
        for line in f:
            pid, _, text = line.rstrip("\n").partition("\t")
            docs[pid] = Document(pid, text)
    return qs, run, docs, read_qrels(ROOT / "data/trec-dl-2019/qrels.txt")


def bench_cross(limit: int, cache: str) -> None:
    from sentence_transformers import CrossEncoder

    from rankstack.encoders.runtime import CrossEncoderModel
    from rankstack.testing import random_head_cross_encoder as random_cross_encoder

    qs, run, docs, _ = _dl19()
    pairs = [(q.text, docs[d].contents) for q in qs for d, _ in run.ranked(q.id)][:limit]
    path = random_cross_encoder()
    ce = CrossEncoder(path, device="cpu")
    ce.predict(pairs[:8])
    t_st, ref = _timed(lambda: ce.predict(pairs))
    print(f"cross-encoder {len(pairs)} DL19 pairs; CrossEncoder.predict {len(pairs) / t_st:.1f} pairs/s")
    for name, kw in [
        ("torch", {}),
        ("onnx-fp32", {"backend": "onnx"}),
        ("onnx-int8", {"backend": "onnx", "quantize": "int8"}),
    ]:
        m = CrossEncoderModel(path, cache_dir=cache, threads=THREADS, **kw)
        m.predict(pairs[:8], warn=False)
        t, s = _timed(lambda: m.predict(pairs, warn=False))  # noqa: B023 (called at once)
        print(
            f"  rankstack {name:10s} {len(pairs) / t:7.1f} pairs/s  x{t_st / t:.2f} vs ST  max|diff| {np.abs(s - ref).max():.2e}"
        )


def bench_int8(cache: str, fp32: bool = True) -> None:
    from rankstack.encoders.runtime import BiEncoder
    from rankstack.measures import evaluate
    from rankstack.stages.dense import DenseReranker

    qs, run, docs, qrels = _dl19()
    variants = [("onnx-fp32", {"backend": "onnx"})] if fp32 else []
    for name, kw in variants + [("onnx-int8", {"backend": "onnx", "quantize": "int8"})]:
        t, out = _timed(lambda: DenseReranker(docs, encoder=BiEncoder(cache_dir=cache, **kw))(qs, run))  # noqa: B023 (called at once)
        print(
            f"DL19 bi-encoder rerank {name}: nDCG@10 {evaluate(qrels, out, ['nDCG@10'])['nDCG@10']:.4f} ({t:.1f} s)"
        )


def bench_memory(n: int = 1000) -> None:
    code = (
        "import os,sys,resource,warnings; warnings.filterwarnings('ignore'); "
        "from rankstack.testing import random_head_cross_encoder as random_cross_encoder; from rankstack.encoders.runtime import CrossEncoderModel;"
        "m=CrossEncoderModel(random_cross_encoder(), max_length=512);"
        "doc=' '.join(['relevance ranking model']*200);"
        "base=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        f"s=m.predict([('query about ranking', doc)]*{n}, warn=False);"
        "print(len(s), m.tokens, base/1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    n, tokens, base, peak = out.stdout.split()
    print(
        f"memory: {n} x 512-token pairs, {tokens} tokens; RSS after load {float(base):.0f} MB, peak {float(peak):.0f} MB"
    )


def bench_scifact(cache: str) -> None:
    from rankstack.data.formats import load_collection, read_qrels
    from rankstack.encoders.runtime import BiEncoder
    from rankstack.index.dense import DenseIndex, encode_corpus, load_embeddings
    from rankstack.measures import evaluate
    from rankstack.stages.dense import DenseRetriever
    from rankstack.stages.fusion import fuse_runs, tune_weights

    test = load_collection(ROOT / "data/scifact")
    train_q = load_collection(ROOT / "data/scifact", split="train").queries
    train_qrels = read_qrels(ROOT / "data/scifact/qrels/train.tsv")
    enc = BiEncoder()
    enc_dir = Path(cache) / "scifact-minilm"
    t, _ = _timed(lambda: encode_corpus(list(test.docs.values()), enc_dir, enc, shard_size=512))
    ids, emb = load_embeddings(enc_dir)
    flat = DenseIndex.from_embeddings(ids, emb, meta={"metric": "cosine"})
    hnsw = DenseIndex.from_embeddings(
        ids, emb, kind="hnsw", m=32, ef_construction=200, meta={"metric": "cosine"}
    )
    res = {}
    for name, idx, ef in [("exact", flat, None), ("hnsw", hnsw, 256)]:
        r = DenseRetriever(idx, encoder=enc, k=1000, ef_search=ef)
        t, run = _timed(lambda: r(test.queries))  # noqa: B023 (called at once)
        res[name] = run
        print(
            f"SciFact dense {name}: nDCG@10 {evaluate(test.qrels, run, ['nDCG@10'])['nDCG@10']:.4f} "
            f"({len(test.queries) / t:.1f} queries/s incl. query encoding)"
        )
    rec = np.mean(
        [
            len(set(res["exact"].ranked(q)[:100]) & set(res["hnsw"].ranked(q)[:100])) / 100
            for q in res["exact"]
        ]
    )
    print(f"HNSW recall@100 vs exact: {rec:.4f}")
    from rankstack.index.bm25 import BM25Index
    from rankstack.stages.bm25 import BM25Retriever

    bm = BM25Retriever(BM25Index.build(list(test.docs.values()), progress=False), k=1000)
    bm_test, bm_train = bm(test.queries), bm(train_q)
    dn_train = DenseRetriever(flat, encoder=enc, k=1000)(train_q)
    print(f"BM25 nDCG@10 {evaluate(test.qrels, bm_test, ['nDCG@10'])['nDCG@10']:.4f}")
    rrf = fuse_runs([bm_test, res["exact"]], "rrf")
    print(f"hybrid RRF(k=60) nDCG@10 {evaluate(test.qrels, rrf, ['nDCG@10'])['nDCG@10']:.4f}")
    for norm in ("minmax", "zscore"):
        tuned = tune_weights([bm_train, dn_train], train_qrels, "nDCG@10", norm=norm)
        fused = fuse_runs([bm_test, res["exact"]], "wsum", norm, tuned["weights"])
        print(
            f"hybrid wsum {norm} weights {tuned['weights']} (train {tuned['score']:.4f}): "
            f"test nDCG@10 {evaluate(test.qrels, fused, ['nDCG@10'])['nDCG@10']:.4f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["encode", "cross", "int8", "memory", "scifact"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument(
        "--int8-only", action="store_true", help="int8: skip the fp32 run (fp32 = torch = 0.6424)"
    )
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/rankstack/enc"))
    ap.add_argument("--threads", type=int, default=1,
                    help="threads of the peer (torch.set_num_threads) and of every rankstack model (default 1)")
    a = ap.parse_args()
    global THREADS
    THREADS = a.threads
    import torch

    torch.set_num_threads(THREADS)
    onnx_cache = os.path.join(a.cache, "onnx")
    print(f"threads={THREADS} (of {len(os.sched_getaffinity(0))} CPUs) load={os.getloadavg()[0]:.1f}")
    if a.what == "encode":
        bench_encode(a.limit or 5183, onnx_cache)
    elif a.what == "cross":
        bench_cross(a.limit or 4300, onnx_cache)
    elif a.what == "int8":
        bench_int8(onnx_cache, fp32=not a.int8_only)
    elif a.what == "memory":
        bench_memory(a.limit or 1000)
    else:
        bench_scifact(a.cache)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
