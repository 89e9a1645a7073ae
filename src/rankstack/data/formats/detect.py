"""Format names per record kind and format detection (:func:`detect_format`).

``format="auto"`` in every reader goes through :func:`_resolve`, which sniffs the first non-blank
lines of the file; an explicit name is checked against the kind's list (:data:`DOC_FORMATS`,
:data:`QUERY_FORMATS`, :data:`QRELS_FORMATS`, ``("trec",)`` for runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from rankstack.data.formats._lines import PathLike, _is_zero, _sniff
from rankstack.data.formats.smart import _SMART_MARKER
from rankstack.errors import ConfigError, FormatError

DOC_FORMATS = ("jsonl", "beir", "tsv", "trec", "smart")
QUERY_FORMATS = ("jsonl", "beir", "tsv", "trec", "smart")
QRELS_FORMATS = ("trec", "beir", "cranfield", "pairs")
_KINDS = {"docs": DOC_FORMATS, "queries": QUERY_FORMATS, "qrels": QRELS_FORMATS, "run": ("trec",)}

#: the header line of BEIR qrels TSV files (compared case-insensitively)
_BEIR_HEADER = ("query-id", "corpus-id", "score")


def _check_format(fmt: str, kind: str) -> str:
    known = _KINDS[kind]
    if fmt not in known:
        raise ConfigError(f"unknown {kind} format {fmt!r}; known formats: {', '.join(known)} (or 'auto')")
    return fmt


def detect_format(path: PathLike, kind: Literal["docs", "queries", "qrels", "run"]) -> str:
    """Guess the format of a ``kind`` file from its first non-blank lines.

    Returns one of :data:`DOC_FORMATS`, :data:`QUERY_FORMATS`, :data:`QRELS_FORMATS` or ``"trec"``
    for runs. Raises :class:`FormatError` (naming the file) when nothing matches.
    """
    if kind not in _KINDS:
        raise ConfigError(f"unknown kind {kind!r}; known kinds: {', '.join(_KINDS)}")
    lines = _sniff(path)
    if not lines:
        raise FormatError(f"{path}: empty file, cannot detect a {kind} format")
    first = lines[0].lstrip("\ufeff").lstrip()
    if kind == "run":
        return "trec"
    if kind in ("docs", "queries"):
        if first.startswith("{"):
            return "jsonl"
        up = first.upper()
        if kind == "docs" and up.startswith("<DOC>"):
            return "trec"
        if kind == "queries" and up.startswith(("<TOP>", "<TOPICS")):
            return "trec"
        if _SMART_MARKER.match(first) and first.startswith(".I"):
            return "smart"
        if "\t" in first:
            return "tsv"
        raise FormatError(f"{path}:1: cannot detect a {kind} format from {first[:60]!r}; pass format= one of "
                          f"{', '.join(_KINDS[kind])}")
    # qrels
    fields = first.split()
    if tuple(f.lower() for f in fields) == _BEIR_HEADER:
        return "beir"
    rows = [ln.split() for ln in lines]
    widths = {len(r) for r in rows}
    if widths == {4}:
        if all(r[1] in ("0", "Q0") for r in rows):
            return "trec"
        if all(_is_zero(r[2]) and _is_zero(r[3]) for r in rows):
            return "pairs"
        return "trec"
    if widths == {3}:
        return "cranfield" if Path(path).name.lower().startswith("cran") else "beir"
    if widths == {2}:
        return "pairs"
    raise FormatError(f"{path}:1: cannot detect a qrels format from {first[:60]!r}; pass format= one of "
                      f"{', '.join(QRELS_FORMATS)}")


def _resolve(fmt: str, kind: str, path: PathLike) -> str:
    if fmt == "auto":
        return detect_format(path, kind)  # type: ignore[arg-type]
    return _check_format(fmt, kind)
