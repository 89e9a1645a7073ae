"""Learning to rank: losses, negative mining, batch sampling and trainers (needs the ``train`` extra).

The public names load lazily: ``import rankstack.train`` imports neither torch nor transformers, and
``from rankstack.train import X`` imports only the submodule that defines ``X``:

* :mod:`~rankstack.train.data`: :class:`GroupedDataset` (training groups from runs, triples or JSONL),
  the collators, :func:`pin_positives`, :func:`graded_groups`, :func:`list_groups`;
* :mod:`~rankstack.train.losses`: :func:`get_loss` and the :class:`RankingLoss` family;
* :mod:`~rankstack.train.negatives`: :class:`NegativeMiner`, :class:`RemineCallback`;
* :mod:`~rankstack.train.sampling`: topic-aware / curriculum samplers, loss reweighting;
* :mod:`~rankstack.train.teacher`: :func:`hybrid_teacher` (fused runs as distillation targets);
* :mod:`~rankstack.train.folds`: :func:`kfold_queries`, :func:`holdout_split` (seeded query splits);
* :mod:`~rankstack.train.arguments`: the configs, subclasses of HF ``TrainingArguments``;
* :mod:`~rankstack.train.trainer`: the HF ``Trainer`` subclasses, :class:`DevEvaluator`,
  :func:`train_cross_encoder`, :func:`train_bi_encoder`;
* :mod:`~rankstack.train.llm_data`, :mod:`~rankstack.train.llm`: listwise windows from a teacher ranking
  and the LLM reranker trainer (FIRST's ranking loss, generation, combined; LoRA via peft), imported
  from their modules (issue #20).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: submodule -> the public names it defines
_MODULES: dict[str, tuple[str, ...]] = {
    "data": ("GroupedDataset", "CrossEncoderCollator", "BiEncoderCollator", "read_triples",
             "read_hard_negatives_jsonl", "pin_positives", "graded_groups", "list_groups"),
    "losses": ("RankingLoss", "LOSSES", "get_loss", "in_batch_scores"),
    "negatives": ("Mined", "NegativeMiner", "RemineCallback"),
    "sampling": ("kmeans", "TopicAwareSampler", "balanced_margin_pairs", "CurriculumSampler",
                 "difficulty_from_margins", "DynamicLossWeighting"),
    "teacher": ("hybrid_teacher",),
    "folds": ("kfold_queries", "holdout_split"),
    "arguments": ("RankingTrainingArguments", "CrossEncoderTrainConfig", "BiEncoderTrainConfig"),
    "trainer": ("RankingTrainer", "CrossEncoderTrainer", "BiEncoderTrainer", "DevEvaluator",
                "train_cross_encoder", "train_bi_encoder", "is_head_parameter"),
}
_EXPORTS: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "BiEncoderCollator",
    "BiEncoderTrainConfig",
    "BiEncoderTrainer",
    "CrossEncoderCollator",
    "CrossEncoderTrainConfig",
    "CrossEncoderTrainer",
    "CurriculumSampler",
    "DevEvaluator",
    "DynamicLossWeighting",
    "GroupedDataset",
    "LOSSES",
    "Mined",
    "NegativeMiner",
    "RankingLoss",
    "RankingTrainer",
    "RankingTrainingArguments",
    "RemineCallback",
    "TopicAwareSampler",
    "balanced_margin_pairs",
    "difficulty_from_margins",
    "get_loss",
    "graded_groups",
    "holdout_split",
    "hybrid_teacher",
    "in_batch_scores",
    "is_head_parameter",
    "kfold_queries",
    "kmeans",
    "list_groups",
    "pin_positives",
    "read_hard_negatives_jsonl",
    "read_triples",
    "train_bi_encoder",
    "train_cross_encoder",
]

if TYPE_CHECKING:  # pragma: no cover
    from rankstack.train.arguments import (
        BiEncoderTrainConfig,
        CrossEncoderTrainConfig,
        RankingTrainingArguments,
    )
    from rankstack.train.data import (
        BiEncoderCollator,
        CrossEncoderCollator,
        GroupedDataset,
        graded_groups,
        list_groups,
        pin_positives,
        read_hard_negatives_jsonl,
        read_triples,
    )
    from rankstack.train.folds import holdout_split, kfold_queries
    from rankstack.train.losses import LOSSES, RankingLoss, get_loss, in_batch_scores
    from rankstack.train.negatives import Mined, NegativeMiner, RemineCallback
    from rankstack.train.sampling import (
        CurriculumSampler,
        DynamicLossWeighting,
        TopicAwareSampler,
        balanced_margin_pairs,
        difficulty_from_margins,
        kmeans,
    )
    from rankstack.train.teacher import hybrid_teacher
    from rankstack.train.trainer import (
        BiEncoderTrainer,
        CrossEncoderTrainer,
        DevEvaluator,
        RankingTrainer,
        is_head_parameter,
        train_bi_encoder,
        train_cross_encoder,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rankstack.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rankstack.train.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
