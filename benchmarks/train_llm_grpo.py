"""GRPO (Rank-R1 setwise reasoning) for SmolLM2-135M-Instruct on SciFact, with TRL's GRPOTrainer:
train on sets from SciFact train queries, then compare the reasoning scorer's answers on held-out sets
from SciFact test queries before and after (share of sets whose answer is relevant, exact McNemar test
on the paired outcomes), plus the position-bias check (how often passage [1] is picked) and the share of
answers in the exact ``<think>...</think> <answer>[i]</answer>`` format.

Sets (rankstack.train.grpo.build_sets): one judged-relevant passage and ``k - 1`` unjudged ones from the
query's BM25 top-``depth``, shuffled (seeded); queries as benchmarks/train_llm_first.py selects them
(sorted ids of the train / test qrels, the first ``--train-queries`` / ``--test-queries``). Rewards
(``--rewards``, name=weight): rank_r1 (Rank-R1's 0/1: format and correct), answer (the label the
reasoning scorer reads is relevant, any format), tag (graded format), format (strict 0/1). Per step the
reward mean/std and the share of groups whose rewards are all equal (zero variance) are logged, for the
weighted reward and for each component. CPU, one thread:

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 nice -n 10 python benchmarks/train_llm_grpo.py --steps 40 \\
        --json docs/bench/llm_grpo_s40.json

Progress (one line per step) goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_llm_first import log  # noqa: E402  (the FIRST benchmark's progress logger)


def _weights(spec: str) -> dict[str, float]:
    out = {}
    for part in spec.split(","):
        name, _, w = part.partition("=")
        out[name.strip()] = float(w) if w else 1.0
    return out


def summary(rows: list[dict]) -> dict:
    n = len(rows)
    return {"sets": n, "accuracy": sum(r["correct"] for r in rows) / n,
            "picked_first": sum(r["pick"] == 1 for r in rows) / n,
            "no_answer": sum(r["pick"] is None for r in rows) / n,
            "strict_format": sum(r["strict_format"] for r in rows) / n}


def mcnemar(a: list[bool], b: list[bool]) -> dict:
    """Exact McNemar test (two-sided binomial on the discordant pairs)."""
    from scipy.stats import binomtest

    ab = sum(x and not y for x, y in zip(a, b))
    ba = sum(y and not x for x, y in zip(a, b))
    p = float(binomtest(ab, ab + ba, 0.5).pvalue) if ab + ba else 1.0
    return {"only_before": ab, "only_after": ba, "p": p}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/scifact")
    ap.add_argument("--out", default="/tmp/rankstack-llm-grpo")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--k", type=int, default=4, help="passages per set")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--max-words", type=int, default=30)
    ap.add_argument("--train-queries", type=int, default=200)
    ap.add_argument("--test-queries", type=int, default=60)
    ap.add_argument("--num-generations", type=int, default=4)
    ap.add_argument("--sets-per-step", type=int, default=1)
    ap.add_argument("--max-completion", type=int, default=96)
    ap.add_argument("--max-think-tokens", type=int, default=96, help="the reasoning scorer's cap at evaluation")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--rewards", default="rank_r1=1,answer=0.5,tag=0.25")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    import torch

    from rankstack.data.formats import read_docs, read_qrels, read_queries
    from rankstack.data.records import Query
    from rankstack.llm.backends.hf import TransformersBackend
    from rankstack.stages.bm25 import BM25Index, BM25Retriever
    from rankstack.train.grpo import GRPOTrainConfig, build_sets, evaluate_sets, train_grpo

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
    kw = {"k": a.k, "depth": a.depth, "max_words": a.max_words, "seed": a.seed}
    train_sets = build_sets(queries, corpus, bm25, qrels_train, qids=train_q, **kw)
    test_sets = build_sets(queries, corpus, bm25, qrels_test, qids=test_q, **kw)
    log(f"{len(train_sets)} train sets, {len(test_sets)} held-out sets (k={a.k}, one relevant each)")
    base = TransformersBackend("smollm2", threads=1, device="cpu")

    t = time.time()
    before = evaluate_sets(base, test_sets, corpus, max_words=a.max_words, max_think_tokens=a.max_think_tokens)
    s_eval_before = (time.time() - t) / len(test_sets)
    log(f"untrained: {summary(before)} ({s_eval_before:.1f}s/set)")

    out = f"{a.out}/grpo-k{a.k}-s{a.steps}"
    cfg = GRPOTrainConfig(output_dir=out, rewards=_weights(a.rewards), num_generations=a.num_generations,
                          sets_per_step=a.sets_per_step, max_completion_length=a.max_completion,
                          temperature=a.temperature, lora_r=a.lora_r, max_steps=a.steps, learning_rate=a.lr,
                          seed=a.seed, max_think_tokens=a.max_think_tokens, max_words=a.max_words)
    t0 = time.time()

    def progress(r: dict) -> None:
        parts = " ".join(f"{n}={r[f'{n}_mean']:.2f}" for n in ("rank_r1", "answer", "tag", "format"))
        log(f"step {r['step']}/{a.steps} reward {r['reward_mean']:.3f} std {r['reward_std']:.3f} "
            f"zero-var {r['zero_variance_share']:.2f} (rank_r1 alone {r['rank_r1_zero_variance_share']:.2f}) "
            f"{parts} chars {r['completion_chars']:.0f} ({time.time() - t0:.0f}s)")

    meta = train_grpo(cfg, train_sets, backend=base, progress=progress)
    meta.pop("model")
    hist = meta.pop("history")
    log(f"trained {meta['steps']} steps in {meta['seconds']}s ({meta['s_per_step']} s/step)")
    trained = TransformersBackend(out, threads=1, device="cpu")
    t = time.time()
    after = evaluate_sets(trained, test_sets, corpus, max_words=a.max_words, max_think_tokens=a.max_think_tokens)
    s_eval_after = (time.time() - t) / len(test_sets)
    log(f"trained: {summary(after)} ({s_eval_after:.1f}s/set)")

    def mean_of(key: str, rows: list[dict]) -> float:
        return float(sum(r[key] for r in rows) / len(rows)) if rows else float("nan")

    q = max(1, len(hist) // 4)
    curve = {key: [round(mean_of(key, hist[i: i + q]), 4) for i in range(0, len(hist), q)]
             for key in ("reward_mean", "reward_std", "zero_variance_share", "rank_r1_mean",
                         "rank_r1_zero_variance_share", "answer_mean", "tag_mean", "format_mean")}
    res = {"args": vars(a), "train_sets": len(train_sets), "test_sets": len(test_sets),
           "untrained": summary(before), "trained": summary(after),
           "accuracy_test": mcnemar([r["correct"] for r in before], [r["correct"] for r in after]),
           "chance": 1.0 / a.k, "s_per_set_eval_untrained": round(s_eval_before, 2),
           "s_per_set_eval_trained": round(s_eval_after, 2),
           "reward_first10": {k: mean_of(k, hist[:10]) for k in ("reward_mean", "zero_variance_share")},
           "reward_last10": {k: mean_of(k, hist[-10:]) for k in ("reward_mean", "zero_variance_share")},
           "zero_variance_share_all_steps": mean_of("zero_variance_share", hist),
           "rank_r1_zero_variance_share_all_steps": mean_of("rank_r1_zero_variance_share", hist),
           "curve_by_quarter": curve, **{k: v for k, v in meta.items() if k != "log_history"}}
    print(json.dumps(res, indent=1))
    full = {**res, "history": hist, "per_set": {"untrained": before, "trained": after},
            "log_history": meta["log_history"]}
    for path in [f"{out}/bench.json", *([a.json] if a.json else [])]:
        with open(path, "w") as fh:
            json.dump(full, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
