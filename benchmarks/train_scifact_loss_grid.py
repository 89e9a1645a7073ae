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
* ``softmax_ce+guard``: the same plus the score guard (``--margin 0``: drop candidates scoring above
  the least confident positive);
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
    "softmax_ce+guard": ["--loss", "softmax_ce", "--margin", "0"],
    "softmax_ce+tas": ["--loss", "softmax_ce", "--tas", "20"],
}


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
    a = ap.parse_args()
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
