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


def _cell_key(r: dict) -> tuple:
    """What identifies a grid cell: model, scorer, strategy, candidates, queries and the cost knobs."""
    return (r["model"], r["scorer"], r["strategy"], r.get("k"), tuple(r["qids"]), r.get("top"),
            r.get("max_calls"), r.get("max_think_tokens"), r.get("debias"), r.get("backend"),
            r.get("labels") or "letter" if r["scorer"] == "first" else None,
            r.get("prime") or None)


def _done_cells(path: str | None) -> set[tuple]:
    """Keys (:func:`_cell_key`) of the cells already recorded in the JSONL ``path``."""
    done: set[tuple] = set()
    if path and Path(path).exists():
        for line in open(path, encoding="utf-8"):
            if line.strip():
                r = json.loads(line)
                if "scorer" in r:
                    done.add(_cell_key(r))
    return done


def report(path: str) -> None:
    """Print the markdown table of the cells in the JSONL ``path`` and FIRST-vs-listwise agreement
    (computed from the stored per-query rankings of the two cells on the same backend and candidates)."""
    from scipy.stats import kendalltau, ttest_rel

    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    print("| model | backend | scorer / strategy | candidates | nDCG@10 | BM25 nDCG@10 | delta | paired t p | calls/q | "
          "prompt + completion tokens/q | s/q | parse repairs | budget-hit q | top-1 = BM25 #1 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        knobs = []
        if r.get("top") is not None:
            knobs.append(f"top-{r['top']}")
        if r["strategy"] == "sliding":
            knobs.append("w20 s10")
        if r.get("max_calls"):
            knobs.append(f"<= {r['max_calls']} calls/q")
        if r.get("max_think_tokens"):
            knobs.append(f"think <= {r['max_think_tokens']}")
        if r.get("debias"):
            knobs.append(f"debias={r['debias']}")
        if r.get("labels") not in (None, "letter"):
            knobs.append(f"labels={r['labels']}")
        if r.get("prime"):
            knobs.append(f"prime={r['prime']!r}")
        pq = r["per_query"].values()
        top1 = sum(1 for v in pq if v["top10_bm25_ranks"][0] == 1) / len(r["per_query"])
        be = r["backend"] + (" bf16" if r.get("dtype") == "bfloat16" else "")
        x = [r["per_query"][q]["ndcg10"] for q in r["qids"]]
        y = [r["per_query"][q]["bm25_ndcg10"] for q in r["qids"]]
        pval = ttest_rel(x, y).pvalue if x != y else 1.0
        desc = f"{r['scorer']} / {r['strategy']}" + (f" {', '.join(knobs)}" if knobs else "")
        print(f"| {r['model']} | {be} | {desc} | BM25 top-{r['k']} | "
              f"{r['ndcg10']:.4f} | {r['bm25_ndcg10']:.4f} | {r['ndcg10'] - r['bm25_ndcg10']:+.4f} | {'<0.001' if pval < 0.001 else f'{pval:.3f}'} | "
              f"{r['calls_per_q']:.1f} | {r['prompt_tokens_per_q']:.0f} + {r['completion_tokens_per_q']:.0f} | "
              f"{r['s_per_q']:.1f} | {r['repairs']} | {r['budget_hit_queries']} | {top1:.2f} |")
    print()
    for f in (r for r in rows if r["scorer"] == "first" and not r.get("max_calls")):
        for g in (r for r in rows if r["scorer"] == "listwise" and r["model"] == f["model"]
                  and r["backend"] == f["backend"] and r["k"] == f["k"] and r["qids"] == f["qids"]
                  and not r.get("max_calls")):
            taus, over, same = [], [], 0
            for q in f["qids"]:
                a, b = f["per_query"][q]["ranking"], g["per_query"][q]["ranking"]
                pos = {d: i for i, d in enumerate(b)}
                taus.append(kendalltau(list(range(len(a))), [pos[d] for d in a]).statistic)
                over.append(len(set(a[:10]) & set(b[:10])) / 10)
                same += a[:10] == b[:10]
            variant = "".join(f" {k}={f[k]!r}" for k in ("labels", "prime") if f.get(k) not in (None, "letter"))
            print(f"FIRST{variant} vs listwise, {f['model']}, {f['backend']}, BM25 top-{f['k']}, {len(f['qids'])} queries: "
                  f"s/q {f['s_per_q']:.2f} vs {g['s_per_q']:.2f} = {g['s_per_q'] / f['s_per_q']:.2f}x faster; "
                  f"Kendall tau mean {np.nanmean(taus):.3f} (median {np.nanmedian(taus):.3f}); top-10 overlap "
                  f"{np.mean(over):.3f}; identical top-10 order on {same}/{len(f['qids'])} queries; "
                  f"nDCG@10 {f['ndcg10']:.4f} vs {g['ndcg10']:.4f}")


def random_order(k: int, n: int) -> None:
    """The reference a reranker that ignores the passages would get: candidates shuffled per query."""
    queries, _, run, qrels, _ = load_dl19(k)
    qids = [q.id for q in queries if q.id in run]
    rng = np.random.default_rng(0)
    vals = []
    for _ in range(n):
        shuffled = {}
        for q in qids:
            ids = [d for d, _ in run.ranked(q)]
            shuffled[q] = {ids[i]: float(len(ids) - j) for j, i in enumerate(rng.permutation(len(ids)))}
        vals.append(ndcg10(Run(shuffled), qrels, qids))
    print(f"random order of BM25 top-{k}, {len(qids)} queries, {n} shuffles: nDCG@10 mean {np.mean(vals):.4f} "
          f"(s.d. {np.std(vals):.4f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--queries", type=int, default=43, help="the first N DL19 queries (file order)")
    ap.add_argument("--qids", nargs="+", default=None, help="explicit DL19 query ids (overrides --queries)")
    ap.add_argument("--models", nargs="+", default=["smollm2"])
    ap.add_argument("--scorers", nargs="+", default=["pointwise", "first"])
    ap.add_argument("--backend", default="transformers")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float32", help="transformers backend: torch dtype of the weights")
    ap.add_argument("--max-words", type=int, default=60)
    ap.add_argument("--max-think-tokens", type=int, default=64, help="reasoning scorer: thinking budget")
    ap.add_argument("--strategy", nargs="*", default=[], metavar="SCORER=STRATEGY",
                    help="override a scorer's natural strategy, e.g. pairwise=bubble")
    ap.add_argument("--top", type=int, default=10, help="heapsort/bubble: how many top passages to sort")
    ap.add_argument("--max-calls", type=int, default=None, help="per-query LLM call budget (every strategy stops there)")
    ap.add_argument("--set-size", type=int, default=4, help="setwise/reasoning heapsort: passages per prompt")
    ap.add_argument("--debias", default=None, choices=["reverse", "cyclic"],
                    help="setwise scorer: position debiasing (see rankstack.llm.scorers.SetwiseScorer)")
    ap.add_argument("--labels", default="letter", choices=["letter", "letter-nonword"],
                    help="first scorer: passage identifiers (letter-nonword skips the words A and I)")
    ap.add_argument("--prime", default="", help="first scorer: text that starts the answer, e.g. '['")
    ap.add_argument("--jsonl", default=None, help="append one JSON line per finished cell here; skip done cells")
    ap.add_argument("--compare-first", action="store_true")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--report", default=None, metavar="JSONL",
                    help="print the markdown table and FIRST-vs-listwise agreement of a --jsonl file, run nothing")
    ap.add_argument("--random-order", type=int, default=0, metavar="N",
                    help="print the mean nDCG@10 of N random orders of the BM25 top-k (seed 0), run nothing")
    args = ap.parse_args()
    if args.report:
        report(args.report)
        return
    if args.random_order:
        random_order(args.k, args.random_order)
        return

    from rankstack.llm.backends import make_backend
    from rankstack.llm.scorers import SCORERS
    from rankstack.stages.llm import LLMReranker

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

    def knobs(sc: str) -> dict:
        strat = overrides.get(sc, SCORERS[sc].natural_strategy)
        return {"strategy": strat, "top": args.top if strat in ("heapsort", "bubble") else None,
                "max_calls": args.max_calls,
                "max_think_tokens": args.max_think_tokens if sc == "reasoning" else None,
                "debias": args.debias if sc == "setwise" else None,
                "labels": args.labels if sc == "first" else None,
                "prime": (args.prime or None) if sc == "first" else None}

    cells = [(m, sc) for sc in scorers for m in args.models
             if args.compare_first or _cell_key({"model": m, "scorer": sc, "k": args.k, "qids": qids,
                                                 "backend": args.backend, **knobs(sc)}) not in done]
    skipped = len(scorers) * len(args.models) - len(cells)
    if skipped:
        print(f"{skipped} cells already in {args.jsonl}, skipped", flush=True)
    backends: dict[str, object] = {}
    outs: dict[str, dict[str, Run]] = {}
    opts = {"threads": args.threads} if args.backend in ("transformers", "llamacpp") else {}
    if args.backend == "transformers":
        opts["dtype"] = args.dtype
    for model, sc in cells:
        if model not in backends:
            t0 = time.perf_counter()
            backends[model] = make_backend(args.backend, model, **opts)
            print(f"loaded {model} ({args.backend}) in {time.perf_counter() - t0:.1f}s", flush=True)
        be = backends[model]
        kn = knobs(sc)
        extra = {k: v for k, v in kn.items() if k in ("max_think_tokens", "debias", "labels", "prime") and v is not None}
        st = LLMReranker(sc, kn["strategy"], backend=be, docs=docs, window=20, stride=10, k=args.top,
                               set_size=args.set_size, max_calls=args.max_calls, max_words=args.max_words,
                               progress=True, **extra)
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
               "threads": args.threads, "dtype": args.dtype if args.backend == "transformers" else None,
               **kn, **({"set_size": args.set_size} if sc in ("setwise", "reasoning") else {}),
               "per_query": {q: {"ndcg10": v, "bm25_ndcg10": b, **out.stats["per_query"][q],
                                 # the reranked top-10 as BM25 ranks (1 = BM25's first), to see position bias
                                 "top10_bm25_ranks": [bm25_rank[q][d] + 1 for d, _ in out.ranked(q)[:10]],
                                 # the whole reranked list (doc ids), for agreement between cells
                                 "ranking": [d for d, _ in out.ranked(q)]}
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
