"""Cross-encoder and bi-encoder trainers built on Hugging Face :class:`transformers.Trainer`.

The trainer is HF's (optimizer, schedule, bf16 autocast on GPUs that have it, fp32 on CPU,
checkpoints with optimizer/scheduler/RNG state so that a killed run resumes with
``resume_from_checkpoint``, progress bar, logging), and so are its arguments: the configs
(:mod:`rankstack.train.arguments`) subclass ``TrainingArguments``. :class:`RankingTrainer` overrides:

* ``compute_loss``: a batch of ``Q`` groups ``[positive, negative_1..n]`` is scored into ``[Q, 1+n]``
  and fed to any :mod:`rankstack.train.losses` loss (labels = relevance, or teacher scores for
  distillation losses such as Margin-MSE), plus an optional second (distillation) loss;
* ``evaluate``: a :class:`DevEvaluator` reranks a dev candidate run with the live model and reports
  ``ndcg@10``, computed by :mod:`rankstack.measures` (trec_eval semantics), used for early stopping and
  best-checkpoint selection;
* ``_get_train_sampler``: optional topic-aware / curriculum samplers from :mod:`rankstack.train.sampling`;
* ``create_optimizer``: an optional learning rate of its own for the scoring head.

Its subclasses only score: :class:`CrossEncoderTrainer` (logit 0 of a sequence-classification model
over (query, document) pairs) and :class:`BiEncoderTrainer` (cosine of sentence-transformers
embeddings, optionally against the whole batch's documents; saves sentence-transformers directories).

Outputs are standard model directories: a cross-encoder is an ``AutoModelForSequenceClassification``
with ``num_labels=1`` (or rankstack's segment-cosine model, built by
:func:`rankstack.encoders.segment_cosine.from_bi_encoder`) saved with its tokenizer and a
sentence-transformers ``CrossEncoder`` config (load it with ``sentence_transformers.CrossEncoder(path)``
or :class:`rankstack.encoders.CrossEncoderModel`); a bi-encoder is a sentence-transformers directory
(``SentenceTransformer(path)``).

Entry points: :func:`train_cross_encoder` and :func:`train_bi_encoder`, each taking a config. This
module imports torch and transformers (the ``train`` extra); :mod:`rankstack.train` loads it lazily.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import transformers
from transformers import AutoTokenizer, EarlyStoppingCallback, Trainer

from rankstack.data.records import Document, Run, ranked_items
from rankstack.errors import ConfigError, NotFoundError
from rankstack.measures import Evaluator
from rankstack.train.arguments import (
    BiEncoderTrainConfig,
    CrossEncoderTrainConfig,
    RankingTrainingArguments,
)
from rankstack.train.data import BiEncoderCollator, CrossEncoderCollator, GroupedDataset, _text
from rankstack.train.losses import RankingLoss, _check, get_loss
from rankstack.train.negatives import NegativeMiner

log = logging.getLogger(__name__)

#: what :meth:`RankingTrainer.group_scores` returns: ``(scores, target, mask, own)``
Scored = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

__all__ = [
    "RankingTrainingArguments",
    "CrossEncoderTrainConfig",
    "BiEncoderTrainConfig",
    "RankingTrainer",
    "CrossEncoderTrainer",
    "BiEncoderTrainer",
    "DevEvaluator",
    "train_cross_encoder",
    "train_bi_encoder",
    "is_head_parameter",
]


# ---------------------------------------------------------------------------------------- dev evaluation


@dataclass
class DevEvaluator:
    """Reranks the top ``depth`` candidates of each query of a dev run with the model being trained and
    reports ``ndcg@{k}`` by :class:`rankstack.measures.Evaluator` (trec_eval's ``ndcg_cut``; queries
    without judgments are left out). Missing query texts or documents are errors, raised here."""

    queries: Mapping[str, str]
    corpus: Mapping[str, Document | str]
    run: Mapping[str, Mapping[str, float]]
    qrels: Mapping[str, Mapping[str, int]]
    depth: int = 100
    max_length: int = 256
    batch_size: int = 64
    k: int = 10

    def __post_init__(self) -> None:
        pairs: list[tuple[str, str]] = []
        for qid in self.run:
            if qid not in self.queries:
                raise NotFoundError(f"run query {qid!r} has no text")
            for did, _ in ranked_items(self.run[qid])[: self.depth]:
                if did not in self.corpus:
                    raise NotFoundError(f"run document {did!r} (query {qid!r}) is not in the corpus")
                pairs.append((qid, did))
        # by document length (less padding), stable
        self._pairs = sorted(pairs, key=lambda p: len(_text(self.corpus[p[1]])))
        judged = {q: j for q, j in self.qrels.items() if j}
        if not any(q in judged for q in self.run):
            raise ConfigError(f"dev evaluation: none of the {len(self.run)} dev run queries has judgments")
        self._measure = f"nDCG@{self.k}"
        self._evaluator = Evaluator(judged, self._measure)

    def rerank(self, model: Any, tokenizer: Any) -> Run:
        """The dev run reranked by a live sequence-classification model (logit 0, inference mode; the
        model's train/eval mode is restored). Queries keep only their top ``depth`` candidates."""
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        out: dict[str, dict[str, float]] = {q: {} for q in self.run}
        try:
            with torch.inference_mode():
                for s in range(0, len(self._pairs), self.batch_size):
                    chunk = self._pairs[s:s + self.batch_size]
                    enc = tokenizer([self.queries[q] for q, _ in chunk],
                                    [_text(self.corpus[d]) for _, d in chunk], padding=True,
                                    truncation="longest_first", max_length=self.max_length,
                                    return_tensors="pt")
                    enc = {k: v.to(device) for k, v in enc.items()}
                    logits = model(**enc).logits[:, 0].float().cpu().tolist()
                    for (q, d), sc in zip(chunk, logits):
                        out[q][d] = float(sc)
        finally:
            model.train(was_training)
        return Run._wrap(out, name="cross-encoder")

    def __call__(self, model: Any, tokenizer: Any) -> dict[str, float]:
        ev = self._evaluator.evaluate(self.rerank(model, tokenizer))
        return {f"ndcg@{self.k}": float(ev[self._measure])}


# ---------------------------------------------------------------------------------------- trainers


class RankingTrainer(Trainer):
    """``transformers.Trainer`` whose loss is a rankstack ranking loss over ``[Q, 1+n]`` groups.

    Subclasses implement :meth:`group_scores`. ``label_source``: train on the ``"labels"`` or on the
    ``"teacher"`` scores; ``distill_loss`` (times ``distill_weight``) is added on the teacher scores;
    ``dev_evaluator`` (``(model, tokenizer) -> {name: value}``) is what :meth:`evaluate` reports;
    ``train_sampler`` replaces HF's sampler; ``loss_weighting`` reweights per-query losses (a
    :class:`rankstack.train.sampling.DynamicLossWeighting`); ``head_learning_rate`` gives the scoring
    head (:func:`is_head_parameter`) its own learning rate."""

    def __init__(self, *args: Any, ranking_loss: RankingLoss, label_source: str = "labels",
                 dev_evaluator: Callable[..., dict[str, float]] | None = None,
                 train_sampler: Any = None, loss_weighting: Any = None,
                 head_learning_rate: float | None = None, distill_loss: RankingLoss | None = None,
                 distill_weight: float = 1.0, **kwargs: Any):
        if label_source not in ("labels", "teacher"):
            raise ConfigError("label_source must be 'labels' or 'teacher'")
        if dev_evaluator is not None and kwargs.get("eval_dataset") is None:
            kwargs["eval_dataset"] = [{"dev": "evaluated by reranking the dev run"}]  # placeholder
        super().__init__(*args, **kwargs)
        self.ranking_loss = ranking_loss
        self.label_source = label_source
        self.dev_evaluator = dev_evaluator
        self.custom_sampler = train_sampler
        self.loss_weighting = loss_weighting
        self.head_learning_rate = head_learning_rate
        self.distill_loss = distill_loss
        self.distill_weight = distill_weight

    # -- scoring (the subclasses)
    def group_scores(self, model: Any, inputs: dict[str, Any], target: Any, mask: Any) -> Scored:
        """Score a batch of ``Q`` groups of ``L`` documents (``target``, ``mask``: ``[Q, L]``). Returns
        ``(scores, target, mask, own)``: what the ranking loss sees (a subclass may widen the groups,
        e.g. with in-batch negatives) and ``own`` ``[Q, L]``, each query against its own group (what
        the distillation loss sees)."""
        raise NotImplementedError

    # -- loss
    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        labels = inputs.pop("labels")
        group_mask = _sample_weighted_mask(inputs.pop("group_mask"), inputs.pop("group_weights", None))
        teacher = inputs.pop("teacher", None)
        idx = inputs.pop("group_idx", None)
        if self.label_source == "teacher":
            if teacher is None:
                raise ConfigError("label_source='teacher' but the training data has no teacher scores")
            target = teacher
        else:
            target = labels
        scores, target, mask, own = self.group_scores(model, inputs, target, group_mask)
        if self.loss_weighting is not None and idx is not None:
            s, t, m = _check(scores, target, mask, type(self.ranking_loss).__name__)
            per_q = self.ranking_loss.per_query(s, t, m)
            w = self.loss_weighting.weights(idx.tolist(), per_q.detach().cpu())
            loss = (per_q * w.to(per_q.device)).sum() / max(len(per_q), 1)
        else:
            loss = self.ranking_loss(scores, target, mask)
        if self.distill_loss is not None:
            if teacher is None:
                raise ConfigError("distill_loss needs teacher scores in the training data")
            loss = loss + self.distill_weight * self.distill_loss(own, teacher, group_mask)
        return (loss, {"scores": scores}) if return_outputs else loss

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
            raise ConfigError("head_learning_rate: the model has no head parameters "
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


class CrossEncoderTrainer(RankingTrainer):
    """Scores each (query, document) pair of a :class:`~rankstack.train.data.CrossEncoderCollator`
    batch by logit 0 of a sequence-classification model."""

    _FEATURES = ("input_ids", "attention_mask", "token_type_ids")

    def group_scores(self, model: Any, inputs: dict[str, Any], target: Any, mask: Any) -> Scored:
        feats = {k: v for k, v in inputs.items() if k in self._FEATURES}
        scores = model(**feats).logits[:, 0].view(tuple(target.shape))
        return scores, target, mask, scores


class BiEncoderTrainer(RankingTrainer):
    """Scores a :class:`~rankstack.train.data.BiEncoderCollator` batch by the cosine of the
    sentence-transformers embeddings of each query and its group's documents; with ``in_batch`` every
    query is scored against all documents of the batch (the other groups' documents are negatives,
    MNRL-style; padded slots are never negatives). Checkpoints and the saved model are
    sentence-transformers directories."""

    def __init__(self, *args: Any, in_batch: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.in_batch = in_batch

    def group_scores(self, model: Any, inputs: dict[str, Any], target: Any, mask: Any) -> Scored:
        normalize = torch.nn.functional.normalize
        q = model(inputs["query_features"])["sentence_embedding"]
        d = model(inputs["doc_features"])["sentence_embedding"]
        qn, ln = target.shape
        if not self.in_batch:
            scores = torch.einsum("qd,qld->ql", normalize(q, dim=-1), normalize(d, dim=-1).view(qn, ln, -1))
            return scores, target, mask, scores
        scores = normalize(q, dim=-1) @ normalize(d, dim=-1).T  # [Q, Q*L]
        full_t = torch.zeros(qn, qn * ln, device=scores.device)
        full_m = torch.ones(qn, qn * ln, dtype=torch.bool, device=scores.device)
        for r in range(qn):
            full_t[r, r * ln:(r + 1) * ln] = target[r]
            full_m[r, r * ln:(r + 1) * ln] = mask[r]
        full_m &= mask.reshape(1, -1).expand(qn, -1)  # padded slots of other groups are not negatives either
        rows = torch.arange(qn, device=scores.device)
        own = scores.view(qn, qn, ln)[rows, rows]  # the diagonal blocks: each query against its own group
        return scores, full_t, full_m, own

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
    if weights is None:
        return mask
    weights = weights.to(mask.device)
    uncertain = mask & (weights < 1.0)
    if not bool(uncertain.any()):
        return mask
    keep = torch.rand(weights.shape, device=weights.device) < weights
    return mask & (keep | ~uncertain)


# ---------------------------------------------------------------------------------------- inputs


def _load_inputs(cfg: RankingTrainingArguments) -> tuple[GroupedDataset, dict[str, Any]]:
    """Training dataset and the loaded collections (for dev evaluation)."""
    from rankstack.data.formats import read_docs, read_qrels, read_queries, read_run

    given = [cfg.train_triples is not None, cfg.train_jsonl is not None, cfg.candidates is not None]
    if sum(given) != 1:
        raise ConfigError("give exactly one training source: train_triples, train_jsonl, or "
                          "corpus+queries+qrels+candidates")
    loaded: dict[str, Any] = {}
    if cfg.corpus is not None:
        loaded["corpus"] = {d.id: d for d in read_docs(cfg.corpus)}
    if cfg.train_triples is not None:
        return GroupedDataset.from_triples(cfg.train_triples), loaded
    if cfg.train_jsonl is not None:
        return GroupedDataset.from_jsonl(cfg.train_jsonl, n_neg=cfg.n_neg, seed=cfg.seed), loaded
    for name in ("corpus", "queries", "qrels"):
        if getattr(cfg, name) is None:
            raise ConfigError(f"run-based training needs {name!r} (with candidates={cfg.candidates!r})")
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


def _collections(cfg: RankingTrainingArguments) -> dict[str, Any]:
    """The corpus, queries and qrels of the config, for dev evaluation of in-memory training data."""
    from rankstack.data.formats import read_docs, read_qrels, read_queries

    loaded: dict[str, Any] = {}
    if cfg.corpus is not None:
        loaded["corpus"] = {d.id: d for d in read_docs(cfg.corpus)}
    if cfg.queries and cfg.qrels:
        loaded["queries"] = {q.id: q.text for q in read_queries(cfg.queries)}
        loaded["qrels"] = read_qrels(cfg.qrels)
    return loaded


def _dev(cfg: CrossEncoderTrainConfig, loaded: dict[str, Any]) -> DevEvaluator | None:
    from rankstack.data.formats import read_qrels, read_queries, read_run

    if cfg.dev_candidates is None:
        return None
    if "corpus" not in loaded:
        raise ConfigError("dev evaluation needs corpus")
    if cfg.dev_queries:
        queries = {q.id: q.text for q in read_queries(cfg.dev_queries)}
    else:
        queries = loaded.get("queries")
    qrels = read_qrels(cfg.dev_qrels) if cfg.dev_qrels else loaded.get("qrels")
    if queries is None or qrels is None:
        raise ConfigError("dev evaluation needs dev_queries and dev_qrels (or queries and qrels)")
    run = read_run(cfg.dev_candidates)
    if cfg.dev_query_ids is not None:
        keep = set(cfg.dev_query_ids)
        run = {q: v for q, v in run.items() if q in keep}
    return DevEvaluator(queries, loaded["corpus"], run, qrels, cfg.dev_depth, cfg.max_length,
                        cfg.per_device_eval_batch_size)  # type: ignore[arg-type]


def _callbacks(cfg: RankingTrainingArguments) -> list[Any]:
    if cfg.dev_evaluation and cfg.early_stopping_patience:
        return [EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)]
    return []


def _loss_kwargs(cfg: RankingTrainingArguments) -> dict[str, Any]:
    """The trainer's loss arguments: the ranking loss, its targets and the optional distillation loss."""
    kw: dict[str, Any] = {"ranking_loss": get_loss(cfg.loss, **cfg.loss_kwargs),
                          "label_source": "teacher" if cfg.use_teacher_scores else "labels"}
    if cfg.distill_loss is not None:
        if cfg.use_teacher_scores:
            raise ConfigError("distill_loss adds a teacher loss to a label loss: use it with "
                              "use_teacher_scores=False")
        kw["distill_loss"] = get_loss(cfg.distill_loss, **cfg.distill_kwargs)
        kw["distill_weight"] = cfg.distill_weight
    return kw


def _write_config_json(path: str, cfg: RankingTrainingArguments, extra: dict[str, Any]) -> None:
    with open(os.path.join(path, "rankstack_train.json"), "w", encoding="utf-8") as f:
        json.dump({"config": cfg.to_dict(), **extra}, f, indent=2, default=str)


def _cross_encoder_model(cfg: CrossEncoderTrainConfig) -> Any:
    """The model to train, built by :func:`rankstack.encoders.heads.trainable_cross_encoder`."""
    from rankstack.encoders.heads import trainable_cross_encoder

    return trainable_cross_encoder(str(cfg.model), cfg.head, cos_scale=cfg.cos_scale,
                                   separate_layers=cfg.separate_layers, bi_encoder_layout=cfg.bi_encoder_layout,
                                   cross_gate=cfg.cross_gate)


# ---------------------------------------------------------------------------------------- entry points


def train_cross_encoder(config: CrossEncoderTrainConfig, *, callbacks: Sequence[Any] = (),
                        train_dataset: GroupedDataset | None = None, train_sampler: Any = None,
                        loss_weighting: Any = None, augment: Any = None) -> str:
    """Fine-tune a cross-encoder (``AutoModelForSequenceClassification``, one logit, new head when the
    backbone has none) and save it under ``config.output_dir/final``; returns that path.

    ``train_dataset`` overrides the data fields of the config (in-memory data); ``callbacks`` are extra
    ``TrainerCallback`` (e.g. :class:`rankstack.train.negatives.RemineCallback`); ``train_sampler`` is a
    ``torch`` sampler (e.g. topic-aware batches); ``loss_weighting`` a
    :class:`rankstack.train.sampling.DynamicLossWeighting`; ``augment`` a ``str -> str`` applied to
    each training document (:class:`~rankstack.train.data.CrossEncoderCollator`), e.g.
    :class:`rankstack.robust.certify.NoiseAugmenter` for noise-augmented training.
    """
    import sentence_transformers

    cfg = config
    if not cfg.model:
        raise ConfigError("CrossEncoderTrainConfig.model (a local backbone directory) is required")
    transformers.set_seed(cfg.seed)
    ds, loaded = _load_inputs(cfg) if train_dataset is None else (train_dataset, _collections(cfg))
    tok = AutoTokenizer.from_pretrained(str(cfg.model))
    model = _cross_encoder_model(cfg)
    dev = _dev(cfg, loaded)
    trainer = CrossEncoderTrainer(
        model=model, args=cfg, train_dataset=ds, data_collator=CrossEncoderCollator(tok, cfg.max_length, augment),
        processing_class=tok, dev_evaluator=dev, train_sampler=train_sampler, loss_weighting=loss_weighting,
        head_learning_rate=cfg.head_learning_rate, callbacks=[*_callbacks(cfg), *callbacks],
        **_loss_kwargs(cfg),
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
    from sentence_transformers import SentenceTransformer

    cfg = config
    if not cfg.model:
        raise ConfigError("BiEncoderTrainConfig.model (a local sentence-transformers directory) is required")
    transformers.set_seed(cfg.seed)
    ds = train_dataset if train_dataset is not None else _load_inputs(cfg)[0]
    model = SentenceTransformer(str(cfg.model), device="cpu")
    model.max_seq_length = cfg.max_length
    trainer = BiEncoderTrainer(
        model=model, args=cfg, train_dataset=ds, data_collator=BiEncoderCollator(model.tokenize),
        train_sampler=train_sampler, loss_weighting=loss_weighting, in_batch=cfg.in_batch,
        callbacks=list(callbacks), **_loss_kwargs(cfg),
    )
    result = trainer.train(resume_from_checkpoint=cfg.resume_from_checkpoint)
    out = os.path.join(cfg.output_dir, "final")
    trainer.save_model(out)
    _write_config_json(out, cfg, {"train_metrics": result.metrics, "log_history": trainer.state.log_history})
    return out
