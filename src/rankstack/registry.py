"""The stage registry: name -> stage class, for every family (retrievers, rerankers, fusion, runs).

Ground floor: the table names its targets as ``"module:attr"`` strings and imports nothing of
rankstack's until a name is asked for, so any layer can name a stage (an index handing out its
``.retriever()``, a spec in an experiment TOML, the CLI, the service, a remote worker) without
importing the stages layer. A stage is *built* from a spec in one place,
:func:`rankstack.stages.build.build_stage`, which looks the name up here.

A new retriever or reranker is one module plus one :func:`register` call (or one row of
:data:`_BUILTINS`); a family that generates its rows from a table of its own (the LLM scorers)
registers a *provider*, ``"module:function"`` returning :class:`Entry` rows, loaded on first use.
Names are looked up exactly; an unknown name raises with the known names; a missing optional
dependency raises with the install hint.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rankstack.errors import ConfigError, MissingDependencyError, UnknownStageError
from rankstack.optional import install_hint

__all__ = ["Entry", "register", "register_provider", "entries", "resolve_entry", "resolve", "create"]

KINDS = ("retriever", "reranker", "fusion", "source")


@dataclass(frozen=True)
class Entry:
    """One registered stage.

    ``target``: ``"module:Class"`` (a :class:`~rankstack.stages.base.Stage` subclass, built with its
    ``from_context`` classmethod); ``extra``: the pip extra that provides its dependencies; ``kind``:
    one of :data:`KINDS`; ``defaults``: keywords every build of this name gets (the LLM rows share one
    class and differ by ``scorer``); ``trainable``: the kind of model (``"cross"`` | ``"bi"``) a
    ``train = {...}`` table of an experiment can fine-tune for it; ``details``: family-specific
    facts shown in listings (e.g. an LLM scorer's natural strategy).
    """

    name: str
    target: str
    extra: str | None = None
    kind: str = "reranker"
    help: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    trainable: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, Entry] = {}
_PROVIDERS: list[str] = []
_LOADED: set[str] = set()

#: built-in rows; the LLM rerankers come from the provider below (one row per scorer of
#: :data:`rankstack.llm.scorers.SCORERS`)
_BUILTINS: list[Entry] = [
    Entry("bm25", "rankstack.stages.bm25:BM25Retriever", None, "retriever",
          "Lucene/Anserini-equivalent BM25 over a memory-mapped index"),
    Entry("bm25-rerank", "rankstack.stages.bm25:BM25Reranker", None, "reranker",
          "re-score candidates with Lucene-equivalent BM25 from a BM25 index"),
    Entry("dense", "rankstack.stages.dense:DenseRetriever", "dense", "retriever",
          "bi-encoder dense retrieval over a FAISS index (exact IndexFlatIP or HNSW)", trainable="bi"),
    Entry("dense-rerank", "rankstack.stages.dense:DenseReranker", "dense", "reranker",
          "re-score candidates by bi-encoder cosine similarity (default all-MiniLM-L6-v2)", trainable="bi"),
    Entry("cross-encoder", "rankstack.stages.crossencoder:CrossEncoderReranker", "dense", "reranker",
          "cross-encoder re-ranking (torch or ONNX Runtime; MaxP/FirstP/SumP passages, query-aware summaries)",
          trainable="cross"),
    Entry("fuse", "rankstack.stages.base:Fuse", None, "fusion",
          "rank fusion of earlier pipelines' runs: RRF, CombSUM, CombMNZ, weighted sum; minmax/zscore"),
    Entry("run", "rankstack.stages.base:FromRun", None, "source",
          "a fixed run file (or a run the collection ships) as the first stage"),
    Entry("cutoff", "rankstack.stages.base:Cutoff", None, "reranker", "keep the top k of each ranked list"),
]
_BUILTIN_PROVIDERS = ["rankstack.stages.llm:registry_entries"]


def register(entry: Entry | str, target: str | None = None, extra: str | None = None, kind: str = "reranker",
             help: str = "", **fields: Any) -> Entry:
    """Register a stage: ``register(Entry(...))`` or ``register(name, "module:Class", extra, kind, help)``."""
    if not isinstance(entry, Entry):
        if target is None:
            raise ConfigError(f"register({entry!r}): give the target as 'module:Class'")
        entry = Entry(entry, target, extra, kind, help, **fields)
    if entry.kind not in KINDS:
        raise ConfigError(f"stage {entry.name!r}: kind must be one of {', '.join(KINDS)}, got {entry.kind!r}")
    if ":" not in entry.target:
        raise ConfigError(f"stage {entry.name!r}: target must be 'module:Class', got {entry.target!r}")
    old = _REGISTRY.get(entry.name)
    if old is not None and (old.target, dict(old.defaults)) != (entry.target, dict(entry.defaults)):
        raise ConfigError(f"stage name {entry.name!r} is already registered to {old.target}")
    _REGISTRY[entry.name] = entry
    return entry


def register_provider(target: str) -> None:
    """Register ``"module:function"`` returning :class:`Entry` rows, imported on first lookup."""
    if target not in _PROVIDERS:
        _PROVIDERS.append(target)


def _load_providers() -> None:
    for target in _PROVIDERS:
        if target in _LOADED:
            continue
        _LOADED.add(target)
        module, attr = target.split(":")
        try:
            rows = getattr(importlib.import_module(module), attr)()
        except ImportError:  # a provider whose dependencies are missing registers nothing
            _LOADED.discard(target)
            continue
        for row in rows:
            register(row)


for _b in _BUILTINS:
    register(_b)
for _p in _BUILTIN_PROVIDERS:
    register_provider(_p)


def entries(kind: str | None = None) -> list[Entry]:
    """Every registered stage (of one ``kind``), in registration order."""
    _load_providers()
    return [e for e in _REGISTRY.values() if kind is None or e.kind == kind]


def names(kind: str | None = None) -> list[str]:
    return [e.name for e in entries(kind)]


def resolve_entry(name: str) -> Entry:
    if name not in _REGISTRY:
        _load_providers()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownStageError(f"unknown stage {name!r}; known stages: {known}") from None


def resolve(name: str) -> Callable[..., Any]:
    """The class (or factory) registered as ``name``, imported now."""
    entry = resolve_entry(name)
    module, attr = entry.target.split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"stage {name!r} needs {e.name or e}: install it with {install_hint(entry.extra)}"
        ) from e
    return getattr(mod, attr)


def create(name: str, **params: Any) -> Any:
    """``resolve(name)(**defaults, **params)``: a stage from live objects (an index, a docs mapping).
    To build from a spec with a context (collection, cache, trained models), use
    :func:`rankstack.stages.build.build_stage`."""
    entry = resolve_entry(name)
    return resolve(name)(**{**entry.defaults, **params})
