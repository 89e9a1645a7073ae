"""Checked artifacts: each index directory (BM25, dense, document store) lists its files with their
sizes and SHA-256 checksums in ``checksums.json``, written last when it is saved. Ground floor: it
imports only :mod:`rankstack.errors`, so the data layer's document store uses it too.

Opening an artifact checks the sizes (cheap, always); :func:`verify` with ``full=True`` also checks
every checksum (``rankstack check INDEX_DIR``). A damaged or missing file is a
:class:`~rankstack.errors.FormatError` that names it, says what is wrong, and says how to rebuild.
Artifacts written before manifests existed have none: they are opened without the check and
``rankstack check`` says so.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rankstack.errors import FormatError

__all__ = ["MANIFEST", "write_manifest", "verify", "find_artifacts"]

MANIFEST = "checksums.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory: str | os.PathLike, files: list[str], kind: str, rebuild: str) -> Path:
    """Record ``files`` (names relative to ``directory``) with size and checksum; ``rebuild`` is the
    command that rebuilds this artifact, quoted in errors."""
    d = Path(directory)
    entries = {name: {"bytes": (d / name).stat().st_size, "sha256": _sha256(d / name)} for name in files}
    body = {"kind": kind, "rebuild": rebuild, "files": entries}
    tmp = d / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True))
    os.replace(tmp, d / MANIFEST)
    return d / MANIFEST


def verify(directory: str | os.PathLike, full: bool = False) -> dict[str, Any] | None:
    """Check the files of ``directory`` against its manifest (sizes; checksums too with ``full``).
    Returns the manifest (``None`` if the artifact has none); raises :class:`FormatError` naming the
    first damaged file."""
    d = Path(directory)
    mpath = d / MANIFEST
    if not mpath.exists():
        return None
    try:
        man = json.loads(mpath.read_text())
        files = man["files"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise FormatError(f"{mpath}: not a valid manifest ({e}); rebuild the index") from None
    how = man.get("rebuild") or "rebuild the index"
    for name, want in files.items():
        f = d / name
        if not f.exists():
            raise FileNotFoundError(f"{d} is incomplete: {name} is missing (listed in {MANIFEST}); {how}")
        size = f.stat().st_size
        if size != want["bytes"]:
            raise FormatError(f"{f}: {size:,} bytes, {MANIFEST} says {want['bytes']:,} (truncated or damaged); {how}")
        if full and _sha256(f) != want["sha256"]:
            raise FormatError(f"{f}: checksum differs from {MANIFEST} (the file is damaged); {how}")
    return man


def find_artifacts(root: str | os.PathLike) -> list[Path]:
    """Every artifact directory under ``root`` (those with a manifest, or an old-style index)."""
    root = Path(root)
    out = {p.parent for p in root.rglob(MANIFEST)}
    for marker in ("meta.json", "index_meta.json"):  # artifacts written before manifests
        out.update(p.parent for p in root.rglob(marker) if p.parent.name in ("bm25", "dense", "docstore"))
    return sorted(out)
