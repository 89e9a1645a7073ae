"""Fast path for the whitespace-separated run and qrels readers (issue #22).

:func:`_columns` reads the whole file at once and splits it with C-level ``bytes``/``str`` operations
and one numpy pass that counts the fields of every line. It only succeeds on a *regular* file:
plain ASCII, no control character other than tab, no line starting with a space, ``\\r`` and ``\\n``, every line with exactly the
expected number of fields (no blank line), no token longer than the id limit. Anything else returns
``None`` and the caller falls back to its strict line-by-line reader, which raises the exact error
(``path:line:`` and field) or reads the irregular but valid file. The callers do the same for
numeric fields, repeated pairs and queries split over several blocks, so the fast path never
decides an error itself: it returns exactly what the strict path returns, or nothing.
"""

from __future__ import annotations

import gzip
import zlib
from itertools import groupby

import numpy as np

from rankstack.data.formats._lines import PathLike, _open_binary

#: bytes that may appear in a file the fast path reads: tab, LF, CR and printable ASCII
_ALLOWED = bytes([9, 10, 13, *range(32, 127)])
#: tab and CR read as spaces (both are whitespace to ``str.split``, as in the strict path)
_TO_SPACE = bytes.maketrans(b"\t\r", b"  ")


def _read_all(path: PathLike) -> bytes | None:
    try:
        with _open_binary(path) as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error):
        return None  # the strict path names the line where the stream stops


def _columns(path: PathLike, ncols: int, limit: int) -> list[str] | None:
    """All the tokens of a regular ``ncols``-field file, in order (``tokens[i::ncols]`` is column
    ``i``), or ``None`` when the file is not regular (see the module docstring)."""
    data = _read_all(path)
    if not data or data.translate(None, _ALLOWED):
        return None  # a control character (or nothing at all): the strict path decides
    b = np.frombuffer(data.translate(_TO_SPACE), dtype=np.uint8)
    ws = b <= 32  # only spaces and LF are left at or below 32
    line_starts = np.flatnonzero(b == 10) + 1
    line_starts = np.concatenate(([0], line_starts[:-1] if line_starts.size and line_starts[-1] == b.size else line_starts))
    if ws[line_starts].any():
        return None  # a blank line, or a line with leading space
    token_starts = np.flatnonzero(ws[:-1] > ws[1:]) + 1  # (+ position 0, the first line's first token)
    # every line has exactly ncols tokens iff every ncols-th token start is a line start
    if token_starts.size + 1 != ncols * line_starts.size or not np.array_equal(
            token_starts[ncols - 1::ncols], line_starts[1:]):
        return None
    token_ends = np.flatnonzero(ws[1:] > ws[:-1]) + 1
    if not ws[-1]:
        token_ends = np.concatenate((token_ends, [b.size]))
    if token_ends.size != line_starts.size * ncols or (token_ends[1:] - token_starts).max(initial=0) > limit \
            or token_ends[0] > limit:
        return None  # a token over the id limit (the strict path names it, or reads a long tag)
    tokens = data.decode("ascii").split()
    if len(tokens) != ncols * line_starts.size:  # cannot happen (same whitespace set), but cheap
        return None
    return tokens


def _blocks(qids: list[str], dids: list[str], values: list) -> dict[str, dict] | None:
    """``{qid: {did: value}}`` in first-appearance order, when every query's lines are contiguous
    and no ``(qid, did)`` repeats; else ``None`` (the strict path reads or refuses the file)."""
    data: dict[str, dict] = {}
    a = 0
    for qid, group in groupby(qids):
        n = len(list(group))
        if qid in data:
            return None
        docs = dict(zip(dids[a:a + n], values[a:a + n]))
        if len(docs) != n:
            return None
        data[qid] = docs
        a += n
    return data


def _fast_run(path: PathLike, limit: int) -> tuple[dict[str, dict[str, float]], str] | None:
    """A TREC run's ``(data, tag)`` as :func:`~rankstack.data.formats.runs.read_run` reads it, or
    ``None`` when anything needs the strict path (which then raises or reads it)."""
    tokens = _columns(path, 6, limit)
    if tokens is None:
        return None
    score_s = tokens[4::6]
    if "_" in "".join(score_s) or not "".join(tokens[3::6]).isdigit():
        return None  # "1_0" scores, negative or non-integer ranks: the strict path decides
    try:
        scores = list(map(float, score_s))
    except ValueError:
        return None
    if np.isnan(np.fromiter(scores, dtype=np.float64, count=len(scores))).any():
        return None
    data = _blocks(tokens[0::6], tokens[2::6], scores)
    if data is None:
        return None
    return data, tokens[5]


def _fast_qrels(path: PathLike, fmt: str, limit: int, header: tuple[str, ...],
                strip_zeros: bool) -> dict[str, dict[str, int]] | None:
    """TREC (``qid iter docid rel``) or BEIR (``qid docid grade``) qrels as
    :func:`~rankstack.data.formats.qrels.read_qrels` reads them, or ``None`` (strict path)."""
    ncols, qcol, dcol, gcol = (4, 0, 2, 3) if fmt == "trec" else (3, 0, 1, 2)
    tokens = _columns(path, ncols, limit)
    if tokens is None:
        return None
    if fmt == "beir" and tuple(t.lower() for t in tokens[:3]) == header:
        tokens = tokens[3:]
        if not tokens:
            return None
    grade_s = tokens[gcol::ncols]
    if "_" in "".join(grade_s):
        return None
    try:
        grades = list(map(int, grade_s))  # "1.0" fails here: the strict path reads it
    except ValueError:
        return None
    if min(grades) < -(2**63) or max(grades) >= 2**63:
        return None
    qids = tokens[qcol::ncols]
    if strip_zeros:
        from rankstack.data.formats._lines import _strip_zeros

        qids = list(map(_strip_zeros, qids))
    return _blocks(qids, tokens[dcol::ncols], grades)
