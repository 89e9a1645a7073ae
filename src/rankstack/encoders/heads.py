"""Scoring heads for training: the one place a trainable cross-encoder is built from a backbone.

* ``head="classifier"``: the backbone's ``AutoModelForSequenceClassification`` with one logit (a new,
  randomly initialised head when the backbone has none, e.g. a bi-encoder such as all-MiniLM-L6-v2);
* ``head="segment-cosine"``: :func:`rankstack.encoders.segment_cosine.from_bi_encoder`, a
  cross-encoder that starts as its bi-encoder backbone (PreTTR split, optional cross-attention gate).
"""

from __future__ import annotations

from typing import Any

from rankstack.errors import ConfigError
from rankstack.optional import require

__all__ = ["HEADS", "trainable_cross_encoder"]

HEADS = ("classifier", "segment-cosine")


def trainable_cross_encoder(model: str, head: str = "classifier", *, cos_scale: float = 20.0,
                            separate_layers: int = 0, bi_encoder_layout: bool = False,
                            cross_gate: float | None = None) -> Any:
    """A torch model to train as a cross-encoder from the backbone directory ``model``."""
    if head == "segment-cosine":
        from rankstack.encoders.segment_cosine import from_bi_encoder

        return from_bi_encoder(str(model), cos_scale=cos_scale, separate_layers=separate_layers,
                               bi_encoder_layout=bi_encoder_layout, cross_gate=cross_gate)
    if head == "classifier":
        transformers = require("transformers", "train")
        return transformers.AutoModelForSequenceClassification.from_pretrained(str(model), num_labels=1)
    raise ConfigError(f"unknown cross-encoder head {head!r}; known: {', '.join(HEADS)}")
