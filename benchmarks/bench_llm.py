"""LLM rerankers on TREC DL19: BM25 top-k candidates reranked by each scorer with its natural strategy.

    nice -n 10 python benchmarks/bench_llm.py --k 20 --queries 43 --models smollm2 gemma3-270m \
        --scorers pointwise qlm pairwise setwise listwise first eliminate reasoning --threads 1
    nice -n 10 python benchmarks/bench_llm.py --compare-first --k 20 --queries 10 --models smollm2

Reports nDCG@10 (trec_eval semantics: linear gains, log2 discount, ties by doc id desc) next to BM25's on
the same candidates and queries, with LLM calls, tokens and seconds per query. ``--compare-first``
compares FIRST (one forward pass per window) with the generated RankGPT permutation on the same backend,
window 20, stride 10: latency per query, Kendall tau and top-10 overlap between the two orders.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from rankstack.data.records import Document, Query, Run

ROOT = Path(__file__).resolve().parents[1]
DL19 = ROOT / "data" / "trec-dl-2019"


def load_dl19(k: int):
    queries = [Query(*line.rstrip("\n").split("\t", 1)) for line in open(DL19 / "queries.tsv", encoding="utf-8")]
    full: dict[str, dict[str, float]] = {}
    for line in open(DL19 / "bm25.top100.trec", encoding="utf-8"):
        q, _, d, rank, score, _ = line.split()
        full.setdefault(q, {})[d] = float(score)
    qrels: dict[str, dict[str, int]] = {}
    for line in open(DL19 / "qrels.txt", encoding="utf-8"):
        q, _, d, g = line.split()
        qrels.setdefault(q, {})[d] = int(g)
    docs = {}
    for line in open(DL19 / "collection.tsv", encoding="utf-8"):
        pid, text = line.rstrip("\n").split("\t", 1)
        docs[pid] = Document(pid, text)
    full_run = Run(full, name="bm25")
    return queries, full_run, full_run.cut(k), qrels, docs


def ndcg10(run: Run, qrels: dict[str, dict[str, int]], qids: list[str]) -> float:
    vals = []
    for q in qids:
        rel = qrels.get(q, {})
        gains = [rel.get(d, 0) for d, _ in run.ranked(q)[:10]]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)
        ideal = sorted((g for g in rel.values() if g > 0), reverse=True)[:10]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        vals.append(dcg / idcg if idcg > 0 else 0.0)
    return float(np.mean(vals))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--queries", type=int, default=43)
    ap.add_argument("--models", nargs="+", default=["smollm2"])
    ap.add_argument("--scorers", nargs="+", default=["pointwise", "first"])
    ap.add_argument("--backend", default="transformers")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-words", type=int, default=60)
    ap.add_argument("--compare-first", action="store_true")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    from rankstack.llm.backends import make_backend
    from rankstack.llm.strategies import NATURAL
    from rankstack.stages.llm import make_llm_reranker

    queries, full, run, qrels, docs = load_dl19(args.k)
    queries = [q for q in queries if q.id in run][: args.queries]
    qids = [q.id for q in queries]
    all_q = [q.id for q in load_dl19(args.k)[0]]
    print(f"BM25 top-100 nDCG@10 on all 43 queries: {ndcg10(full, qrels, all_q):.4f} (published 0.5058)")
    base = ndcg10(run, qrels, qids)
    print(f"BM25 top-{args.k}, {len(qids)} queries: nDCG@10 {base:.4f}")
    results = {"k": args.k, "queries": len(qids), "bm25_ndcg10": base, "rows": []}
    for model in args.models:
        opts = {"threads": args.threads} if args.backend in ("transformers", "llamacpp") else {}
        t0 = time.perf_counter()
        be = make_backend(args.backend, model, **opts)
        print(f"loaded {model} ({args.backend}) in {time.perf_counter() - t0:.1f}s", flush=True)
        outs = {}
        for sc in (["listwise", "first"] if args.compare_first else args.scorers):
            st = make_llm_reranker(sc, NATURAL[sc], backend=be, docs=docs, window=20, stride=10, k=10,
                                   max_words=args.max_words)
            out = st(queries, run)
            outs[sc] = out
            tot = out.stats["llm"]
            row = {"model": model, "scorer": sc, "strategy": st.strategy, "ndcg10": ndcg10(out, qrels, qids),
                   "calls_per_q": tot["llm_calls_per_query"], "tokens_per_q": tot["tokens_per_query"],
                   "s_per_q": out.stats["wall_s"] / len(qids), "repairs": tot["repairs"],
                   "budget_hit_queries": tot["budget_hit_queries"]}
            results["rows"].append(row)
            print(json.dumps(row), flush=True)
        if args.compare_first:
            from scipy.stats import kendalltau

            taus, overlaps = [], []
            for q in qids:
                a = [d for d, _ in outs["first"].ranked(q)]
                b = [d for d, _ in outs["listwise"].ranked(q)]
                pos = {d: i for i, d in enumerate(b)}
                taus.append(kendalltau(list(range(len(a))), [pos[d] for d in a]).statistic)
                overlaps.append(len(set(a[:10]) & set(b[:10])) / 10)
            lat = {sc: outs[sc].stats["wall_s"] / len(qids) for sc in outs}
            cmp = {"model": model, "first_s_per_q": lat["first"], "listwise_s_per_q": lat["listwise"],
                   "speedup": lat["listwise"] / lat["first"], "kendall_tau": float(np.nanmean(taus)),
                   "top10_overlap": float(np.mean(overlaps))}
            results.setdefault("compare", []).append(cmp)
            print(json.dumps(cmp), flush=True)
        be.close()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
