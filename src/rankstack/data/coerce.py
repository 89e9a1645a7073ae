"""Coerce foreign records into rankstack's: ``as_queries``, ``as_docs``, ``as_qrels``, ``as_run``.

Pure Python, by duck typing on field names: it reads ir_datasets' namedtuples (``GenericQuery``,
``TrecQuery``, ``GenericDoc``, ``BeirTitleDoc``, ``TrecQrel``, ``GenericScoredDoc``, ...) without
importing ir_datasets, rankstack's own records, and any other object with the same fields. rankstack
objects pass through unchanged (the same object comes back), so a caller can coerce unconditionally.

=========================  ======================================================================
function                   accepts
=========================  ======================================================================
``as_query(rec)``          a ``Query``, or a record with ``query_id`` and a text (see below)
``as_queries(obj)``        a list of ``Query`` (returned as is), one record, an iterable of
                           records, a ``{query_id: text}`` mapping, an object with
                           ``queries_iter()`` (an ir_datasets dataset)
``as_doc(rec)``            a ``Document``, or a record with ``doc_id`` and a text (see below)
``as_docs(obj)``           any ``Mapping`` of ``Document`` (a dict, a ``DocStore``: returned as
                           is), one record, an iterable of records, a ``{doc_id: text}`` dict, an
                           object with ``docs_iter()``; the result is a ``doc_id -> Document``
                           dict that knows its content fingerprint
``as_qrels(obj)``          ``Qrels`` (as is), ``{qid: {doc_id: grade}}``, records with ``query_id``,
                           ``doc_id``, ``relevance`` (ir_datasets' ``iteration`` is ignored, as
                           trec_eval does), an object with ``qrels_iter()``
``as_run(obj)``            ``Run`` (as is), ``{qid: {doc_id: score}}``, records with ``query_id``,
                           ``doc_id``, ``score`` (``rank`` is ignored: the order comes from the
                           scores, as in trec_eval), an object with ``scoreddocs_iter()``
=========================  ======================================================================

Texts: a document's text is the first string field among ``text``, ``body``, ``passage``,
``contents``, ``abstract``, and its title a string ``title`` field; else ``default_text()``. A
query's text is its ``text`` field, else the TREC topic field chosen by ``field`` (``title``,
``desc``, ``title+desc``, ``narr``), else ``default_text()``. Ids are converted with ``str``.

A record that cannot be read raises :class:`~rankstack.errors.FormatError` naming its type, its
fields and the missing one (and its position, 1-based, in an iterable), as the file readers do; a
document id given twice raises :class:`~rankstack.errors.DuplicateDocumentError`; a judgment repeated
with another grade, or a ``(query_id, doc_id)`` repeated in a run, raises ``FormatError``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from os import PathLike
from typing import Any

from rankstack.data.records import Document, FingerprintedDocs, Qrels, Query, Run
from rankstack.errors import ConfigError, DuplicateDocumentError, FormatError

__all__ = ["as_query", "as_queries", "as_doc", "as_docs", "as_qrels", "as_run", "TEXT_FIELDS", "TOPIC_FIELDS"]

#: document text fields, in the order they are tried
TEXT_FIELDS = ("text", "body", "passage", "contents", "abstract")
#: ``field=`` of :func:`as_query` -> the TREC topic fields joined for the query text
TOPIC_FIELDS = {"title": ("title",), "desc": ("description",), "title+desc": ("title", "description"),
                "narr": ("narrative",)}

_MISSING = object()


def _fields(rec: Any) -> tuple[str, ...]:
    """The field names of a namedtuple, a dataclass or a plain object (for messages and lookups)."""
    f = getattr(rec, "_fields", None)
    if isinstance(f, tuple):
        return f
    if dataclasses.is_dataclass(rec) and not isinstance(rec, type):
        return tuple(x.name for x in dataclasses.fields(rec))
    slots = getattr(type(rec), "__slots__", None)
    if slots:
        return tuple([slots] if isinstance(slots, str) else slots)
    d = getattr(rec, "__dict__", None)
    return tuple(k for k in d if not k.startswith("_")) if isinstance(d, dict) else ()


def _describe(rec: Any) -> str:
    return f"{type(rec).__name__}({', '.join(_fields(rec))})"


def _get(rec: Any, name: str) -> Any:
    return getattr(rec, name, _MISSING)


def _where(pos: int | None) -> str:
    return f"record #{pos}: " if pos is not None else ""


def _missing(rec: Any, kind: str, field: str, pos: int | None = None) -> FormatError:
    return FormatError(f"{_where(pos)}cannot read {_describe(rec)} as {kind}: it has no {field} field")


def _is_not_records(obj: Any, kind: str, loader: str) -> FormatError | None:
    """An error for inputs that are iterable but are not records (a string is a sequence of letters)."""
    if isinstance(obj, (str, bytes, PathLike)):
        return FormatError(f"cannot read {type(obj).__name__} {str(obj)[:80]!r} as {kind}: give records, or read "
                           f"a file or an ir_datasets id with {loader}")
    return None


# -- queries ------------------------------------------------------------------------------------
def as_query(rec: Any, field: str = "title", *, pos: int | None = None) -> Query:
    """One record -> :class:`Query` (a ``Query`` comes back unchanged); see the module docstring."""
    if isinstance(rec, Query):
        return rec
    qid = _get(rec, "query_id")
    if qid is _MISSING:
        raise _missing(rec, "a query", "query_id", pos)
    text = _get(rec, "text")
    if isinstance(text, str):
        return Query(str(qid), text)
    want = TOPIC_FIELDS.get(field)
    if want is None:
        raise ConfigError(f"unknown topic field {field!r}; known: {', '.join(TOPIC_FIELDS)}")
    parts = [_get(rec, f) for f in want]
    if all(isinstance(p, str) for p in parts):
        return Query(str(qid), " ".join(p.strip() for p in parts).strip())
    if callable(getattr(rec, "default_text", None)):
        return Query(str(qid), str(rec.default_text()))
    raise FormatError(f"{_where(pos)}cannot read {_describe(rec)} as a query: it has no text field, no "
                      f"{'+'.join(want)} field (field={field!r}) and no default_text()")


def as_queries(obj: Any, field: str = "title") -> list[Query]:
    """Queries from records, a mapping or an ir_datasets dataset; a list of ``Query`` comes back as is."""
    if isinstance(obj, list) and all(isinstance(q, Query) for q in obj):
        return obj
    if isinstance(obj, Query) or _get(obj, "query_id") is not _MISSING:
        return [as_query(obj, field)]
    err = _is_not_records(obj, "queries", "rankstack.data.datasets.load_queries")
    if err is not None:
        raise err
    if isinstance(obj, Mapping):
        out = []
        for qid, text in obj.items():
            if not isinstance(text, str):
                raise FormatError(f"query {qid!r}: a {{query_id: text}} mapping needs string texts, "
                                  f"got {type(text).__name__}")
            out.append(Query(str(qid), text))
        return out
    if callable(getattr(obj, "queries_iter", None)):
        obj = obj.queries_iter()
    if not isinstance(obj, Iterable):
        raise FormatError(f"cannot read {_describe(obj)} as queries: not a query record, not an iterable of them")
    return [as_query(r, field, pos=i) for i, r in enumerate(obj, 1)]


# -- documents ----------------------------------------------------------------------------------
def as_doc(rec: Any, *, pos: int | None = None) -> Document:
    """One record -> :class:`Document` (a ``Document`` comes back unchanged); see the module docstring."""
    if isinstance(rec, Document):
        return rec
    did = _get(rec, "doc_id")
    if did is _MISSING:
        raise _missing(rec, "a document", "doc_id", pos)
    title = _get(rec, "title")
    title = title if isinstance(title, str) else ""
    for f in TEXT_FIELDS:
        text = _get(rec, f)
        if isinstance(text, str):
            return Document(str(did), text, title)
    if callable(getattr(rec, "default_text", None)):
        return Document(str(did), str(rec.default_text()), "")
    raise FormatError(f"{_where(pos)}cannot read {_describe(rec)} as a document: it has no text field "
                      f"(one of {', '.join(TEXT_FIELDS)}) and no default_text()")


def as_docs(obj: Any) -> Mapping[str, Document]:
    """A ``doc_id -> Document`` mapping; a mapping of ``Document`` (dict, ``DocStore``) comes back as is."""
    if isinstance(obj, Mapping):
        if not isinstance(obj, dict) or all(isinstance(d, Document) for d in obj.values()):
            return obj
        records: Iterable[Any] = (Document(str(k), v) if isinstance(v, str) else v for k, v in obj.items())
    elif isinstance(obj, Document) or _get(obj, "doc_id") is not _MISSING:
        records = [obj]
    else:
        err = _is_not_records(obj, "documents", "rankstack.data.formats.read_docs or datasets.load")
        if err is not None:
            raise err
        records = obj.docs_iter() if callable(getattr(obj, "docs_iter", None)) else obj
        if not isinstance(records, Iterable):
            raise FormatError(f"cannot read {_describe(obj)} as documents: not a document record, "
                              "not an iterable or mapping of them")
    out = FingerprintedDocs()
    first: dict[str, int] = {}
    for i, rec in enumerate(records, 1):
        d = as_doc(rec, pos=i)
        if d.id in out:
            raise DuplicateDocumentError(d.id, (first[d.id] - 1, i - 1))
        out[d.id] = d
        first[d.id] = i
    return out


# -- qrels and runs -----------------------------------------------------------------------------
def _nested(obj: Mapping, kind: str) -> None:
    for qid, docs in obj.items():
        if not isinstance(docs, Mapping):
            raise FormatError(f"query {qid!r}: {kind} as a mapping must be {{query_id: {{doc_id: value}}}}, "
                              f"got a {type(docs).__name__} value")
        return


def _triples(obj: Any, kind: str, value: str, iter_name: str, loader: str) -> Iterable[tuple[int, Any]]:
    if _get(obj, "query_id") is not _MISSING:
        return [(1, obj)]
    err = _is_not_records(obj, kind, loader)
    if err is not None:
        raise err
    it = getattr(obj, iter_name, None)
    if callable(it):
        obj = it()
    if not isinstance(obj, Iterable):
        raise FormatError(f"cannot read {_describe(obj)} as {kind}: not a record with query_id, doc_id, {value}, "
                          "not an iterable or mapping of them")
    return enumerate(obj, 1)


def _fields3(rec: Any, kind: str, value: str, pos: int) -> tuple[Any, Any, Any]:
    out = []
    for f in ("query_id", "doc_id", value):
        v = _get(rec, f)
        if v is _MISSING:
            raise _missing(rec, f"a {kind} record", f, pos)
        out.append(v)
    return out[0], out[1], out[2]


def as_qrels(obj: Any, name: str = "qrels") -> Qrels:
    """:class:`Qrels` from judgment records, a nested mapping or an ir_datasets dataset (``Qrels`` as is)."""
    if isinstance(obj, Qrels):
        return obj
    if isinstance(obj, Mapping):
        _nested(obj, "qrels")
        try:
            return Qrels(obj, name=name)
        except (TypeError, ValueError) as e:
            raise FormatError(f"qrels mapping: a grade is not an integer ({e})") from None
    data: dict[str, dict[str, int]] = {}
    where: dict[tuple[str, str], int] = {}
    for pos, rec in _triples(obj, "qrels", "relevance", "qrels_iter", "rankstack.data.datasets.load_qrels"):
        q, d, r = _fields3(rec, "judgment", "relevance", pos)
        try:
            if isinstance(r, float) and not r.is_integer():
                raise ValueError
            g = int(r)
        except (TypeError, ValueError):
            raise FormatError(f"{_where(pos)}{_describe(rec)}: relevance {r!r} is not an integer") from None
        q, d = str(q), str(d)
        docs = data.setdefault(q, {})
        if d in docs and docs[d] != g:
            raise FormatError(f"{_where(pos)}query {q!r}, document {d!r}: grade {g} here, {docs[d]} at record "
                              f"#{where[q, d]}")
        docs[d] = g
        where.setdefault((q, d), pos)
    return Qrels(data, name=name)


def as_run(obj: Any, name: str = "run") -> Run:
    """:class:`Run` from scored-document records, a nested mapping or an ir_datasets dataset (``Run`` as is)."""
    if isinstance(obj, Run):
        return obj
    if isinstance(obj, Mapping):
        _nested(obj, "a run")
        try:
            run = Run(obj, name=name)
        except (TypeError, ValueError) as e:
            raise FormatError(f"run mapping: a score is not a number ({e})") from None
        for q, docs in run.items():
            for d, s in docs.items():
                if math.isnan(s):
                    raise FormatError(f"run mapping: query {q!r}, document {d!r}: score is NaN")
        return run
    data: dict[str, dict[str, float]] = {}
    where: dict[tuple[str, str], int] = {}
    for pos, rec in _triples(obj, "a run", "score", "scoreddocs_iter", "rankstack.data.formats.read_run"):
        q, d, s = _fields3(rec, "scored-document", "score", pos)
        try:
            if isinstance(s, (str, bytes)):
                raise TypeError
            f = float(s)
        except (TypeError, ValueError):
            raise FormatError(f"{_where(pos)}{_describe(rec)}: score {s!r} is not a number") from None
        if math.isnan(f):
            raise FormatError(f"{_where(pos)}{_describe(rec)}: score is NaN")
        q, d = str(q), str(d)
        docs = data.setdefault(q, {})
        if d in docs:
            raise FormatError(f"{_where(pos)}query {q!r}, document {d!r} is repeated (first at record "
                              f"#{where[q, d]})")
        docs[d] = f
        where[q, d] = pos
    return Run._wrap(data, name=name)
