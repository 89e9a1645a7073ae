"""Cross-encoder and bi-encoder trainers built on Hugging Face :class:`transformers.Trainer`.

The trainer is HF's (optimizer, schedule, bf16 autocast on GPUs that have it, fp32 on CPU,
checkpoints with optimizer/scheduler/RNG state so that a killed run resumes with
``resume_from_checkpoint``, progress bar, logging); we override only:

* ``compute_loss``: a batch of ``Q`` groups ``[positive, negative_1..n]`` is scored into ``[Q, 1+n]``
  and fed to any :mod:`rankstack.train.losses` loss (labels = relevance, or teacher scores for
  distillation losses such as Margin-MSE);
* ``evaluate``: reranks a dev candidate run with the current model and reports ``ndcg@10``
  (trec_eval semantics), used for early stopping and best-checkpoint selection;
* ``_get_train_sampler``: optional topic-aware / curriculum samplers from :mod:`rankstack.train.sampling`.

Outputs are standard model directories: a cross-encoder is an ``AutoModelForSequenceClassification``
with ``num_labels=1`` saved with its tokenizer and a sentence-transformers ``CrossEncoder`` config (load
it with ``sentence_transformers.CrossEncoder(path)``); a bi-encoder is a sentence-transformers directory
(``SentenceTransformer(path)``).

Entry points: :func:`train_cross_encoder` and :func:`train_bi_encoder`, each taking a dataclass config.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rankstack.data.records import Document, Run, ranked_items
from rankstack.train.data import BiEncoderCollator, CrossEncoderCollator, GroupedDataset
from rankstack.train.losses import RankingLoss, _check, get_loss
from rankstack.train.negatives import NegativeMiner

log = logging.getLogger(__name__)

__all__ = [
    "CrossEncoderTrainConfig",
    "BiEncoderTrainConfig",
    "train_cross_encoder",
    "train_bi_encoder",
    "rerank_with_cross_encoder",
    "ndcg_at_k",
    "DevEvaluator",
    "make_ranking_trainer",
    "is_head_parameter",
]


# ---------------------------------------------------------------------------------------- metrics


def ndcg_at_k(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]], k: int = 10) -> float:
    """Mean nDCG@k with trec_eval's ``ndcg_cut`` semantics (linear gains = grades, ``log2(rank+1)``
    discount, ties by doc id descending, averaged over run queries that have judgments)."""
    vals = []
    for qid, scores in run.items():
        judged = qrels.get(qid)
        if not judged:
            continue
        ranked = ranked_items(scores)[:k]
        dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 2) for i, (d, _) in enumerate(ranked))
        ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        vals.append(dcg / idcg if idcg > 0 else 0.0)
    return sum(vals) / len(vals) if vals else 0.0


def rerank_with_cross_encoder(
    model: Any,
    tokenizer: Any,
    queries: Mapping[str, str],
    corpus: Mapping[str, Document | str],
    run: Mapping[str, Mapping[str, float]],
    depth: int = 100,
    max_length: int = 256,
    batch_size: int = 64,
    progress: bool = False,
) -> Run:
    """Score the top ``depth`` candidates of each query with a sequence-classification model (logit 0)
    and return the reranked run. Queries keep only their top ``depth`` candidates."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    pairs: list[tuple[str, str]] = []
    for qid in run:
        if qid not in queries:
            raise KeyError(f"run query {qid!r} has no text")
        for did, _ in ranked_items(run[qid])[:depth]:
            if did not in corpus:
                raise KeyError(f"run document {did!r} (query {qid!r}) is not in the corpus")
            pairs.append((qid, did))
    # sort by length for less padding, keep a stable order
    def _t(d: Document | str) -> str:
        return d.contents if isinstance(d, Document) else str(d)

    order = sorted(range(len(pairs)), key=lambda i: len(_t(corpus[pairs[i][1]])))
    out: dict[str, dict[str, float]] = {q: {} for q in run}
    it = range(0, len(order), batch_size)
    if progress:
        try:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="rerank", leave=False)
        except ImportError:  # pragma: no cover
            pass
    with torch.inference_mode():
        for s in it:
            idx = order[s:s + batch_size]
            enc = tokenizer([queries[pairs[i][0]] for i in idx], [_t(corpus[pairs[i][1]]) for i in idx],
                            padding=True, truncation="longest_first", max_length=max_length, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            logits = model(**enc).logits[:, 0].float().cpu().tolist()
            for i, sc in zip(idx, logits):
                out[pairs[i][0]][pairs[i][1]] = float(sc)
    model.train(was_training)
    return Run._wrap(out, name="cross-encoder")


@dataclass
class DevEvaluator:
    """Reranks a dev candidate run with the model being trained and reports ``ndcg@10``."""

    queries: Mapping[str, str]
    corpus: Mapping[str, Document | str]
    run: Mapping[str, Mapping[str, float]]
    qrels: Mapping[str, Mapping[str, int]]
    depth: int = 100
    max_length: int = 256
    batch_size: int = 64
    k: int = 10

    def __call__(self, model: Any, tokenizer: Any) -> dict[str, float]:
        rr = rerank_with_cross_encoder(model, tokenizer, self.queries, self.corpus, self.run, self.depth,
                                       self.max_length, self.batch_size)
        return {f"ndcg@{self.k}": ndcg_at_k(rr, self.qrels, self.k)}


# ---------------------------------------------------------------------------------------- trainer


def make_ranking_trainer(kind: str = "cross") -> type:
    """Build the :class:`transformers.Trainer` subclass (imported lazily). ``kind``: ``"cross"`` or
    ``"bi"``."""
    import torch
    from transformers import Trainer

    class RankingTrainer(Trainer):
        """``transformers.Trainer`` whose loss is a rankstack ranking loss over ``[Q, 1+n]`` groups."""

        def __init__(self, *args: Any, ranking_loss: RankingLoss, label_source: str = "labels",
                     dev_evaluator: Callable[..., dict[str, float]] | None = None,
                     train_sampler: Any = None, loss_weighting: Any = None, in_batch: bool = False,
                     head_learning_rate: float | None = None, distill_loss: RankingLoss | None = None,
                     distill_weight: float = 1.0, **kwargs: Any):
            if dev_evaluator is not None and kwargs.get("eval_dataset") is None:
                kwargs["eval_dataset"] = [{"dev": "evaluated by reranking the dev run"}]  # placeholder
            super().__init__(*args, **kwargs)
            if label_source not in ("labels", "teacher"):
                raise ValueError("label_source must be 'labels' or 'teacher'")
            self.ranking_loss = ranking_loss
            self.label_source = label_source
            self.dev_evaluator = dev_evaluator
            self.custom_sampler = train_sampler
            self.loss_weighting = loss_weighting
            self.in_batch = in_batch
            self.head_learning_rate = head_learning_rate
            self.distill_loss = distill_loss
            self.distill_weight = distill_weight

        # -- optimizer: an optional learning rate of its own for the new scoring head
        def create_optimizer(self, model: Any = None) -> Any:
            if self.head_learning_rate is None or self.optimizer is not None:
                return super().create_optimizer(model)
            opt_model = self.model if model is None else model
            decay = set(self.get_decay_parameter_names(opt_model))
            groups: dict[tuple[bool, bool], list[Any]] = {}
            for n, p in opt_model.named_parameters():
                if p.requires_grad:
                    groups.setdefault((is_head_parameter(n), n in decay), []).append(p)
            if not any(head for head, _ in groups):
                raise ValueError("head_learning_rate: the model has no head parameters "
                                 "(names starting with classifier., score., cross_gate. or containing pooler.)")
            param_groups = [{"params": ps, "weight_decay": self.args.weight_decay if dec else 0.0,
                             "lr": self.head_learning_rate if head else self.args.learning_rate}
                            for (head, dec), ps in sorted(groups.items())]
            cls, kw = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            self.optimizer = cls(param_groups, **kw)
            return self.optimizer

        # -- sampler
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            if self.custom_sampler is not None:
                return self.custom_sampler
            return super()._get_train_sampler(train_dataset)

        # -- scoring
        def score_groups(self, model: Any, inputs: dict[str, Any], shape: tuple[int, int]) -> Any:
            if kind == "cross":
                feats = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
                return model(**feats).logits[:, 0].view(shape)
            q = model(inputs["query_features"])["sentence_embedding"]
            d = model(inputs["doc_features"])["sentence_embedding"]
            if self.in_batch:
                return q, d
            q = torch.nn.functional.normalize(q, dim=-1)
            d = torch.nn.functional.normalize(d, dim=-1).view(shape[0], shape[1], -1)
            return torch.einsum("qd,qld->ql", q, d)

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            labels = inputs.pop("labels")
            mask = inputs.pop("group_mask")
            mask = _sample_weighted_mask(mask, inputs.pop("group_weights", None))
            teacher = inputs.pop("teacher", None)
            idx = inputs.pop("group_idx", None)
            if self.label_source == "teacher":
                if teacher is None:
                    raise ValueError("label_source='teacher' but the training data has no teacher scores")
                target = teacher
            else:
                target = labels
            group_mask = mask
            out = self.score_groups(model, inputs, tuple(labels.shape))
            if isinstance(out, tuple):  # bi-encoder with in-batch negatives
                qe, de = out
                qn, ln = labels.shape
                scores = torch.nn.functional.normalize(qe, dim=-1) @ torch.nn.functional.normalize(de, dim=-1).T
                full_t = torch.zeros(qn, qn * ln, device=scores.device)
                full_m = torch.ones(qn, qn * ln, dtype=torch.bool, device=scores.device)
                for r in range(qn):
                    full_t[r, r * ln:(r + 1) * ln] = target[r]
                    full_m[r, r * ln:(r + 1) * ln] = mask[r]
                    # padded slots of other groups are not negatives either
                full_m &= mask.reshape(1, -1).expand(qn, -1)
                scores, target, mask = scores, full_t, full_m
            else:
                scores = out
            if self.loss_weighting is not None and idx is not None:
                s, t, m = _check(scores, target, mask, type(self.ranking_loss).__name__)
                per_q = self.ranking_loss.per_query(s, t, m)
                w = self.loss_weighting.weights(idx.tolist(), per_q.detach().cpu())
                loss = (per_q * w.to(per_q.device)).sum() / max(len(per_q), 1)
            else:
                loss = self.ranking_loss(scores, target, mask)
            if self.distill_loss is not None:
                if teacher is None:
                    raise ValueError("distill_loss needs teacher scores in the training data")
                own = scores
                if isinstance(out, tuple):  # the diagonal blocks: each query against its own group
                    qn, ln = labels.shape
                    r = torch.arange(qn, device=scores.device)
                    own = scores.view(qn, qn, ln)[r, r]
                loss = loss + self.distill_weight * self.distill_loss(own, teacher, group_mask)
            return (loss, {"scores": scores}) if return_outputs else loss

        # -- dev evaluation (ndcg@10 by reranking a dev run)
        def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None,
                     metric_key_prefix: str = "eval") -> dict[str, float]:
            if self.dev_evaluator is None:
                return {}
            raw = self.dev_evaluator(self.model, self.processing_class)
            metrics = {f"{metric_key_prefix}_{k}": float(v) for k, v in raw.items()}
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

        # -- bi-encoder: save/load sentence-transformers directories
        if kind == "bi":

            def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
                output_dir = output_dir or self.args.output_dir
                os.makedirs(output_dir, exist_ok=True)
                self.model.save(output_dir)
                torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

            def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
                from sentence_transformers import SentenceTransformer

                loaded = SentenceTransformer(resume_from_checkpoint, device="cpu")
                (model or self.model).load_state_dict(loaded.state_dict())

            def _load_best_model(self) -> None:
                if self.state.best_model_checkpoint:
                    self._load_from_checkpoint(self.state.best_model_checkpoint)

    return RankingTrainer


def is_head_parameter(name: str) -> bool:
    """Parameters of a sequence-classification head (BERT's ``classifier`` and ``pooler``, the ``score``
    layer of decoder models, the segment-cosine model's ``cross_gate``): the parts a cross-encoder built
    from a bi-encoder backbone starts without."""
    return name.startswith(("classifier.", "score.", "cross_gate.")) or "pooler." in name


def _sample_weighted_mask(mask: Any, weights: Any) -> Any:
    """Per-document training weights in [0, 1] (e.g. ``NegativeMiner(pooling="weight")``: one minus the
    estimated probability that a negative is an unjudged relevant document) applied to *any* loss:
    each step keeps an entry with probability equal to its weight. Averaged over steps, this is the
    expected loss when each weighted negative is a false negative, independently, with probability
    ``1 - w``. All-ones weights (the default) leave the mask, and the random stream, untouched."""
    import torch

    if weights is None:
        return mask
    weights = weights.to(mask.device)
    uncertain = mask & (weights < 1.0)
    if not bool(uncertain.any()):
        return mask
    keep = torch.rand(weights.shape, device=weights.device) < weights
    return mask & (keep | ~uncertain)


# ---------------------------------------------------------------------------------------- configs


@dataclass
class _CommonConfig:
    model: str = ""
    """Backbone: a local HF / sentence-transformers directory (no hub access)."""
    output_dir: str = "rankstack-model"
    # --- data: exactly one of (train_triples), (train_jsonl), (corpus+queries+qrels+candidates)
    train_triples: str | None = None
    train_jsonl: str | None = None
    corpus: str | None = None
    queries: str | None = None
    qrels: str | None = None
    candidates: str | None = None
    """Candidate run (TREC run file) negatives are mined from."""
    train_query_ids: list[str] | None = None
    """Restrict run-based training to these queries (e.g. to hold some out as dev)."""
    # --- dev evaluation
    dev_queries: str | None = None
    dev_qrels: str | None = None
    dev_candidates: str | None = None
    dev_query_ids: list[str] | None = None
    dev_depth: int = 100
    # --- negatives
    n_neg: int = 4
    negatives: dict[str, Any] = field(default_factory=dict)
    """Extra :class:`NegativeMiner` arguments (strategy, rank_window, margin, ratio, pooling, ...)."""
    # --- loss
    loss: str = "bce"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    use_teacher_scores: bool = False
    """Train the main ``loss`` on the teacher scores instead of the labels."""
    distill_loss: str | None = None
    """A second loss on the teacher scores, added to the main loss (on the labels) with weight
    ``distill_weight``, e.g. in-batch ``infonce`` + ``margin_mse`` from a cross-encoder teacher. For a
    bi-encoder with in-batch negatives it sees each query's own group only."""
    distill_kwargs: dict[str, Any] = field(default_factory=dict)
    distill_weight: float = 1.0
    # --- optimisation
    max_length: int = 256
    batch_size: int = 8
    """Groups (queries) per batch; a batch holds ``batch_size * (1 + n_neg)`` pairs."""
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    gradient_accumulation_steps: int = 1
    seed: int = 42
    bf16: bool | None = None
    """None: bf16 when a CUDA GPU supports it, else fp32."""
    eval_steps: int | None = None
    save_steps: int = 500
    save_total_limit: int | None = 2
    early_stopping_patience: int | None = None
    logging_steps: int = 50
    resume_from_checkpoint: str | bool | None = None
    disable_tqdm: bool | None = None
    report_to: str = "none"


@dataclass
class CrossEncoderTrainConfig(_CommonConfig):
    """Configuration of :func:`train_cross_encoder` (all paths are local files)."""

    eval_batch_size: int = 64
    head_learning_rate: float | None = None
    """Learning rate of the scoring head (classifier and pooler; see :func:`is_head_parameter`), e.g.
    10x ``learning_rate``: a head that starts at random otherwise needs ~100 steps before its scores
    move the loss. Follows the same schedule. ``None``: the head uses ``learning_rate``."""
    head: str = "classifier"
    """``"classifier"``: ``AutoModelForSequenceClassification`` (the backbone's own head, or a new one);
    ``"segment-cosine"``: :class:`rankstack.encoders.segment_cosine.BertForSegmentCosine`, a joint
    encoder scored by the cosine of its mean-pooled query and document segments, which starts where its
    (BERT-family, sentence-transformers) bi-encoder backbone is instead of at a random head."""
    cos_scale: float = 20.0
    """``head="segment-cosine"``: the initial scale of the cosine (learned)."""
    separate_layers: int = 0
    """``head="segment-cosine"``: the lowest layers that encode query and document apart (PreTTR's
    split); the layers above attend across the pair."""
    bi_encoder_layout: bool = True
    """``head="segment-cosine"``: give the document segment its own ``[CLS]``, positions from 0 and
    token type 0, as the bi-encoder saw it (see :func:`rankstack.encoders.segment_cosine.from_bi_encoder`)."""
    cross_gate: float | None = None
    """``head="segment-cosine"``: start of a learned bias on query-document attention logits in the joint
    layers (e.g. -8: the pair starts almost apart, as the bi-encoder); ``None``: no gate. A head learning
    rate applies to it."""


@dataclass
class BiEncoderTrainConfig(_CommonConfig):
    """Configuration of :func:`train_bi_encoder`; ``in_batch`` adds the other groups' documents as
    negatives (MNRL-style); use a contrastive loss (``infonce``) with it."""

    loss: str = "infonce"
    in_batch: bool = True
    learning_rate: float = 2e-5


def _load_inputs(cfg: _CommonConfig) -> tuple[GroupedDataset, dict[str, Any]]:
    """Training dataset and the loaded collections (for dev evaluation)."""
    from rankstack.data.formats import read_docs, read_qrels, read_queries, read_run

    given = [cfg.train_triples is not None, cfg.train_jsonl is not None, cfg.candidates is not None]
    if sum(given) != 1:
        raise ValueError("give exactly one training source: train_triples, train_jsonl, or corpus+queries+qrels+candidates")
    loaded: dict[str, Any] = {}
    if cfg.corpus is not None:
        loaded["corpus"] = {d.id: d for d in read_docs(cfg.corpus)}
    if cfg.train_triples is not None:
        return GroupedDataset.from_triples(cfg.train_triples), loaded
    if cfg.train_jsonl is not None:
        return GroupedDataset.from_jsonl(cfg.train_jsonl, n_neg=cfg.n_neg, seed=cfg.seed), loaded
    for name in ("corpus", "queries", "qrels"):
        if getattr(cfg, name) is None:
            raise ValueError(f"run-based training needs {name!r} (with candidates={cfg.candidates!r})")
    queries = {q.id: q.text for q in read_queries(cfg.queries)}  # type: ignore[arg-type]
    qrels = read_qrels(cfg.qrels)  # type: ignore[arg-type]
    run = read_run(cfg.candidates)  # type: ignore[arg-type]
    corpus = loaded["corpus"]
    miner = NegativeMiner(n=cfg.n_neg, seed=cfg.seed, **cfg.negatives)
    qids = [q for q in (cfg.train_query_ids or list(qrels)) if any(g > 0 for g in qrels.get(q, {}).values())]
    negs = miner.mine(qrels, run, corpus_ids=sorted(corpus), query_ids=qids)
    log.info("negatives: %s", miner.stats)
    loaded.update(queries=queries, qrels=qrels, run=run, miner=miner)
    return GroupedDataset.from_run(queries, corpus, qrels, negs), loaded


def _dev(cfg: _CommonConfig, loaded: dict[str, Any], eval_batch_size: int) -> DevEvaluator | None:
    from rankstack.data.formats import read_qrels, read_queries, read_run

    if cfg.dev_candidates is None:
        return None
    if "corpus" not in loaded:
        raise ValueError("dev evaluation needs corpus")
    queries = {q.id: q.text for q in read_queries(cfg.dev_queries)} if cfg.dev_queries else loaded["queries"]
    qrels = read_qrels(cfg.dev_qrels) if cfg.dev_qrels else loaded["qrels"]
    run = read_run(cfg.dev_candidates)
    if cfg.dev_query_ids is not None:
        keep = set(cfg.dev_query_ids)
        run = {q: v for q, v in run.items() if q in keep}
    return DevEvaluator(queries, loaded["corpus"], run, qrels, cfg.dev_depth, cfg.max_length, eval_batch_size)


def _training_args(cfg: _CommonConfig, has_dev: bool) -> Any:
    import torch
    from transformers import TrainingArguments

    bf16 = cfg.bf16
    if bf16 is None:
        bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    eval_kw: dict[str, Any] = {}
    if has_dev and cfg.eval_steps:
        eval_kw = dict(eval_strategy="steps", eval_steps=cfg.eval_steps, metric_for_best_model="ndcg@10",
                       greater_is_better=True, load_best_model_at_end=True)
    save_steps = cfg.save_steps
    if eval_kw:  # best-checkpoint selection needs a checkpoint at every evaluation
        save_steps = cfg.eval_steps  # type: ignore[assignment]
    return TrainingArguments(
        output_dir=cfg.output_dir,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        report_to=cfg.report_to,
        disable_tqdm=cfg.disable_tqdm if cfg.disable_tqdm is not None else False,
        **eval_kw,
    )


def _callbacks(cfg: _CommonConfig, has_dev: bool) -> list[Any]:
    from transformers import EarlyStoppingCallback

    if has_dev and cfg.eval_steps and cfg.early_stopping_patience:
        return [EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)]
    return []


def _distill_kwargs(cfg: _CommonConfig) -> dict[str, Any]:
    if cfg.distill_loss is None:
        return {}
    if cfg.use_teacher_scores:
        raise ValueError("distill_loss adds a teacher loss to a label loss: use it with use_teacher_scores=False")
    return {"distill_loss": get_loss(cfg.distill_loss, **cfg.distill_kwargs), "distill_weight": cfg.distill_weight}


def _write_config_json(path: str, cfg: _CommonConfig, extra: dict[str, Any]) -> None:
    with open(os.path.join(path, "rankstack_train.json"), "w", encoding="utf-8") as f:
        json.dump({"config": asdict(cfg), **extra}, f, indent=2, default=str)


def train_cross_encoder(config: CrossEncoderTrainConfig, *, callbacks: Sequence[Any] = (),
                        train_dataset: GroupedDataset | None = None, train_sampler: Any = None,
                        loss_weighting: Any = None) -> str:
    """Fine-tune a cross-encoder (``AutoModelForSequenceClassification``, one logit, new head when the
    backbone has none) and save it under ``config.output_dir/final``; returns that path.

    ``train_dataset`` overrides the data fields of the config (in-memory data); ``callbacks`` are extra
    ``TrainerCallback`` (e.g. :class:`rankstack.train.negatives.RemineCallback`); ``train_sampler`` is a
    ``torch`` sampler (e.g. topic-aware batches); ``loss_weighting`` a
    :class:`rankstack.train.sampling.DynamicLossWeighting`.
    """
    import sentence_transformers
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg = config
    if not cfg.model:
        raise ValueError("CrossEncoderTrainConfig.model (a local backbone directory) is required")
    transformers.set_seed(cfg.seed)
    if train_dataset is None:
        ds, loaded = _load_inputs(cfg)
    else:
        ds, loaded = train_dataset, {}
        if cfg.corpus is not None:
            from rankstack.data.formats import read_docs

            loaded["corpus"] = {d.id: d for d in read_docs(cfg.corpus)}
        if cfg.queries and cfg.qrels:
            from rankstack.data.formats import read_qrels, read_queries

            loaded["queries"] = {q.id: q.text for q in read_queries(cfg.queries)}
            loaded["qrels"] = read_qrels(cfg.qrels)
    tok = AutoTokenizer.from_pretrained(str(cfg.model))
    if cfg.head == "segment-cosine":
        from rankstack.encoders.segment_cosine import from_bi_encoder

        model = from_bi_encoder(str(cfg.model), cos_scale=cfg.cos_scale, separate_layers=cfg.separate_layers,
                                bi_encoder_layout=cfg.bi_encoder_layout, cross_gate=cfg.cross_gate)
    elif cfg.head == "classifier":
        model = AutoModelForSequenceClassification.from_pretrained(str(cfg.model), num_labels=1)
    else:
        raise ValueError(f"CrossEncoderTrainConfig.head: unknown {cfg.head!r} (classifier, segment-cosine)")
    dev = _dev(cfg, loaded, cfg.eval_batch_size)
    args = _training_args(cfg, dev is not None)
    trainer_cls = make_ranking_trainer("cross")
    loss = get_loss(cfg.loss, **cfg.loss_kwargs)
    trainer = trainer_cls(
        model=model, args=args, train_dataset=ds, data_collator=CrossEncoderCollator(tok, cfg.max_length),
        processing_class=tok, ranking_loss=loss, label_source="teacher" if cfg.use_teacher_scores else "labels",
        dev_evaluator=dev, train_sampler=train_sampler, loss_weighting=loss_weighting,
        head_learning_rate=cfg.head_learning_rate, callbacks=[*_callbacks(cfg, dev is not None), *callbacks],
        **_distill_kwargs(cfg),
    )
    result = trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    out = os.path.join(cfg.output_dir, "final")
    trainer.model.config.sentence_transformers = {
        "activation_fn": "torch.nn.modules.activation.Sigmoid",
        "version": sentence_transformers.__version__,
    }
    trainer.save_model(out)
    _write_config_json(out, cfg, {"train_metrics": result.metrics, "log_history": trainer.state.log_history,
                                  "best_checkpoint": trainer.state.best_model_checkpoint})
    return out


def train_bi_encoder(config: BiEncoderTrainConfig, *, callbacks: Sequence[Any] = (),
                     train_dataset: GroupedDataset | None = None, train_sampler: Any = None,
                     loss_weighting: Any = None) -> str:
    """Fine-tune a sentence-transformers bi-encoder (cosine scores of query and document embeddings;
    with ``in_batch`` the other groups' documents are negatives too) and save it as a
    sentence-transformers directory under ``config.output_dir/final``; returns that path. Dev
    evaluation is not supported for bi-encoders yet (use a retrieval evaluation after training)."""
    import transformers
    from sentence_transformers import SentenceTransformer

    cfg = config
    if not cfg.model:
        raise ValueError("BiEncoderTrainConfig.model (a local sentence-transformers directory) is required")
    transformers.set_seed(cfg.seed)
    ds = train_dataset if train_dataset is not None else _load_inputs(cfg)[0]
    model = SentenceTransformer(str(cfg.model), device="cpu")
    model.max_seq_length = cfg.max_length
    args = _training_args(cfg, False)
    trainer_cls = make_ranking_trainer("bi")
    loss = get_loss(cfg.loss, **cfg.loss_kwargs)
    trainer = trainer_cls(
        model=model, args=args, train_dataset=ds, data_collator=BiEncoderCollator(model.tokenize),
        ranking_loss=loss, label_source="teacher" if cfg.use_teacher_scores else "labels",
        train_sampler=train_sampler, loss_weighting=loss_weighting, in_batch=cfg.in_batch,
        callbacks=list(callbacks), **_distill_kwargs(cfg),
    )
    result = trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    out = os.path.join(cfg.output_dir, "final")
    trainer.save_model(out)
    _write_config_json(out, cfg, {"train_metrics": result.metrics, "log_history": trainer.state.log_history})
    return out
