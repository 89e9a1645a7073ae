"""LLM reranking through a pool of llama.cpp servers (issue #21, "LLM rerankers through a backend pool").

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python benchmarks/llm_pool.py --queries 8 --depth 10 \\
        --json docs/bench/llm_pool.json

Workload: the first ``--queries`` DL19 queries, their BM25 top-``--depth`` (``data/trec-dl-2019``),
passages cut to ``--max-words`` words, SmolLM2-135M-Instruct (packaged GGUF) scoring pointwise
(yes/no log-probabilities, one request per passage). Each llama.cpp server runs one thread
(``--n_threads 1``), so one server uses one core.

Configurations, interleaved in each of ``--repeat`` rounds (median wall time):

* ``one server``: one process, one server, 2 requests in flight (the server handles one at a time);
* ``pool of 2``: one process, a pool of two servers (:class:`~rankstack.llm.backends.http.HTTPBackend`
  with two URLs), 2 requests in flight per server;
* ``Ray 2 workers, pool of 2`` (``--ray``): :func:`rankstack.scale.rerank_ray` on a local 2-CPU Ray
  cluster, every worker sharing the same pool.

Every configuration's run file is compared with the one-server run (byte-identical TREC text). On a
2-core machine the servers are the compute: the pool can at most double the rate, and Ray's workers
compete with the servers for the same two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DL19 = ROOT / "data" / "trec-dl-2019"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=8)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--max-words", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ray", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    from rankstack.data.formats import read_docs, read_queries, read_run, write_run
    from rankstack.llm.backends.http import HTTPBackend
    from rankstack.stages.build import BuildContext, build_stage
    from rankstack.stages.llm import LLMReranker
    from rankstack.testing import LlamaServer

    qs = read_queries(DL19 / "queries.tsv")
    run = read_run(DL19 / "bm25.top100.trec")
    qs = [q for q in qs if q.id in run][: a.queries]
    run = run.cut(a.depth)
    need = {d for q in qs for d in run[q.id]}
    docs = {d.id: d for d in read_docs(DL19 / "collection.tsv") if d.id in need}
    tmp = Path(tempfile.mkdtemp(prefix="rankstack-llm-pool-"))
    load_before = [round(x, 2) for x in os.getloadavg()]

    def trec(r, name: str) -> bytes:
        write_run(r, tmp / name, tag="llm")
        return (tmp / name).read_bytes()

    res: dict = {"queries": len(qs), "depth": a.depth, "max_words": a.max_words, "requests_per_run": len(qs) * a.depth,
                 "cpus": os.cpu_count(), "load_before": load_before, "rounds": []}
    with LlamaServer(log=tmp / "a.log") as sa, LlamaServer(log=tmp / "b.log") as sb:
        spec = {"stage": "pointwise", "backend": "http", "model": "smollm2", "max_words": a.max_words,
                "backend_opts": {"endpoint": "chat", "concurrency": 2}}

        def one_server():
            be = HTTPBackend(sa.url, model="smollm2", endpoint="chat", concurrency=2)
            out = LLMReranker("pointwise", backend=be, docs=docs, max_words=a.max_words, concurrency=2)(qs, run)
            be.close()
            return out

        def pool():
            be = HTTPBackend([sa.url, sb.url], model="smollm2", endpoint="chat", concurrency=2)
            out = LLMReranker("pointwise", backend=be, docs=docs, max_words=a.max_words, concurrency=4)(qs, run)
            res["pool_served"] = dict(be.served)
            be.close()
            return out

        configs = {"one server": one_server, "pool of 2": pool}
        if a.ray:
            from rankstack.scale import init_ray, rerank_ray

            init_ray(num_cpus=2, log_to_driver=False)
            configs["Ray 2 workers, pool of 2"] = lambda: rerank_ray(
                {**spec, "base_url": [sa.url, sb.url]}, qs, run, docs, workers=2, queries_per_batch=1)
        ref = None
        # warm both servers (first requests load the model pages)
        build_stage({**spec, "base_url": [sa.url, sb.url]}, BuildContext(_docs=docs))(qs[:1], run)
        for rnd in range(a.repeat):
            row = {}
            for name, fn in configs.items():
                t0 = time.perf_counter()
                out = fn()
                wall = time.perf_counter() - t0
                text = trec(out, f"{rnd}-{name.replace(' ', '_')}.trec")
                ref = text if ref is None else ref
                row[name] = {"wall_s": round(wall, 2), "requests_per_s": round(len(qs) * a.depth / wall, 2),
                             "run_file_equal": text == ref}
                print(f"round {rnd} {name}: {wall:.1f} s, {len(qs) * a.depth / wall:.2f} req/s, "
                      f"same run file {text == ref}", flush=True)
            res["rounds"].append(row)
    med = {n: statistics.median(r[n]["wall_s"] for r in res["rounds"]) for n in configs}
    res["median_wall_s"] = med
    res["ratio_vs_one_server"] = {n: round(med["one server"] / med[n], 3) for n in configs}
    res["all_run_files_equal"] = all(v["run_file_equal"] for r in res["rounds"] for v in r.values())
    res["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
