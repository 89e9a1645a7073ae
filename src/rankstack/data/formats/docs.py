"""Document collections: :func:`read_docs` (JSONL/BEIR, TSV, TREC ``<DOC>``, SMART) and
:func:`write_docs_jsonl`.

Formats
-------
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

``smart``: records of :func:`~rankstack.data.formats.smart.read_smart_records`; ``.T`` ->
``Document.title``, ``.W`` -> ``Document.text``, ``.K`` (keywords) appended to the text after a
newline so that it is indexed; other fields are not put in the ``Document``. A record where a field
that is not put in the ``Document`` (``.A``, ``.B``, ...) comes back after the ``.W`` text (Cranfield
document 240: a ``.A`` line inside the abstract) reads as ir_datasets reads it (the lines after the
marker go to that field, not the text) and the reader warns once per file, naming such records.

Every format: document ids follow :mod:`~rankstack.data.formats.ids` (no whitespace or control or
invisible character, at most :data:`~rankstack.data.formats.ids.MAX_ID_LENGTH` characters); a TSV
line with another number of fields than the file's (a passage broken by a newline leaves a line
without a tab) is an error naming it, not a document.

This module imports nothing from :mod:`rankstack.data.docstore` (the store imports
:func:`read_docs` from here to build itself from a file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from rankstack.data.formats._fields import _ANY_TAG, _TAG, _json_id, _json_obj, _json_str
from rankstack.data.formats._lines import PathLike, _err, _lines
from rankstack.data.formats._write import _Writer
from rankstack.data.formats.detect import _resolve
from rankstack.data.formats.ids import check_id, max_id_length
from rankstack.data.formats.smart import SmartRecord, _StrayFields, read_smart_records
from rankstack.data.records import Document

_DOC_ID_KEYS = ("_id", "id", "docid", "doc_id", "docno", "pid")
_DOC_TEXT_KEYS = ("text", "contents", "body", "passage")


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
        it = _docs_smart(path, encoding)
    if not check_duplicates:
        return (d for _, d in it)
    return _dedup_docs(path, it)


def _dedup_docs(path: PathLike, it: Iterator[tuple[int, Document]]) -> Iterator[Document]:
    seen: dict[str, int] = {}
    for lineno, doc in it:
        n = len(seen)
        seen.setdefault(doc.id, lineno)
        if len(seen) == n:  # (two documents may share a line: count ids, do not compare line numbers)
            raise _err(path, lineno, f"duplicate document id {doc.id!r} (first at line {seen[doc.id]})")
        yield doc


# ---------------------------------------------------------------------------------------- JSONL


def _docs_jsonl(path: PathLike, encoding: str) -> Iterator[tuple[int, Document]]:
    for lineno, line in _lines(path, encoding):
        if not line.strip():
            continue
        obj = _json_obj(path, lineno, line)
        did = _json_id(path, lineno, obj, _DOC_ID_KEYS, "document")
        text = _json_str(path, lineno, obj, _DOC_TEXT_KEYS, "text", True)
        title = _json_str(path, lineno, obj, ("title",), "title", False)
        yield lineno, Document(did, text, title)


# ---------------------------------------------------------------------------------------- TSV

_TSV_COLS = {"id": "id", "_id": "id", "docid": "id", "doc_id": "id", "pid": "id",
             "text": "text", "passage": "text", "contents": "text", "title": "title"}


def _docs_tsv(path: PathLike, encoding: str) -> Iterator[tuple[int, Document]]:
    cols: list[str] | None = None
    first = True
    limit = max_id_length()
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
            if not 0 < len(did) <= limit or " " in did or not did.isprintable():
                check_id(path, lineno, did, "document")
            yield lineno, Document(did, text)
        else:
            if len(parts) != len(cols):
                raise _err(path, lineno, f"expected {len(cols)} tab-separated fields ({', '.join(cols)}), got {len(parts)}")
            rec = dict(zip(cols, parts))
            yield lineno, Document(check_id(path, lineno, rec["id"], "document"), rec["text"], rec.get("title", ""))


# ---------------------------------------------------------------------------------------- TREC

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
                # the first piece starts at the block's first line; every later one on its last line
                # (the block ends at the first line with a </DOC>)
                at = start if k == 0 else lineno
                s = piece.lstrip()
                if not s[:5].upper() == "<DOC>":
                    raise _err(path, at, f"expected <DOC>, got {s[:40]!r}")
                yield at, _trec_doc(path, at, s[5:])
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
    check_id(path, lineno, did, "document")
    title = " ".join(_ANY_TAG.sub(" ", t).strip() for tag in _TITLE_TAGS for t in elements.get(tag, []))
    if "TEXT" in elements:
        text = "\n".join(_ANY_TAG.sub("", t).strip() for t in elements["TEXT"])
    else:
        text = _ANY_TAG.sub("", "".join(rest)).strip()
    return Document(did, text.strip(), " ".join(title.split()))


# ---------------------------------------------------------------------------------------- SMART


#: SMART fields that are put in the ``Document``
_SMART_DOC_FIELDS = frozenset("TWK")


def _docs_smart(path: PathLike, encoding: str) -> Iterator[tuple[int, Document]]:
    stray = _StrayFields(path, "document", _SMART_DOC_FIELDS)
    for rec in read_smart_records(path, encoding=encoding):
        stray.check(rec)
        yield rec.line, _smart_doc(rec)
    stray.warn()


def _smart_doc(rec: SmartRecord) -> Document:
    text = rec.fields.get("W", "")
    kw = rec.fields.get("K", "")
    if kw:
        text = f"{text}\n{kw}" if text else kw
    return Document(rec.id, text, rec.fields.get("T", ""))


# ---------------------------------------------------------------------------------------- writer


def write_docs_jsonl(docs: Iterable[Document], path: PathLike) -> Path:
    """Write documents as BEIR ``corpus.jsonl`` lines ``{"_id", "title", "text"}`` (UTF-8, not escaped)."""
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    with _Writer(path) as f:
        for d in docs:
            f.write(dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    return Path(path)
