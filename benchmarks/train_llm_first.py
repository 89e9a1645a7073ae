"""Train SmolLM2-135M-Instruct as a FIRST reranker on SciFact train queries and compare FIRST nDCG@10
before and after on SciFact test queries (BM25 top-``depth``), paired by query.

Teacher: the train qrels (judged passages first, then BM25 order); windows of ``--window`` passages
cut from BM25 top-``depth`` as a sliding window (stride ``window/2``) sees them, shown shuffled (seeded;
``--order shuffled``, the default) or in BM25 order (``--order bm25``, the order the sliding window shows
them at test time). ``--objective``: first | generation | combined | fullrank | lipo (rankstack.train.llm;
lipo: ``--beta``, ``--responses`` permutations per window).
Scoring: :class:`rankstack.llm.scorers.FirstScorer` with ``prime="["`` (the position the model was
trained on), sliding window of the same size and stride, one pass; the untrained model is scored the
same way. CPU, one thread:

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 nice -n 10 python benchmarks/train_llm_first.py \\
        --steps 40 --window 10 --max-words 30 --test-queries 30

Ranking accuracy (Chen et al., NeurIPS 2024; ``rankstack.train.llm.ranking_accuracy``) of the untrained
model (which is also LiPO's reference) and the trained one on the LiPO preference pairs of the test
queries' windows (same window/order, labels from the test qrels) and of the first ``--rank-acc-train``
training windows, with the idealised ranking accuracy from the untrained model at ``--beta`` and at the
grid of Chen et al.'s code (0.01, 0.1, 1, 5, 10), alpha 0.75; on by default for ``--objective lipo``
(``--rank-acc``/``--no-rank-acc``).

``--baseline BENCH.json`` reuses the untrained model's per-query scores of an earlier run with the same
test settings (the untrained scoring is deterministic), saving its ~5 minutes; ``--json`` also writes
the result (without the adapter) to that path. Progress (one line per step) goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def first_choices(backend, queries, corpus, run, qrels, qids, window, max_words) -> dict:
    """Which label the model puts first (``prime="["``) on each test query's top-``window`` BM25 window
    shown in BM25 order, and whether that passage is relevant: a model that learned a position picks
    the same label whatever the passages."""
    from collections import Counter

    from rankstack.train.llm import first_logprobs
    from rankstack.train.llm_data import build_windows

    ws = build_windows(queries, corpus, run, qrels, window=window, stride=window, depth=window, shuffle=False,
                       max_words=max_words, min_levels=1, qids=qids)
    lps = first_logprobs(backend.model, backend, ws)
    picks = [max(range(len(lp)), key=lp.__getitem__) for lp in lps]
    rel = sum(qrels.get(w.qid, {}).get(w.doc_ids[i], 0) > 0 for w, i in zip(ws, picks))
    firsts = Counter(w.labels[i] for w, i in zip(ws, picks))
    return {"windows": len(ws), "first_label": dict(firsts.most_common()), "first_relevant": int(rel)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/scifact")
    ap.add_argument("--out", default="/tmp/rankstack-llm-train")
    ap.add_argument("--objective", default="first")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--max-words", type=int, default=30)
    ap.add_argument("--train-queries", type=int, default=200)
    ap.add_argument("--test-queries", type=int, default=30)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--order", choices=("shuffled", "bm25"), default="shuffled",
                    help="presentation order of the passages in a training window")
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--teacher", choices=("qrels", "ce"), default="qrels",
                    help="gold order: the train qrels (judged first, then BM25 order) or the shipped "
                         "SciFact cross-encoder rankstack/ce-minilm-scifact's scores of the BM25 top-depth "
                         "(a full order; slow on one CPU thread, unmeasured)")
    ap.add_argument("--baseline", default=None,
                    help="bench.json of an earlier run: reuse its untrained scores")
    ap.add_argument("--diag-queries", type=int, default=12, help="test queries of the first-label diagnostic")
    ap.add_argument("--json", default=None, help="also write the result JSON (no per-step parts) here")
    ap.add_argument("--beta", type=float, default=0.05, help="lipo: scale of the log-ratios")
    ap.add_argument("--responses", type=int, default=4, help="lipo: permutations per window")
    ap.add_argument("--rank-acc", action=argparse.BooleanOptionalAction, default=None,
                    help="ranking accuracy before/after (default: on for lipo)")
    ap.add_argument("--rank-acc-train", type=int, default=30, help="training windows in the ranking accuracy")
    ap.add_argument("--alpha", type=float, default=0.75, help="ground-truth preference probability of the "
                    "idealised ranking accuracy")
    a = ap.parse_args()
    if a.rank_acc is None:
        a.rank_acc = a.objective == "lipo"

    import numpy as np
    import torch
    from scipy.stats import ttest_rel

    from rankstack.data.formats import read_docs, read_qrels, read_queries
    from rankstack.data.records import Query
    from rankstack.llm.backends.hf import TransformersBackend
    from rankstack.measures import evaluate
    from rankstack.stages.bm25 import BM25Index, BM25Retriever
    from rankstack.stages.llm import LLMReranker
    from rankstack.train.llm import LLMTrainConfig, train_llm
    from rankstack.train.llm_data import build_windows

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    os.makedirs(a.out, exist_ok=True)
    corpus = {d.id: d for d in read_docs(f"{a.data}/corpus.jsonl")}
    queries = {q.id: q.text for q in read_queries(f"{a.data}/queries.jsonl")}
    qrels_train = read_qrels(f"{a.data}/qrels/train.tsv")
    qrels_test = read_qrels(f"{a.data}/qrels/test.tsv")
    train_q = sorted(qrels_train)[: a.train_queries]
    test_q = sorted(qrels_test)[: a.test_queries]
    t = time.time()
    bm25 = BM25Retriever(BM25Index.build(corpus.values(), progress=False), k=a.depth)(
        [Query(q, queries[q]) for q in [*train_q, *test_q]])
    log(f"bm25 top-{a.depth} for {len(train_q)} train + {len(test_q)} test queries in {time.time() - t:.1f}s")
    teacher = qrels_train
    if a.teacher == "ce":
        from rankstack.stages.crossencoder import CrossEncoderReranker

        t = time.time()
        train_run = type(bm25)({q: bm25[q] for q in train_q}, name="bm25")
        teacher = CrossEncoderReranker(corpus, model="rankstack/ce-minilm-scifact", max_length=192)(
            [Query(q, queries[q]) for q in train_q], train_run)
        log(f"cross-encoder teacher on {len(train_q)} train queries x {a.depth} in {time.time() - t:.0f}s")
    windows = build_windows(queries, corpus, bm25, teacher, window=a.window, depth=a.depth, seed=a.seed,
                            max_words=a.max_words, qids=train_q, shuffle=a.order == "shuffled")
    import random

    random.Random(a.seed).shuffle(windows)
    log(f"{len(windows)} training windows (with a judged passage) from {len(train_q)} train queries "
        f"(teacher {a.teacher}, {a.order} order)")
    base = TransformersBackend("smollm2", threads=1, device="cpu")
    test_queries = [Query(q, queries[q]) for q in test_q]
    test_run = type(bm25)({q: bm25[q] for q in test_q}, name="bm25")

    def score(backend) -> tuple[dict[str, float], float]:
        rr = LLMReranker("first", docs=corpus, backend=backend, window=a.window, stride=a.window // 2,
                         max_words=a.max_words, prime="[")
        t0 = time.time()
        run = rr(test_queries, test_run)
        ev = evaluate(qrels_test, run, ["nDCG@10"], per_query=True).per_query["nDCG@10"]
        return {q: ev.get(q, 0.0) for q in test_q}, (time.time() - t0) / len(test_q)

    bm = evaluate(qrels_test, test_run, ["nDCG@10"], per_query=True).per_query["nDCG@10"]
    bm = {q: bm.get(q, 0.0) for q in test_q}
    if a.baseline:
        with open(a.baseline) as fh:
            prev = json.load(fh)
        same = ("window", "depth", "max_words", "test_queries", "data")
        diff = [k for k in same if prev["args"].get(k) != vars(a)[k]]
        if diff:
            raise SystemExit(f"--baseline {a.baseline}: different test settings {diff}")
        before, s_before = prev["per_query"]["untrained"], prev["s_per_query_untrained"]
    else:
        before, s_before = score(base)
    log(f"untrained FIRST: {np.mean(list(before.values())):.4f} ({s_before:.1f}s/query); BM25 "
        f"{np.mean(list(bm.values())):.4f}")
    out = f"{a.out}/{a.objective}-{a.order}-{a.teacher}-w{a.window}-s{a.steps}"
    cfg = LLMTrainConfig(output_dir=out, objective=a.objective, max_steps=a.steps, learning_rate=a.lr,
                         lora_r=a.lora_r, seed=a.seed, max_length=4096, warmup_steps=a.warmup, beta=a.beta,
                         lipo_responses=a.responses)
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self):
            self.t0 = time.time()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                log(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} "
                    f"lr {logs.get('learning_rate', 0):.2e} ({time.time() - self.t0:.0f}s)")

    meta = train_llm(cfg, windows, backend=base, callbacks=[Progress()])
    parts = meta.pop("parts")
    meta.pop("model")
    log(f"trained {meta['steps']} steps in {meta['seconds']}s ({meta['tokens_per_s']} tokens/s)")
    trained = TransformersBackend(out, threads=1, device="cpu")
    after, s_after = score(trained)
    diag = {name: first_choices(be, queries, corpus, test_run, qrels_test, test_q[: a.diag_queries], a.window,
                                a.max_words) for name, be in (("untrained", base), ("trained", trained))}
    log(f"first label on the top-{a.window} BM25-order window: {diag}")
    rank_acc = None
    if a.rank_acc:
        from rankstack.train.llm import idealised_ranking_accuracy, pair_logprobs, preference_pairs

        t = time.time()
        test_ws = build_windows(queries, corpus, bm25, qrels_test, window=a.window, depth=a.depth, seed=a.seed,
                                max_words=a.max_words, qids=test_q, shuffle=a.order == "shuffled")
        sets = {"test": preference_pairs(test_ws, a.responses, a.seed),
                "train": preference_pairs(windows[: a.rank_acc_train], a.responses, a.seed)}
        rank_acc = {"alpha": a.alpha, "responses": a.responses}
        for name, pairs in sets.items():
            r = {"windows": len({(p.window.qid, p.window.start) for p in pairs}), "pairs": len(pairs)}
            # every answer of a window has the same number of tokens (one per identifier, the same
            # separators), so length normalisation cannot change a pair's order: plain log-probs only
            for label, be in (("untrained", base), ("trained", trained)):
                lw, ll = pair_logprobs(be.model, be, pairs)
                r[label] = sum(x > y for x, y in zip(lw, ll)) / len(pairs)
                r[f"{label}_mean_margin"] = sum(x - y for x, y in zip(lw, ll)) / len(pairs)
                if label == "untrained":  # the untrained model is LiPO's reference
                    r["idealised"] = {str(b): idealised_ranking_accuracy(lw, ll, b, a.alpha)
                                      for b in sorted({a.beta, 0.01, 0.1, 1.0, 5.0, 10.0})}
            rank_acc[name] = r
        log(f"ranking accuracy ({time.time() - t:.0f}s): {rank_acc}")

    def m(d):
        return float(np.mean([d[q] for q in test_q]))

    def p(x, y):
        xs, ys = [x[q] for q in test_q], [y[q] for q in test_q]
        return float(ttest_rel(xs, ys).pvalue) if xs != ys else 1.0

    def curve(k):
        return {"first10": float(np.mean([r[k] for r in parts[:10]])),
                "last10": float(np.mean([r[k] for r in parts[-10:]]))}

    k = {"first": "rank", "lipo": "lipo"}.get(a.objective, "lm")
    first_loss, last_loss = curve(k)["first10"], curve(k)["last10"]
    res = {"args": vars(a), "train_windows": len(windows), "test_queries": len(test_q),
           "bm25": m(bm), "untrained": m(before), "trained": m(after),
           "p_trained_vs_untrained": p(after, before), "p_trained_vs_bm25": p(after, bm),
           "s_per_query_untrained": round(s_before, 2), "s_per_query_trained": round(s_after, 2),
           "loss_first10": first_loss, "loss_last10": last_loss,
           "loss_parts": {k: curve(k) for k in parts[0]}, "first_choice": diag, "ranking_accuracy": rank_acc, **meta}
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({**res, "per_query": {"bm25": bm, "untrained": before, "trained": after}}, fh, indent=1)
    with open(f"{out}/bench.json", "w") as fh:
        json.dump({**res, "per_query": {"bm25": bm, "untrained": before, "trained": after}}, fh, indent=1)


if __name__ == "__main__":
    main()
