#!/usr/bin/env python3
"""Change one SciFact document and rerun an experiment: every affected figure changes and no cache
hides it; rerun unchanged: every stage is a cache hit (issue #16, docs/reliability.md).

    .venv/bin/python benchmarks/trust_edit.py [--work /tmp/rs-trust] [--depth 5]

SciFact (from data/) is copied to a work folder; the experiment (BM25, BM25 top-DEPTH reranked by
the bi-encoder, and their RRF fusion) runs three times against one cache: on the original collection
(everything computed), again unchanged (nothing computed: no new cache file, no index rebuilt, the
same figures), and after replacing the text of one relevant document of a test query (the BM25 index
is rebuilt, every stage output is computed again, and the figures of the queries that see the
document change). Prints one line per run and the affected queries.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TOML = """
[experiment]
name = "trust-edit"
measures = ["nDCG@10", "R@100"]
baseline = "bm25"
output = "{out}"
cache = "{cache}"

[[collections]]
name = "scifact"

[[pipelines]]
name = "bm25"
stages = [{{ stage = "bm25", k = 100 }}]

[[pipelines]]
name = "bm25>>dense"
stages = [{{ stage = "bm25", k = 100 }}, {{ stage = "cutoff", k = {depth} }}, {{ stage = "dense-rerank" }}]

[[pipelines]]
name = "rrf"
stages = [{{ stage = "fuse", pipelines = ["bm25", "bm25>>dense"], method = "rrf", depth = {depth} }}]
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/rs-trust"))
    ap.add_argument("--depth", type=int, default=5)
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    data = args.work / "data"
    shutil.copytree(ROOT / "data" / "scifact", data / "scifact")
    os.environ["RANKSTACK_DATA"] = str(data)
    os.chdir(args.work)  # so that ./data is this copy
    from rankstack.data import datasets
    from rankstack.data.formats import read_qrels
    from rankstack.experiments.config import load_experiment
    from rankstack.experiments.runner import run_experiment

    qrels = read_qrels(data / "scifact" / "qrels" / "test.tsv")
    coll = datasets.load("scifact")
    from rankstack.index.bm25 import BM25Index

    coll_index = BM25Index.build(coll.docs.values(), None, progress=False)
    for q in sorted(coll.queries, key=lambda q: int(q.id)):  # the first test query BM25 answers right at rank 1
        top = coll_index.search(q.text, 1)
        if top and qrels.get(q.id, {}).get(top[0][0], 0) > 0:
            qid, victim = q.id, top[0][0]
            break
    cache = args.work / "cache"

    def run(tag: str) -> dict:
        f = args.work / f"{tag}.toml"
        f.write_text(TOML.format(out=args.work / f"out-{tag}", cache=cache, depth=args.depth))
        before = set(cache.rglob("runs/*.json")) if cache.exists() else set()
        t0 = time.perf_counter()
        report = run_experiment(load_experiment(f), progress=False)
        new = set(cache.rglob("runs/*.json")) - before
        res = {r.pipeline: r for r in report.results}
        print(f"{tag:10s} {time.perf_counter() - t0:7.1f} s  new stage outputs computed: {len(new)}  " +
              "  ".join(f"{p} {r.aggregate['nDCG@10']:.4f}" for p, r in res.items()), flush=True)
        return res

    a = run("original")
    b = run("unchanged")
    corpus = data / "scifact" / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    for i, line in enumerate(lines):
        doc = json.loads(line)
        if doc["_id"] == victim:
            doc["text"] = "An unrelated text about river boats and summer weather."
            lines[i] = json.dumps(doc)
    corpus.write_text("\n".join(lines) + "\n")
    c = run("edited")
    same = all(a[p].per_query == b[p].per_query for p in a)
    changed = {p: sorted(q for q in a[p].per_query["nDCG@10"]
                         if a[p].per_query["nDCG@10"][q] != c[p].per_query["nDCG@10"].get(q)) for p in a}
    print(f"unchanged rerun equals the first: {same}")
    print(f"edited document {victim} (relevant to query {qid}); queries whose nDCG@10 changed: "
          + "; ".join(f"{p}: {len(v)} {v[:5]}" for p, v in changed.items()))
    ok = same and all(qid in v for v in changed.values())
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
