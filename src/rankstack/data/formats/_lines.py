"""Low-level line access shared by every reader of :mod:`rankstack.data.formats`.

All text files are opened by :func:`_open_binary` (which checks the path and decompresses gzip,
recognised by its magic bytes, transparently) and read line by line through :func:`_lines`:
lines are split on ``\\n`` only, one ``\\r`` before it is removed, each line is decoded strictly and
numbered from 1 so that errors can name ``path:line:`` (:func:`_err`). Format detection reads the
first lines leniently with :func:`_sniff`. Also here: small helpers used by several record kinds
(query-id zero stripping, the "is this field zero" test, the error-path search for the first line
of a repeated ``(qid, docid)`` pair).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from rankstack.errors import FormatError

PathLike = str | os.PathLike

_GZIP_MAGIC = b"\x1f\x8b"


def _err(path: PathLike, lineno: int, msg: str) -> FormatError:
    return FormatError(f"{path}:{lineno}: {msg}")


@contextmanager
def _open_binary(path: PathLike) -> Iterator[IO[bytes]]:
    """The file as a binary stream, gunzipped when it starts with the gzip magic bytes.

    Both the gzip stream and the file under it are closed on exit.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise IsADirectoryError(f"{p}: is a directory, expected a file")
    with open(p, "rb") as f:
        if f.peek(2)[:2] == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=f, mode="rb") as g:
                yield g  # type: ignore[misc]
        else:
            yield f


def _lines(path: PathLike, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """``(lineno, line)`` with the line ending removed. Decoding errors name the line."""
    with _open_binary(path) as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as e:
                raise _err(path, lineno, f"not valid {encoding} at byte {e.start}: {raw[:60]!r}") from None
            line = line.removesuffix("\n")
            line = line.removesuffix("\r")
            yield lineno, line


def _read_text(path: PathLike, encoding: str = "utf-8") -> str:
    """The whole file as text, lines joined by ``\\n`` (for small, multi-line formats).

    Read through :func:`_lines`, so it decodes, numbers and reports errors like every other reader.
    """
    return "\n".join(line for _, line in _lines(path, encoding))


def _sniff(path: PathLike, n: int = 20) -> list[str]:
    """The first ``n`` non-blank lines (decoded leniently)."""
    out: list[str] = []
    with _open_binary(path) as f:
        for raw in f:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line.strip():
                out.append(line)
                if len(out) >= n:
                    break
    return out


def _strip_zeros(qid: str) -> str:
    """``"007"`` -> ``"7"``; non-numeric ids are returned unchanged."""
    if qid.isdigit() and qid[0] == "0" and len(qid) > 1:
        return qid.lstrip("0") or "0"
    return qid


def _is_zero(s: str) -> bool:
    try:
        return float(s) == 0.0
    except ValueError:
        return False


def _find_first(path: PathLike, encoding: str, upto: int, qid: str, did: str, fmt: str, strip: bool) -> int:
    """Line of the first occurrence of ``(qid, did)`` in a qrels or run file (error path only)."""
    for lineno, line in _lines(path, encoding):
        if lineno >= upto:
            break
        p = line.split()
        if not p:
            continue
        q = p[0]
        d = p[2] if fmt in ("trec", "run") and len(p) > 2 else (p[1] if len(p) > 1 else "")
        if strip:
            q = _strip_zeros(q)
        if q == qid and d == did:
            return lineno
    return 0
