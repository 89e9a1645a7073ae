"""Name -> stage factory registry.

A new retriever or reranker is one module plus one ``register`` call in :data:`_BUILTINS`.
Names are looked up exactly: there is no dispatch on substrings of model names. An unknown name
raises with the known names; a missing optional dependency raises with the install hint.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class UnknownStageError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


class MissingDependencyError(ImportError):
    pass


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:attr"
    extra: str | None  # pip extra that provides its dependencies
    kind: str  # "retriever" | "reranker" | "fusion"
    help: str = ""


_REGISTRY: dict[str, Entry] = {}

# (name, "module:factory", extra, kind, help) -- modules are imported lazily
_BUILTINS: list[tuple[str, str, str | None, str, str]] = [
    ("bm25", "rankstack.stages.bm25:BM25Retriever", None, "retriever",
     "Lucene/Anserini-equivalent BM25 over a memory-mapped index"),
    ("bm25-rerank", "rankstack.stages.bm25:BM25Reranker", None, "reranker",
     "re-score candidates with Lucene-equivalent BM25 from a BM25 index"),
    ("dense", "rankstack.stages.dense:DenseRetriever", "dense", "retriever",
     "bi-encoder dense retrieval over a FAISS index (exact IndexFlatIP or HNSW)"),
    ("dense-rerank", "rankstack.stages.dense:DenseReranker", "dense", "reranker",
     "re-score candidates by bi-encoder cosine similarity (default all-MiniLM-L6-v2)"),
    ("cross-encoder", "rankstack.stages.crossencoder:CrossEncoderReranker", "dense", "reranker",
     "cross-encoder re-ranking (torch or ONNX Runtime; MaxP/FirstP/SumP passages, query-aware summaries)"),
    ("fuse", "rankstack.stages.fusion:Fuse", None, "fusion",
     "rank fusion of stages or runs: RRF, CombSUM, CombMNZ, weighted sum; minmax/zscore normalisation"),
    ("pointwise", "rankstack.stages.llm:pointwise", "llm", "reranker",
     "LLM pointwise yes/no relevance (log p(Yes) - log p(No))"),
    ("qlm", "rankstack.stages.llm:qlm", "llm", "reranker", "LLM query likelihood (UPR): log p(query | passage)"),
    ("pairwise", "rankstack.stages.llm:pairwise", "llm", "reranker",
     "LLM pairwise ranking prompting (PRP), both orders; heapsort/bubble/allpairs"),
    ("setwise", "rankstack.stages.llm:setwise", "llm", "reranker", "LLM setwise: most relevant of k passages"),
    ("listwise", "rankstack.stages.llm:listwise", "llm", "reranker",
     "LLM listwise (RankGPT) generated permutation; sliding window"),
    ("first", "rankstack.stages.llm:first", "llm", "reranker",
     "FIRST: listwise ranking from the first identifier token's logits"),
    ("eliminate", "rankstack.stages.llm:eliminate", "llm", "reranker",
     "LLM iterative elimination (IRanker): drop the least relevant step by step"),
    ("reasoning", "rankstack.stages.llm:reasoning", "llm", "reranker",
     "LLM reasoning setwise (Rank-R1 <think>/<answer> format)"),
]


def register(name: str, target: str, extra: str | None = None, kind: str = "reranker", help: str = "") -> None:
    if name in _REGISTRY and _REGISTRY[name].target != target:
        raise ValueError(f"stage name {name!r} is already registered to {_REGISTRY[name].target}")
    _REGISTRY[name] = Entry(name, target, extra, kind, help)


for _b in _BUILTINS:
    register(*_b)


def entries(kind: str | None = None) -> list[Entry]:
    return [e for e in _REGISTRY.values() if kind is None or e.kind == kind]


def entry_kind(name: str) -> str:
    """``retriever``, ``reranker`` or ``fusion``; raises for an unknown name."""
    return resolve_entry(name).kind


def resolve_entry(name: str) -> Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownStageError(f"unknown stage {name!r}; known stages: {known}") from None


def resolve(name: str) -> Callable[..., Any]:
    entry = resolve_entry(name)
    module, attr = entry.target.split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        hint = f"pip install 'rankstack[{entry.extra}]'" if entry.extra else "pip install rankstack"
        raise MissingDependencyError(f"stage {name!r} needs {e.name or e}: install it with {hint}") from e
    return getattr(mod, attr)


def create(name: str, **kwargs: Any) -> Any:
    return resolve(name)(**kwargs)


def require(module: str, extra: str) -> Any:
    """Import an optional dependency or raise with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"{module} is not installed: install it with pip install 'rankstack[{extra}]'"
        ) from e
