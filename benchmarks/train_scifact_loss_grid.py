"""Equal-budget loss / negatives / batching comparison for the SciFact cross-encoder (a *small* protocol).

Each cell runs ``benchmarks/train_scifact_crossencoder.py`` with the same budget -- from the
all-MiniLM-L6-v2 backbone with a new head, ``--max-steps`` optimiser steps of ``--batch-size`` groups of
1 positive + ``--n-neg`` BM25 negatives (the 729 non-held-out train queries), max_length 128, the same
seed -- and reranks the BM25 top-``--depth`` of the first ``--test-queries`` SciFact test queries with
the ONNX int8 cross-encoder (CE alone; no fusion). Only the loss, the negative guard or the batch sampler
changes between cells. This is far too little training for absolute figures: it ranks the settings
at a tiny budget, nothing more.

Cells (``--cells`` picks a subset, comma-separated names):

* ``bce``, ``ranknet``, ``listnet``, ``lambdaloss``, ``softmax_ce`` (= InfoNCE over the group, T=1):
  negatives uniform from BM25 ranks 1-30, no false-negative guard;
* ``softmax_ce+guard`` (and ``bce+guard``, ``ranknet+guard``, ``lambdaloss+guard``, ``listnet+guard``):
  the same plus the score guard (``--margin 0``: drop candidates scoring above the least confident
  positive);
* ``softmax_ce+tas``: the same as ``softmax_ce`` with topic-aware batches (TAS: 20 k-means clusters of
  the training queries' base bi-encoder embeddings; each batch from one cluster).

Example::

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 nice -n 5 python benchmarks/train_scifact_loss_grid.py \\
        --out /tmp/rankstack-train-grid

Each cell appends its JSON line to ``<out>/results.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

CELLS: dict[str, list[str]] = {
    "softmax_ce": ["--loss", "softmax_ce"],
    "bce": ["--loss", "bce"],
    "ranknet": ["--loss", "ranknet"],
    "lambdaloss": ["--loss", "lambdaloss"],
    "listnet": ["--loss", "listnet"],
    "softmax_ce+tas": ["--loss", "softmax_ce", "--tas", "20"],
}
# every loss with the score guard too (``softmax_ce+guard``, ``bce+guard`` ...)
CELLS.update({f"{name}+guard": [*args, "--margin", "0"] for name, args in list(CELLS.items()) if "+" not in name})


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def report(out: str, data: str = "data/scifact", base: str = "softmax_ce") -> None:
    """Print the markdown table of the cells in ``<out>/results.jsonl``: train time, logged loss at a
    third, two thirds and the end of training, nDCG@10 of the CE alone and fused 0.5/0.5 with BM25, and
    a paired t-test of each cell's CE-alone per-query nDCG@10 against the ``base`` cell's (from the
    cells' test run files)."""
    import json

    from rankstack.data.formats import read_qrels, read_run
    from rankstack.data.records import Run
    from rankstack.measures import evaluate
    from rankstack.measures.significance import paired_t_test
    from rankstack.stages.fusion import fuse_runs

    rows = [json.loads(x) for x in open(f"{out}/results.jsonl", encoding="utf-8") if x.strip()]
    qrels = read_qrels(f"{data}/qrels/test.tsv")
    bm25 = read_run(f"{out}/bm25.top100.trec")
    per_q: dict[str, dict[str, float]] = {}
    for r in rows:
        cell = r["name"].removeprefix("grid-")
        run = read_run(f"{out}/{r['name']}/test.ce.top{r['depth']}.onnx-int8.trec")
        qids = sorted(run)
        ev = evaluate({q: qrels[q] for q in qids}, run, ["nDCG@10"], per_query=True)
        per_q[cell] = ev.per_query["nDCG@10"]
        assert abs(ev["nDCG@10"] - r["ce_ndcg10"]) < 1e-3, (cell, ev["nDCG@10"], r["ce_ndcg10"])
        bm = Run({q: dict(bm25.ranked(q)[: r["depth"]]) for q in qids})
        fused = fuse_runs([run, bm], method="wsum", norm="zscore", weights=[0.5, 0.5])
        r["_fused_pq"] = evaluate({q: qrels[q] for q in qids}, fused, ["nDCG@10"], per_query=True).per_query["nDCG@10"]
        state = json.load(open(f"{out}/{r['name']}/checkpoint-{r['steps']}/trainer_state.json", encoding="utf-8"))
        logged = {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}
        marks = [min(logged, key=lambda s, t=t: abs(s - t)) for t in (r["steps"] // 3, 2 * r["steps"] // 3, r["steps"])]
        r["_loss"] = "/".join(f"{float(logged[m]):.3f}" for m in marks)
        r["_marks"] = "/".join(str(m) for m in marks)
    print("| cell | steps (pairs) | train s | logged loss (steps) | nDCG@10 CE alone | p vs "
          f"{base} | fused z 0.5/0.5 | p vs {base} (fused) | p vs the same loss without +guard/+tas (alone) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ref = next((r for r in rows if r["name"] == f"grid-{base}"), None)
    for r in rows:
        cell = r["name"].removeprefix("grid-")
        pairs = r["steps"] * r["batch_size"] * (1 + r["n_neg"])
        if ref is None or r is ref:
            p1 = p2 = "–"
        else:
            qs = sorted(per_q[cell])
            p1 = _p(paired_t_test([per_q[cell][q] for q in qs], [per_q[base][q] for q in qs]))
            p2 = _p(paired_t_test([r["_fused_pq"][q] for q in qs], [ref["_fused_pq"][q] for q in qs]))
        plain = cell.split("+")[0]
        if "+" in cell and plain in per_q:
            qs = sorted(per_q[cell])
            p3 = _p(paired_t_test([per_q[cell][q] for q in qs], [per_q[plain][q] for q in qs]))
        else:
            p3 = "–"
        fused_mean = sum(r["_fused_pq"].values()) / len(r["_fused_pq"])
        assert abs(fused_mean - r["fused_zscore_0.5_ndcg10"]) < 2e-3, (cell, fused_mean)
        print(f"| {cell} | {r['steps']} ({pairs}) | {r['train_s']:.0f} | {r['_loss']} ({r['_marks']}) | "
              f"{r['ce_ndcg10']:.4f} | {p1} | {r['fused_zscore_0.5_ndcg10']:.4f} | {p2} | {p3} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--max-steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--n-neg", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--test-queries", type=int, default=100)
    ap.add_argument("--out", default="/tmp/rankstack-train-grid")
    ap.add_argument("--report", action="store_true", help="print the table of the cells in --out, run nothing")
    ap.add_argument("--base", default="softmax_ce", help="--report: the cell the others are tested against")
    a = ap.parse_args()
    if a.report:
        report(a.out, base=a.base)
        return
    os.makedirs(a.out, exist_ok=True)
    shared = "/tmp/rankstack-train-bench/bm25.top100.trec"
    if not os.path.exists(f"{a.out}/bm25.top100.trec") and os.path.exists(shared):
        shutil.copy(shared, f"{a.out}/bm25.top100.trec")
    for cell in a.cells.split(","):
        cmd = [sys.executable, "benchmarks/train_scifact_crossencoder.py", *CELLS[cell],
               "--n-neg", str(a.n_neg), "--rank-window", "1,30", "--max-length", "128",
               "--batch-size", str(a.batch_size), "--max-steps", str(a.max_steps), "--lr", str(a.lr),
               "--dev-holdout", "80", "--no-dev-eval", "--depth", str(a.depth),
               "--max-test-queries", str(a.test_queries), "--quantize", "int8", "--out", a.out,
               "--tag", f"grid-{cell}"]
        print(" ".join(cmd), file=sys.stderr, flush=True)
        t = time.time()
        subprocess.run(cmd, check=True)
        print(f"cell {cell} done in {time.time() - t:.0f}s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
