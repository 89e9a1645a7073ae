"""Columnar reading of a regular TREC run and its qrels, for ``rankstack evaluate`` (issue #22).

:func:`read_pair` reads a run file (``qid Q0 docid rank score tag``) and a TREC (``qid iter docid
rel``) or BEIR (``query-id corpus-id score``) qrels file into arrays, with no Python object per line:
pyarrow's C++ CSV reader splits each file on single spaces, then numpy and pyarrow's compute
functions check it, encode the document ids of both files as integers (one hash table,
``dictionary_encode``) and parse the scores (``cast`` to float64: Arrow's correctly rounded
parser, so each score is bit-identical to Python's ``float()`` of its token). Why pyarrow: after
numpy it imports in about 0.03 s, and its single-threaded reader splits the 1M-line benchmark run
into typed columns in 0.05-0.1 s of CPU, where numpy's own text-to-float conversions (``astype``,
``fromstring``, ``loadtxt``) take 0.2-0.8 s for the scores alone, each numpy pass over the 43 MB of
bytes 0.02-0.06 s, and ``str.split`` + ``float()`` about 0.8 s; importing numba alone (0.16 s of CPU)
costs as much as this whole reader.

It only succeeds on a *regular* pair of files, and then returns exactly the data the readers of
:mod:`~rankstack.data.formats.runs` and :mod:`~rankstack.data.formats.qrels` return; anything else
returns ``None`` and the caller reads the files with those readers, which read the irregular but
valid file or raise their ``path:line:`` error, so this module never decides an error. Regular
means: both files exist (not standard input) and their detected formats are ``trec`` run and ``trec``
/ ``beir`` qrels; plain printable ASCII with single spaces or tabs between fields, LF line ends (no
CR), no leading or trailing space, exactly 6 (run) or 4/3 (qrels) non-empty fields on every line
(blank lines are skipped, as the readers do); ids no longer than the id limit; run ranks all
digits and scores made of ``0-9 . e E + -`` that Arrow parses (a NaN is then impossible, ``_`` and
``inf`` go to the readers); grades ``-?[0-9]+`` within the int64 range; each query's lines contiguous
in both files; no ``(qid, docid)`` pair repeated in either file. pyarrow is optional: without it,
every call returns ``None``.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.data.formats._lines import _GZIP_MAGIC, PathLike, _is_stdin

#: bytes a regular file may contain: tab, LF and printable ASCII (a CR sends the file to the reader)
_ALLOWED = bytes([9, 10, *range(32, 127)])
_TAB_TO_SPACE = bytes.maketrans(b"\t", b" ")
_SCORE_CHARS = b"0123456789.eE+-"
_DIGITS = b"0123456789"
_GRADE_CHARS = b"0123456789-"


class _Compute:
    """The few Arrow compute functions used here, called through ``call_function`` (importing
    ``pyarrow.compute``, which writes a wrapper for each of its ~300 functions, costs 0.02 s more)."""

    def __init__(self, pa: Any):
        try:
            from pyarrow._compute import CastOptions, SetLookupOptions, call_function
        except ImportError:  # pragma: no cover - a pyarrow that moved its private module
            from pyarrow.compute import CastOptions, SetLookupOptions, call_function
        self._pa, self._call, self._cast, self._lookup = pa, call_function, CastOptions, SetLookupOptions

    def cast(self, arr: Any, target: Any, memory_pool: Any = None) -> Any:
        return self._call("cast", [arr], self._cast.safe(target), memory_pool=memory_pool)

    def dictionary_encode(self, arr: Any, memory_pool: Any = None) -> Any:
        return self._call("dictionary_encode", [arr], memory_pool=memory_pool)

    def array_sort_indices(self, arr: Any, memory_pool: Any = None) -> Any:
        return self._call("array_sort_indices", [arr], memory_pool=memory_pool)

    def index_in(self, arr: Any, value_set: Any, fill: int) -> Any:
        found = self._call("index_in", [arr], self._lookup(value_set))
        return self._call("coalesce", [found, self._pa.scalar(fill, found.type)])


_ARROW: tuple[Any, ...] | None = None


def _arrow() -> Any:
    """``(pyarrow, compute functions, pyarrow.csv)``, or ``None`` without pyarrow."""
    global _ARROW
    if _ARROW is None:
        try:
            import pyarrow as pa
            import pyarrow.csv as csv
        except ImportError:  # pragma: no cover - pyarrow is installed in the test environment
            return None
        _ARROW = (pa, _Compute(pa), csv)
    return _ARROW


@dataclass(eq=False)
class ColumnarPair:
    """A run and its qrels as arrays (rows in file order, one block of rows per query).

    ``run_qids[b]`` is the query id of run block ``b``, whose rows are
    ``run_offsets[b]:run_offsets[b + 1]`` (``run_docs`` document codes, ``run_scores`` float64);
    the same for the qrels (``qrels_grades`` int64). A document code is the same integer for the
    same document id in both files; :meth:`doc_order` gives the codes' rank in string order.
    """

    run_qids: list[str]
    run_offsets: np.ndarray
    run_docs: np.ndarray
    run_scores: np.ndarray
    run_name: str
    qrels_qids: list[str]
    qrels_offsets: np.ndarray
    qrels_docs: np.ndarray
    qrels_grades: np.ndarray
    num_docs: int
    _dictionary: Any = field(repr=False)
    _order: np.ndarray | None = field(default=None, repr=False)

    def doc_order(self) -> np.ndarray:
        """``rank[code]``: each document code's position among all the document ids of both files in
        byte order (= Python's ``str`` order for ASCII, = trec_eval's ``strcmp``)."""
        if self._order is None:
            _pa, pc, _csv = _arrow()
            perm = _np(pc.array_sort_indices(self._dictionary, memory_pool=_pool()), np.int64)
            rank = np.empty(perm.size, dtype=np.int64)
            rank[perm] = np.arange(perm.size, dtype=np.int64)
            self._order = rank
        return self._order

    def doc_codes(self, ids: list[str]) -> np.ndarray:
        """The document code of each of ``ids`` (query ids, for ``remove_query_doc``), -1 if no
        document of either file has that id."""
        pa, pc, _csv = _arrow()
        return _np(pc.index_in(pa.array(ids, type=pa.string()), self._dictionary, -1), np.int64)


@dataclass
class _Cols:
    qids: list[str]
    offsets: np.ndarray
    docs: Any  # chunked pyarrow string array
    values: np.ndarray
    tag: str


def _pool() -> Any:
    """The system allocator: Arrow's default (mimalloc) spends several times more system time in page
    faults here (0.4 s against 0.15 s for the 1M-line run)."""
    return _arrow()[0].system_memory_pool()


def _np(arr: Any, dtype: Any) -> np.ndarray:
    """A pyarrow (chunked) array of fixed-width numbers with no nulls as one numpy array of ``dtype``,
    read from its buffers (numpy's ``asarray`` of a pyarrow array would import pandas: 0.3 s)."""
    pa = _arrow()[0]
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    parts = []
    for c in chunks:
        native = {pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
                  pa.uint64(): np.uint64, pa.float64(): np.float64}[c.type]
        if c.null_count:  # pragma: no cover - callers fill or refuse nulls first
            raise TypeError("an array with nulls")
        parts.append(np.frombuffer(c.buffers()[1], dtype=native, count=len(c),
                                   offset=c.offset * np.dtype(native).itemsize).astype(dtype, copy=False))
    if not parts:
        return np.empty(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _string_parts(arr: Any) -> tuple[np.ndarray, Any]:
    """(int offsets, data buffer) of one pyarrow string array with no nulls."""
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    return offsets, bufs[2]


def _lengths(col: Any) -> tuple[int, int]:
    """(shortest, longest) value of a chunked string column."""
    lo, hi = 1 << 62, 0
    for c in col.chunks:
        if len(c):
            n = np.diff(_string_parts(c)[0])
            lo, hi = min(lo, int(n.min())), max(hi, int(n.max()))
    return lo, hi


def _only(col: Any, chars: bytes) -> bool:
    """Every byte of the (chunked) string column's values is one of ``chars``."""
    pa = _arrow()[0]
    for c in (col.chunks if isinstance(col, pa.ChunkedArray) else [col]):
        offsets, data = _string_parts(c)
        if data is not None and len(c) and bytes(memoryview(data)[int(offsets[0]):int(offsets[-1])]).translate(
                None, chars):
            return False
    return True


def _table(data: bytes, ncols: int, skip: int) -> Any:
    """The file's columns (chunked pyarrow string arrays), or ``None`` unless every line has exactly
    ``ncols`` non-empty fields separated by single spaces."""
    pa, _pc, csv = _arrow()
    ro = csv.ReadOptions(use_threads=False, autogenerate_column_names=True, skip_rows=skip)
    po = csv.ParseOptions(delimiter=" ", quote_char=False, double_quote=False, escape_char=False,
                          newlines_in_values=False, ignore_empty_lines=True)
    co = csv.ConvertOptions(column_types={f"f{i}": pa.string() for i in range(ncols)}, null_values=[],
                            strings_can_be_null=False, quoted_strings_can_be_null=False, check_utf8=False)
    try:
        t = csv.read_csv(pa.BufferReader(data), read_options=ro, parse_options=po, convert_options=co,
                         memory_pool=_pool())
    except (pa.ArrowInvalid, pa.ArrowException):
        return None  # a line with another number of fields (or two spaces in a row...)
    if t.num_columns != ncols or t.num_rows == 0:
        return None
    cols = []
    for c in t.columns:
        if c.null_count or c.type != pa.string() or _lengths(c)[0] <= 0:
            return None  # an empty field: two separators in a row, or one at the start or end of a line
        cols.append(c)
    return cols


def _regular_bytes(path: PathLike) -> bytes | None:
    if _is_stdin(path) or not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        data = f.read()  # (in one allocation: through a peeked BufferedReader it costs twice as much)
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            return None  # the reader names the line where the stream stops
    if not data or data.translate(None, _ALLOWED):
        return None  # empty, or a CR, control character, BOM or non-ASCII byte: the reader decides
    if b"\t" in data:
        data = data.translate(_TAB_TO_SPACE)
    return data


def _dictionary(enc: Any) -> Any:
    """The dictionary of a dictionary-encoded (chunked) array: one for all chunks."""
    return enc.chunk(0).dictionary if hasattr(enc, "chunks") else enc.dictionary


def _codes(enc: Any) -> np.ndarray:
    """The int64 codes of a dictionary-encoded chunked array."""
    return np.concatenate([_np(c.indices, np.int64) for c in enc.chunks])


def _blocks(pc: Any, qid_col: Any) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """(block query ids, block offsets, row -> block) when every query's rows are contiguous."""
    enc = pc.dictionary_encode(qid_col, memory_pool=_pool())
    idx = _codes(enc)
    if idx.size > 1 and (idx[1:] < idx[:-1]).any():
        return None  # a query over several blocks (codes are in first-appearance order)
    counts = np.bincount(idx)
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return _dictionary(enc).to_pylist(), offsets, idx


def _run_cols(path: PathLike, limit: int) -> _Cols | None:
    arrow = _arrow()
    data = _regular_bytes(path)
    if arrow is None or data is None:
        return None
    pa, pc, _csv = arrow
    cols = _table(data, 6, 0)
    if cols is None:
        return None
    qid, _q0, did, rank, score, tag = cols
    if _max_len(qid) > limit or _max_len(did) > limit:
        return None
    if not _only(rank, _DIGITS):
        return None  # negative or signed ranks: the reader decides
    scores = _scores(score)
    if scores is None:
        return None
    blocks = _blocks(pc, qid)
    if blocks is None:
        return None
    return _Cols(blocks[0], blocks[1], did, scores, tag[0].as_py())


def _qrels_cols(path: PathLike, fmt: str, limit: int, header: tuple[str, ...]) -> _Cols | None:
    arrow = _arrow()
    data = _regular_bytes(path)
    if arrow is None or data is None:
        return None
    pa, pc, _csv = arrow
    ncols, dcol, gcol = (4, 2, 3) if fmt == "trec" else (3, 1, 2)
    skip = 0
    if fmt == "beir":
        end = data.find(b"\n")
        if tuple(data[:end if end >= 0 else len(data)].decode("ascii").lower().split()) == header:
            skip = 1
    cols = _table(data, ncols, skip)
    if cols is None:
        return None
    qid, did, grade = cols[0], cols[dcol], cols[gcol]
    if _max_len(qid) > limit or _max_len(did) > limit:
        return None
    grades = _grades(grade)
    if grades is None:
        return None
    blocks = _blocks(pc, qid)
    if blocks is None:
        return None
    return _Cols(blocks[0], blocks[1], did, grades, "")


def _scores(arr: Any) -> np.ndarray | None:
    """float64 scores, each equal to ``float()`` of its token, or ``None`` (the reader decides):
    only tokens of ``0-9 . e E + -`` (no ``_``, ``inf``, ``nan``, whitespace), which Arrow's
    correctly rounded parser reads as a subset of Python's float syntax; the rest ("1e", "1.2.3")
    Arrow refuses."""
    pa, pc, _csv = _arrow()
    if not _only(arr, _SCORE_CHARS):
        return None
    try:
        scores = _np(pc.cast(arr, pa.float64(), memory_pool=_pool()), np.float64)
    except (pa.ArrowInvalid, pa.ArrowException):
        return None
    if np.isnan(scores).any():  # pragma: no cover - cannot be spelt with the score characters
        return None
    return scores


def _grades(arr: Any) -> np.ndarray | None:
    """int64 grades, each ``int()`` of its token ``-?[0-9]+`` (as Arrow reads them), or ``None``
    ("1.0", "+1", "1_0", "1-2", beyond the int64 range: the reader decides)."""
    pa, pc, _csv = _arrow()
    if not _only(arr, _GRADE_CHARS):
        return None
    try:
        return _np(pc.cast(arr, pa.int64(), memory_pool=_pool()), np.int64)
    except (pa.ArrowInvalid, pa.ArrowException):
        return None


def _max_len(col: Any) -> int:
    return _lengths(col)[1]


def _unique_pairs(offsets: np.ndarray, docs: np.ndarray, num_docs: int) -> bool:
    """No (block, document) pair twice (one sort of int64 keys: numpy's SIMD sort is faster than a
    hash table here)."""
    block = np.repeat(np.arange(offsets.size - 1, dtype=np.int64), np.diff(offsets))
    keys = np.sort(block * num_docs + docs)
    return not (keys[1:] == keys[:-1]).any()


def read_pair(qrels_path: PathLike, run_path: PathLike, *, run_limit: int | None = None) -> ColumnarPair | None:
    """The run and qrels files as a :class:`ColumnarPair`, or ``None`` when either is not regular
    (see the module docstring) and the readers must read them.

    Only the default reading of each file: ``read_qrels(qrels_path)`` and ``read_run(run_path)``
    (``format="auto"``, UTF-8, no zero stripping).
    """
    from rankstack.data.formats.detect import _BEIR_HEADER, detect_format
    from rankstack.data.formats.ids import max_id_length

    arrow = _arrow()
    if arrow is None or _is_stdin(qrels_path) or _is_stdin(run_path):
        return None
    pa, pc, _csv = arrow
    try:
        if not (os.path.isfile(qrels_path) and os.path.isfile(run_path)):
            return None
        qfmt = detect_format(qrels_path, "qrels")
        rfmt = detect_format(run_path, "run")
    except Exception:  # noqa: BLE001 - whatever it is, the readers raise it with its line
        return None
    if qfmt not in ("trec", "beir") or rfmt != "trec":
        return None
    limit = max_id_length() if run_limit is None else run_limit
    run = _run_cols(run_path, limit)
    if run is None:
        return None
    qrels = _qrels_cols(qrels_path, qfmt, limit, _BEIR_HEADER)
    if qrels is None:
        return None
    enc = pc.dictionary_encode(pa.chunked_array(run.docs.chunks + qrels.docs.chunks, type=pa.string()),
                              memory_pool=_pool())
    codes = _codes(enc)
    n_run = len(run.docs)
    num_docs = len(_dictionary(enc))
    run_docs, qrels_docs = codes[:n_run], codes[n_run:]
    if not (_unique_pairs(run.offsets, run_docs, num_docs) and _unique_pairs(qrels.offsets, qrels_docs, num_docs)):
        return None  # a repeated pair: the reader names both lines (run), or warns / refuses (qrels)
    from pathlib import Path

    return ColumnarPair(
        run_qids=run.qids, run_offsets=run.offsets, run_docs=run_docs, run_scores=run.values,
        run_name=run.tag or Path(run_path).name,
        qrels_qids=qrels.qids, qrels_offsets=qrels.offsets, qrels_docs=qrels_docs, qrels_grades=qrels.values,
        num_docs=num_docs, _dictionary=_dictionary(enc),
    )
