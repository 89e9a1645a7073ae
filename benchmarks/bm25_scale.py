"""BM25 at scale (issue #22): rankstack vs bm25s on synthetic collections of 100k and 1M documents.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bm25_scale.py \\
        [--sizes 100000,1000000] [--queries 1000] [--k 1000] [--json out.json]
    ... --sizes 1000000 --ab-index DIR [--ab-rev REV]   # query kernel A/B against git revision REV

Collection: ``N`` documents of synthetic words drawn from a Zipf-Mandelbrot vocabulary
(``p(r) ~ 1 / (r + 2.7) ** 1.07`` over ``V = N`` word ranks, close to English text); document
lengths log-normal around 110 tokens, clipped to [60, 200]. Words are ``"q"`` followed by letters,
so both systems' tokenizers keep them as they are: rankstack with ``EnglishAnalyzer(stemmer=None,
stopwords=None)``, bm25s with ``bm25s.tokenize(texts, stopwords=None, stemmer=None)``; no
stemming, no stop words, the same tokens (checked: both report the same vocabulary size).
Queries: 2-6 words (uniform) drawn from the same distribution without its 50 most frequent ranks
(real queries are stopped; documents keep every word).

Each system runs in its own subprocess (so its peak RSS, ``ru_maxrss``, is its own), on one thread:
it reads the texts, indexes them (timed, tokenization included), then answers the queries one a
call (latency p50/p99) and all in one call, at top-``k`` and top-10, best of ``--repeats`` (3)
passes (the first query -- numba compile or cache load, and rankstack's per-posting clause-score
cache -- is timed separately: ``warmup_s``). Query time includes query
tokenization for both. rankstack: ``BM25Index.build`` then ``index.search_many`` (document indices
and float32 scores, as bm25s's ``retrieve`` returns), ``norms="exact"`` (what bm25s's
``method="lucene"`` computes; the kernel is the same code for Lucene's quantised norms), default
kernel (numba when installed). bm25s: ``bm25s.BM25(method="lucene", k1=0.9, b=0.4,
backend=numpy|numba)``, ``retrieve(..., n_threads=0)``; numba compile happens before timing.
bm25s-numpy answers only the first ``--numpy-queries`` (200) queries: at 1M documents it needs
~0.1 s a query. Ratios are rankstack / bm25s (higher is better for rankstack; for time and
memory, bm25s / rankstack), from wall time and from CPU time (``process_time``: steadier when the
machine is shared). Also reported: top-10 overlap of rankstack with each bm25s backend (bm25s sums scores
in float32, so near-ties may order differently).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

SYSTEMS = ("rankstack", "bm25s-numpy", "bm25s-numba")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


# -- the synthetic collection ----------------------------------------------------------------------


def word(r: int) -> str:
    s = ""
    r += 1
    while r:
        r, c = divmod(r - 1, 26)
        s = LETTERS[c] + s
    return "q" + s


def generate(n_docs: int, n_queries: int, seed: int, out: Path) -> tuple[Path, Path]:
    """Write ``corpus.txt`` (one document a line) and ``queries.txt`` under ``out``."""
    import numpy as np

    corpus, queries = out / "corpus.txt", out / "queries.txt"
    if corpus.exists() and queries.exists():
        return corpus, queries
    rng = np.random.default_rng(seed)
    v = max(n_docs, 1000)
    p = 1.0 / (np.arange(v) + 2.7) ** 1.07
    cdf = np.cumsum(p / p.sum())
    words = np.array([word(r) for r in range(v)], dtype=object)
    lengths = np.clip(np.rint(rng.lognormal(np.log(110), 0.35, n_docs)), 60, 200).astype(np.int64)
    with open(corpus.with_suffix(".tmp"), "w") as f:
        step = 20_000
        for lo in range(0, n_docs, step):
            ln = lengths[lo : lo + step]
            ranks = np.minimum(np.searchsorted(cdf, rng.random(int(ln.sum()))), v - 1)
            toks = words[ranks]
            ends = np.cumsum(ln)
            f.write("\n".join(" ".join(toks[e - n : e]) for n, e in zip(ln.tolist(), ends.tolist())))
            f.write("\n")
    os.replace(corpus.with_suffix(".tmp"), corpus)
    skip = 50
    qp = p[skip:] / p[skip:].sum()
    qcdf = np.cumsum(qp)
    with open(queries, "w") as f:
        for _ in range(n_queries):
            n = int(rng.integers(2, 7))
            ranks = np.minimum(np.searchsorted(qcdf, rng.random(n)), len(qcdf) - 1) + skip
            f.write(" ".join(words[ranks]) + "\n")
    return corpus, queries


# -- one system, in its own process ----------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(system: str, corpus: Path, queries: Path, k: int, max_queries: int, repeats: int) -> dict:
    import numpy as np

    texts = corpus.read_text().split("\n")[:-1]
    qtexts = queries.read_text().split("\n")[:-1][:max_queries]
    out: dict = {"system": system, "docs": len(texts), "queries": len(qtexts), "k": k,
                 "rss_texts_mb": rss_mb()}
    if system == "rankstack":
        from rankstack.data.records import Document
        from rankstack.index.analysis import EnglishAnalyzer
        from rankstack.index.bm25 import BM25Index

        t0, c0 = time.perf_counter(), time.process_time()
        index = BM25Index.build((Document(str(i), t) for i, t in enumerate(texts)), None, progress=False,
                                analyzer=EnglishAnalyzer(stemmer=None, stopwords=None))
        out["index_s"], out["index_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        out["vocab"] = len(index.vocab)
        out["kernel"] = "numba" if index._use_numba(None) is not None else "numpy"

        def search(batch: list[str], kk: int) -> list[np.ndarray]:
            return [top for top, _ in index.search_many(batch, kk, norms="exact")]
    else:
        import bm25s

        backend = system.split("-")[1]
        t0, c0 = time.perf_counter(), time.process_time()
        toks = bm25s.tokenize(texts, stopwords=None, stemmer=None, show_progress=False)
        retriever = bm25s.BM25(method="lucene", k1=0.9, b=0.4, backend=backend)
        retriever.index(toks, show_progress=False)
        out["index_s"], out["index_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        out["vocab"] = len(toks.vocab)
        out["bm25s"] = bm25s.__version__
        del toks

        def search(batch: list[str], kk: int) -> list[np.ndarray]:
            qt = bm25s.tokenize(batch, stopwords=None, stemmer=None, return_ids=False, show_progress=False)
            res, _ = retriever.retrieve(qt, k=kk, show_progress=False, n_threads=0)
            return list(res)

    out["rss_indexed_mb"], out["peak_indexed_mb"] = rss_mb(), peak_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    search(qtexts[:2], k)  # warm up (numba: compile / load the cache; rankstack: also its clause-score cache)
    out["warmup_s"], out["warmup_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    out["rss_warm_mb"] = rss_mb()

    def measure(tag: str, kk: int, fn) -> list:
        """Best of ``repeats`` (wall and CPU separately; per-query latency: its best)."""
        lat = [float("inf")] * len(qtexts)
        single, single_cpu, batched, batched_cpu, res = [], [], [], [], None
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            for i, q in enumerate(qtexts):
                t1 = time.perf_counter()
                fn([q], kk)
                lat[i] = min(lat[i], time.perf_counter() - t1)
            single.append(time.perf_counter() - t0)
            single_cpu.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            res = fn(qtexts, kk)
            batched.append(time.perf_counter() - t0)
            batched_cpu.append(time.process_time() - c0)
        nq = len(qtexts)
        out[f"single_qps{tag}"], out[f"single_qps_cpu{tag}"] = nq / min(single), nq / min(single_cpu)
        out[f"batched_qps{tag}"], out[f"batched_qps_cpu{tag}"] = nq / min(batched), nq / min(batched_cpu)
        lat.sort()
        out[f"p50_ms{tag}"] = 1000 * lat[nq // 2]
        out[f"p99_ms{tag}"] = 1000 * lat[min(nq - 1, int(0.99 * nq))]
        return res

    measure("", k, search)
    out["top10"] = [np.asarray(r).tolist() for r in measure("_top10", 10, search)]
    if system == "rankstack":  # rankstack's default norms (Lucene's quantised lengths): same kernel, a byte a doc
        measure("_lucene_norms", k, lambda batch, kk: [t for t, _ in index.search_many(batch, kk)])
    out["rss_end_mb"], out["peak_mb"] = rss_mb(), peak_mb()
    return out


# -- A/B of query kernels on one saved index (issue #22 item 1) -----------------------------------


def ab(corpus: Path, queries: Path, index_dir: Path, rev: str, repeats: int) -> dict:
    """Query CPU time on one index (built into ``index_dir`` if missing, exact norms), in one process,
    passes interleaved: the kernel of git revision ``rev`` (its ``bm25.py`` and ``_bm25_kernel.py``
    loaded side by side) vs the working tree's, with its clause cache off and on."""
    import importlib.util

    from rankstack.data.records import Document
    from rankstack.index import bm25 as new
    from rankstack.index.analysis import EnglishAnalyzer

    if not (index_dir / "meta.json").exists():
        texts = corpus.read_text().split("\n")[:-1]
        new.BM25Index.build((Document(str(i), t) for i, t in enumerate(texts)), index_dir, progress=False,
                            analyzer=EnglishAnalyzer(stemmer=None, stopwords=None))
        del texts
    root = Path(__file__).resolve().parents[1]
    tmp = Path(tempfile.mkdtemp(prefix="bm25_ab_"))
    mods = {}
    for name, path in (("bm25_kernel_old", "src/rankstack/index/_bm25_kernel.py"), ("bm25_old", "src/rankstack/index/bm25.py")):
        src = subprocess.run(["git", "-C", str(root), "show", f"{rev}:{path}"], capture_output=True, text=True, check=True)
        (tmp / f"{name}.py").write_text(src.stdout)
        spec = importlib.util.spec_from_file_location(name, tmp / f"{name}.py")
        mods[name] = importlib.util.module_from_spec(spec)
        sys.modules[name] = mods[name]
        spec.loader.exec_module(mods[name])
    old = mods["bm25_old"]
    old._kernel_module = mods["bm25_kernel_old"]
    qtexts = queries.read_text().split("\n")[:-1]
    ia, ib = old.BM25Index.load(index_dir), new.BM25Index.load(index_dir)
    ia.search_many(qtexts[:2], 1000, norms="exact")
    ib.search_many(qtexts[:2], 1000, norms="exact")
    ib._clauses = None
    c0 = time.process_time()
    ib.search_many(qtexts[:1], 1000, norms="exact")
    out: dict = {"rev": rev, "postings": int(len(ib.post_docs)), "clause_cache_first_query_cpu_s": time.process_time() - c0}
    confs = [(f"kernel of {rev}", ia, None), ("clause_cache=False", ib, False), ("clause_cache=True", ib, True)]
    for _ in range(repeats):
        for name, idx, cc in confs:
            if cc is not None:
                idx.clause_cache = cc
            idx.search_many(qtexts[:2], 1000, norms="exact")
            c0 = time.process_time()
            for q in qtexts:
                idx.search_many([q], 1000, norms="exact")
            c1 = time.process_time()
            idx.search_many(qtexts, 1000, norms="exact")
            c2 = time.process_time()
            idx.search_many(qtexts, 10, norms="exact")
            c3 = time.process_time()
            r = out.setdefault(name, {})
            for m, v in (("single_qps_cpu", c1 - c0), ("batched_qps_cpu", c2 - c1), ("batched_qps_cpu_top10", c3 - c2)):
                r[m] = max(r.get(m, 0.0), len(qtexts) / v)
    for name, _, _ in confs:
        r = out[name]
        print(f"{name:28s} top-1000: one a call {r['single_qps_cpu']:7.1f}, batched {r['batched_qps_cpu']:7.1f}; "
              f"top-10 batched {r['batched_qps_cpu_top10']:7.1f} q/s (CPU, best of {repeats})", flush=True)
    print(f"clause-score cache, {out['postings']:,} postings: {out['clause_cache_first_query_cpu_s']:.2f} s CPU "
          f"on the first query", flush=True)
    return out


# -- the driver ------------------------------------------------------------------------------------


def run_worker(system: str, corpus: Path, queries: Path, k: int, max_queries: int, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", system, "--corpus", str(corpus), "--query-file", str(queries),
           "--k", str(k), "--max-queries", str(max_queries), "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{system} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def overlap(a: list[list[int]], b: list[list[int]]) -> float:
    """Mean share of ``a``'s top 10 also in ``b``'s (over the queries both answered)."""
    both = [len(set(x) & set(y)) / max(len(x), 1) for x, y in zip(a, b) if x]
    return sum(both) / max(len(both), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--repeats", type=int, default=3, help="query timings: best of this many passes")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--workdir", default=None, help="where the generated collections are kept (default: a temp dir)")
    ap.add_argument("--numpy-queries", type=int, default=200,
                    help="bm25s-numpy answers only the first this many queries (it is slow at 1M documents)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--ab-index", default=None,
                    help="instead of the comparison with bm25s: A/B the query kernel against --ab-rev on the rankstack "
                         "index in this directory (built there from the first --sizes collection if missing)")
    ap.add_argument("--ab-rev", default="HEAD", help="git revision whose kernel --ab-index compares against")
    ap.add_argument("--max-queries", type=int, default=10**9, help=argparse.SUPPRESS)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--query-file", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.corpus), Path(args.query_file), args.k, args.max_queries, args.repeats)))
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bm25_scale_"))
    systems = [s for s in args.systems.split(",") if s]
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus, "
          f"NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}; {args.queries} queries, k={args.k}", flush=True)
    if args.ab_index:
        n = int(args.sizes.split(",")[0])
        d = work / f"n{n}_s{args.seed}"
        d.mkdir(parents=True, exist_ok=True)
        corpus, queries = generate(n, args.queries, args.seed, d)
        res = ab(corpus, queries, Path(args.ab_index), args.ab_rev, args.repeats)
        if args.json:
            Path(args.json).write_text(json.dumps({"docs": n, "queries": args.queries, "seed": args.seed, **res}, indent=1))
        return
    report = []
    for n in (int(x) for x in args.sizes.split(",")):
        d = work / f"n{n}_s{args.seed}"
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        corpus, queries = generate(n, args.queries, args.seed, d)
        print(f"\n== {n:,} documents ({corpus.stat().st_size / 2**20:.0f} MiB of text, generated/reused in "
              f"{time.perf_counter() - t0:.0f} s)", flush=True)
        rows = {}
        for s in systems:
            nq = args.numpy_queries if s == "bm25s-numpy" else args.queries
            rows[s] = run_worker(s, corpus, queries, args.k, nq, args.repeats)
            r = rows[s]
            print(f"{s:12s} ({r['queries']} queries) index {r['index_s']:6.1f} s (CPU {r['index_cpu_s']:6.1f})  vocab {r['vocab']:>8,}  "
                  f"1-by-1 {r['single_qps']:7.1f} q/s (CPU {r['single_qps_cpu']:7.1f}; p50 {r['p50_ms']:.2f} ms, "
                  f"p99 {r['p99_ms']:.2f} ms)  batched {r['batched_qps']:7.1f} q/s (CPU {r['batched_qps_cpu']:7.1f})  "
                  f"top-10: 1-by-1 {r['single_qps_top10']:7.1f} (CPU {r['single_qps_cpu_top10']:7.1f}), "
                  f"batched {r['batched_qps_top10']:7.1f} (CPU {r['batched_qps_cpu_top10']:7.1f}) q/s  "
                  f"peak RSS {r['peak_mb']:6.0f} MiB (texts {r['rss_texts_mb']:.0f}, after indexing "
                  f"{r['rss_indexed_mb']:.0f}, after the first query {r['rss_warm_mb']:.0f}; first query "
                  f"{r['warmup_s']:.2f} s, CPU {r['warmup_cpu_s']:.2f})", flush=True)
            if "single_qps_lucene_norms" in r:
                print(f"{'':12s} Lucene norms (rankstack's default): 1-by-1 {r['single_qps_lucene_norms']:7.1f} q/s "
                      f"(CPU {r['single_qps_cpu_lucene_norms']:7.1f}), batched {r['batched_qps_lucene_norms']:7.1f} "
                      f"(CPU {r['batched_qps_cpu_lucene_norms']:7.1f})", flush=True)
        ratios = {}
        if "rankstack" in rows:
            ours = rows["rankstack"]
            for s, r in rows.items():
                if s == "rankstack":
                    continue
                x = ratios[s] = {"peak_rss": r["peak_mb"] / ours["peak_mb"],
                                 "top10_overlap": overlap(ours["top10"], r["top10"])}
                for c in ("", "_cpu"):
                    x[f"index_time{c}"] = r[f"index{c}_s"] / ours[f"index{c}_s"]
                    for m in ("single_qps", "batched_qps"):
                        for tag in ("", "_top10"):
                            x[f"{m}{c}{tag}"] = ours[f"{m}{c}{tag}"] / r[f"{m}{c}{tag}"]
                for c, label in (("", "wall"), ("_cpu", "CPU")):
                    print(f"ratios ({label}) vs {s}: indexing x{x[f'index_time{c}']:.2f}, "
                          f"1-by-1 x{x[f'single_qps{c}']:.2f}, batched x{x[f'batched_qps{c}']:.2f}, "
                          f"top-10 1-by-1 x{x[f'single_qps{c}_top10']:.2f}, top-10 batched "
                          f"x{x[f'batched_qps{c}_top10']:.2f}", flush=True)
                print(f"  peak RSS (bm25s/ours) x{x['peak_rss']:.2f}; top-10 overlap {x['top10_overlap']:.4f}",
                      flush=True)
        for r in rows.values():
            r.pop("top10", None)
        report.append({"docs": n, "results": rows, "ratios": ratios})
    if args.json:
        Path(args.json).write_text(json.dumps({"queries": args.queries, "k": args.k, "seed": args.seed,
                                               "sizes": report}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
