"""The training configs are Hugging Face ``TrainingArguments`` with rankstack's defaults and spellings."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rankstack.errors import ConfigError  # noqa: E402
from rankstack.train.arguments import (  # noqa: E402
    BiEncoderTrainConfig,
    CrossEncoderTrainConfig,
    RankingTrainingArguments,
)

#: the names `rankstack train` (interfaces/cli.py) and experiment `train` tables pass
CLI_FIELDS = {"model", "train_triples", "train_jsonl", "corpus", "queries", "qrels", "candidates", "loss", "n_neg",
              "epochs", "max_steps", "max_length", "batch_size", "learning_rate", "seed", "output_dir",
              "resume_from_checkpoint"}
#: every field the configs had before they subclassed TrainingArguments (TOML files use them)
OLD_FIELDS = {"model", "output_dir", "train_triples", "train_jsonl", "corpus", "queries", "qrels", "candidates",
              "train_query_ids", "dev_queries", "dev_qrels", "dev_candidates", "dev_query_ids", "dev_depth", "n_neg",
              "negatives", "loss", "loss_kwargs", "use_teacher_scores", "distill_loss", "distill_kwargs",
              "distill_weight", "max_length", "batch_size", "epochs", "max_steps", "learning_rate", "warmup_ratio",
              "weight_decay", "gradient_accumulation_steps", "seed", "bf16", "eval_steps", "save_steps",
              "save_total_limit", "early_stopping_patience", "logging_steps", "resume_from_checkpoint",
              "disable_tqdm", "report_to"}
CROSS_ONLY = {"eval_batch_size", "head_learning_rate", "head", "cos_scale", "separate_layers", "bi_encoder_layout",
              "cross_gate"}


def _names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_configs_are_training_arguments_with_every_old_field():
    for cls in (CrossEncoderTrainConfig, BiEncoderTrainConfig):
        assert issubclass(cls, RankingTrainingArguments) and issubclass(cls, transformers.TrainingArguments)
        assert CLI_FIELDS | OLD_FIELDS <= _names(cls)
    assert CROSS_ONLY <= _names(CrossEncoderTrainConfig)
    assert not ({"head_learning_rate", "head"} & _names(BiEncoderTrainConfig))  # the CLI refuses them for bi
    assert "in_batch" in _names(BiEncoderTrainConfig) and "epoch" not in _names(CrossEncoderTrainConfig)
    # the short list for messages: rankstack's fields and the HF fields it sets, not all of HF's
    own = CrossEncoderTrainConfig.rankstack_fields()
    assert OLD_FIELDS | CROSS_ONLY <= set(own) <= _names(CrossEncoderTrainConfig)
    assert {"num_train_epochs", "per_device_train_batch_size", "warmup_steps"} <= set(own)
    assert "lr_scheduler_type" not in own and len(own) < 70
    assert "head" not in BiEncoderTrainConfig.rankstack_fields() and "in_batch" in BiEncoderTrainConfig.rankstack_fields()


def test_rankstack_defaults_where_they_differ_from_hf(tmp_path):
    import torch

    c = CrossEncoderTrainConfig(model="m")
    hf = transformers.TrainingArguments(output_dir=str(tmp_path))
    got = {k: getattr(c, k) for k in ("output_dir", "num_train_epochs", "per_device_train_batch_size",
                                       "learning_rate", "warmup_steps", "weight_decay", "logging_steps",
                                       "save_total_limit", "remove_unused_columns", "report_to", "disable_tqdm",
                                       "data_seed", "per_device_eval_batch_size")}
    assert got == {"output_dir": "rankstack-model", "num_train_epochs": 1.0, "per_device_train_batch_size": 8,
                   "learning_rate": 2e-5, "warmup_steps": 0.1, "weight_decay": 0.01, "logging_steps": 50,
                   "save_total_limit": 2, "remove_unused_columns": False, "report_to": [], "disable_tqdm": False,
                   "data_seed": 42, "per_device_eval_batch_size": 64}
    assert (hf.num_train_epochs, hf.learning_rate, hf.warmup_steps, hf.logging_steps) == (3.0, 5e-5, 0, 500)
    # the old names read the same values
    assert (c.epochs, c.batch_size, c.warmup_ratio, c.eval_batch_size) == (1.0, 8, 0.1, 64)
    assert c.use_cpu is (not torch.cuda.is_available())
    assert c.bf16 is bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    assert (c.save_strategy.value, c.save_steps, c.eval_strategy.value, c.seed, c.max_steps) == ("steps", 500, "no", 42, -1)
    assert (c.loss, BiEncoderTrainConfig().loss, BiEncoderTrainConfig().in_batch) == ("bce", "infonce", True)
    assert BiEncoderTrainConfig().learning_rate == 2e-5 and BiEncoderTrainConfig().per_device_eval_batch_size == 8


def test_old_and_hf_names_are_one_setting():
    c = CrossEncoderTrainConfig(epochs=2.5, batch_size=3, warmup_ratio=0.2, eval_batch_size=16, bf16=False)
    assert (c.num_train_epochs, c.per_device_train_batch_size, c.warmup_steps, c.per_device_eval_batch_size) == (
        2.5, 3, 0.2, 16)
    h = CrossEncoderTrainConfig(num_train_epochs=2.5, per_device_train_batch_size=3, warmup_steps=0.2)
    assert (h.epochs, h.batch_size, h.warmup_ratio) == (2.5, 3, 0.2)
    assert CrossEncoderTrainConfig(warmup_steps=30).warmup_ratio is None  # a step count is no ratio
    assert CrossEncoderTrainConfig(epochs=2, num_train_epochs=2).num_train_epochs == 2  # agreeing is fine
    with pytest.raises(ConfigError, match=r"epochs=2 and num_train_epochs=3 name the same setting"):
        CrossEncoderTrainConfig(epochs=2, num_train_epochs=3)
    with pytest.raises(ConfigError, match="batch_size=4 and per_device_train_batch_size=2"):
        BiEncoderTrainConfig(batch_size=4, per_device_train_batch_size=2)
    with pytest.raises(ConfigError, match=r"warmup_ratio must be in \[0, 1\)"):
        CrossEncoderTrainConfig(warmup_ratio=1.5)
    with pytest.raises(ConfigError, match="warmup_ratio=0.1 and warmup_steps=5"):
        CrossEncoderTrainConfig(warmup_ratio=0.1, warmup_steps=5)
    # a copy that changes other fields keeps the resolved values
    r = dataclasses.replace(c, learning_rate=1e-3)
    assert (r.learning_rate, r.epochs, r.num_train_epochs, r.batch_size) == (1e-3, 2.5, 2.5, 3)
    with pytest.raises(ValueError, match="unknown 'nope'"):
        CrossEncoderTrainConfig(head="nope")


def test_dev_evaluation_sets_hf_evaluation_and_best_checkpoint_arguments():
    c = CrossEncoderTrainConfig(dev_candidates="dev.trec", eval_steps=7, save_steps=100)
    assert c.dev_evaluation and c.eval_strategy.value == "steps" and c.eval_steps == 7
    assert (c.save_steps, c.metric_for_best_model, c.greater_is_better, c.load_best_model_at_end) == (
        7, "ndcg@10", True, True)
    for plain in (CrossEncoderTrainConfig(dev_candidates="dev.trec"), CrossEncoderTrainConfig(eval_steps=7),
                  BiEncoderTrainConfig(dev_candidates="dev.trec", eval_steps=7)):  # bi-encoders: no dev evaluation
        assert not plain.dev_evaluation and plain.eval_strategy.value == "no" and not plain.load_best_model_at_end


def test_config_round_trips_and_pickles():
    c = CrossEncoderTrainConfig(model="m", negatives={"rank_window": (1, 30)}, train_query_ids=["q1"], epochs=2)
    d = c.to_dict()
    assert d["epochs"] == d["num_train_epochs"] == 2 and d["negatives"] == {"rank_window": (1, 30)}
    again = CrossEncoderTrainConfig(**{k: v for k, v in d.items() if k in _names(CrossEncoderTrainConfig)})
    assert again.to_dict() == d
    p = pickle.loads(pickle.dumps(c))  # checkpoints store the arguments (training_args.bin)
    assert p.to_dict() == d and isinstance(p, CrossEncoderTrainConfig)
