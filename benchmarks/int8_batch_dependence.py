"""How much a dynamic-int8 cross-encoder score depends on the pairs it shares a batch with.

ONNX Runtime's dynamic quantisation computes one activation scale per tensor, that is per batch
(padding included), so a pair's int8 score moves with its batch companions; fp32 scores do not (beyond
float noise). This scores the same pairs (SciFact test, BM25 top-20, the first N judged queries) with
batches of one pair, the default CPU budget (512 padded tokens) and 16,384 tokens, and reports the
largest score change, how many per-query rankings change, and nDCG@10.

    HF_HUB_OFFLINE=1 python benchmarks/int8_batch_dependence.py [--queries 50] [--out FILE.json]
"""
import argparse
import json
import time

import numpy as np

from rankstack.data import datasets
from rankstack.index import BM25Index
from rankstack.measures import evaluate
from rankstack.stages.build import build_stage

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="rankstack/ce-minilm-scifact")
ap.add_argument("--queries", type=int, default=50)
ap.add_argument("--out", default=None)
args = ap.parse_args()

coll = datasets.load("scifact")
qids = set(sorted(coll.qrels)[: args.queries])
queries = [q for q in coll.queries if q.id in qids]
cand = BM25Index.build(coll.docs.values(), None).retriever(k=20)(queries)
out = {"model": args.model, "queries": len(queries), "pairs": cand.num_items(), "rows": {}}
runs = {}
for quant in ("int8", None):
    for budget in (1, 512, 16384):
        spec = {"stage": "cross-encoder", "model": args.model, "docs": coll.docs, "max_length": 192,
                "backend": "onnx", "max_tokens": budget, "threads": 1}
        if quant:
            spec["quantize"] = quant
        t = time.time()
        run = build_stage(spec, None, "ce")(queries, cand)
        name = f"{quant or 'fp32'}-{budget}"
        runs[name] = run
        ndcg = evaluate(coll.qrels, run, ["nDCG@10"])["nDCG@10"]
        out["rows"][name] = {"nDCG@10": ndcg, "s": time.time() - t}
        print(name, out["rows"][name], flush=True)


def scores(run):
    return {(r.query_id, r.doc_id): r.score for r in run.records()}


def order(run):
    return {q.id: [d for d, _ in run.ranked(q.id)] for q in queries}


for quant in ("int8", "fp32"):
    ref = scores(runs[f"{quant}-1"])
    ref_order = order(runs[f"{quant}-1"])
    for budget in (512, 16384):
        got = scores(runs[f"{quant}-{budget}"])
        diff = np.array([abs(got[k] - ref[k]) for k in ref])
        o = order(runs[f"{quant}-{budget}"])
        out["rows"][f"{quant}-{budget}"].update({
            "max_abs_vs_one_pair_batches": float(diff.max()), "mean_abs": float(diff.mean()),
            "queries_reordered": sum(o[q] != ref_order[q] for q in ref_order)})
print(json.dumps(out, indent=1))
if args.out:
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
