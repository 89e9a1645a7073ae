"""Atomic text writers shared by the ``write_*`` functions of :mod:`rankstack.data.formats`.

:class:`_Writer` writes UTF-8 with ``\\n`` line endings to a temporary file next to the target
(gzip-compressed, with a fixed mtime, when the target ends in ``.gz``) and renames it into place only
on success, so a failed write never leaves a half-written file. :func:`_check_token` rejects ids and
tags that cannot be written to whitespace-separated files.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import IO

from rankstack.data.formats._lines import PathLike
from rankstack.errors import ConfigError


def _check_token(value: str, what: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ConfigError(f"{what} {value!r} is empty or contains whitespace; it cannot be written to a "
                         "whitespace-separated file")


def _atomic_writer(path: PathLike) -> tuple[IO[str], Path, Path]:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    if p.suffix == ".gz":
        f: IO[str] = io.TextIOWrapper(gzip.GzipFile(tmp, "wb", mtime=0), encoding="utf-8", newline="\n")
    else:
        f = open(tmp, "w", encoding="utf-8", newline="\n")
    return f, tmp, p


class _Writer:
    """Write to a temporary file and rename it into place on success (never a half-written file)."""

    def __init__(self, path: PathLike):
        self.f, self.tmp, self.path = _atomic_writer(path)

    def __enter__(self) -> IO[str]:
        return self.f

    def __exit__(self, exc_type, exc, tb) -> None:
        self.f.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
