"""Evaluate a SciFact cross-encoder as shipping checks it: the CI slice (first 50 judged test queries, BM25
top-20, torch fp32, max_length 192) and the full figure (300 test queries, BM25 top-100, ONNX int8).

    HF_HUB_OFFLINE=1 python benchmarks/eval_scifact_ce_ship.py MODEL_DIR_OR_NAME [RUN_OUT]
"""
import json
import sys
import time

from rankstack.data import datasets
from rankstack.data.formats import read_run, write_run
from rankstack.index import BM25Index
from rankstack.measures import evaluate
from rankstack.stages.base import FromRun
from rankstack.stages.build import build_stage

coll = datasets.load("scifact")
M = sys.argv[1]
OUT = sys.argv[2] if len(sys.argv) > 2 else "/tmp/rs/ce-test.trec"
# the CI slice: first 50 judged test queries, BM25 top-20, torch fp32 max_length 192
qids = sorted(coll.qrels)[:50]
queries = [q for q in coll.queries if q.id in set(qids)]
bm25 = BM25Index.build(coll.docs.values(), None).retriever(k=20)
t = time.time()
st = build_stage({"stage": "cross-encoder", "model": M, "docs": coll.docs, "max_length": 192}, None, "slice")
run = (bm25 >> st)(queries)
print("slice", json.dumps({"model": evaluate(coll.qrels, run, ["nDCG@10"])["nDCG@10"],
      "bm25": evaluate(coll.qrels, bm25(queries), ["nDCG@10"])["nDCG@10"], "s": time.time() - t}), flush=True)
# the full figure: 300 test queries, BM25 top-100, ONNX int8 max_length 192
cand = read_run("docs/bench/runs/scifact-test.bm25.top100.trec.gz")
tq = [q for q in coll.queries if q.id in cand]
t = time.time()
st = build_stage({"stage": "cross-encoder", "model": M, "docs": coll.docs, "max_length": 192, "backend": "onnx",
                  "quantize": "int8", "activation": "none"}, None, "full")
run = (FromRun(cand, name="bm25") % 100 >> st)(tq)
write_run(run, OUT, tag="ce-minilm-scifact")
print("full", json.dumps({**evaluate(coll.qrels, run, ["nDCG@10", "R@100"]), "queries": len(tq), "s": time.time() - t}), flush=True)
