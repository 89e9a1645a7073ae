"""pandas frames in PyTerrier's shape, to and from rankstack's record data.

PyTerrier passes three kinds of frame between its transformers and its evaluation:

* a **topics** frame: ``qid, query`` (one row per query);
* a **results** frame: ``qid, docno, score, rank`` (0-based ranks, as PyTerrier counts them), usually
  with ``query`` and any other column an earlier transformer added;
* a **qrels** frame: ``qid, docno, label``.

This module converts each to and from plain data: ``Run.to_df()`` / ``Run.from_df()`` delegate to
:func:`run_to_frame` / :func:`run_from_frame`. It does not import :mod:`rankstack.data.records`: the
records' methods import it. The typed wrappers for queries and qrels (``list[Query]``, ``Qrels``) are in
:mod:`rankstack.interfaces.pyterrier`.

The rules, the same in every direction:

* ids are strings (integer ids are converted; a float, a missing value or any other object is a
  :class:`~rankstack.errors.FormatError` naming the row and the column);
* a frame without a column it needs is a ``FormatError`` naming the column;
* a duplicate (``qid``, ``docno``) pair, or a ``qid`` twice in a topics frame, is a ``FormatError``
  naming both rows, never collapsed silently;
* the **score** orders a results frame, not the ``rank`` column (which is not read): ties are put in
  trec_eval's order (document id descending), as :meth:`Run.ranked` and trec_eval order them. That is
  also the order PyTerrier's evaluation (ir_measures, pytrec_eval) uses.

Rows are positions (0-based, as ``df.iloc`` counts them). pandas is imported when a function is called
(``pip install 'rankstack[pyterrier]'``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rankstack.errors import FormatError, NotFoundError
from rankstack.optional import require

__all__ = [
    "QRELS_COLUMNS",
    "RESULTS_COLUMNS",
    "TOPICS_COLUMNS",
    "check_columns",
    "frame_ids",
    "qrels_from_frame",
    "qrels_to_frame",
    "run_from_frame",
    "run_to_frame",
    "topics_from_frame",
    "topics_to_frame",
]

#: the columns each kind of frame must have to be read (``rank`` and ``query`` are optional in a results frame)
TOPICS_COLUMNS = ("qid", "query")
RESULTS_COLUMNS = ("qid", "docno", "score")
QRELS_COLUMNS = ("qid", "docno", "label")


def _pandas() -> Any:
    return require("pandas", "pyterrier")


# -- checks ---------------------------------------------------------------------------------------
def check_columns(df: Any, needed: Sequence[str], what: str) -> None:
    """``FormatError`` if ``df`` is not a frame or lacks any of ``needed`` (the message names them)."""
    cols = getattr(df, "columns", None)
    if cols is None or not hasattr(df, "iloc"):
        raise FormatError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in needed if c not in cols]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise FormatError(f"{what}: no column {names} (a {what} needs {', '.join(needed)}; "
                          f"it has {', '.join(map(str, cols)) or 'no columns'})")


def frame_ids(df: Any, column: str, what: str) -> list[str]:
    """The ids of ``df[column]`` as strings: strings as they are, integers converted; anything else
    (a float, a missing value, another object) is a ``FormatError`` naming the row."""
    s = df[column]
    if s.dtype.kind in "iu":
        return [str(v) for v in s.tolist()]
    vals = s.tolist()
    for i, v in enumerate(vals):
        if not isinstance(v, str) and (isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer)):
            hint = " (a float id: read the file with dtype=str)" if isinstance(v, float) and not math.isnan(v) else ""
            raise FormatError(f"{what}, row {i}: {column} {v!r} is not an id: give ids as strings{hint}")
    return [v if isinstance(v, str) else str(v) for v in vals]


def _numbers(df: Any, column: str, what: str) -> np.ndarray:
    """``df[column]`` as float64; a non-number or NaN is a ``FormatError`` naming the row."""
    s = df[column]
    if s.dtype.kind == "b":
        raise FormatError(f"{what}: column {column!r} holds booleans, not numbers")
    try:
        arr = np.asarray(s.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    except (TypeError, ValueError):
        for i, v in enumerate(s.tolist()):
            try:
                float(v)
            except (TypeError, ValueError):
                raise FormatError(f"{what}, row {i}: {column} {v!r} is not a number") from None
        raise FormatError(f"{what}: column {column!r} is not numeric (dtype {s.dtype})") from None
    nan = np.isnan(arr)
    if nan.any():
        raise FormatError(f"{what}, row {int(np.flatnonzero(nan)[0])}: {column} is missing (NaN)")
    return arr


def _first_row(qids: list[str], docnos: list[str], q: str, d: str) -> int:
    return next(i for i, (a, b) in enumerate(zip(qids, docnos)) if a == q and b == d)


def _pairs(df: Any, what: str, values: np.ndarray | list, column: str) -> dict[str, dict[str, Any]]:
    """``{qid: {docno: value}}`` from the frame's ``qid`` and ``docno`` columns; a repeated pair is an error."""
    qids = frame_ids(df, "qid", what)
    docnos = frame_ids(df, "docno", what)
    data: dict[str, dict[str, Any]] = {}
    for i, (q, d, v) in enumerate(zip(qids, docnos, values)):
        docs = data.get(q)
        if docs is None:
            docs = data[q] = {}
        elif d in docs:
            first = _first_row(qids, docnos, q, d)
            raise FormatError(f"{what}, row {i}: duplicate (qid, docno) pair ({q!r}, {d!r}), first at row {first} "
                              f"(a {column} per pair: drop or aggregate the duplicates first)")
        docs[d] = v
    return data


# -- results frames -------------------------------------------------------------------------------
def _query_texts(queries: Any) -> dict[str, str]:
    """``{qid: text}`` from ``Query``-like objects (``.id``, ``.text``) or a ``{qid: text}`` mapping."""
    if isinstance(queries, Mapping):
        return {str(k): str(v) for k, v in queries.items()}
    return {str(q.id): q.text for q in queries}


def run_to_frame(run: Mapping[str, Mapping[str, float]], queries: Any = None) -> Any:
    """A results frame ``qid, [query,] docno, score, rank`` of ``run`` (a :class:`Run` or a
    ``{qid: {docno: score}}`` mapping): queries in the run's order, each ranked as :meth:`Run.ranked`
    ranks it (score descending, ties by document id descending), ``rank`` 0-based.

    ``queries`` (``Query`` objects or ``{qid: text}``) adds the ``query`` column; a query of the run
    without a text is a :class:`~rankstack.errors.NotFoundError`. A query with an empty ranking has no row.
    """
    pd = _pandas()
    ranked = getattr(run, "ranked", None)
    qids: list[str] = []
    docnos: list[str] = []
    scores: list[float] = []
    ranks: list[int] = []
    for q in run:
        if ranked is not None:
            items = ranked(q)
        else:  # the same two stable sorts as Run.ranked: doc id descending, then score descending
            items = sorted(run[q].items(), key=lambda kv: kv[0], reverse=True)
            items.sort(key=lambda kv: kv[1], reverse=True)
        n = len(items)
        qids.extend([q] * n)
        docnos.extend(d for d, _ in items)
        scores.extend(s for _, s in items)
        ranks.extend(range(n))
    cols: dict[str, Any] = {"qid": pd.Series(qids, dtype=object)}
    if queries is not None:
        texts = _query_texts(queries)
        absent = [q for q in run if run[q] and q not in texts]
        if absent:
            shown = ", ".join(repr(q) for q in absent[:5]) + (" ..." if len(absent) > 5 else "")
            raise NotFoundError(f"{len(absent)} quer{'y' if len(absent) == 1 else 'ies'} of the run "
                                f"{'has' if len(absent) == 1 else 'have'} no text among the queries given: {shown}")
        cols["query"] = pd.Series([texts[q] for q in qids], dtype=object)
    cols["docno"] = pd.Series(docnos, dtype=object)
    cols["score"] = np.asarray(scores, dtype=np.float64)
    cols["rank"] = np.asarray(ranks, dtype=np.int64)
    return pd.DataFrame(cols)


def run_from_frame(df: Any, what: str = "results frame") -> dict[str, dict[str, float]]:
    """``{qid: {docno: score}}`` of a results frame (``qid, docno, score``; ``rank`` and other columns
    are not read): what :meth:`Run.from_df` wraps. A missing column, a missing or non-numeric score,
    a bad id or a duplicate (qid, docno) pair is a :class:`~rankstack.errors.FormatError`."""
    check_columns(df, RESULTS_COLUMNS, what)
    scores = _numbers(df, "score", what)
    return _pairs(df, what, scores.tolist(), "score")


# -- topics frames --------------------------------------------------------------------------------
def topics_to_frame(queries: Iterable[Any] | Mapping[str, str]) -> Any:
    """A topics frame ``qid, query`` of ``Query`` objects (or ``{qid: text}``), in their order."""
    pd = _pandas()
    texts = _query_texts(queries)
    return pd.DataFrame({"qid": pd.Series(list(texts), dtype=object),
                         "query": pd.Series(list(texts.values()), dtype=object)})


def topics_from_frame(df: Any, what: str = "topics frame", repeated: bool = False) -> dict[str, str]:
    """``{qid: query text}`` of a topics frame (``qid, query``), in the frame's order.

    A qid twice is a ``FormatError``; with ``repeated=True`` (a results frame: one row per document)
    a qid may repeat, but always with the same text. A missing or non-string text is a ``FormatError``.
    """
    check_columns(df, TOPICS_COLUMNS, what)
    qids = frame_ids(df, "qid", what)
    texts = df["query"].tolist()
    out: dict[str, str] = {}
    first: dict[str, int] = {}
    for i, (q, t) in enumerate(zip(qids, texts)):
        if not isinstance(t, str):
            raise FormatError(f"{what}, row {i}: the query of {q!r} is {t!r}, not a string")
        if q in out:
            if not repeated:
                raise FormatError(f"{what}, row {i}: qid {q!r} twice (first at row {first[q]})")
            if out[q] != t:
                raise FormatError(f"{what}, row {i}: qid {q!r} has two query texts ({out[q]!r} at row {first[q]}, "
                                  f"{t!r} here)")
            continue
        out[q] = t
        first[q] = i
    return out


# -- qrels frames ---------------------------------------------------------------------------------
def qrels_to_frame(qrels: Mapping[str, Mapping[str, int]]) -> Any:
    """A qrels frame ``qid, docno, label`` of ``{qid: {docno: grade}}`` (a :class:`Qrels`), in its order."""
    pd = _pandas()
    qids: list[str] = []
    docnos: list[str] = []
    labels: list[int] = []
    for q, docs in qrels.items():
        qids.extend([q] * len(docs))
        docnos.extend(docs)
        labels.extend(int(g) for g in docs.values())
    return pd.DataFrame({"qid": pd.Series(qids, dtype=object), "docno": pd.Series(docnos, dtype=object),
                         "label": np.asarray(labels, dtype=np.int64)})


def qrels_from_frame(df: Any, what: str = "qrels frame") -> dict[str, dict[str, int]]:
    """``{qid: {docno: grade}}`` of a qrels frame (``qid, docno, label``; other columns are not read).
    A label that is not a whole number, a bad id or a duplicate pair is a ``FormatError``."""
    check_columns(df, QRELS_COLUMNS, what)
    labels = _numbers(df, "label", what)
    whole = np.isfinite(labels) & (np.floor(labels) == labels)
    if not whole.all():
        i = int(np.flatnonzero(~whole)[0])
        raise FormatError(f"{what}, row {i}: label {float(labels[i])!r} is not a whole number (a relevance grade)")
    return _pairs(df, what, labels.astype(np.int64).tolist(), "label")
