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
    ("bm25", "rankstack.stages.bm25:BM25Retriever", None, "retriever", "Lucene-equivalent BM25 (bm25s engine)"),
]


def register(name: str, target: str, extra: str | None = None, kind: str = "reranker", help: str = "") -> None:
    if name in _REGISTRY and _REGISTRY[name].target != target:
        raise ValueError(f"stage name {name!r} is already registered to {_REGISTRY[name].target}")
    _REGISTRY[name] = Entry(name, target, extra, kind, help)


for _b in _BUILTINS:
    register(*_b)


def entries(kind: str | None = None) -> list[Entry]:
    return [e for e in _REGISTRY.values() if kind is None or e.kind == kind]


def resolve(name: str) -> Callable[..., Any]:
    try:
        entry = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownStageError(f"unknown stage {name!r}; known stages: {known}") from None
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
