"""Sharded dense search with compressed (PQ) and graph (HNSW) shards (issue #21), against exact search.

    OMP_NUM_THREADS=1 python benchmarks/sharded_ann.py --n 1000000 --dim 64 --shards 4 \\
        --json docs/bench/sharded_ann.json

Data: ``--n`` seeded synthetic vectors of ``--dim`` dimensions drawn around 1,000 Gaussian cluster
centres (unit-normalised, inner product = cosine), and ``--queries`` queries drawn the same way; the
ground truth is exact search (one flat index). For each kind (flat, pq with ``--pq-m`` sub-vectors,
hnsw with ``--hnsw-m`` links), written as ``--shards`` shards by
:meth:`rankstack.scale.ShardedDenseIndex.write` and searched in process (the shards one after the
other; on Ray each would be searched where it lives): build time, bytes per shard (the serialised
FAISS index), search time for all queries (top ``--k``), recall@10 and recall@k against exact search.
One thread throughout (``faiss.omp_set_num_threads(1)``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic(n: int, dim: int, seed: int, centres: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--pq-m", type=int, default=16)
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--ef-search", type=int, default=128)
    ap.add_argument("--kinds", default="flat,pq,hnsw")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    import faiss

    from rankstack.scale import ShardedDenseIndex

    faiss.omp_set_num_threads(1)
    x = synthetic(a.n, a.dim, a.seed)
    q = synthetic(a.queries, a.dim, a.seed + 1)
    ids = [f"d{i}" for i in range(a.n)]
    tmp = Path(tempfile.mkdtemp(prefix="rankstack-sharded-ann-"))
    res: dict = {"n": a.n, "dim": a.dim, "shards": a.shards, "queries": a.queries, "k": a.k,
                 "load_before": [round(v, 2) for v in os.getloadavg()], "kinds": {}}
    truth = None
    for kind in a.kinds.split(","):
        t0 = time.perf_counter()
        sh = ShardedDenseIndex.write(ids, x, tmp / kind, a.shards, meta={"metric": "cosine"}, kind=kind,
                                     m=a.hnsw_m, pq_m=a.pq_m, seed=a.seed)
        build = time.perf_counter() - t0
        sh.search(q[:2], a.k, ef_search=a.ef_search)  # load the shards
        t0 = time.perf_counter()
        _, r = sh.search(q, a.k, ef_search=a.ef_search)
        search = time.perf_counter() - t0
        if kind == "flat":
            truth = r
        row = {"build_s": round(build, 2), "bytes_per_shard": sh.shard_memory(),
               "bytes_per_vector": round(sum(sh.shard_memory()) / a.n, 1),
               "search_s": round(search, 3), "queries_per_s": round(a.queries / search, 1)}
        if truth is not None:
            row["recall@10"] = round(float(np.mean([len(set(r[i, :10]) & set(truth[i, :10])) / 10
                                                    for i in range(a.queries)])), 4)
            row[f"recall@{a.k}"] = round(float(np.mean([len(set(r[i]) & set(truth[i])) / a.k
                                                       for i in range(a.queries)])), 4)
        res["kinds"][kind] = row
        print(kind, json.dumps(row), flush=True)
        sh.close()
    res["load_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
