"""Readers and writers for the file formats of IR test collections.

Every reader returns the records of :mod:`rankstack.data.records` and takes an explicit ``format=``
name (``"auto"`` sniffs the first lines with :func:`detect_format`). Malformed input raises
:class:`FormatError` whose message starts with ``path:line:`` (1-based). Blank lines are skipped;
every other line is either parsed or an error -- nothing is dropped silently. Files ending in ``.gz``
(or starting with the gzip magic bytes) are decompressed transparently. Lines are split on ``\\n``
only (a ``\\r`` before it is removed), so CRLF files read the same as LF files.

Formats
-------
Documents (:func:`read_docs`)
    ``jsonl`` (alias ``beir``): one JSON object per line; the id is the first of ``_id``, ``id``,
    ``docid``, ``doc_id``, ``docno``, ``pid``; the text the first of ``text``, ``contents``, ``body``,
    ``passage``; ``title`` is optional. Other keys (BEIR's ``metadata``) are ignored.
    ``tsv`` (MS MARCO ``collection.tsv``): ``pid<TAB>passage``, exactly two fields; a header line made
    only of known column names (``id``/``docid``/``pid``, ``text``/``passage``, ``title``) selects
    columns by name (DPR's ``id<TAB>text<TAB>title``).
    ``trec``: ``<DOC><DOCNO>..</DOCNO> .. </DOC>`` (TREC disks, Robust04, ...). The title is the
    ``<TITLE>``, ``<HEADLINE>``, ``<HEAD>`` or ``<HL>`` element(s); the text the ``<TEXT>`` element(s),
    or, if there is none, everything in the ``<DOC>`` other than ``DOCNO``/``DOCID``/``DOCHDR`` and the
    title. Inner SGML tags (``<P>``) are removed and whitespace is kept.
    ``smart``: SMART classic collections (Cranfield, CISI, CACM, MED, ADI): records start with
    ``.I <id>``; a field starts with a line ``.X`` (a dot and one capital letter, optionally followed by
    text on the same line). Mapping: ``.T`` -> ``Document.title``; ``.W`` -> ``Document.text``;
    ``.K`` (keywords) is appended to the text after a newline so that it is indexed; every other field
    (``.A`` authors, ``.B`` bibliography, ``.X`` cross-references, ``.N`` entry date, ``.C`` categories,
    ...) is kept by :func:`read_smart_records` but not put in the ``Document``. A marker repeated inside
    a record appends to that field (Cranfield doc 240 has a stray second ``.A``/``.B``; doc 576 two
    ``.W``), which is also what ir_datasets does. Field values are the lines joined by ``\\n``, stripped.

Queries (:func:`read_queries`)
    ``jsonl`` (``beir``): ``_id``/``id``/``qid``/``query_id`` + ``text``/``query``.
    ``tsv``: ``qid<TAB>text``.
    ``trec``: ``<top><num> Number: 301 <title> .. <desc> Description: .. <narr> ..</top>`` topics;
    ``field="title"`` (default), ``"desc"``, ``"title+desc"`` or ``"narr"``; whitespace is collapsed.
    ``smart``: ``.I``/``.W`` records (``.T`` when there is no ``.W``). ``renumber="auto"`` (default)
    renumbers queries ``"1".."n"`` by position when the ids in the file are not exactly ``1..n`` in
    order -- Cranfield's ``cran.qry`` numbers them 001..365 with gaps while ``cran.qrels`` uses 1..225
    by position; ``renumber=True``/``False`` forces it.

Qrels (:func:`read_qrels`)
    ``trec``: ``qid iter docid rel``. ``beir``: ``query-id corpus-id score`` with or without that
    header. ``cranfield``: ``qid docid grade`` with grades -1, 1, 2, 3, 4, mapped by
    ``cranfield_scale``: ``"irds"`` (default, ir_datasets' reading: 4 = complete answer ... 1 = minimum
    interest are kept as 4..1, and -1 "no interest" becomes 0), ``"cleverdon"`` (Cleverdon's readme: 1 =
    complete answer, so 1->4, 2->3, 3->2, 4->1, 5 and -1 -> 0) or ``"raw"`` (as written, -1 kept).
    Binary measures count grades >= 1 as relevant, which gives the same 1,612 relevant pairs under
    both readings. ``pairs``: ``qid docid`` or ``qid docid 0 0.0`` (CISI, CACM): every listed pair is
    relevant with grade 1. ``strip_zeros=True`` normalises all-digit query ids (``01`` -> ``1``).

Runs: :func:`read_run` / :func:`write_run` (TREC ``qid Q0 docid rank score tag``).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from rankstack.data.records import Collection, Document, Qrels, Query, Run, ranked_items

__all__ = [
    "DOC_FORMATS",
    "QRELS_FORMATS",
    "QUERY_FORMATS",
    "FormatError",
    "SmartRecord",
    "detect_format",
    "load_collection",
    "read_docs",
    "read_qrels",
    "read_queries",
    "read_run",
    "read_smart_records",
    "write_docs_jsonl",
    "write_qrels",
    "write_queries",
    "write_run",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


class FormatError(ValueError):
    """Malformed input; the message starts with ``file:line:`` (1-based line number)."""


def _err(path: PathLike, lineno: int, msg: str) -> FormatError:
    return FormatError(f"{path}:{lineno}: {msg}")


# ----------------------------------------------------------------------------------------------
# low-level line access


def _open_binary(path: PathLike) -> IO[bytes]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise IsADirectoryError(f"{p}: is a directory, expected a file")
    f = open(p, "rb")
    if f.peek(2)[:2] == b"\x1f\x8b":  # type: ignore[attr-defined]
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


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
    """The whole file as text, ``\\r\\n`` -> ``\\n`` (for small, multi-line formats)."""
    with _open_binary(path) as f:
        raw = f.read()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        lineno = raw.count(b"\n", 0, e.start) + 1
        raise _err(path, lineno, f"not valid {encoding}") from None
    return text.replace("\r\n", "\n")


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


# ----------------------------------------------------------------------------------------------
# format names and detection

DOC_FORMATS = ("jsonl", "beir", "tsv", "trec", "smart")
QUERY_FORMATS = ("jsonl", "beir", "tsv", "trec", "smart")
QRELS_FORMATS = ("trec", "beir", "cranfield", "pairs")
_KINDS = {"docs": DOC_FORMATS, "queries": QUERY_FORMATS, "qrels": QRELS_FORMATS, "run": ("trec",)}

_SMART_MARKER = re.compile(r"\.([A-Z])(?:[ \t]+(.*))?$")
_BEIR_HEADER = ("query-id", "corpus-id", "score")


def _check_format(fmt: str, kind: str) -> str:
    known = _KINDS[kind]
    if fmt not in known:
        raise ValueError(f"unknown {kind} format {fmt!r}; known formats: {', '.join(known)} (or 'auto')")
    return fmt


def detect_format(path: PathLike, kind: Literal["docs", "queries", "qrels", "run"]) -> str:
    """Guess the format of a ``kind`` file from its first non-blank lines.

    Returns one of :data:`DOC_FORMATS`, :data:`QUERY_FORMATS`, :data:`QRELS_FORMATS` or ``"trec"``
    for runs. Raises :class:`FormatError` (naming the file) when nothing matches.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(_KINDS)}")
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


def _is_zero(s: str) -> bool:
    try:
        return float(s) == 0.0
    except ValueError:
        return False


def _resolve(fmt: str, kind: str, path: PathLike) -> str:
    if fmt == "auto":
        return detect_format(path, kind)  # type: ignore[arg-type]
    return _check_format(fmt, kind)


# ----------------------------------------------------------------------------------------------
# documents

_DOC_ID_KEYS = ("_id", "id", "docid", "doc_id", "docno", "pid")
_DOC_TEXT_KEYS = ("text", "contents", "body", "passage")
_QUERY_ID_KEYS = ("_id", "id", "qid", "query_id")
_QUERY_TEXT_KEYS = ("text", "query")


def read_docs(
    path: PathLike,
    format: str = "auto",
    *,
    encoding: str = "utf-8",
    check_duplicates: bool = True,
) -> Iterator[Document]:
    """Stream the documents of a collection file as :class:`Document` records.

    ``format`` is one of :data:`DOC_FORMATS` or ``"auto"``. With ``check_duplicates`` (default) a
    repeated document id raises :class:`FormatError` naming both lines; this keeps one ``id -> line``
    entry per document in memory (``DocStore.build`` checks duplicates on disk instead and passes
    ``check_duplicates=False``).
    """
    fmt = _resolve(format, "docs", path)
    it: Iterator[tuple[int, Document]]
    if fmt in ("jsonl", "beir"):
        it = _docs_jsonl(path, encoding)
    elif fmt == "tsv":
        it = _docs_tsv(path, encoding)
    elif fmt == "trec":
        it = _docs_trec(path, encoding)
    else:
        it = ((r.line, _smart_doc(r)) for r in read_smart_records(path, encoding=encoding))
    if not check_duplicates:
        return (d for _, d in it)
    return _dedup_docs(path, it)


def _dedup_docs(path: PathLike, it: Iterator[tuple[int, Document]]) -> Iterator[Document]:
    seen: dict[str, int] = {}
    for lineno, doc in it:
        prev = seen.setdefault(doc.id, lineno)
        if prev != lineno:
            raise _err(path, lineno, f"duplicate document id {doc.id!r} (first at line {prev})")
        yield doc


def _pick(obj: dict, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in obj:
            return obj[k]
    return _MISSING


_MISSING = object()


def _json_obj(path: PathLike, lineno: int, line: str) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise _err(path, lineno, f"invalid JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(obj, dict):
        raise _err(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _json_id(path: PathLike, lineno: int, obj: dict, keys: tuple[str, ...], what: str) -> str:
    v = _pick(obj, keys)
    if v is _MISSING:
        raise _err(path, lineno, f"no {what} id field (expected one of {', '.join(keys)}; keys: {', '.join(obj)})")
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise _err(path, lineno, f"{what} id must be a string or integer, got {type(v).__name__}")
    v = str(v)
    if not v:
        raise _err(path, lineno, f"empty {what} id")
    return v


def _json_str(path: PathLike, lineno: int, obj: dict, keys: tuple[str, ...], name: str, required: bool) -> str:
    v = _pick(obj, keys)
    if v is _MISSING:
        if required:
            raise _err(path, lineno, f"no {name} field (expected one of {', '.join(keys)}; keys: {', '.join(obj)})")
        return ""
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _err(path, lineno, f"field {name!r} must be a string, got {type(v).__name__}")
    return v


def _docs_jsonl(path: PathLike, encoding: str) -> Iterator[tuple[int, Document]]:
    for lineno, line in _lines(path, encoding):
        if not line.strip():
            continue
        obj = _json_obj(path, lineno, line)
        did = _json_id(path, lineno, obj, _DOC_ID_KEYS, "document")
        text = _json_str(path, lineno, obj, _DOC_TEXT_KEYS, "text", True)
        title = _json_str(path, lineno, obj, ("title",), "title", False)
        yield lineno, Document(did, text, title)


_TSV_COLS = {"id": "id", "_id": "id", "docid": "id", "doc_id": "id", "pid": "id",
             "text": "text", "passage": "text", "contents": "text", "title": "title"}


def _docs_tsv(path: PathLike, encoding: str) -> Iterator[tuple[int, Document]]:
    cols: list[str] | None = None
    first = True
    for lineno, line in _lines(path, encoding):
        if not line.strip():
            continue
        parts = line.split("\t")
        if first:
            first = False
            names = [_TSV_COLS.get(p.strip().lower()) for p in parts]
            if all(names) and names.count("id") == 1 and "text" in names and len(set(names)) == len(names):
                cols = names  # type: ignore[assignment]
                continue
        if cols is None:
            if len(parts) != 2:
                raise _err(path, lineno, f"expected 2 tab-separated fields (id, text), got {len(parts)}")
            did, text = parts
            if not did:
                raise _err(path, lineno, "empty document id")
            yield lineno, Document(did, text)
        else:
            if len(parts) != len(cols):
                raise _err(path, lineno, f"expected {len(cols)} tab-separated fields ({', '.join(cols)}), got {len(parts)}")
            rec = dict(zip(cols, parts))
            if not rec["id"]:
                raise _err(path, lineno, "empty document id")
            yield lineno, Document(rec["id"], rec["text"], rec.get("title", ""))


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9_]*)(?:\s[^>]*)?>")
_ANY_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_TITLE_TAGS = ("TITLE", "HEADLINE", "HEAD", "HL")
_META_TAGS = ("DOCNO", "DOCID", "DOCHDR")


def _docs_trec(path: PathLike, encoding: str) -> Iterator[tuple[int, Document]]:
    buf: list[str] = []
    start = 0
    for lineno, line in _lines(path, encoding):
        if not buf:
            s = line.lstrip()
            if not s:
                continue
            if not s[:5].upper() == "<DOC>":
                raise _err(path, lineno, f"expected <DOC>, got {s[:40]!r}")
            start = lineno
        buf.append(line)
        if "</DOC>" in line.upper():
            block = "\n".join(buf)
            buf = []
            # several documents may share a line: split on </DOC>
            pieces = re.split(r"(?i)</DOC>", block)
            tail = pieces.pop()
            for k, piece in enumerate(pieces):
                s = piece.lstrip()
                if not s[:5].upper() == "<DOC>":
                    raise _err(path, start, f"expected <DOC>, got {s[:40]!r}")
                yield start, _trec_doc(path, start, s[5:])
            tail = tail.strip()
            if tail:
                if tail[:5].upper() != "<DOC>":
                    raise _err(path, lineno, f"text after </DOC>: {tail[:40]!r}")
                buf = [tail]
                start = lineno
    if buf:
        raise _err(path, start, "<DOC> not closed by </DOC> before the end of the file")


def _trec_doc(path: PathLike, lineno: int, body: str) -> Document:
    """Parse the inside of one ``<DOC>`` element."""
    elements: dict[str, list[str]] = {}
    rest: list[str] = []
    pos = 0
    stack: list[tuple[str, int]] = []
    # top-level elements only: find <TAG> ... </TAG> pairs for known tags, leave the rest as text
    for m in _TAG.finditer(body):
        closing, name = m.group(1), m.group(2).upper()
        if name not in _META_TAGS and name not in _TITLE_TAGS and name != "TEXT":
            continue
        if not closing:
            if stack:
                continue  # nested known tag inside another: keep as content
            rest.append(body[pos:m.start()])
            stack.append((name, m.end()))
        else:
            if stack and stack[-1][0] == name:
                _, s = stack.pop()
                elements.setdefault(name, []).append(body[s:m.start()])
                pos = m.end()
    if stack:
        raise _err(path, lineno, f"<{stack[-1][0]}> not closed inside <DOC>")
    rest.append(body[pos:])
    docno = elements.get("DOCNO")
    if not docno:
        raise _err(path, lineno, "<DOC> without <DOCNO>")
    if len(docno) > 1:
        raise _err(path, lineno, f"<DOC> with {len(docno)} <DOCNO> elements")
    did = docno[0].strip()
    if not did:
        raise _err(path, lineno, "empty <DOCNO>")
    title = " ".join(_ANY_TAG.sub(" ", t).strip() for tag in _TITLE_TAGS for t in elements.get(tag, []))
    if "TEXT" in elements:
        text = "\n".join(_ANY_TAG.sub("", t).strip() for t in elements["TEXT"])
    else:
        text = _ANY_TAG.sub("", "".join(rest)).strip()
    return Document(did, text.strip(), " ".join(title.split()))


@dataclass(slots=True)
class SmartRecord:
    """One ``.I`` record of a SMART file: its id, its first line and every field by marker letter."""

    id: str
    line: int
    fields: dict[str, str] = field(default_factory=dict)


def read_smart_records(path: PathLike, *, encoding: str = "utf-8") -> Iterator[SmartRecord]:
    """Stream the ``.I`` records of a SMART file with all their fields (``{"T": ..., "W": ...}``)."""
    rec: SmartRecord | None = None
    parts: dict[str, list[str]] = {}
    cur: list[str] | None = None

    def finish() -> SmartRecord:
        assert rec is not None
        rec.fields = {k: "\n".join(v).strip() for k, v in parts.items()}
        return rec

    for lineno, line in _lines(path, encoding):
        m = _SMART_MARKER.match(line) if line[:1] == "." else None
        if m is None:
            if rec is None:
                if line.strip():
                    raise _err(path, lineno, f"text before the first .I record: {line[:40]!r}")
                continue
            if cur is None:
                if line.strip():
                    raise _err(path, lineno, f"text before any field marker in record {rec.id!r}: {line[:40]!r}")
                continue
            cur.append(line)
            continue
        letter, rest = m.group(1), m.group(2)
        if letter == "I":
            if rec is not None:
                yield finish()
            rid = (rest or "").strip()
            if not rid or len(rid.split()) != 1:
                raise _err(path, lineno, f".I needs one record id, got {line!r}")
            rec, parts, cur = SmartRecord(rid, lineno), {}, None
            continue
        if rec is None:
            raise _err(path, lineno, f"field .{letter} before the first .I record")
        cur = parts.setdefault(letter, [])
        if rest and rest.strip():
            cur.append(rest)
    if rec is not None:
        yield finish()


def _smart_doc(rec: SmartRecord) -> Document:
    text = rec.fields.get("W", "")
    kw = rec.fields.get("K", "")
    if kw:
        text = f"{text}\n{kw}" if text else kw
    return Document(rec.id, text, rec.fields.get("T", ""))


# ----------------------------------------------------------------------------------------------
# queries


def read_queries(
    path: PathLike,
    format: str = "auto",
    *,
    field: Literal["title", "desc", "title+desc", "narr"] = "title",
    renumber: bool | Literal["auto"] = "auto",
    strip_zeros: bool = False,
    encoding: str = "utf-8",
) -> list[Query]:
    """Read a query/topic file into a list of :class:`Query` (file order).

    ``field`` selects the TREC topic field; ``renumber`` applies to SMART query files (see the module
    docstring); ``strip_zeros`` turns all-digit ids ``"001"`` into ``"1"``. Duplicate ids raise
    :class:`FormatError` naming both lines.
    """
    fmt = _resolve(format, "queries", path)
    items: list[tuple[int, Query]]
    if fmt in ("jsonl", "beir"):
        items = []
        for lineno, line in _lines(path, encoding):
            if not line.strip():
                continue
            obj = _json_obj(path, lineno, line)
            qid = _json_id(path, lineno, obj, _QUERY_ID_KEYS, "query")
            items.append((lineno, Query(qid, _json_str(path, lineno, obj, _QUERY_TEXT_KEYS, "text", True))))
    elif fmt == "tsv":
        items = []
        for lineno, line in _lines(path, encoding):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise _err(path, lineno, f"expected 2 tab-separated fields (qid, text), got {len(parts)}")
            if not parts[0]:
                raise _err(path, lineno, "empty query id")
            items.append((lineno, Query(parts[0], parts[1])))
    elif fmt == "trec":
        if field not in ("title", "desc", "title+desc", "narr"):
            raise ValueError(f"unknown topic field {field!r}; known: title, desc, title+desc, narr")
        items = _trec_topics(path, encoding, field)
    else:
        items = []
        for rec in read_smart_records(path, encoding=encoding):
            text = rec.fields.get("W") or rec.fields.get("T", "")
            items.append((rec.line, Query(rec.id, text)))
        if renumber not in (True, False, "auto"):
            raise ValueError(f"renumber must be True, False or 'auto', got {renumber!r}")
        ids = [q.id for _, q in items]
        expected = [str(i) for i in range(1, len(ids) + 1)]
        contiguous = [_strip_zeros(i) for i in ids] == expected
        if renumber is True or (renumber == "auto" and not contiguous):
            if renumber == "auto":
                log.info("%s: query ids are not 1..%d in order; renumbering by position", path, len(ids))
            items = [(ln, Query(str(i), q.text)) for i, (ln, q) in enumerate(items, 1)]
    if strip_zeros:
        items = [(ln, Query(_strip_zeros(q.id), q.text)) for ln, q in items]
    seen: dict[str, int] = {}
    for ln, q in items:
        prev = seen.setdefault(q.id, ln)
        if prev != ln:
            raise _err(path, ln, f"duplicate query id {q.id!r} (first at line {prev})")
    return [q for _, q in items]


_TOP = re.compile(r"<top>(.*?)</top>", re.IGNORECASE | re.DOTALL)
_TOPIC_PREFIX = {"num": "number:", "title": "topic:", "desc": "description:", "narr": "narrative:"}


def _trec_topics(path: PathLike, encoding: str, fld: str) -> list[tuple[int, Query]]:
    text = _read_text(path, encoding)

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    out: list[tuple[int, Query]] = []
    pos = 0
    for m in _TOP.finditer(text):
        between = text[pos:m.start()]
        stray = _ANY_TAG.sub("", re.sub(r"(?i)</?topics?>", "", between)).strip()
        if stray:
            raise _err(path, line_of(pos + between.find(stray[:10])), f"text outside <top>: {stray[:40]!r}")
        pos = m.end()
        lineno = line_of(m.start())
        body = m.group(1)
        tags = list(_TAG.finditer(body))
        values: dict[str, str] = {}
        for i, t in enumerate(tags):
            if t.group(1):
                continue
            name = t.group(2).lower()
            end = tags[i + 1].start() if i + 1 < len(tags) else len(body)
            v = " ".join(body[t.end():end].split())
            pre = _TOPIC_PREFIX.get(name)
            if pre and v.lower().startswith(pre):
                v = v[len(pre):].strip()
            values[name] = f"{values[name]} {v}".strip() if name in values else v
        qid = values.get("num", "")
        if not qid or len(qid.split()) != 1:
            raise _err(path, lineno, f"topic without a single <num> (got {qid!r})")
        if fld == "title+desc":
            missing = [f for f in ("title", "desc") if f not in values]
            q = f"{values.get('title', '')} {values.get('desc', '')}".strip()
        else:
            missing = [fld] if fld not in values else []
            q = values.get(fld, "")
        if missing:
            raise _err(path, lineno, f"topic {qid} has no <{missing[0]}>")
        out.append((lineno, Query(qid, q)))
    tail = _ANY_TAG.sub("", re.sub(r"(?i)</?topics?>", "", text[pos:])).strip()
    if tail:
        raise _err(path, line_of(pos + text[pos:].find(tail[:10])), f"text outside <top>: {tail[:40]!r}")
    if not out:
        raise FormatError(f"{path}: no <top> topics found")
    return out


# ----------------------------------------------------------------------------------------------
# qrels

_CRANFIELD_SCALES: dict[str, dict[int, int]] = {
    "irds": {-1: 0, 1: 1, 2: 2, 3: 3, 4: 4},
    "cleverdon": {1: 4, 2: 3, 3: 2, 4: 1, 5: 0, -1: 0},
}


def _grade(path: PathLike, lineno: int, s: str) -> int:
    try:
        return int(s)
    except ValueError:
        pass
    try:
        f = float(s)
    except ValueError:
        raise _err(path, lineno, f"relevance grade {s!r} is not a number") from None
    if not f.is_integer():
        raise _err(path, lineno, f"relevance grade {s!r} is not an integer")
    return int(f)


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
        raise ValueError(f"unknown cranfield_scale {cranfield_scale!r}; known: irds, cleverdon, raw")
    scale = _CRANFIELD_SCALES.get(cranfield_scale) if fmt == "cranfield" else None
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


def _find_first(path: PathLike, encoding: str, upto: int, qid: str, did: str, fmt: str, strip: bool) -> int:
    """Line of the first occurrence of ``(qid, did)`` (error path only)."""
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


# ----------------------------------------------------------------------------------------------
# runs


def read_run(path: PathLike, format: str = "trec", *, name: str | None = None, encoding: str = "utf-8") -> Run:
    """Read a TREC run (``qid Q0 docid rank score tag``) into a :class:`Run`, keeping the scores.

    The run's name is ``name`` or the tag of the first line. Ranks are checked to be integers but,
    as in trec_eval, the order comes from the scores. A repeated ``(qid, docid)`` raises
    :class:`FormatError` naming the file and both lines.
    """
    _check_format(format, "run")
    data: dict[str, dict[str, float]] = {}
    tag: str | None = None
    for lineno, line in _lines(path, encoding):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise _err(path, lineno, f"expected 6 fields (qid Q0 docid rank score tag), got {len(parts)}")
        qid, _, did, rank, score, t = parts
        try:
            s = float(score)
        except ValueError:
            raise _err(path, lineno, f"score {score!r} is not a number") from None
        if math.isnan(s):
            raise _err(path, lineno, "score is NaN")
        if not rank.lstrip("-").isdigit():
            raise _err(path, lineno, f"rank {rank!r} is not an integer")
        docs = data.get(qid)
        if docs is None:
            docs = data[qid] = {}
        elif did in docs:
            first = _find_first(path, encoding, lineno, qid, did, "run", False)
            raise _err(path, lineno, f"document {did!r} repeated for query {qid!r} (first at line {first})")
        docs[did] = s
        if tag is None:
            tag = t
    return Run._wrap(data, name=name or tag or Path(path).name)


def _check_token(value: str, what: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{what} {value!r} is empty or contains whitespace; it cannot be written to a "
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


def write_run(run: Mapping[str, Mapping[str, float]], path: PathLike, tag: str | None = None) -> Path:
    """Write a run in TREC format: queries in string order, documents in trec_eval order (score
    desc, doc id desc), ranks 1..n, scores as ``repr`` of the float so that reading the file back
    gives exactly the same run. ``tag`` defaults to the run's name. Returns the path."""
    tag = tag or getattr(run, "name", None) or "rankstack"
    _check_token(tag, "run tag")
    with _Writer(path) as f:
        for qid in sorted(run):
            _check_token(qid, "query id")
            scores = run[qid]
            lines = []
            for i, (did, s) in enumerate(ranked_items(scores), 1):
                s = float(s)
                if math.isnan(s):
                    raise ValueError(f"score of ({qid}, {did}) is NaN")
                _check_token(did, "document id")
                lines.append(f"{qid} Q0 {did} {i} {float.__repr__(s)} {tag}\n")
            f.writelines(lines)
    return Path(path)


def write_qrels(qrels: Mapping[str, Mapping[str, int]], path: PathLike, format: Literal["trec", "beir"] = "trec") -> Path:
    """Write qrels as TREC (``qid 0 docid grade``) or BEIR TSV (header ``query-id corpus-id score``)."""
    if format not in ("trec", "beir"):
        raise ValueError(f"unknown qrels output format {format!r}; known: trec, beir")
    with _Writer(path) as f:
        if format == "beir":
            f.write("query-id\tcorpus-id\tscore\n")
        for qid in qrels:
            _check_token(qid, "query id")
            for did, g in qrels[qid].items():
                _check_token(did, "document id")
                f.write(f"{qid} 0 {did} {int(g)}\n" if format == "trec" else f"{qid}\t{did}\t{int(g)}\n")
    return Path(path)


def write_queries(queries: Iterable[Query], path: PathLike, format: Literal["tsv", "jsonl"] = "tsv",
                  normalize_whitespace: bool = False) -> Path:
    """Write queries as ``qid<TAB>text`` lines (or BEIR JSONL). A text with a tab or newline raises
    ``ValueError`` in TSV unless ``normalize_whitespace`` collapses its whitespace to single spaces."""
    if format not in ("tsv", "jsonl"):
        raise ValueError(f"unknown queries output format {format!r}; known: tsv, jsonl")
    with _Writer(path) as f:
        for q in queries:
            if format == "jsonl":
                f.write(json.dumps({"_id": q.id, "text": q.text}, ensure_ascii=False) + "\n")
                continue
            text = " ".join(q.text.split()) if normalize_whitespace else q.text
            if "\t" in q.id or "\n" in q.id or "\r" in q.id or not q.id:
                raise ValueError(f"query id {q.id!r} cannot be written to TSV")
            if "\t" in text or "\n" in text or "\r" in text:
                raise ValueError(f"query {q.id!r} has a tab or newline in its text; pass "
                                 "normalize_whitespace=True or format='jsonl'")
            f.write(f"{q.id}\t{text}\n")
    return Path(path)


def write_docs_jsonl(docs: Iterable[Document], path: PathLike) -> Path:
    """Write documents as BEIR ``corpus.jsonl`` lines ``{"_id", "title", "text"}`` (UTF-8, not escaped)."""
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    with _Writer(path) as f:
        for d in docs:
            f.write(dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    return Path(path)


# ----------------------------------------------------------------------------------------------
# whole collections

_SMART_DOCS = ("cran.all.1400", "cisi.all", "cacm.all", "med.all", "adi.all", "time.all", "npl.all")
_SMART_QRY = ("cran.qry", "cisi.qry", "query.text", "med.qry", "adi.qry", "time.que")
_SMART_REL = ("cran.qrels", "cranqrel", "cisi.rel", "qrels.text", "med.rel", "adi.rel", "time.rel")


def _find(d: Path, names: Iterable[str]) -> Path | None:
    by_lower = {p.name.lower(): p for p in d.iterdir() if p.is_file()}
    for n in names:
        for cand in (n, n + ".gz"):
            if cand in by_lower:
                return by_lower[cand]
    return None


def load_collection(
    path: PathLike,
    *,
    split: str = "test",
    docs: PathLike | None = None,
    queries: PathLike | None = None,
    qrels: PathLike | None = None,
    store: Literal["memory", "docstore"] = "memory",
    cache_dir: PathLike | None = None,
    field: Literal["title", "desc", "title+desc", "narr"] = "title",
    cranfield_scale: Literal["irds", "cleverdon", "raw"] = "irds",
    renumber: bool | Literal["auto"] = "auto",
    all_queries: bool = False,
    name: str | None = None,
) -> Collection:
    """Load a test collection directory into a :class:`Collection`.

    Layouts recognised (or pass ``docs``/``queries``/``qrels`` paths explicitly):

    * BEIR: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``. As BEIR's
      ``GenericDataLoader`` does, queries are restricted to those judged in the split unless
      ``all_queries=True``.
    * MS MARCO style: ``collection.tsv``, ``queries.tsv`` (or ``topics.*``), ``qrels.txt``/``qrels.tsv``.
    * SMART: ``cran.all.1400`` + ``cran.qry`` + ``cran.qrels`` (also CISI/CACM/MED/ADI names).
      When the qrels' query ids only match the query file's after stripping leading zeros (CACM's
      ``01``), both are normalised; ``meta["query_ids_stripped"]`` says so.

    ``store="memory"`` puts documents in a ``dict`` (id -> Document); ``store="docstore"`` builds or
    reuses an on-disk :class:`~rankstack.data.docstore.DocStore` under ``cache_dir``.
    ``meta`` records the files read, the layout and counts.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or directory")
    layout = "explicit"
    qrels_fmt = "auto"
    if root.is_dir():
        if (root / "corpus.jsonl").exists() or (root / "corpus.jsonl.gz").exists():
            layout = "beir"
            docs = docs or _find(root, ["corpus.jsonl"])
            queries = queries or _find(root, ["queries.jsonl"])
            if qrels is None:
                qd = root / "qrels"
                qrels = _find(qd, [f"{split}.tsv"]) if qd.is_dir() else None
                if qrels is None:
                    have = sorted(p.stem for p in qd.glob("*.tsv")) if qd.is_dir() else []
                    raise FileNotFoundError(f"{root}: no qrels/{split}.tsv (splits present: {', '.join(have) or 'none'})")
        elif _find(root, ["collection.tsv"]):
            layout = "msmarco"
            docs = docs or _find(root, ["collection.tsv"])
            queries = queries or _find(root, ["queries.tsv", f"queries.{split}.tsv", "topics.tsv"])
            qrels = qrels or _find(root, ["qrels.txt", "qrels.tsv", f"qrels.{split}.tsv", f"qrels.{split}.txt"])
        elif _find(root, _SMART_DOCS):
            layout = "smart"
            docs = docs or _find(root, _SMART_DOCS)
            queries = queries or _find(root, _SMART_QRY)
            qrels = qrels or _find(root, _SMART_REL)
            if qrels is not None and Path(qrels).name.lower().startswith("cran"):
                qrels_fmt = "cranfield"
        else:
            raise FileNotFoundError(f"{root}: not a BEIR (corpus.jsonl), MS MARCO (collection.tsv) or SMART "
                                    "collection directory; pass docs=, queries=, qrels= paths")
    elif docs is None:
        docs = root
    if docs is None:
        raise FileNotFoundError(f"{root}: no document file found")
    meta: dict[str, Any] = {"layout": layout, "docs_path": str(docs)}

    qlist: list[Query] = []
    if queries is not None:
        qlist = read_queries(queries, field=field, renumber=renumber)
        meta["queries_path"] = str(queries)
    qr: Qrels | None = None
    if qrels is not None:
        qr = read_qrels(qrels, qrels_fmt, cranfield_scale=cranfield_scale)
        meta["qrels_path"] = str(qrels)
        qids = {q.id for q in qlist}
        if qlist and not set(qr) <= qids:
            sq = {_strip_zeros(q) for q in qids}
            if {_strip_zeros(q) for q in qr} <= sq:
                qlist = [Query(_strip_zeros(q.id), q.text) for q in qlist]
                qr = _qrels_nocopy({_strip_zeros(q): d for q, d in qr.items()}, qr.name)
                meta["query_ids_stripped"] = True
            else:
                missing = sorted(set(qr) - qids)
                warnings.warn(f"{qrels}: {len(missing)} judged queries are not in {queries} "
                              f"(e.g. {', '.join(missing[:5])})", stacklevel=2)
        if layout == "beir" and not all_queries:
            qlist = [q for q in qlist if q.id in qr]
    if store == "memory":
        dmap: Any = {d.id: d for d in read_docs(docs)}
    elif store == "docstore":
        from rankstack.data.docstore import DocStore

        if cache_dir is None:
            raise ValueError("store='docstore' needs cache_dir=")
        dmap = DocStore.from_path(docs, cache_dir)
    else:
        raise ValueError(f"unknown store {store!r}; known: memory, docstore")
    meta.update(num_docs=len(dmap), num_queries=len(qlist),
                num_judgments=sum(len(v) for v in qr.values()) if qr is not None else 0)
    if layout == "beir":
        meta["split"] = split
    return Collection(name or (root.name if root.is_dir() else root.stem), dmap, qlist, qr, meta)
