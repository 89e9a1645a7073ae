"""Stages: retrievers, rerankers, fusion and the pipeline algebra (``>>``, ``%``, ``+``).

The public names, imported on first use (``from rankstack.stages import BM25Retriever, Reranker``):
the base classes and algebra of :mod:`rankstack.stages.base`, the construction path of
:mod:`rankstack.stages.build`, and every built-in stage.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "Stage": "base", "Pipeline": "base", "Cutoff": "base", "Cached": "base", "Candidates": "base",
    "Reranker": "base", "FromRun": "base", "Fuse": "base", "key_value": "base",
    "BuildContext": "build", "build_stage": "build", "build_pipeline": "build",
    "BM25Retriever": "bm25", "BM25Reranker": "bm25",
    "DenseRetriever": "dense", "DenseReranker": "dense",
    "CrossEncoderReranker": "crossencoder",
    "LLMReranker": "llm",
    "fuse_runs": "fusion", "tune_weights": "fusion",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"rankstack.stages.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'rankstack.stages' has no attribute {name!r}")
