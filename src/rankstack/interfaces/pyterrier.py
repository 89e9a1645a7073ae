"""PyTerrier interop: any rankstack stage as a PyTerrier transformer, any PyTerrier transformer as a
rankstack stage, and PyTerrier's frames as rankstack records.

    import pyterrier as pt
    from rankstack.interfaces.pyterrier import from_pyterrier, qrels_to_df, queries_to_df, to_pyterrier

    bm25 = to_pyterrier(index.retriever(k=1000))             # a pt.Transformer
    pt.Experiment([bm25, bm25 % 10 >> pt.apply.doc_score(f)], queries_to_df(queries), qrels_to_df(qrels),
                  eval_metrics=["ndcg_cut_10"])

    stage = index.retriever() >> from_pyterrier(pt.apply.doc_score(f))   # a rankstack Stage
    run = stage(queries)

Only PyTerrier's core is used (``pt.Transformer``, ``pt.validate``): nothing here starts Java.

**to_pyterrier(stage)** takes a topics frame (``qid, query``) for a retriever, or a results frame
(``qid, query, docno, score``) whose rows are a reranker's candidates; it returns a results frame
``qid, query, docno, score, rank`` (0-based ranks) ranked as rankstack ranks (score descending, ties by
document id descending), with the input's other columns carried over (per query from a topics frame,
per (qid, docno) from a results frame).

**from_pyterrier(transformer)** is a :class:`~rankstack.stages.base.Stage`: the queries (and the
incoming run, as a results frame) go to the transformer, and its output frame becomes the run. Ranks
come from the scores, never from the frame's order, so the stage is as deterministic as the
transformer. Given candidates, it reranks exactly them: an output that drops a candidate or adds a
document is a :class:`~rankstack.errors.StageError`.

The frame rules (ids, missing columns, duplicate pairs) are :mod:`rankstack.data.frames`'. pandas and
PyTerrier are imported on first use: ``pip install 'rankstack[pyterrier]'``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from rankstack.data import frames
from rankstack.data.records import Document, Qrels, Query, Run
from rankstack.errors import ConfigError, FormatError, StageError
from rankstack.optional import require
from rankstack.stages.base import Stage

__all__ = [
    "PyTerrierStage",
    "from_pyterrier",
    "qrels_from_df",
    "qrels_to_df",
    "queries_from_df",
    "queries_to_df",
    "to_pyterrier",
]

#: the columns of a results frame that the adapter writes itself (any other input column is carried over)
OUTPUT_COLUMNS = ["qid", "query", "docno", "score", "rank"]


# -- frames as records ----------------------------------------------------------------------------
def queries_to_df(queries: Iterable[Query] | Mapping[str, str]) -> Any:
    """A PyTerrier topics frame ``qid, query`` of ``queries``, in their order."""
    return frames.topics_to_frame(queries)


def queries_from_df(df: Any) -> list[Query]:
    """The :class:`Query` objects of a PyTerrier topics frame (``qid, query``), in its order; a qid
    twice is a :class:`~rankstack.errors.FormatError`."""
    return [Query(q, t) for q, t in frames.topics_from_frame(df).items()]


def qrels_to_df(qrels: Mapping[str, Mapping[str, int]]) -> Any:
    """A PyTerrier qrels frame ``qid, docno, label``."""
    return frames.qrels_to_frame(qrels)


def qrels_from_df(df: Any, name: str = "qrels") -> Qrels:
    """:class:`Qrels` of a PyTerrier qrels frame (``qid, docno, label``); a duplicate pair is a
    :class:`~rankstack.errors.FormatError`."""
    return Qrels(frames.qrels_from_frame(df), name=name)


# -- a rankstack stage as a PyTerrier transformer -------------------------------------------------
def to_pyterrier(stage: Stage) -> Any:
    """``stage`` as a ``pt.Transformer`` (see the module docstring for the frames it takes and gives)."""
    if not isinstance(stage, Stage):
        raise ConfigError(f"to_pyterrier takes a rankstack Stage, got {type(stage).__name__}")
    return _transformer_class()(stage)


@functools.cache
def _transformer_class() -> type:
    pt = require("pyterrier", "pyterrier")

    class RankstackTransformer(pt.Transformer):
        """A rankstack :class:`~rankstack.stages.base.Stage` as a PyTerrier transformer."""

        def __init__(self, stage: Stage):
            self.stage = stage

        def transform(self, inp: Any) -> Any:
            return _stage_on_frame(self.stage, inp)

        def transform_outputs(self, inp_columns: list[str]) -> list[str]:
            """What ``pt.inspect`` (and ``pt.Experiment``'s validation) asks, without running the stage."""
            with pt.validate.any(inp_columns, context=self) as v:
                if not self.stage.needs_candidates:
                    v.query_frame(["query"], mode="retrieve")
                v.result_frame(["query", "score"], mode="rerank")
            return OUTPUT_COLUMNS + [c for c in inp_columns if c not in OUTPUT_COLUMNS]

        def __repr__(self) -> str:
            return f"rankstack({self.stage.name})"

    RankstackTransformer.__module__ = __name__
    return RankstackTransformer


def _stage_on_frame(stage: Stage, inp: Any) -> Any:
    pd = require("pandas", "pyterrier")
    results = hasattr(inp, "columns") and "docno" in inp.columns
    what = "results frame" if results else "topics frame"
    if results:
        frames.check_columns(inp, [*frames.RESULTS_COLUMNS, "query"], what)
    elif stage.needs_candidates:
        cols = ", ".join(map(str, getattr(inp, "columns", []))) or "none"
        raise StageError(f"{stage.name} is a reranker: give it a results frame (qid, query, docno, score) of "
                         f"candidates, not a topics frame (columns: {cols}); e.g. to_pyterrier(first_stage) >> "
                         f"to_pyterrier(reranker)")
    texts = frames.topics_from_frame(inp, what, repeated=results)
    queries = [Query(q, t) for q, t in texts.items()]
    run = Run._wrap(frames.run_from_frame(inp, what), name="pyterrier") if results else None
    out = stage(queries, run)
    return _carry_columns(pd, frames.run_to_frame(out, texts), inp, results, what)


def _carry_columns(pd: Any, res: Any, inp: Any, results: bool, what: str) -> Any:
    """``res`` with the input's other columns: per query from a topics frame, per (qid, docno) from a
    results frame (documents the input did not have get missing values)."""
    extra = [c for c in inp.columns if c not in OUTPUT_COLUMNS]
    if not extra:
        return res
    keys = ["qid", "docno"] if results else ["qid"]
    side = inp[extra].reset_index(drop=True)
    for k in keys:  # the ids as the output has them (strings), also for an empty frame
        side[k] = pd.Series(frames.frame_ids(inp, k, what), dtype=object)
    if not results:
        side = side.drop_duplicates("qid")
    return res.merge(side, on=keys, how="left", sort=False)


# -- a PyTerrier transformer as a rankstack stage -------------------------------------------------
def from_pyterrier(transformer: Any, name: str | None = None, *, rerank: bool | None = None,
                   docs: Any = None, key: str | None = None) -> PyTerrierStage:
    """``transformer`` (any ``pt.Transformer``) as a rankstack stage; see :class:`PyTerrierStage`."""
    return PyTerrierStage(transformer, name=name, rerank=rerank, docs=docs, key=key)


class PyTerrierStage(Stage):
    """A PyTerrier transformer as a rankstack :class:`~rankstack.stages.base.Stage`.

    ``rerank``:

    * ``None`` (the default) -- as in a PyTerrier pipeline: the transformer gets the incoming run as a
      results frame (``qid, query, docno, score, rank``) when there is one, the topics (``qid, query``)
      when there is not;
    * ``True`` -- a reranker: it needs an incoming run (``first_stage >> stage``);
    * ``False`` -- a retriever: it always gets the topics (an incoming run is not passed on, as
      rankstack's retrievers ignore it).

    Given a run, the output must hold exactly the candidates of each query (a reranker scores exactly
    its candidates); every query asked is in the output (a query without candidates, or one the
    transformer returned nothing for, gets an empty ranking). ``docs`` (``doc id -> Document``) adds
    the candidates' ``title`` and ``text`` columns, which PyTerrier's text rerankers read; a candidate
    without a text is a :class:`StageError` naming it.

    The cache key: a PyTerrier transformer has no content fingerprint, so it is keyed by its identity
    (no stale cache hit, no hit across processes either) unless ``key`` names what it computes (a
    string you change whenever the transformer's output would change).
    """

    _not_in_key: ClassVar[tuple[str, ...]] = ("progress", "docs")

    def __init__(self, transformer: Any, name: str | None = None, rerank: bool | None = None,
                 docs: Any = None, key: str | None = None):
        if not callable(getattr(transformer, "transform", None)):
            raise ConfigError(f"from_pyterrier takes a PyTerrier transformer (an object with .transform(frame)), "
                              f"got {type(transformer).__name__}")
        if rerank not in (None, True, False):
            raise ConfigError(f"rerank={rerank!r}; known: None (as in a PyTerrier pipeline), True (a reranker), "
                              "False (a retriever)")
        self.transformer = transformer
        inner = getattr(transformer, "stage", None)  # a rankstack stage that went through to_pyterrier
        self.name = name or (inner.name if isinstance(inner, Stage) else f"pyterrier:{type(transformer).__name__}")
        self.rerank = rerank
        self.docs = docs
        self.key = key
        self.needs_candidates = rerank is True

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        if self.key is not None:
            cfg["transformer"] = {"key": self.key}
        fp = getattr(self.docs, "fingerprint", None)
        if fp is not None:
            cfg["docs"] = fp() if callable(fp) else fp
        return cfg

    def _frame_of(self, queries: list[Query], run: Run) -> Any:
        data = {q.id: run[q.id] for q in queries}
        df = frames.run_to_frame(data, queries)
        if self.docs is not None:
            texts: list[Document] = []
            for q, d in zip(df["qid"].tolist(), df["docno"].tolist()):
                try:
                    doc = self.docs[d]
                except KeyError:
                    raise StageError(f"{self.name}: no text for document {d!r} (query {q!r}) "
                                     "in the document store") from None
                texts.append(doc if isinstance(doc, Document) else Document(d, str(doc)))
            df["title"] = [t.title for t in texts]
            df["text"] = [t.text for t in texts]
        return df

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        queries = list(queries)
        rerank = run is not None and self.rerank is not False
        if rerank:
            assert run is not None
            absent = [q.id for q in queries if q.id not in run]
            if absent:
                raise StageError(f"{self.name}: the incoming run has no candidates for {len(absent)} of the "
                                 f"{len(queries)} queries ({_first(absent)})")
            inp = self._frame_of(queries, run)
        else:
            inp = frames.topics_to_frame(queries)
        out = self.transformer.transform(inp)
        try:
            data = frames.run_from_frame(out, f"{self.name}'s output")
        except FormatError as e:
            raise StageError(f"{self.name}: the transformer returned a frame rankstack cannot read: {e}") from e
        asked = {q.id for q in queries}
        extra = [q for q in data if q not in asked]
        if extra:
            raise StageError(f"{self.name}: the transformer returned queries it was not asked: {_first(extra)}")
        result: dict[str, dict[str, float]] = {q.id: data.get(q.id, {}) for q in queries}
        stats: dict[str, Any] = {"items": sum(len(v) for v in result.values())}
        if rerank:
            assert run is not None
            for q in queries:
                _check_candidates(self.name, q.id, result[q.id], run[q.id])
            stats["items"] = sum(len(run[q.id]) for q in queries)
            stats["stages"] = list(run.stats.get("stages", []))
            empty = [q.id for q in queries if not run[q.id]]
            if empty:
                stats["queries_without_candidates"] = len(empty)
                warnings.warn(f"{self.name}: {len(empty)} of {len(queries)} queries have no candidates "
                              f"({_first(empty)}); they get empty rankings", UserWarning, stacklevel=3)
        return Run._wrap(result, name=self.name, stats=stats)


def _check_candidates(name: str, qid: str, got: Mapping[str, float], cands: Mapping[str, float]) -> None:
    added = [d for d in got if d not in cands]
    dropped = [d for d in cands if d not in got]
    if added or dropped:
        parts = []
        if added:
            parts.append(f"added {len(added)} document(s) that were not candidates ({_first(added)})")
        if dropped:
            parts.append(f"dropped {len(dropped)} of the {len(cands)} candidates ({_first(dropped)})")
        raise StageError(f"{name}: for query {qid!r} the transformer {' and '.join(parts)}; a reranker scores "
                         "exactly its candidates (cut on the rankstack side: stage % k; or give rerank=False "
                         "for a transformer that retrieves)")


def _first(ids: Sequence[str], n: int = 5) -> str:
    return ", ".join(repr(q) for q in ids[:n]) + (" ..." if len(ids) > n else "")
