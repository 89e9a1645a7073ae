"""Evaluation speed: rankstack.measures.evaluate vs pytrec_eval on a 1M-line run.

A synthetic run of ``--queries`` x ``--docs`` (default 1,000 x 1,000 = 1M lines) with random scores,
and qrels of ``--judged`` documents per query (grades 0..3, half of them retrieved). Two score
distributions: ``ties`` (scores rounded to one decimal: every query has many ties, so the doc-id
tie-break path runs) and ``distinct`` (float64 uniform: no ties).

Timed, best of ``--repeat``, same measure set on both sides:
* rankstack: ``evaluate(qrels, run, measures)`` (qrels preparation included);
* pytrec_eval: ``RelevanceEvaluator(qrels, measures)`` + ``evaluate(run)`` (its conversion of the dicts
  to C structures happens inside these calls) + the mean over queries in Python.
Both results are compared per query (max |difference| must be < 1e-9).

    /work/venv/bin/python benchmarks/bench_eval.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from rankstack.measures import evaluate

MEASURES = {
    "nDCG@10": "ndcg_cut_10",
    "nDCG@100": "ndcg_cut_100",
    "nDCG": "ndcg",
    "AP": "map",
    "AP@100": "map_cut_100",
    "RR": "recip_rank",
    "P@5": "P_5",
    "P@10": "P_10",
    "R@100": "recall_100",
    "R@1000": "recall_1000",
    "Rprec": "Rprec",
}


def make_data(nq: int, nd: int, judged: int, ties: bool, seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    pool = 10 * nd
    for q in range(nq):
        qid = str(1000 + q)
        docs = rng.choice(pool, nd + judged // 2, replace=False)
        retrieved = docs[:nd]
        scores = rng.random(nd) * 10
        if ties:
            scores = np.round(scores, 1)
        run[qid] = dict(zip(map(str, retrieved.tolist()), scores.tolist(), strict=True))
        jd = np.concatenate([retrieved[: judged - judged // 2], docs[nd:]])
        qrels[qid] = dict(zip(map(str, jd.tolist()), rng.integers(0, 4, jd.size).tolist(), strict=True))
    return qrels, run


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--judged", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import pytrec_eval

    ours_names = list(MEASURES)
    theirs_names = set(MEASURES.values())
    ok = True
    print(f"run: {args.queries} queries x {args.docs} docs = {args.queries * args.docs:,} lines; "
          f"qrels: {args.judged}/query; measures: {', '.join(ours_names)}; best of {args.repeat}")
    print(f"{'scores':<9} {'rankstack s':>12} {'pytrec_eval s':>14} {'ratio pytrec/ours':>18} {'max |diff|':>11}")
    for ties in (True, False):
        qrels, run = make_data(args.queries, args.docs, args.judged, ties, args.seed)

        def ours() -> object:
            return evaluate(qrels, run, ours_names)

        def theirs() -> object:
            res = pytrec_eval.RelevanceEvaluator(qrels, theirs_names).evaluate(run)
            means = {m: statistics.fmean(v[m] for v in res.values()) for m in theirs_names}
            return res, means

        t_ours, ev = best(ours, args.repeat)
        t_theirs, (res, means) = best(theirs, args.repeat)
        diff = 0.0
        for o, t in MEASURES.items():
            pq = ev.per_query[o]  # type: ignore[attr-defined]
            diff = max(diff, max(abs(pq[q] - v[t]) for q, v in res.items()))
            diff = max(diff, abs(ev[o] - means[t]))  # type: ignore[index]
            if set(pq) != set(res):
                ok = False
        ok &= diff < 1e-9
        label = "ties" if ties else "distinct"
        print(f"{label:<9} {t_ours:>12.3f} {t_theirs:>14.3f} {t_theirs / t_ours:>18.2f} {diff:>11.1e}")
    print("agree: " + ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
