"""Relevance judgments: :func:`read_qrels` (TREC, BEIR, Cranfield, pairs) and :func:`write_qrels`.

Formats
-------
``trec``: ``qid iter docid rel``. ``beir``: ``query-id corpus-id score`` with or without that
header. ``cranfield``: ``qid docid grade`` with grades -1, 1, 2, 3, 4, mapped by
``cranfield_scale``: ``"irds"`` (default, ir_datasets' reading: 4 = complete answer ... 1 = minimum
interest are kept as 4..1, and -1 "no interest" becomes 0), ``"cleverdon"`` (Cleverdon's readme: 1 =
complete answer, so 1->4, 2->3, 3->2, 4->1, 5 and -1 -> 0) or ``"raw"`` (as written, -1 kept).
Binary measures count grades >= 1 as relevant, which gives the same 1,612 relevant pairs under
both readings. ``pairs``: ``qid docid`` or ``qid docid 0 0.0`` (CISI, CACM): every listed pair is
relevant with grade 1. ``strip_zeros=True`` normalises all-digit query ids (``01`` -> ``1``).

Every format: grades are plain ASCII 64-bit integers (``"1.0"`` is 1; ``"1_0"``, other scripts'
digits and grades beyond the 64-bit range are refused), ids follow the rule of
:mod:`~rankstack.data.formats.ids`, and a line with another number of columns than its format's is
an error naming it (``format="auto"`` detects the format from the most common width of the first
lines, see :func:`~rankstack.data.formats.detect.detect_format`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from rankstack.data.formats._fast import _fast_qrels
from rankstack.data.formats._lines import (
    PathLike,
    _err,
    _find_first,
    _is_zero,
    _lines,
    _plain_number,
    _strip_zeros,
)
from rankstack.data.formats._write import _check_token, _Writer
from rankstack.data.formats.detect import _BEIR_HEADER, _resolve
from rankstack.data.formats.ids import check_id, max_id_length
from rankstack.data.records import Qrels
from rankstack.errors import ConfigError

_CRANFIELD_SCALES: dict[str, dict[int, int]] = {
    "irds": {-1: 0, 1: 1, 2: 2, 3: 3, 4: 4},
    "cleverdon": {1: 4, 2: 3, 3: 2, 4: 1, 5: 0, -1: 0},
}


#: grades are 64-bit integers, as in trec_eval (a larger one is a damaged line, not a judgment)
_GRADE_LIMIT = 2**63


def _grade(path: PathLike, lineno: int, s: str) -> int:
    if not _plain_number(s):
        raise _err(path, lineno, f"relevance grade {s[:40]!r} is not a number")
    try:
        g = int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            raise _err(path, lineno, f"relevance grade {s[:40]!r} is not a number") from None
        if not f.is_integer():
            raise _err(path, lineno, f"relevance grade {s[:40]!r} is not an integer")
        g = int(f)
    if not -_GRADE_LIMIT <= g < _GRADE_LIMIT:
        raise _err(path, lineno, f"relevance grade {s[:40]!r} is out of the 64-bit integer range")
    return g


def read_qrels(
    path: PathLike,
    format: str = "auto",
    *,
    cranfield_scale: Literal["irds", "cleverdon", "raw"] = "irds",
    strip_zeros: bool = False,
    encoding: str = "utf-8",
) -> Qrels:
    """Read relevance judgments into :class:`Qrels` (``qrels[qid][docid] -> grade``).

    Formats: :data:`QRELS_FORMATS` (see the module docstring for each layout and the Cranfield
    scales). A judgment repeated with a different grade raises :class:`FormatError` naming both
    lines; an identical repeat is kept once with a warning.
    """
    fmt = _resolve(format, "qrels", path)
    if cranfield_scale not in ("irds", "cleverdon", "raw"):
        raise ConfigError(f"unknown cranfield_scale {cranfield_scale!r}; known: irds, cleverdon, raw")
    scale = _CRANFIELD_SCALES.get(cranfield_scale) if fmt == "cranfield" else None
    limit = max_id_length()
    if fmt in ("trec", "beir") and encoding.lower().replace("-", "") in ("utf8", "ascii"):
        fast = _fast_qrels(path, fmt, limit, _BEIR_HEADER, strip_zeros)  # regular file: one pass
        if fast is not None:
            return _qrels_nocopy(fast, Path(path).name)
    data: dict[str, dict[str, int]] = {}
    repeats = 0
    first = True
    for lineno, line in _lines(path, encoding):
        parts = line.split()
        if not parts:
            continue
        if fmt == "trec":
            if len(parts) != 4:
                raise _err(path, lineno, f"expected 4 fields (qid iter docid rel), got {len(parts)}")
            qid, did, g = parts[0], parts[2], _grade(path, lineno, parts[3])
        elif fmt in ("beir", "cranfield"):
            if first and fmt == "beir" and tuple(p.lower() for p in parts) == _BEIR_HEADER:
                first = False
                continue
            if len(parts) != 3:
                raise _err(path, lineno, f"expected 3 fields (qid docid grade), got {len(parts)}")
            qid, did, g = parts[0], parts[1], _grade(path, lineno, parts[2])
            if scale is not None:
                if g not in scale:
                    raise _err(path, lineno, f"Cranfield grade {g} not in {sorted(scale)}")
                g = scale[g]
        else:  # pairs
            if len(parts) == 4:
                if not (_is_zero(parts[2]) and _is_zero(parts[3])):
                    raise _err(path, lineno, f"expected 'qid docid 0 0.0', got {line.strip()!r}")
            elif len(parts) != 2:
                raise _err(path, lineno, f"expected 2 fields (qid docid) or 4 (qid docid 0 0.0), got {len(parts)}")
            qid, did, g = parts[0], parts[1], 1
        first = False
        if len(qid) > limit or len(did) > limit or not (qid.isprintable() and did.isprintable()):
            check_id(path, lineno, qid, "query")
            check_id(path, lineno, did, "document")
        if strip_zeros:
            qid = _strip_zeros(qid)
        docs = data.setdefault(qid, {})
        prev = docs.get(did)
        if prev is not None:
            if prev != g:
                first_line = _find_first(path, encoding, lineno, qid, did, fmt, strip_zeros)
                raise _err(path, lineno, f"judgment ({qid}, {did}) repeated with grade {g}, "
                                         f"was {prev} at line {first_line}")
            repeats += 1
        docs[did] = g
    if repeats:
        warnings.warn(f"{path}: {repeats} judgment(s) repeated with the same grade; kept once", stacklevel=2)
    return _qrels_nocopy(data, Path(path).name)


def _qrels_nocopy(data: dict[str, dict[str, int]], name: str) -> Qrels:
    out = Qrels.__new__(Qrels)
    out._data = data
    out.name = name
    return out


def write_qrels(qrels: Mapping[str, Mapping[str, int]], path: PathLike, format: Literal["trec", "beir"] = "trec") -> Path:
    """Write qrels as TREC (``qid 0 docid grade``) or BEIR TSV (header ``query-id corpus-id score``)."""
    if format not in ("trec", "beir"):
        raise ConfigError(f"unknown qrels output format {format!r}; known: trec, beir")
    with _Writer(path) as f:
        if format == "beir":
            f.write("query-id\tcorpus-id\tscore\n")
        for qid in qrels:
            _check_token(qid, "query id")
            for did, g in qrels[qid].items():
                _check_token(did, "document id")
                f.write(f"{qid} 0 {did} {int(g)}\n" if format == "trec" else f"{qid}\t{did}\t{int(g)}\n")
    return Path(path)
