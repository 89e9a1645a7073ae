"""Format names per record kind and format detection (:func:`detect_format`).

``format="auto"`` in every reader goes through :func:`_resolve`, which sniffs the first non-blank
lines of the file; an explicit name is checked against the kind's list (:data:`DOC_FORMATS`,
:data:`QUERY_FORMATS`, :data:`QRELS_FORMATS`, :data:`RUN_FORMATS`: ``trec`` (``qid Q0 docid rank
score tag``) or ``msmarco`` (``qid<TAB>docid<TAB>rank``, MS MARCO's and Pyserini's ``--output-format
msmarco``)).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

from rankstack.data.formats._lines import PathLike, _is_zero, _sniff_numbered
from rankstack.data.formats.smart import _SMART_MARKER
from rankstack.errors import ConfigError, FormatError

DOC_FORMATS = ("jsonl", "beir", "tsv", "trec", "smart")
QUERY_FORMATS = ("jsonl", "beir", "tsv", "trec", "smart")
QRELS_FORMATS = ("trec", "beir", "cranfield", "pairs")
RUN_FORMATS = ("trec", "msmarco")
_KINDS = {"docs": DOC_FORMATS, "queries": QUERY_FORMATS, "qrels": QRELS_FORMATS, "run": RUN_FORMATS}

#: the header line of BEIR qrels TSV files (compared case-insensitively)
_BEIR_HEADER = ("query-id", "corpus-id", "score")


def _check_format(fmt: str, kind: str) -> str:
    known = _KINDS[kind]
    if fmt not in known:
        raise ConfigError(f"unknown {kind} format {fmt!r}; known formats: {', '.join(known)} (or 'auto')")
    return fmt


def detect_format(path: PathLike, kind: Literal["docs", "queries", "qrels", "run"]) -> str:
    """Guess the format of a ``kind`` file from its first non-blank lines.

    Returns one of :data:`DOC_FORMATS`, :data:`QUERY_FORMATS`, :data:`QRELS_FORMATS` or
    :data:`RUN_FORMATS`. Raises :class:`FormatError` (naming the file and the line) when nothing matches.

    The first non-blank line decides. When it fits no format (a damaged first line), the other
    sniffed lines vote, so that the reader then reports the damaged line itself rather than the
    whole file being "undetectable". Qrels are detected by their number of columns: the most common
    width among the first 20 non-blank lines (the first line's on a tie), so that one line with a
    column missing is reported at its own line by the reader; a width no qrels format has (a run
    file passed as qrels) is an error naming the first line of that width.
    """
    if kind not in _KINDS:
        raise ConfigError(f"unknown kind {kind!r}; known kinds: {', '.join(_KINDS)}")
    lines = _sniff_numbered(path)
    if not lines and kind == "run":
        return "trec"  # an empty run is a run (the evaluation then says there is nothing to evaluate)
    if not lines:
        raise FormatError(f"{path}: empty file, cannot detect a {kind} format")
    first_no, first = lines[0][0], lines[0][1].lstrip("\ufeff").lstrip()
    if kind == "run":  # the most common width decides, so that one damaged line is reported at its own line
        widths = [len(ln.split()) for _, ln in lines]
        width = max(sorted(set(widths), key=widths.index), key=widths.count)
        return "msmarco" if width == 3 else "trec"
    if kind in ("docs", "queries"):
        fmt = _text_format(first, kind)
        if fmt is None:
            others = Counter(_text_format(ln.lstrip(), kind) for _, ln in lines[1:])
            for line_format in ("jsonl", "tsv"):  # one format per line: most lines agree -> the first is damaged
                if others[line_format] * 2 > len(lines) - 1:
                    return line_format  # (the reader then names the first line)
            if others["smart"]:
                return "smart"  # a record starts further down: the reader names the text before it
            raise FormatError(f"{path}:{first_no}: cannot detect a {kind} format from {first[:60]!r}; pass "
                              f"format= one of {', '.join(_KINDS[kind])}")
        return fmt
    return _qrels_format(path, lines, first_no, first)


def _text_format(line: str, kind: str) -> str | None:
    """The document or query format a (first) line starts, or ``None``."""
    if line.startswith("{"):
        return "jsonl"
    up = line.upper()
    if kind == "docs" and up.startswith("<DOC>"):
        return "trec"
    if kind == "queries" and up.startswith(("<TOP>", "<TOPICS")):
        return "trec"
    if _SMART_MARKER.match(line) and line.startswith(".I"):
        return "smart"
    if "\t" in line:
        return "tsv"
    return None


def _qrels_format(path: PathLike, lines: list[tuple[int, str]], first_no: int, first: str) -> str:
    if tuple(f.lower() for f in first.split()) == _BEIR_HEADER:
        return "beir"
    rows = [(no, ln.split()) for no, ln in lines]
    widths = [len(r) for _, r in rows]
    if set(widths) <= {2, 4} and 2 in widths and all(_is_zero(r[2]) and _is_zero(r[3]) for _, r in rows if len(r) == 4):
        return "pairs"  # CISI/CACM pairs, with and without the two zero columns
    width = max(sorted(set(widths), key=widths.index), key=widths.count)  # most common; first line's on a tie
    same = [(no, r) for no, r in rows if len(r) == width]
    if width == 4:
        if all(r[1] in ("0", "Q0") for _, r in same):
            return "trec"
        if all(_is_zero(r[2]) and _is_zero(r[3]) for _, r in same):
            return "pairs"
        return "trec"
    if width == 3:
        if Path(path).name.lower().startswith("cran"):
            return "cranfield"
        if all(r[1] in ("0", "Q0") for _, r in same):
            no, r = same[0]
            raise FormatError(f"{path}:{no}: {' '.join(r)[:60]!r} looks like TREC qrels without the relevance "
                              "column (qid Q0 docid); a TREC qrels line is 'qid 0 docid relevance'")
        return "beir"
    if width == 2:
        return "pairs"
    no, r = same[0]
    hint = " (is this a TREC run?)" if width == 6 else ""
    raise FormatError(f"{path}:{no}: {width} columns fit no qrels format{hint}: trec has 4 (qid iter docid rel), "
                      f"beir and cranfield 3 (qid docid grade), pairs 2 or 4 (qid docid 0 0); line {' '.join(r)[:60]!r}")


def _resolve(fmt: str, kind: str, path: PathLike) -> str:
    if fmt == "auto":
        return detect_format(path, kind)  # type: ignore[arg-type]
    return _check_format(fmt, kind)
