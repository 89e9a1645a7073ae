"""rankstack's own trained models, by name (``rankstack/bi-minilm-scifact``; ``rankstack models`` lists them).

No model hub is reachable from the machines that build rankstack, so the weights ship with the package
(fp16 safetensors, about 45 MB a model) in ``rankstack/catalog/<name>/``, each directory a plain
Hugging Face / sentence-transformers model directory with its model card (``README.md``) and its
measured figures (``card.json``). A name is accepted everywhere a model is
(``--model rankstack/bi-minilm-scifact``, ``{stage = "dense", model = "rankstack/bi-minilm-scifact"}``,
``rankstack.rank(..., model=...)``), through :func:`rankstack.encoders.runtime.resolve_model`; any local
directory or hub id keeps working (a local directory of the same relative path wins, as in
transformers).

``$RANKSTACK_MODELS`` names another directory holding ``<name>/`` model directories (searched first),
for weights kept outside the package.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import NotFoundError

__all__ = ["ShippedModel", "NAMESPACE", "shipped", "lookup", "path_of", "is_shipped_name"]

#: the prefix of a shipped model's name
NAMESPACE = "rankstack/"
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ShippedModel:
    """One shipped model: its name, kind (``cross-encoder``, ``bi-encoder``), directory and card."""

    name: str
    kind: str
    path: Path
    card: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def complete(self) -> bool:
        """The weights are present (``model.safetensors`` and ``config.json``)."""
        return (self.path / "config.json").is_file() and (self.path / "model.safetensors").is_file()

    def to_json(self) -> dict[str, Any]:
        c = self.card
        return {"name": self.name, "kind": self.kind, "path": str(self.path), "complete": self.complete,
                "base": c.get("base"), "data": c.get("data"), "dtype": c.get("dtype"),
                "size_mb": round(sum(f.stat().st_size for f in self.path.iterdir() if f.is_file()) / 1e6, 1),
                "figures": c.get("figures", []), "retrain": c.get("retrain")}


def _roots() -> list[Path]:
    extra = os.environ.get("RANKSTACK_MODELS")
    return ([Path(extra).expanduser()] if extra else []) + [_HERE]


def shipped() -> list[ShippedModel]:
    """Every shipped model found (a directory with a ``card.json``), sorted by name; the first root wins."""
    seen: dict[str, ShippedModel] = {}
    for root in _roots():
        if not root.is_dir():
            continue
        for d in sorted(p for p in root.iterdir() if (p / "card.json").is_file()):
            try:
                card = json.loads((d / "card.json").read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise NotFoundError(f"{d / 'card.json'}: not a readable model card ({e})") from None
            name = str(card.get("name") or NAMESPACE + d.name)
            seen.setdefault(name, ShippedModel(name, str(card.get("kind", "?")), d, card))
    return sorted(seen.values(), key=lambda m: m.name)


def is_shipped_name(name: str) -> bool:
    return str(name).startswith(NAMESPACE)


def lookup(name: str) -> ShippedModel | None:
    """The shipped model called ``name`` (``rankstack/...``), or ``None`` if no such name is shipped."""
    return next((m for m in shipped() if m.name == name), None)


def path_of(name: str) -> Path:
    """The directory of shipped model ``name``; :class:`NotFoundError` naming the known ones otherwise."""
    m = lookup(name)
    if m is None:
        known = ", ".join(x.name for x in shipped()) or "none"
        raise NotFoundError(f"model {name!r}: no shipped model of that name (shipped: {known}; "
                            "`rankstack models` lists them)")
    if not m.complete:
        raise NotFoundError(f"model {name!r}: its directory {m.path} lacks config.json or model.safetensors "
                            "(a partial checkout? `git lfs` is not used: the files are plain git objects)")
    for rel, size in (m.card.get("files") or {}).items():  # recorded by scripts/ship_model.py
        f = m.path / rel
        got = f.stat().st_size if f.is_file() else None
        if got != size:
            raise NotFoundError(f"model {name!r}: {f} is {'missing' if got is None else f'{got:,} bytes'}, its card "
                                f"records {size:,} bytes (a damaged or changed copy: restore it, or ship it again "
                                "with scripts/ship_model.py)")
    return m.path
