"""Queries and topics: :func:`read_queries` (JSONL/BEIR, TSV, TREC ``<top>``, SMART) and
:func:`write_queries`.

Formats
-------
``jsonl`` (``beir``): ``_id``/``id``/``qid``/``query_id`` + ``text``/``query``.

``tsv``: ``qid<TAB>text``.

``trec``: ``<top><num> Number: 301 <title> .. <desc> Description: .. <narr> ..</top>`` topics;
``field="title"`` (default), ``"desc"``, ``"title+desc"`` or ``"narr"``; whitespace is collapsed.

``smart``: ``.I``/``.W`` records (``.T`` when there is no ``.W``). ``renumber="auto"`` (default)
renumbers queries ``"1".."n"`` by position when the ids in the file are not exactly ``1..n`` in
order -- Cranfield's ``cran.qry`` numbers them 001..365 with gaps while ``cran.qrels`` uses 1..225
by position; ``renumber=True``/``False`` forces it. A field other than ``.W`` that comes back after
the ``.W`` text is read as that field and warned about once per file (see
:mod:`~rankstack.data.formats.smart`).

Every format: query ids follow :mod:`~rankstack.data.formats.ids` (checked as written in the file,
before any renumbering or zero stripping); a repeated id is an error naming both lines.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from rankstack.data.formats._fields import _ANY_TAG, _TAG, _json_id, _json_obj, _json_str
from rankstack.data.formats._lines import PathLike, _err, _lines, _read_text, _strip_zeros
from rankstack.data.formats._write import _Writer
from rankstack.data.formats.detect import _resolve
from rankstack.data.formats.ids import check_id
from rankstack.data.formats.smart import _StrayFields, read_smart_records
from rankstack.data.records import Query
from rankstack.errors import ConfigError, FormatError

# the logger name the messages had before formats.py was split into a package
log = logging.getLogger("rankstack.data.formats")

_QUERY_ID_KEYS = ("_id", "id", "qid", "query_id")
_QUERY_TEXT_KEYS = ("text", "query")


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
    seen: dict[str, int] = {}

    def unique(lineno: int, q: Query) -> tuple[int, Query]:
        # line formats: a repeated id is reported where it is met, before any later line's problem
        key = _strip_zeros(q.id) if strip_zeros else q.id
        prev = seen.get(key)
        if prev is not None:
            raise _err(path, lineno, f"duplicate query id {key!r} (first at line {prev})")
        seen[key] = lineno
        return lineno, q

    if fmt in ("jsonl", "beir"):
        items = []
        for lineno, line in _lines(path, encoding):
            if not line.strip():
                continue
            obj = _json_obj(path, lineno, line)
            qid = _json_id(path, lineno, obj, _QUERY_ID_KEYS, "query")
            items.append(unique(lineno, Query(qid, _json_str(path, lineno, obj, _QUERY_TEXT_KEYS, "text", True))))
    elif fmt == "tsv":
        items = []
        for lineno, line in _lines(path, encoding):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise _err(path, lineno, f"expected 2 tab-separated fields (qid, text), got {len(parts)}")
            items.append(unique(lineno, Query(check_id(path, lineno, parts[0], "query"), parts[1])))
    elif fmt == "trec":
        if field not in ("title", "desc", "title+desc", "narr"):
            raise ConfigError(f"unknown topic field {field!r}; known: title, desc, title+desc, narr")
        items = _trec_topics(path, encoding, field)
    else:
        items = []
        stray = _StrayFields(path, "query", frozenset("W"))
        for rec in read_smart_records(path, encoding=encoding):
            text = rec.fields.get("W") or rec.fields.get("T", "")
            stray.check(rec)
            items.append((rec.line, Query(rec.id, text)))
        stray.warn()
        if renumber not in (True, False, "auto"):
            raise ConfigError(f"renumber must be True, False or 'auto', got {renumber!r}")
        ids = [q.id for _, q in items]
        expected = [str(i) for i in range(1, len(ids) + 1)]
        contiguous = [_strip_zeros(i) for i in ids] == expected
        if renumber is True or (renumber == "auto" and not contiguous):
            if renumber == "auto":
                log.info("%s: query ids are not 1..%d in order; renumbering by position", path, len(ids))
            items = [(ln, Query(str(i), q.text)) for i, (ln, q) in enumerate(items, 1)]
    if strip_zeros:
        items = [(ln, Query(_strip_zeros(q.id), q.text)) for ln, q in items]
    seen.clear()
    for ln, q in items:
        prev = seen.get(q.id)
        if prev is not None:  # (two topics may share a line: compare ids, not line numbers)
            raise _err(path, ln, f"duplicate query id {q.id!r} (first at line {prev})")
        seen[q.id] = ln
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
        _outside(path, text, pos, m.start(), line_of)
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
            raise _err(path, lineno, f"topic without a single <num> (got {qid[:60]!r})")
        check_id(path, lineno, qid, "query")
        if fld == "title+desc":
            missing = [f for f in ("title", "desc") if f not in values]
            q = f"{values.get('title', '')} {values.get('desc', '')}".strip()
        else:
            missing = [fld] if fld not in values else []
            q = values.get(fld, "")
        if missing:
            raise _err(path, lineno, f"topic {qid} has no <{missing[0]}>")
        out.append((lineno, Query(qid, q)))
    _outside(path, text, pos, len(text), line_of)
    if not out:
        raise FormatError(f"{path}: no <top> topics found")
    return out


_TOPICS_TAG = re.compile(r"(?i)</?topics?>")


def _outside(path: PathLike, text: str, start: int, end: int, line_of) -> None:
    """Text between topics (other than tags and ``<topics>``) is an error naming its line."""
    between = text[start:end]
    stray = _ANY_TAG.sub("", _TOPICS_TAG.sub("", between)).strip()
    if not stray:
        return
    # the first character outside any tag: blank out the tags (same length) and find it
    blanked = _ANY_TAG.sub(lambda m: " " * len(m.group()), between)
    at = len(blanked) - len(blanked.lstrip())
    raise _err(path, line_of(start + at), f"text outside <top>: {stray[:40]!r}")


def write_queries(queries: Iterable[Query], path: PathLike, format: Literal["tsv", "jsonl"] = "tsv",
                  normalize_whitespace: bool = False) -> Path:
    """Write queries as ``qid<TAB>text`` lines (or BEIR JSONL). A text with a tab or newline raises
    ``ValueError`` in TSV unless ``normalize_whitespace`` collapses its whitespace to single spaces."""
    if format not in ("tsv", "jsonl"):
        raise ConfigError(f"unknown queries output format {format!r}; known: tsv, jsonl")
    with _Writer(path) as f:
        for q in queries:
            if format == "jsonl":
                f.write(json.dumps({"_id": q.id, "text": q.text}, ensure_ascii=False) + "\n")
                continue
            text = " ".join(q.text.split()) if normalize_whitespace else q.text
            if "\t" in q.id or "\n" in q.id or "\r" in q.id or not q.id:
                raise ConfigError(f"query id {q.id!r} cannot be written to TSV")
            if "\t" in text or "\n" in text or "\r" in text:
                raise ConfigError(f"query {q.id!r} has a tab or newline in its text; pass "
                                 "normalize_whitespace=True or format='jsonl'")
            f.write(f"{q.id}\t{text}\n")
    return Path(path)
