"""LLM reranking parts: scorers (what a prompt asks), strategies (how prompts cover a candidate list)
and backends (transformers, llama.cpp, OpenAI-compatible HTTP, scripted). The stage that puts them
together is :class:`rankstack.stages.LLMReranker`.

Public names, imported on first use: ``SCORERS``, ``Scorer``, ``QueryContext``, ``Budget``,
``STRATEGIES``, ``StrategyConfig``, ``rerank``, ``Backend``, ``make_backend``, ``ScriptedBackend``,
``parse_permutation``.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "SCORERS": "scorers", "Scorer": "scorers", "QueryContext": "scorers", "Budget": "scorers",
    "STRATEGIES": "strategies", "StrategyConfig": "strategies", "rerank": "strategies",
    "Backend": "backends", "make_backend": "backends", "ScriptedBackend": "backends.scripted",
    "parse_permutation": "parse",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"rankstack.llm.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'rankstack.llm' has no attribute {name!r}")
