"""Build once: an artifact (an index, a trained model) is built into its directory a single time,
marked complete, and loaded from then on. A build that was killed leaves no completion marker, so
the next call builds again (builders that can resume, such as dense encoding, pick up their shards).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["MARKER", "build_once", "is_complete", "mark_complete"]

T = TypeVar("T")
MARKER = ".complete"


def is_complete(path: str | Path) -> bool:
    return (Path(path) / MARKER).exists()


def mark_complete(path: str | Path, info: dict[str, Any] | None = None) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    (Path(path) / MARKER).write_text(json.dumps(info) if info else "ok")


def build_once(path: str | Path, build: Callable[[Path], T], load: Callable[[Path], T]) -> T:
    """``load(path)`` if ``path`` holds a complete artifact, else ``build(path)`` and mark it complete."""
    path = Path(path)
    if is_complete(path):
        return load(path)
    out = build(path)
    mark_complete(path)
    return out
