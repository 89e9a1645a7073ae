"""Build once: an artifact (an index, a trained model) is built into its directory a single time,
marked complete, and loaded from then on. A build that was killed leaves no completion marker, so
the next call builds again (builders that can resume, such as dense encoding, pick up their shards).

The marker records a ``key`` (the content fingerprint of what the artifact was built from): an
artifact whose key differs from the one asked for is rebuilt, with a log line saying why, never
loaded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["MARKER", "build_once", "is_complete", "mark_complete"]

T = TypeVar("T")
log = logging.getLogger(__name__)
MARKER = ".complete"


def is_complete(path: str | Path, key: str | None = None) -> bool:
    """``path`` holds a complete artifact (built from ``key``, when one is given)."""
    marker = Path(path) / MARKER
    if not marker.exists():
        return False
    if key is None:
        return True
    try:
        info = json.loads(marker.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(info, dict) and info.get("key") == key


def mark_complete(path: str | Path, info: dict[str, Any] | None = None, key: str | None = None) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    body = {**(info or {}), **({"key": key} if key is not None else {})}
    (Path(path) / MARKER).write_text(json.dumps(body) if body else "ok")


def build_once(path: str | Path, build: Callable[[Path], T], load: Callable[[Path], T], key: str | None = None,
               rebuild: bool = False) -> T:
    """``load(path)`` if ``path`` holds a complete artifact built from ``key``, else ``build(path)``
    and mark it complete (``rebuild``: always build)."""
    path = Path(path)
    if not rebuild and is_complete(path, key):
        return load(path)
    if (path / MARKER).exists():
        log.warning("%s: %s; building it again", path, "rebuild asked for" if rebuild else
                    "built from other documents (content fingerprint changed)")
        (path / MARKER).unlink()
    out = build(path)
    mark_complete(path, key=key)
    return out
