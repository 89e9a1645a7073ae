"""Models trained by an experiment: a stage's ``train = {...}`` table.

A cross-encoder or bi-encoder stage of an experiment may carry a ``train`` table instead of (or on top
of) a ``model``: the runner then fine-tunes the model on a known collection's judgments, with negatives
mined from BM25 candidates, on the experiment's first run, and reuses it from the cache afterwards::

    { stage = "cross-encoder", backend = "onnx", quantize = "int8", activation = "none",
      train = { dataset = "scifact/train", depth = 100, loss = "softmax_ce", n_neg = 4,
                negatives = { rank_window = [1, 30] }, max_steps = 60, learning_rate = 1.5e-4 } }

``dataset`` (required) names a collection of ``rankstack datasets`` with qrels; ``depth`` is the BM25
depth negatives are mined from (default 100); ``model`` is the backbone (default all-MiniLM-L6-v2);
every other field is a field of :class:`rankstack.train.CrossEncoderTrainConfig` (or
``BiEncoderTrainConfig``), which subclass transformers' ``TrainingArguments``, so any of its fields
(``lr_scheduler_type``, ...) can be set too. The model goes to ``<cache>/models/<kind>-<hash of the table>/final``; a
killed training resumes from its last checkpoint on the next run; a finished one is never retrained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from rankstack.data.records import FingerprintedDocs, queries_fingerprint
from rankstack.errors import ConfigError
from rankstack.index.artifact import is_complete, mark_complete

log = logging.getLogger(__name__)

#: bump when the training recipe below changes in a way that changes the model
RECIPE_VERSION = 1


def _config_class(kind: str) -> type:
    from rankstack.train.trainer import BiEncoderTrainConfig, CrossEncoderTrainConfig

    return CrossEncoderTrainConfig if kind == "cross" else BiEncoderTrainConfig


def model_dir(train: dict[str, Any], kind: str, cache_root: Path, data: str | None = None) -> Path:
    """Where the model of this ``train`` table lives: the hash covers every field of the table and
    ``data``, the content fingerprint of the training collection (texts, queries, judgments), so a
    changed collection trains a new model instead of reusing a stale one."""
    blob = json.dumps({"kind": kind, "recipe": RECIPE_VERSION, **train, **({"data": data} if data else {})},
                      sort_keys=True, default=str)
    tag = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return cache_root / "models" / f"{kind}-{tag}"


def trained_model(train: dict[str, Any], stage: str, cache_root: Path, where: str, rebuild: bool = False) -> str:
    """The directory of the model a stage's ``train`` table describes, training it first if needed
    (``rebuild``: train it again even if a finished model is there -- ``--no-cache``)."""
    from rankstack import registry
    from rankstack.data import datasets
    from rankstack.stages.base import Cached
    from rankstack.stages.build import BuildContext

    kind = registry.resolve_entry(stage).trainable
    if kind is None:
        trainable = sorted(e.name for e in registry.entries() if e.trainable)
        raise ConfigError(f"{where}: stage {stage!r} cannot be trained; 'train' works with {trainable}")
    if not isinstance(train, dict):
        raise ConfigError(f"{where}: 'train' must be a table, got {type(train).__name__}")
    spec = dict(train)
    dataset = spec.pop("dataset", None)
    if not isinstance(dataset, str):
        raise ConfigError(f"{where}: 'train' needs 'dataset' (a collection name with qrels, e.g. \"scifact/train\")")
    depth = int(spec.pop("depth", 100))
    cls = _config_class(kind)
    fields = {f.name for f in dataclasses.fields(cls)}
    banned = {"output_dir", "train_triples", "train_jsonl", "corpus", "queries", "qrels", "candidates"}
    unknown = sorted(set(spec) - (fields - banned))
    if unknown:
        raise ConfigError(f"{where}: unknown 'train' field(s) {unknown}; known: dataset, depth, "
                          f"{', '.join(sorted(set(cls.rankstack_fields()) - banned))} (and every transformers "
                          f"TrainingArguments field)")
    try:
        coll = datasets.load(dataset)
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise ConfigError(f"{where}: 'train' dataset: {e.args[0] if e.args else e}") from None
    if coll.qrels is None:
        raise ConfigError(f"{where}: 'train' dataset {dataset!r} has no qrels to train on")
    docs = FingerprintedDocs(coll.docs if isinstance(coll.docs, dict) else {d.id: d for d in coll.docs})
    data = hashlib.sha256("\x00".join([docs.fingerprint, queries_fingerprint(coll.queries),
                                        json.dumps({q: dict(v) for q, v in coll.qrels.items()}, sort_keys=True)]).encode()
                          ).hexdigest()[:16]
    out = model_dir(train, kind, cache_root, data)
    final = out / "final"
    if rebuild and out.exists():
        log.info("%s: --no-cache: training %s again", where, out)
        shutil.rmtree(out)
    if is_complete(final):
        return str(final)

    from rankstack.encoders.runtime import resolve_model
    from rankstack.train.data import GroupedDataset
    from rankstack.train.negatives import NegativeMiner
    from rankstack.train.trainer import train_bi_encoder, train_cross_encoder

    # BM25 candidates of the training queries (index and run cached like the experiment's own)
    coll_cache = cache_root / dataset.replace("/", "_")
    ctx = BuildContext(coll, coll_cache, progress=False, _docs=docs, rebuild=rebuild)
    first = ctx.bm25_index().retriever(k=depth)
    run = (first if rebuild else Cached(first, coll_cache / "runs"))(coll.queries)

    negatives = dict(spec.pop("negatives", {}) or {})
    if "rank_window" in negatives:
        negatives["rank_window"] = tuple(negatives["rank_window"])
    seed = int(spec.get("seed", 42))
    n_neg = int(spec.get("n_neg", 4))
    try:
        miner = NegativeMiner(n=n_neg, seed=seed, **negatives)
    except TypeError as e:
        raise ConfigError(f"{where}: 'train.negatives': {e}") from None
    # judged documents outside the corpus (DL19 ships only the BM25 top-100 passages) cannot be
    # trained on: they are left out, and counted
    qrels = {q: {d: g for d, g in j.items() if d in docs} for q, j in coll.qrels.items()}
    dropped = sum(len(j) for j in coll.qrels.values()) - sum(len(j) for j in qrels.values())
    if dropped:
        log.warning("%s: %d judged documents are not in the corpus and are not trained on", dataset, dropped)
    qids = sorted(q for q, d in qrels.items() if any(g > 0 for g in d.values()))
    mined = miner.mine(qrels, run, corpus_ids=sorted(docs), query_ids=qids)
    queries = {q.id: q.text for q in coll.queries}
    ds = GroupedDataset.from_run(queries, docs, qrels, mined)
    log.info("training a %s-encoder on %s: %d groups, negatives %s", kind, dataset, len(ds), miner.stats)

    spec["model"] = resolve_model(spec.get("model"))
    resume = out.exists() and any(out.glob("checkpoint-*"))
    cfg = cls(output_dir=str(out), resume_from_checkpoint=True if resume else None, **spec)
    path = (train_cross_encoder if kind == "cross" else train_bi_encoder)(cfg, train_dataset=ds)
    for ckpt in out.glob("checkpoint-*"):  # the final model is all later runs need
        shutil.rmtree(ckpt, ignore_errors=True)
    mark_complete(path, {"dataset": dataset, "groups": len(ds), **miner.stats})
    return str(path)
