"""Evaluation from files (issue #22): rankstack's readers and ``rankstack evaluate`` vs pytrec_eval.

A seeded synthetic run of ``--queries`` x ``--docs`` lines (default 1,000 x 1,000 = 1M) with float64
scores and TREC qrels of ``--judged`` documents per query (grades 0..3), written to a temp folder;
``--ties`` rounds the scores to 2 decimals (about 10 documents per score: the tie-breaking sort
runs). Timed, interleaved (rankstack then pytrec_eval in each repetition), median of ``--repeat``:

* ``read_run`` vs ``pytrec_eval.parse_run``; ``read_qrels`` vs ``pytrec_eval.parse_qrel``;
* the columnar reader of ``rankstack evaluate`` (``read_pair``: both files) vs ``parse_run`` +
  ``parse_qrel``;
* parse + evaluate (nDCG@10, AP, R@100, per query and mean): ``read_pair`` + ``evaluate_columns``
  (what ``rankstack evaluate`` does on regular files), and ``read_run`` + ``read_qrels`` +
  ``rankstack.measures.evaluate`` (the dict path), each vs ``parse_run`` + ``parse_qrel`` +
  ``RelevanceEvaluator.evaluate`` + the means in Python;
* the whole command in a subprocess: ``rankstack evaluate -q -m ... qrels run`` vs a Python script
  that does the same with pytrec_eval and prints the same lines.

Checked before timing: the per-query values of the columnar path equal the dict path's (max
|difference| 0) and pytrec_eval's (< 1e-9), and the command prints the same bytes as the pytrec_eval
script and as itself with the columnar path switched off.

    .venv/bin/python benchmarks/bench_eval_files.py [--ties]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NL = b"\n"
MEASURES = {"nDCG@10": "ndcg_cut_10", "AP": "map", "R@100": "recall_100"}

PYTREC_SCRIPT = r"""
import sys, pytrec_eval
with open(sys.argv[1]) as f: q = pytrec_eval.parse_qrel(f)
with open(sys.argv[2]) as f: r = pytrec_eval.parse_run(f)
m = {"nDCG@10": "ndcg_cut_10", "AP": "map", "R@100": "recall_100"}
res = pytrec_eval.RelevanceEvaluator(q, set(m.values())).evaluate(r)
out = []
for name, key in m.items():
    for qid in sorted(res):
        out.append(f"{name}\t{qid}\t{res[qid][key]:.4f}")
    out.append(f"{name}\tall\t{sum(v[key] for v in res.values()) / len(res):.4f}")
print("\n".join(out))
"""


def write_files(folder: Path, nq: int, nd: int, judged: int, seed: int, ties: bool = False) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    run, qrels = folder / "run.trec", folder / "qrels.txt"
    with open(run, "w") as f:
        for q in range(nq):
            scores = np.sort(rng.random(nd))[::-1]
            scores = (np.round(scores, 2) if ties else scores).tolist()
            docs = rng.permutation(nd * 5)[:nd].tolist()
            f.write("".join(f"q{q} Q0 d{d} {i + 1} {s!r} synth\n" for i, (d, s) in enumerate(zip(docs, scores))))
    with open(qrels, "w") as f:
        for q in range(nq):
            for d in rng.permutation(nd * 5)[:judged]:
                f.write(f"q{q} 0 d{d} {rng.integers(0, 4)}\n")
    return run, qrels


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--judged", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cli", action="store_true")
    ap.add_argument("--ties", action="store_true", help="scores rounded to 2 decimals (many ties)")
    a = ap.parse_args()

    import pytrec_eval

    from rankstack.data.formats import read_qrels, read_run
    from rankstack.data.formats._columnar import read_pair
    from rankstack.measures import evaluate
    from rankstack.measures.columnar import evaluate_columns

    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_files_"))
    run_p, qrels_p = write_files(tmp, a.queries, a.docs, a.judged, a.seed, a.ties)
    print(f"run {run_p.stat().st_size / 1e6:.1f} MB, {a.queries * a.docs:,} lines; qrels {a.queries * a.judged:,} lines")

    def rs_eval():  # the dict path
        q, r = read_qrels(qrels_p), read_run(run_p)
        ev = evaluate(q, r, list(MEASURES))
        return {m: ev.query_values(m) for m in MEASURES}, {m: ev[m] for m in MEASURES}

    def rs_columnar():  # what `rankstack evaluate` does on regular files
        ev = evaluate_columns(read_pair(qrels_p, run_p), list(MEASURES))
        return {m: ev.query_values(m) for m in MEASURES}, {m: ev[m] for m in MEASURES}

    def pt_both():
        return pt_qrels(), pt_run()

    def pt_eval():
        with open(qrels_p) as f:
            q = pytrec_eval.parse_qrel(f)
        with open(run_p) as f:
            r = pytrec_eval.parse_run(f)
        res = pytrec_eval.RelevanceEvaluator(q, set(MEASURES.values())).evaluate(r)
        return res, {m: sum(v[k] for v in res.values()) / len(res) for m, k in MEASURES.items()}

    def pt_run():
        with open(run_p) as f:
            return pytrec_eval.parse_run(f)

    def pt_qrels():
        with open(qrels_p) as f:
            return pytrec_eval.parse_qrel(f)

    # same figures on both sides
    (rs_pq, rs_agg), (pt_res, _pt_agg) = rs_eval(), pt_eval()
    diff = max(abs(rs_pq[m][qid] - pt_res[qid][k]) for m, k in MEASURES.items() for qid in pt_res)
    print(f"max |per-query difference| = {diff:.2e}; means " + ", ".join(f"{m} {rs_agg[m]:.4f}" for m in MEASURES))
    assert diff < 1e-9
    assert read_run(run_p)._data == {q: dict(d) for q, d in pt_run().items()}
    assert read_pair(qrels_p, run_p) is not None  # the file is regular: the columnar path reads it
    (col_pq, col_agg) = rs_columnar()
    col_diff = max(abs(col_pq[m][qid] - rs_pq[m][qid]) for m in MEASURES for qid in rs_pq[m])
    print(f"columnar vs dict path: max |per-query difference| = {col_diff:.1e}, same queries: "
          f"{all(list(col_pq[m]) == list(rs_pq[m]) for m in MEASURES)}")
    assert col_diff == 0 and col_agg == rs_agg

    from rankstack.data.formats import runs as runs_mod

    def strict_run():  # the line-by-line path the fast path falls back to (before issue #22)
        fast, runs_mod._fast_run = runs_mod._fast_run, lambda *a: None
        try:
            return read_run(run_p)
        finally:
            runs_mod._fast_run = fast

    cases = [("read_run", lambda: read_run(run_p), pt_run),
             ("read_run, strict path only", strict_run, pt_run),
             ("read_qrels", lambda: read_qrels(qrels_p), pt_qrels),
             ("read_pair (run + qrels)", lambda: read_pair(qrels_p, run_p), pt_both),
             ("parse + evaluate, columnar", rs_columnar, pt_eval),
             ("parse + evaluate, dicts", rs_eval, pt_eval)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    rankstack_bin = str(Path(sys.executable).with_name("rankstack"))
    script = tmp / "pytrec_evaluate.py"
    script.write_text(PYTREC_SCRIPT)
    cmd_rs = [rankstack_bin, "evaluate", "-q", *sum((["-m", m] for m in MEASURES), []), str(qrels_p), str(run_p)]
    cmd_pt = [sys.executable, str(script), str(qrels_p), str(run_p)]
    if not a.no_cli:
        o1 = subprocess.run(cmd_rs, capture_output=True, env=env, check=True).stdout
        o2 = subprocess.run(cmd_pt, capture_output=True, env=env, check=True).stdout
        off = ("import sys; import rankstack.data.formats._columnar as c; c.read_pair = lambda *a, **k: None; "
               "from rankstack.interfaces.cli import main; main(sys.argv[1:])")
        o3 = subprocess.run([sys.executable, "-c", off, *cmd_rs[1:]], capture_output=True, env=env, check=True).stdout
        print(f"CLI output identical to pytrec_eval's: {o1 == o2}, to the dict path's: {o1 == o3} "
              f"({o1.count(NL)} lines)")
        assert o1 == o2 == o3
        cases.append(("whole command (subprocess)",
                      lambda: subprocess.run(cmd_rs, capture_output=True, env=env, check=True),
                      lambda: subprocess.run(cmd_pt, capture_output=True, env=env, check=True)))
    print(f"single-threaded, interleaved, median of {a.repeat}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'case':28s} {'rankstack s':>12s} {'pytrec_eval s':>14s} {'ratio':>7s}")
    for name, rs, pt in cases:
        t_rs, t_pt = [], []
        for _ in range(a.repeat):
            t_rs.append(timed(rs)[0])
            t_pt.append(timed(pt)[0])
        m_rs, m_pt = statistics.median(t_rs), statistics.median(t_pt)
        print(f"{name:28s} {m_rs:12.3f} {m_pt:14.3f} {m_pt / m_rs:6.2f}x", flush=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
