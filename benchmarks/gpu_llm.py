"""FIRST vs generated listwise permutation on a GPU (prepared; runs on CPU with a tiny limit too).

    python benchmarks/gpu_llm.py --queries 43 --k 20 --model smollm2            # on a GPU machine
    python benchmarks/gpu_llm.py --queries 1 --k 5 --model smollm2 --device cpu # CPU smoke run

Same comparison as ``bench_llm.py --compare-first``: window 20, stride 10, transformers backend on the
given device; prints latency per query for both, the speed-up and Kendall tau / top-10 overlap.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=43)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--device", default=None, help="cuda | cpu (default: cuda if available)")
    ap.add_argument("--max-words", type=int, default=60)
    args = ap.parse_args()

    from bench_llm import load_dl19, ndcg10
    from scipy.stats import kendalltau

    from rankstack.llm.backends import make_backend
    from rankstack.stages.llm import LLMReranker

    queries, _, run, qrels, docs = load_dl19(args.k)
    queries = [q for q in queries if q.id in run][: args.queries]
    qids = [q.id for q in queries]
    be = make_backend("transformers", args.model, device=args.device)
    out, lat = {}, {}
    for sc in ("listwise", "first"):
        st = LLMReranker(sc, "sliding", backend=be, docs=docs, window=20, stride=10, max_words=args.max_words)
        t0 = time.perf_counter()
        out[sc] = st(queries, run)
        lat[sc] = (time.perf_counter() - t0) / len(qids)
    taus, ov = [], []
    for q in qids:
        a = [d for d, _ in out["first"].ranked(q)]
        pos = {d: i for i, d in enumerate(d for d, _ in out["listwise"].ranked(q))}
        taus.append(kendalltau(list(range(len(a))), [pos[d] for d in a]).statistic)
        ov.append(len(set(a[:10]) & set(list(pos)[:10])) / min(10, len(a)))
    print(json.dumps({"device": be.device, "model": args.model, "queries": len(qids), "k": args.k,
                      "first_s_per_q": lat["first"], "listwise_s_per_q": lat["listwise"],
                      "speedup": lat["listwise"] / lat["first"], "kendall_tau": float(np.nanmean(taus)),
                      "top10_overlap": float(np.mean(ov)), "ndcg10_first": ndcg10(out["first"], qrels, qids),
                      "ndcg10_listwise": ndcg10(out["listwise"], qrels, qids),
                      "ndcg10_bm25": ndcg10(run, qrels, qids)}))


if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
