"""Indexes as artifacts: built once (:func:`build_once`), loaded memory-mapped, and handing out the
stages over them (``index.retriever()``, ``index.reranker()``, PyTerrier's artifact idea).

* :mod:`rankstack.index.analysis` -- Anserini's English analyzer;
* :mod:`rankstack.index.bm25` -- the Lucene-exact BM25 index (norms, build, scoring);
* :mod:`rankstack.index.dense` -- resumable corpus encoding and FAISS indexes;
* :mod:`rankstack.index.artifact` -- build once, with a completion marker.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "EnglishAnalyzer": "analysis", "default_analyzer": "analysis",
    "BM25Index": "bm25", "open_index": "bm25",
    "DenseIndex": "dense", "encode_corpus": "dense", "load_embeddings": "dense",
    "build_once": "artifact", "is_complete": "artifact", "mark_complete": "artifact",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"rankstack.index.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'rankstack.index' has no attribute {name!r}")
