"""Low-level line access shared by every reader of :mod:`rankstack.data.formats`.

All text files are opened by :func:`_open_binary` (which checks the path and decompresses gzip,
recognised by its magic bytes, transparently) and read line by line through :func:`_lines`:
lines are split on ``\\n`` only, one ``\\r`` before it is removed, a UTF-8 byte-order mark at the
start of the file is removed (every format, so a BOM never ends up in an id), each line is decoded
strictly and numbered from 1 so that errors can name ``path:line:`` (:func:`_err`, always one line).
Format detection reads the first lines leniently, with their numbers, with :func:`_sniff_numbered`.
Also here: small helpers used by several record kinds (query-id zero stripping, the "is this field
zero" and "plain ASCII number" tests, the error-path search for the first line of a repeated
``(qid, docid)`` pair, warnings attributed to the reader's caller).
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from rankstack.errors import FormatError

PathLike = str | os.PathLike

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = "\ufeff"


def _err(path: PathLike, lineno: int, msg: str) -> FormatError:
    """``FormatError("path:lineno: msg")``, on one line (a line break in ``msg`` is escaped)."""
    if "\n" in msg or "\r" in msg:
        msg = msg.replace("\r", "\\r").replace("\n", "\\n")
    return FormatError(f"{_shown(path)}:{lineno}: {msg}")


#: ``"-"`` as a path is standard input (read once, then kept, since a reader may open a file twice:
#: to detect its format, and to find the first line of a repeated pair)
STDIN = "-"
_stdin_bytes: bytes | None = None


def _is_stdin(path: PathLike) -> bool:
    return os.fspath(path) == STDIN


def _shown(path: PathLike) -> str:
    return "<stdin>" if _is_stdin(path) else os.fspath(path)


def _stdin() -> bytes:
    global _stdin_bytes
    if _stdin_bytes is None:
        _stdin_bytes = sys.stdin.buffer.read()
    return _stdin_bytes


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _warn(msg: str) -> None:
    """``warnings.warn(msg)`` attributed to the first caller outside this package (readers are
    generators, several frames deep)."""
    frame, level = sys._getframe(1), 2  # stacklevel 2 is the caller of _warn
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _PACKAGE_DIR:
        frame, level = frame.f_back, level + 1
    warnings.warn(msg, UserWarning, stacklevel=level)


@contextmanager
def _open_binary(path: PathLike) -> Iterator[IO[bytes]]:
    """The file as a binary stream, gunzipped when it starts with the gzip magic bytes.

    Both the gzip stream and the file under it are closed on exit.
    """
    if _is_stdin(path):
        f0: IO[bytes] = io.BytesIO(_stdin())
        if f0.getbuffer()[:2] == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=f0, mode="rb") as g:
                yield g  # type: ignore[misc]
        else:
            yield f0
        return
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
        for lineno, raw in _numbered(path, f):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as e:
                raise _err(path, lineno, f"not valid {encoding} at byte {e.start}: {raw[:60]!r}") from None
            if lineno == 1:
                line = line.removeprefix(_BOM)
            line = line.removesuffix("\n")
            line = line.removesuffix("\r")
            yield lineno, line


def _numbered(path: PathLike, f: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """``enumerate(f, 1)``, where a damaged or truncated gzip stream is a :class:`FormatError` naming
    the file and the line it stopped at (not an ``EOFError`` that a CLI would read as an abort)."""
    lineno = 0
    try:
        for lineno, raw in enumerate(f, 1):  # noqa: B007 - lineno is read after the loop
            yield lineno, raw
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise _err(path, lineno + 1, f"the gzip stream is truncated or damaged ({e or type(e).__name__})") from None


def _read_text(path: PathLike, encoding: str = "utf-8") -> str:
    """The whole file as text, lines joined by ``\\n`` (for small, multi-line formats).

    Read through :func:`_lines`, so it decodes, numbers and reports errors like every other reader.
    """
    return "\n".join(line for _, line in _lines(path, encoding))


def _sniff(path: PathLike, n: int = 20) -> list[str]:
    """The first ``n`` non-blank lines (decoded leniently)."""
    return [line for _, line in _sniff_numbered(path, n)]


def _sniff_numbered(path: PathLike, n: int = 20) -> list[tuple[int, str]]:
    """``(lineno, line)`` of the first ``n`` non-blank lines (decoded leniently), so that format
    detection can name the line it is talking about."""
    out: list[tuple[int, str]] = []
    with _open_binary(path) as f:
        for lineno, raw in _numbered(path, f):
            line = raw.decode("utf-8", errors="replace").removesuffix("\n").removesuffix("\r")
            if lineno == 1:
                line = line.removeprefix(_BOM)
            if line.strip():
                out.append((lineno, line))
                if len(out) >= n:
                    break
    return out


def _plain_number(s: str) -> bool:
    """Whether a numeric field is written with ASCII characters only and no ``_``: Python's ``int()``
    and ``float()`` also read ``"1_0"`` as 10 and other scripts' digits (``"\u0661"``), which no
    run or qrels tool writes and trec_eval would read differently."""
    return s.isascii() and "_" not in s


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
