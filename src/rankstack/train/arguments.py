"""Training configurations: Hugging Face :class:`transformers.TrainingArguments` plus rankstack's fields.

:class:`RankingTrainingArguments` subclasses ``TrainingArguments`` (as sentence-transformers'
``CrossEncoderTrainingArguments`` does): every HF argument (optimizer, scheduler, precision,
checkpointing, logging, ...) is a field of the config and reaches the trainer as it is, and rankstack
adds its own fields: the data sources, negative mining, the ranking loss, distillation and dev
evaluation. :class:`CrossEncoderTrainConfig` and :class:`BiEncoderTrainConfig` add the fields of
each model kind; they are what :func:`rankstack.train.trainer.train_cross_encoder` and
``train_bi_encoder`` take.

rankstack's defaults where they differ from HF's: ``output_dir="rankstack-model"``, one epoch,
``learning_rate=2e-5``, a linear warmup over the first 10 % of the steps, ``weight_decay=0.01``,
``logging_steps=50``, ``save_total_limit=2``, ``remove_unused_columns=False``, ``report_to="none"``,
the progress bar on (``disable_tqdm=False``), ``bf16`` when a CUDA GPU supports it and fp32
otherwise, the CPU whenever no CUDA GPU is present (``use_cpu``, never Apple's MPS), ``data_seed``
equal to ``seed``; the cross-encoder's dev reranking runs 64 pairs per batch.

rankstack's own spellings of four HF arguments stay accepted, with the same meaning; each mirrors its
HF field after construction, and giving both with different values is a :class:`~rankstack.errors.ConfigError`
(so is ``dataclasses.replace`` of one of them: replace the other too, or build a new config):

============================  ==========================================
rankstack                     Hugging Face
============================  ==========================================
``epochs``                    ``num_train_epochs``
``batch_size``                ``per_device_train_batch_size`` (groups)
``warmup_ratio``              ``warmup_steps`` (a value below 1 is a fraction of the steps)
``eval_batch_size`` (cross)   ``per_device_eval_batch_size``
============================  ==========================================

With ``dev_candidates`` and ``eval_steps`` (cross-encoders) the config also sets HF's evaluation
arguments: evaluation every ``eval_steps`` steps, a checkpoint at each evaluation
(``save_steps = eval_steps``), the best checkpoint by dev ``ndcg@10`` loaded at the end.

This module imports ``transformers`` (the ``train`` extra); :mod:`rankstack.train` loads it lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from transformers import TrainingArguments

from rankstack.errors import ConfigError

__all__ = ["RankingTrainingArguments", "CrossEncoderTrainConfig", "BiEncoderTrainConfig", "DEV_METRIC"]

#: the dev measure of :class:`rankstack.train.trainer.DevEvaluator`, used for best-checkpoint selection
DEV_METRIC = "ndcg@10"


@dataclass
class RankingTrainingArguments(TrainingArguments):
    """``TrainingArguments`` of a rankstack ranking trainer (see the module docstring for the
    defaults that differ from HF's and the accepted rankstack spellings)."""

    # --- HF fields with rankstack defaults (None: resolved in __post_init__, see the module docstring)
    output_dir: str | None = "rankstack-model"
    num_train_epochs: float | None = None
    """Default 1 (alias ``epochs``)."""
    per_device_train_batch_size: int | None = None
    """Groups (queries) per batch, default 8 (alias ``batch_size``)."""
    learning_rate: float = 2e-5
    warmup_steps: float | None = None
    """Below 1: a fraction of the training steps (alias ``warmup_ratio``); default 0.1."""
    weight_decay: float = 0.01
    bf16: bool | None = None
    """None: bf16 when a CUDA GPU supports it, else fp32."""
    use_cpu: bool | None = None
    """None: the CPU unless a CUDA GPU is available."""
    data_seed: int | None = None
    """None: ``seed``."""
    logging_steps: float = 50
    save_total_limit: int | None = 2
    disable_tqdm: bool | None = None
    """None: the progress bar is shown."""
    remove_unused_columns: bool = False
    report_to: None | str | list[str] = "none"
    resume_from_checkpoint: str | bool | None = None
    """A checkpoint directory, or True for the last checkpoint in ``output_dir``."""

    # --- rankstack spellings of HF fields
    epochs: float | None = None
    """``num_train_epochs``."""
    batch_size: int | None = None
    """``per_device_train_batch_size``: groups (queries) per batch; a batch holds
    ``batch_size * (1 + n_neg)`` documents."""
    warmup_ratio: float | None = None
    """``warmup_steps`` as a fraction in [0, 1) of the training steps."""

    # --- model
    model: str = ""
    """Backbone: a local HF / sentence-transformers directory (no hub access)."""
    max_length: int = 256
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
    early_stopping_patience: int | None = None
    """Stop after this many dev evaluations without improvement (needs dev evaluation)."""
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

    #: whether ``dev_candidates`` + ``eval_steps`` turn on dev evaluation for this kind of model
    supports_dev: ClassVar[bool] = True
    #: HF fields with HF's defaults that rankstack's configs have always documented
    _HF_DOCUMENTED: ClassVar[tuple[str, ...]] = ("max_steps", "gradient_accumulation_steps", "seed", "eval_steps",
                                                 "save_steps")
    #: (HF field, rankstack spelling, default when neither is given)
    _ALIASES: ClassVar[tuple[tuple[str, str, Any], ...]] = (
        ("num_train_epochs", "epochs", 1.0),
        ("per_device_train_batch_size", "batch_size", 8),
    )

    def __post_init__(self) -> None:
        import torch

        for hf_name, own, default in self._ALIASES:
            self._resolve_alias(hf_name, own, default)
        self._resolve_warmup()
        if self.bf16 is None:
            self.bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        if self.use_cpu is None:
            self.use_cpu = not torch.cuda.is_available()
        if self.data_seed is None:
            self.data_seed = self.seed
        if self.disable_tqdm is None:
            self.disable_tqdm = False
        if self.dev_evaluation:
            self.eval_strategy = "steps"
            self.metric_for_best_model = DEV_METRIC
            self.greater_is_better = True
            self.load_best_model_at_end = True
            # best-checkpoint selection needs a checkpoint at every evaluation
            self.save_steps = self.eval_steps
        super().__post_init__()

    def _resolve_alias(self, hf_name: str, own: str, default: Any) -> None:
        hf, mine = getattr(self, hf_name), getattr(self, own)
        if hf is not None and mine is not None and hf != mine:
            raise ConfigError(f"{own}={mine!r} and {hf_name}={hf!r} name the same setting: give one of them")
        value = hf if hf is not None else mine if mine is not None else default
        setattr(self, hf_name, value)
        setattr(self, own, value)

    def _resolve_warmup(self) -> None:
        steps, ratio = self.warmup_steps, self.warmup_ratio
        if ratio is not None:
            if not 0 <= ratio < 1:
                raise ConfigError(f"warmup_ratio must be in [0, 1), got {ratio!r} "
                                  "(warmup_steps counts steps)")
            if steps is not None and steps != ratio:
                raise ConfigError(f"warmup_ratio={ratio!r} and warmup_steps={steps!r} name the same setting: "
                                  "give one of them")
            steps = ratio
        elif steps is None:
            steps = 0.1
        self.warmup_steps = steps
        self.warmup_ratio = steps if steps < 1 else None

    @classmethod
    def rankstack_fields(cls) -> list[str]:
        """The fields rankstack documents: its own, its spellings of HF fields and the HF fields it gives
        other defaults (every other ``TrainingArguments`` field is accepted too), e.g. for an error
        message that lists the known fields without HF's ~120."""
        from dataclasses import fields

        hf = {f.name for f in fields(TrainingArguments)}
        redefined = {n for c in cls.__mro__ if issubclass(c, RankingTrainingArguments)
                     for n in c.__dict__.get("__annotations__", {})}
        keep = redefined | set(cls._HF_DOCUMENTED)
        return sorted(f.name for f in fields(cls) if f.name not in hf or f.name in keep)

    @property
    def dev_evaluation(self) -> bool:
        """Whether the trainer evaluates on the dev run every ``eval_steps`` steps."""
        return bool(self.supports_dev and self.dev_candidates is not None and self.eval_steps)


@dataclass
class CrossEncoderTrainConfig(RankingTrainingArguments):
    """Configuration of :func:`rankstack.train.trainer.train_cross_encoder` (all paths are local files)."""

    per_device_eval_batch_size: int | None = None
    """Pairs per batch when reranking the dev run; default 64 (alias ``eval_batch_size``)."""
    eval_batch_size: int | None = None  # type: ignore[assignment]  # shadows HF's read-only property
    """``per_device_eval_batch_size`` (this field replaces HF's ``eval_batch_size`` property, per device
    times GPUs; rankstack trains on one device, and HF's own evaluation loop is not used)."""
    head_learning_rate: float | None = None
    """Learning rate of the scoring head (classifier and pooler; see
    :func:`rankstack.train.trainer.is_head_parameter`), e.g. 10x ``learning_rate``: a head that starts
    at random otherwise needs ~100 steps before its scores move the loss. Follows the same schedule.
    ``None``: the head uses ``learning_rate``."""
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

    _ALIASES: ClassVar[tuple[tuple[str, str, Any], ...]] = (
        *RankingTrainingArguments._ALIASES,
        ("per_device_eval_batch_size", "eval_batch_size", 64),
    )

    def __post_init__(self) -> None:
        if self.head not in ("classifier", "segment-cosine"):
            raise ConfigError(f"CrossEncoderTrainConfig.head: unknown {self.head!r} "
                              "(classifier, segment-cosine)")
        super().__post_init__()


@dataclass
class BiEncoderTrainConfig(RankingTrainingArguments):
    """Configuration of :func:`rankstack.train.trainer.train_bi_encoder`; ``in_batch`` adds the other
    groups' documents as negatives (MNRL-style); use a contrastive loss (``infonce``) with it. Dev
    evaluation is not supported for bi-encoders (the ``dev_*`` fields are ignored)."""

    loss: str = "infonce"
    in_batch: bool = True

    supports_dev: ClassVar[bool] = False
