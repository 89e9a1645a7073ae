"""LLM rerankers on TREC DL19: BM25 top-k candidates reranked by each scorer with its natural strategy.

    nice -n 10 python benchmarks/bench_llm.py --k 20 --queries 43 --models smollm2 gemma3-270m \
        --scorers pointwise qlm pairwise setwise listwise first eliminate reasoning --threads 1
    nice -n 10 python benchmarks/bench_llm.py --compare-first --k 20 --queries 10 --models smollm2
    # the subset grid of docs/bench/llm.md: one JSONL line per finished cell (a killed run loses
    # only the cell in progress; rerunning with the same --jsonl skips the cells already there)
    HF_HUB_OFFLINE=1 nice -n 19 python benchmarks/bench_llm.py --k 20 --queries 5 --threads 1 \
        --models smollm2 gemma3-270m --scorers first pointwise listwise --jsonl grid.jsonl

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
    return float(np.mean(ndcg10_per_query(run, qrels, qids)))


def ndcg10_per_query(run: Run, qrels: dict[str, dict[str, int]], qids: list[str]) -> list[float]:
    vals = []
    for q in qids:
        rel = qrels.get(q, {})
        gains = [rel.get(d, 0) for d, _ in run.ranked(q)[:10]]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)
        ideal = sorted((g for g in rel.values() if g > 0), reverse=True)[:10]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        vals.append(dcg / idcg if idcg > 0 else 0.0)
    return vals


def _done_cells(path: str | None) -> set[tuple]:
    """(model, scorer, strategy, qids) of the cells already recorded in the JSONL ``path``."""
    done: set[tuple] = set()
    if path and Path(path).exists():
        for line in open(path, encoding="utf-8"):
            if line.strip():
                r = json.loads(line)
                if "scorer" in r:
                    done.add((r["model"], r["scorer"], r["strategy"], tuple(r["qids"])))
    return done


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--queries", type=int, default=43, help="the first N DL19 queries (file order)")
    ap.add_argument("--qids", nargs="+", default=None, help="explicit DL19 query ids (overrides --queries)")
    ap.add_argument("--models", nargs="+", default=["smollm2"])
    ap.add_argument("--scorers", nargs="+", default=["pointwise", "first"])
    ap.add_argument("--backend", default="transformers")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-words", type=int, default=60)
    ap.add_argument("--max-think-tokens", type=int, default=64, help="reasoning scorer: thinking budget")
    ap.add_argument("--strategy", nargs="*", default=[], metavar="SCORER=STRATEGY",
                    help="override a scorer's natural strategy, e.g. pairwise=bubble")
    ap.add_argument("--top", type=int, default=10, help="heapsort/bubble: how many top passages to sort")
    ap.add_argument("--jsonl", default=None, help="append one JSON line per finished cell here; skip done cells")
    ap.add_argument("--compare-first", action="store_true")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    from rankstack.llm.backends import make_backend
    from rankstack.llm.strategies import NATURAL
    from rankstack.stages.llm import make_llm_reranker

    queries, full, run, qrels, docs = load_dl19(args.k)
    all_q = [q.id for q in queries]
    if args.qids:
        byid = {q.id: q for q in queries}
        missing = [q for q in args.qids if q not in byid or q not in run]
        if missing:
            raise SystemExit(f"--qids: not DL19 queries with BM25 candidates: {missing}")
        queries = [byid[q] for q in args.qids]
    else:
        queries = [q for q in queries if q.id in run][: args.queries]
    qids = [q.id for q in queries]
    print(f"BM25 top-100 nDCG@10 on all 43 queries: {ndcg10(full, qrels, all_q):.4f} (published 0.5058)")
    base = ndcg10(run, qrels, qids)
    print(f"BM25 top-{args.k}, {len(qids)} queries {qids}: nDCG@10 {base:.4f}", flush=True)
    overrides = dict(o.split("=", 1) for o in args.strategy)
    done = _done_cells(args.jsonl)
    bm25_rank = {q: {d: i for i, (d, _) in enumerate(run.ranked(q))} for q in qids}
    results = {"k": args.k, "queries": len(qids), "bm25_ndcg10": base, "rows": []}
    scorers = ["listwise", "first"] if args.compare_first else args.scorers
    # scorer-major order (every model for the first scorer, then the next scorer), so that a run cut
    # short has the cheap scorers for all models; backends are loaded once and kept
    cells = [(m, sc) for sc in scorers for m in args.models
             if args.compare_first or (m, sc, overrides.get(sc, NATURAL[sc]), tuple(qids)) not in done]
    skipped = len(scorers) * len(args.models) - len(cells)
    if skipped:
        print(f"{skipped} cells already in {args.jsonl}, skipped", flush=True)
    backends: dict[str, object] = {}
    outs: dict[str, dict[str, Run]] = {}
    opts = {"threads": args.threads} if args.backend in ("transformers", "llamacpp") else {}
    for model, sc in cells:
        if model not in backends:
            t0 = time.perf_counter()
            backends[model] = make_backend(args.backend, model, **opts)
            print(f"loaded {model} ({args.backend}) in {time.perf_counter() - t0:.1f}s", flush=True)
        be = backends[model]
        extra = {"max_think_tokens": args.max_think_tokens} if sc == "reasoning" else {}
        st = make_llm_reranker(sc, overrides.get(sc, NATURAL[sc]), backend=be, docs=docs, window=20,
                               stride=10, k=args.top, max_words=args.max_words, **extra)
        print(f"{model} {sc}/{st.strategy}: running {len(qids)} queries", flush=True)
        out = st(queries, run)
        outs.setdefault(model, {})[sc] = out
        tot = out.stats["llm"]
        nq = len(qids)
        row = {"model": model, "backend": args.backend, "scorer": sc, "strategy": st.strategy,
               "k": args.k, "qids": qids, "ndcg10": ndcg10(out, qrels, qids), "bm25_ndcg10": base,
               "calls_per_q": tot["llm_calls_per_query"], "tokens_per_q": tot["tokens_per_query"],
               "prompt_tokens_per_q": tot["prompt_tokens"] / nq,
               "completion_tokens_per_q": tot["completion_tokens"] / nq,
               "s_per_q": out.stats["wall_s"] / nq, "repairs": tot["repairs"],
               "budget_hit_queries": tot["budget_hit_queries"],
               "truncated_passages": tot["truncated_passages"], "max_words": args.max_words,
               "threads": args.threads, **({"top": args.top} if st.strategy in ("heapsort", "bubble") else {}),
               **extra,
               "per_query": {q: {"ndcg10": v, "bm25_ndcg10": b, **out.stats["per_query"][q],
                                 # the reranked top-10 as BM25 ranks (1 = BM25's first), to see position bias
                                 "top10_bm25_ranks": [bm25_rank[q][d] + 1 for d, _ in out.ranked(q)[:10]]}
                             for q, v, b in zip(qids, ndcg10_per_query(out, qrels, qids),
                                                ndcg10_per_query(run, qrels, qids))}}
        results["rows"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("per_query", "qids")}), flush=True)
        if args.jsonl:
            with open(args.jsonl, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    if args.compare_first:
        from scipy.stats import kendalltau

        for model, mo in outs.items():
            taus, overlaps = [], []
            for q in qids:
                a = [d for d, _ in mo["first"].ranked(q)]
                b = [d for d, _ in mo["listwise"].ranked(q)]
                pos = {d: i for i, d in enumerate(b)}
                taus.append(kendalltau(list(range(len(a))), [pos[d] for d in a]).statistic)
                overlaps.append(len(set(a[:10]) & set(b[:10])) / 10)
            lat = {sc: mo[sc].stats["wall_s"] / len(qids) for sc in mo}
            cmp = {"model": model, "first_s_per_q": lat["first"], "listwise_s_per_q": lat["listwise"],
                   "speedup": lat["listwise"] / lat["first"], "kendall_tau": float(np.nanmean(taus)),
                   "top10_overlap": float(np.mean(overlaps))}
            results.setdefault("compare", []).append(cmp)
            print(json.dumps(cmp), flush=True)
    for be in backends.values():
        be.close()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
