"""Stages, the pipeline algebra, and the one contract every reranker implements.

Every retriever and reranker is a ``Stage``: ``stage(queries, run=None) -> Run``. Stages compose:

* ``a >> b``  -- pipeline: b re-ranks (or re-retrieves) what a returns;
* ``a % k``   -- cut every ranked list to its top k;
* ``a + b``   -- CombSUM of the two stages' scores (PyTerrier's linear combination); use
  :class:`Fuse` for RRF, CombMNZ and normalised fusion.

Every ``Run`` a stage returns carries efficiency figures in ``run.stats``: ``wall_s``,
``queries_per_s``, ``items`` (documents scored) and ``items_per_s``; pipelines keep each step's
figures under ``stats["stages"]``.

**Parameters and the cache key.** As in scikit-learn, a stage stores each constructor parameter
under its own name; :meth:`Stage.get_params` reads them back from the constructor's signature and
:meth:`Stage.config` -- the disk cache's key -- is derived from them: live objects stand in by their
fingerprint (an index, a run) or their own ``config()`` (a model, a scorer, a nested stage), so a
parameter cannot be left out of the key by hand. Parameters that do not change the output (a
progress bar) are listed in ``_not_in_key``. :func:`rankstack.testing.check_stage` checks that
changing any parameter changes the key and that a cache hit equals a miss.

**Rerankers** implement one batched hook, :meth:`Reranker.score_batch`, over a
:class:`Candidates` batch; the base class does the candidate lookup (texts from ``docs``), the
shape and NaN checks, the stats and the run, once for all rerankers.

**Construction.** :meth:`Stage.from_context` builds a stage from spec parameters and a build
context (collection, indexes, cache); :func:`rankstack.stages.build.build_stage` is the one place a
spec becomes a stage.

Outputs can be cached on disk (``stage.cached(dir)`` or ``Cached(stage, dir)``), keyed by the
stage's configuration and a fingerprint of its inputs (queries and the incoming run).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rankstack.data.coerce import as_queries, as_run
from rankstack.data.records import Document, Query, Run, queries_fingerprint
from rankstack.errors import ConfigError, StageError
from rankstack.stages import fusion as _fusion

__all__ = ["Stage", "Pipeline", "Cutoff", "Cached", "Candidates", "Reranker", "FromRun", "Fuse", "key_value"]


def key_value(value: Any) -> Any:
    """A JSON-able stand-in for a parameter value in a cache key.

    Plain values stay as they are; a live object stands in by its ``fingerprint`` (attribute or
    method: an index, a run, a document store) or its ``config()`` (a stage, a model, a scorer, a
    backend). Anything else is keyed by its identity, so it can never give a stale cache hit (the
    contract check reports it: give the class a ``fingerprint`` or a ``config()``).
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (os.PathLike,)):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [key_value(v) for v in value]
    if isinstance(value, Mapping) and not hasattr(value, "fingerprint"):
        if len(value) > 10_000:  # a big mapping of texts: by content, without building a huge key
            h = hashlib.sha256()
            for k in sorted(value, key=str):
                h.update(json.dumps([str(k), key_value(value[k])], default=str).encode())
            return {"mapping_sha256": h.hexdigest()[:32], "n": len(value)}
        return {str(k): key_value(v) for k, v in value.items()}
    fp = getattr(value, "fingerprint", None)
    if fp is not None:
        return {"fingerprint": fp() if callable(fp) else fp}
    cfg = getattr(value, "config", None)
    if callable(cfg):
        return key_value(cfg())
    if isinstance(value, Document):
        return [value.id, value.title, value.text]
    return f"<unkeyed {type(value).__qualname__} at {id(value):#x}>"


class Stage:
    """Base class. Subclasses implement :meth:`transform` (rerankers: :meth:`Reranker.score_batch`)."""

    #: a short name used in reports and run tags
    name: str = "stage"
    #: ``True`` if the stage needs an incoming candidate run (a reranker)
    needs_candidates: bool = False
    #: ``True`` if :meth:`from_context` should pass the collection's documents as ``docs``
    reads_docs: ClassVar[bool] = False
    #: constructor parameters that do not change the output (left out of the cache key)
    _not_in_key: ClassVar[tuple[str, ...]] = ("progress",)
    #: spec parameters :meth:`from_context` takes besides the constructor's
    spec_params: ClassVar[tuple[str, ...]] = ()

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        raise NotImplementedError

    # -- parameters, derived from the constructor (scikit-learn's get_params) ------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in list(sig.parameters.values())[1:]
                if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]

    def get_params(self) -> dict[str, Any]:
        """Every constructor parameter, read back from the attribute of the same name."""
        out = {}
        for name in self._param_names():
            if not hasattr(self, name):
                raise StageError(f"{type(self).__qualname__} stores no attribute {name!r} for its constructor "
                                 f"parameter {name!r}; the cache key is derived from it")
            out[name] = getattr(self, name)
        return out

    def config(self) -> dict[str, Any]:
        """Everything that changes this stage's output, derived from :meth:`get_params`; it keys the cache."""
        params = {k: key_value(v) for k, v in self.get_params().items() if k not in self._not_in_key}
        return {"class": type(self).__qualname__, "name": self.name, **params}

    # -- construction from a spec ----------------------------------------------------------------
    @classmethod
    def from_context(cls, ctx: Any, **params: Any) -> Stage:
        """Build from spec parameters and a build context (see :mod:`rankstack.stages.build`).

        The default passes the context's documents as ``docs`` to stages that read texts
        (``reads_docs``); stages that need an index or another artifact override this.
        """
        if cls.reads_docs and "docs" not in params:
            params["docs"] = ctx.docs
        return cls(**params)

    # -- calling with timing -------------------------------------------------------------
    def __call__(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        queries, run = _coerce(queries, run)
        if self.needs_candidates and run is None:
            raise StageError(f"{self.name} re-ranks a candidate run; give it one (e.g. bm25 >> {self.name})")
        t0 = time.perf_counter()
        out = self.transform(queries, run)
        wall = time.perf_counter() - t0
        items = out.stats.get("items")
        if items is None:
            items = run.num_items() if (run is not None and self.needs_candidates) else out.num_items()
        out.stats.update(_efficiency(wall, len(queries), int(items)))
        out.stats.setdefault("stages", [])
        if not out.stats["stages"] or out.stats["stages"][-1].get("name") != self.name:
            out.stats["stages"].append({"name": self.name, **_efficiency(wall, len(queries), int(items))})
        if not out.name or out.name == "run":
            out.name = self.name
        return out

    # -- algebra -------------------------------------------------------------------------
    def __rshift__(self, other: Stage) -> Pipeline:
        return Pipeline([self, other])

    def __mod__(self, k: int) -> Pipeline:
        return Pipeline([self, Cutoff(k)])

    def __add__(self, other: Stage) -> Stage:
        return Fuse([self, other], method="combsum", norm=None)

    def cached(self, cache_dir: str | os.PathLike) -> Cached:
        return Cached(self, cache_dir)

    def __repr__(self) -> str:
        cfg = {k: v for k, v in self.config().items() if k != "class"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"


def _coerce(queries: Any, run: Any) -> tuple[list[Query], Run | None]:
    """Queries and run as rankstack records: ir_datasets records (``GenericQuery``, ``ScoredDoc``, a
    dataset with ``queries_iter()``/``scoreddocs_iter()``), ``{qid: text}`` and nested mappings are read by
    :mod:`rankstack.data.coerce`; rankstack's own records pass through unchanged."""
    queries = as_queries(queries if not isinstance(queries, tuple) else list(queries))
    if run is not None and not isinstance(run, Run):
        run = as_run(run)
    return list(queries), run


def _efficiency(wall: float, n_queries: int, items: int) -> dict[str, float]:
    wall = max(wall, 1e-9)
    return {
        "wall_s": wall,
        "queries": n_queries,
        "queries_per_s": n_queries / wall,
        "items": items,
        "items_per_s": items / wall,
    }


class Pipeline(Stage):
    """Stages applied left to right; each gets the previous stage's run."""

    def __init__(self, stages: Sequence[Stage]):
        flat: list[Stage] = []
        for s in stages:
            flat.extend(s.stages if isinstance(s, Pipeline) else [s])
        if not flat:
            raise ConfigError("a pipeline needs at least one stage")
        self.stages = flat
        self.name = " >> ".join(s.name for s in flat)
        self.needs_candidates = flat[0].needs_candidates

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        steps: list[dict[str, Any]] = []
        for stage in self.stages:
            run = stage(queries, run)
            steps.extend(run.stats.get("stages", [])[-1:])
            run.stats["stages"] = list(steps)
        assert run is not None
        run.stats["items"] = sum(int(s.get("items", 0)) for s in steps)
        return run

    def __call__(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        out = super().__call__(queries, run)
        # the pipeline's own totals are in stats; the per-step list must not gain the pipeline itself
        out.stats["stages"] = [s for s in out.stats["stages"] if s.get("name") != self.name]
        out.name = self.name
        return out

    def __mod__(self, k: int) -> Pipeline:
        return Pipeline([*self.stages, Cutoff(k)])


class Cutoff(Stage):
    """Keep the top ``k`` of each ranked list."""

    needs_candidates = True

    def __init__(self, k: int):
        if int(k) < 0:
            raise ConfigError(f"cutoff must be >= 0, got {k}")
        self.k = int(k)
        self.name = f"%{self.k}"

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        assert run is not None
        out = run.cut(self.k)
        out.name = run.name
        out.stats = {"stages": list(run.stats.get("stages", [])), "items": 0}
        return out


class Cached(Stage):
    """Caches a stage's output on disk, keyed by its config and input fingerprints."""

    def __init__(self, stage: Stage, cache_dir: str | os.PathLike):
        self.stage = stage
        self.cache_dir = Path(cache_dir)
        self.name = stage.name
        self.needs_candidates = stage.needs_candidates
        self.hits = 0
        self.misses = 0

    def config(self) -> dict[str, Any]:
        return self.stage.config()

    def key(self, queries: Sequence[Query], run: Run | None) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.stage.config(), sort_keys=True, default=str).encode())
        h.update(queries_fingerprint(queries).encode())
        h.update((run.fingerprint() if run is not None else "-").encode())
        return h.hexdigest()[:32]

    def __call__(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        queries, run = _coerce(queries, run)
        key = self.key(queries, run)
        path = self.cache_dir / f"{key}.json"
        if path.exists():
            try:
                blob = json.loads(path.read_text())
                out = Run(blob["run"], name=blob["name"], stats=blob["stats"])
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
                warnings.warn(f"{path}: a damaged cache entry ({type(e).__name__}: {e}); computing it again",
                              UserWarning, stacklevel=2)
            else:
                self.hits += 1
                out.stats["cache"] = "hit"
                return out
        self.misses += 1
        out = self.stage(queries, run)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"name": out.name, "stats": out.stats, "run": out.to_dict()}, default=float))
        os.replace(tmp, path)
        out.stats["cache"] = "miss"
        return out

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        return self(queries, run)


@dataclass
class Candidates:
    """One batch of queries with their candidates, as a reranker's :meth:`Reranker.score_batch`
    receives it: ``queries[i]`` with ``doc_ids[i]`` in incoming rank order, their incoming
    ``scores[i]`` (for interpolation) and, when the reranker reads texts, ``docs[i]`` (the
    :class:`Document` of each id). ``stats`` is the hook's place for figures of its own (pairs,
    tokens, LLM calls); they end up in ``run.stats``."""

    queries: list[Query]
    doc_ids: list[list[str]]
    docs: list[list[Document]] | None = None
    scores: list[np.ndarray] | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def num_candidates(self) -> int:
        return sum(len(ids) for ids in self.doc_ids)


class Reranker(Stage):
    """A stage that scores each query's candidates.

    Subclasses implement :meth:`score_batch` (all queries' candidates at once: for batching pairs
    across queries, encoding each distinct document once, LLM concurrency) or, for a scorer that
    works one query at a time, :meth:`score`; each has a default in terms of the other.

    ``docs`` is anything that maps a document id to a :class:`Document` (a ``DocStore``, a dict).
    A candidate whose text is missing raises :class:`StageError` naming the query and document.
    Every query asked is in the batch, a query without candidates with an empty list (the hook
    returns an empty array for it). Ties in the new scores are ordered as trec_eval orders them
    (doc id descending).
    """

    needs_candidates = True
    reads_docs: ClassVar[bool] = True
    _not_in_key: ClassVar[tuple[str, ...]] = ("progress", "docs")

    def __init__(self, docs: Any = None):
        self.docs = docs

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        fp = getattr(self.docs, "fingerprint", None)  # documents that know their content hash
        if fp is not None:
            cfg["docs"] = fp() if callable(fp) else fp
        return cfg

    # -- the hook ----------------------------------------------------------------------------
    def score_batch(self, batch: Candidates) -> list[np.ndarray]:
        """One score array per query of ``batch`` (aligned with ``batch.doc_ids[i]``)."""
        if type(self).score is Reranker.score:
            raise NotImplementedError(f"{type(self).__qualname__} implements neither score_batch nor score")
        docs = batch.docs if batch.docs is not None else [[Document(d, "") for d in ids] for ids in batch.doc_ids]
        return [self.score(q, ds) if ds else np.empty(0) for q, ds in zip(batch.queries, docs)]

    def score(self, query: Query, docs: list[Document]) -> np.ndarray:
        """Scores of one query's candidate documents (a batch of one)."""
        if type(self).score_batch is Reranker.score_batch:
            raise NotImplementedError(f"{type(self).__qualname__} implements neither score_batch nor score")
        batch = Candidates([query], [[d.id for d in docs]], [list(docs)] if self.reads_docs else None)
        return self.score_batch(batch)[0]

    # -- lookup, shapes, stats: once for every reranker --------------------------------------
    def documents(self, query: Query, doc_ids: Sequence[str]) -> list[Document]:
        if self.docs is None:
            raise StageError(f"{self.name} needs document texts: pass docs=DocStore(...) or a dict")
        out = []
        for d in doc_ids:
            try:
                doc = self.docs[d]
            except KeyError:
                raise StageError(
                    f"{self.name}: no text for document {d!r} (query {query.id!r}) in the document store"
                ) from None
            out.append(doc if isinstance(doc, Document) else Document(d, str(doc)))
        return out

    def candidates(self, queries: Sequence[Query], run: Run) -> Candidates:
        """The batch of ``queries`` with their candidates in ``run`` (texts looked up if needed)."""
        qs = list(queries)
        ranked = [run.ranked(q.id) for q in qs]
        ids = [[d for d, _ in r] for r in ranked]
        scores = [np.fromiter((s for _, s in r), dtype=np.float64, count=len(r)) for r in ranked]
        docs = [self.documents(q, i) if i else [] for q, i in zip(qs, ids)] if self.reads_docs else None
        return Candidates(qs, ids, docs, scores)

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        if run is None:
            raise StageError(f"{self.name} is a reranker: it needs an incoming run of candidates "
                             "(first_stage >> reranker, or reranker(queries, run))")
        queries = list(queries)
        absent = [q.id for q in queries if q.id not in run]
        if absent:  # the incoming run cannot answer these: never silent
            raise StageError(
                f"{self.name}: the incoming run has no candidates for {len(absent)} of the {len(queries)} queries "
                f"({_first_ids(absent)}); rerank only the queries it has, or give it FromRun(run, missing='warn') "
                "to rank them as empty")
        batch = self.candidates(queries, run)
        scores = self.score_batch(batch) if batch.num_candidates else [np.empty(0) for _ in batch.queries]
        if len(scores) != len(batch):
            raise StageError(f"{self.name}: score_batch returned {len(scores)} score lists for {len(batch)} queries")
        out: dict[str, dict[str, float]] = {q.id: {} for q in queries}
        for q, ids, s in zip(batch.queries, batch.doc_ids, scores):
            s = np.asarray(s, dtype=np.float64)
            if s.shape != (len(ids),):
                raise StageError(f"{self.name}: {s.shape} scores for {len(ids)} candidates of query {q.id!r}")
            if np.isnan(s).any():
                bad = [ids[i] for i in np.flatnonzero(np.isnan(s))[:3]]
                raise StageError(f"{self.name}: NaN scores for query {q.id!r} (documents {bad})")
            out[q.id] = dict(zip(ids, s.tolist()))
        stats = {**batch.stats, "items": batch.num_candidates, "stages": list(run.stats.get("stages", []))}
        empty = [q.id for q, ids in zip(batch.queries, batch.doc_ids) if not ids]
        if empty:  # never silent: counted in the stats and said once
            stats["queries_without_candidates"] = len(empty)
            warnings.warn(f"{self.name}: {len(empty)} of {len(batch)} queries have no candidates "
                          f"({_first_ids(empty)}); they get empty rankings", UserWarning, stacklevel=3)
        return Run._wrap(out, name=self.name, stats=stats)


class FromRun(Stage):
    """A fixed run as a stage (e.g. a shipped BM25 run file) -- the first stage of a pipeline."""

    spec_params = ("path",)
    _not_in_key: ClassVar[tuple[str, ...]] = ("progress", "missing")

    def __init__(self, run: Run, name: str | None = None, source: str | None = None, missing: str = "error"):
        if missing not in ("error", "warn"):
            raise ConfigError(f"run stage: missing={missing!r}; known: 'error' (the default: a query the run does "
                              "not answer is an error) or 'warn' (it gets an empty ranking, with a warning)")
        self.run = run
        self.name = name or run.name
        self.source = source
        self.missing = missing

    @classmethod
    def from_context(cls, ctx: Any, **params: Any) -> FromRun:
        """``{stage = "run", run = NAME}`` (a run the collection ships) or ``{stage = "run", path = FILE}``."""
        from rankstack.data.formats import read_run

        unknown = sorted(set(params) - {"run", "path", "name", "missing"})
        if unknown:
            raise ConfigError(f"unknown run-stage parameter(s) {unknown}; known: run, path, name, missing")
        if "run" in params:
            coll = ctx.collection
            runs = coll.meta.get("runs", {})
            if params["run"] not in runs:
                raise ConfigError(f"collection {coll.name!r} ships no run {params['run']!r}")
            path = runs[params["run"]]
        elif "path" in params:
            path = params["path"]
        else:
            raise ConfigError("a run stage needs 'run' (a shipped run's name) or 'path'")
        run = read_run(path)
        run.name = params.get("name", Path(path).stem)
        return cls(run, name=run.name, source=str(path), missing=params.get("missing", "error"))

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        queries = list(queries)
        absent = [q.id for q in queries if q.id not in self.run]
        stats: dict[str, Any] = {"items": 0}
        if absent:  # a query the run does not answer: an error by default, never silent
            src = self.source or ""
            where = f"{self.name!r}" + (f" ({src})" if ("/" in src or "." in src) else "")
            msg = (f"run {where} has no ranking for {len(absent)} of the {len(queries)} queries asked "
                   f"({_first_ids(absent)})")
            if self.missing == "error":
                raise StageError(msg + "; to give them empty rankings, set missing = \"warn\" on the run stage "
                                 "(FromRun(..., missing='warn'))")
            warnings.warn(msg + "; they get empty rankings", UserWarning, stacklevel=3)
            stats["queries_not_in_run"] = len(absent)
        data = {q.id: dict(self.run.get(q.id, {})) for q in queries}
        return Run._wrap(data, name=self.name, stats=stats)


def _first_ids(ids: Sequence[str], n: int = 5) -> str:
    return ", ".join(repr(q) for q in ids[:n]) + (" ..." if len(ids) > n else "")


class Fuse(Stage):
    """Fusion of several stages (or fixed runs) as one stage: each input gets the same queries (and
    the incoming run, for rerankers), their outputs are fused with :func:`fuse_runs`.

    ``stage_a + stage_b`` is ``Fuse([a, b], method="combsum", norm=None)``.
    """

    spec_params = ("pipelines",)

    def __init__(
        self,
        stages: Sequence[Stage | Run],
        method: str = "rrf",
        norm: str | None = None,
        weights: Sequence[float] | None = None,
        rrf_k: float = 60,
        depth: int | None = None,
    ):
        flat: list[Stage] = []
        for s in stages:
            if (
                isinstance(s, Fuse)
                and s.method == method == "combsum"
                and s.norm is None
                and s.weights is None
                and norm is None
                and weights is None
            ):
                flat.extend(s.stages)  # (a + b) + c -> one CombSUM of three
            elif isinstance(s, Stage):
                flat.append(s)
            elif isinstance(s, Mapping):
                # fusing runs that answer different queries is fusion's normal case: warned, not an error
                flat.append(FromRun(s if isinstance(s, Run) else Run(s), missing="warn"))
            else:
                raise TypeError(f"Fuse takes stages or runs, got {type(s).__name__}")
        _fusion._check(method, norm, weights, len(flat))
        self.stages = flat
        self.method = method
        self.norm = norm
        self.weights = list(weights) if weights is not None else None
        self.rrf_k = rrf_k
        self.depth = depth
        self.needs_candidates = any(s.needs_candidates for s in flat)
        self.name = f"{method}({', '.join(s.name for s in flat)})"

    @classmethod
    def from_context(cls, ctx: Any, **params: Any) -> Fuse:
        """In an experiment: ``{stage = "fuse", pipelines = ["bm25", "dense"], method = "rrf",
        depth = 100}`` fuses the runs of earlier pipelines (each cut to ``depth`` if given)."""
        names = params.pop("pipelines", None)
        if not names:
            raise ConfigError("a fuse stage needs 'pipelines' (names of earlier pipelines)")
        runs = getattr(ctx, "runs", {})
        missing = [n for n in names if n not in runs]
        if missing:
            raise ConfigError(f"fuse refers to {missing}, which must be earlier pipelines")
        depth = params.pop("depth", None)  # fuse only each run's top-`depth` (e.g. the reranked depth)
        picked = {n: runs[n] if depth is None else runs[n].cut(int(depth)) for n in names}
        return cls([FromRun(r, name=n, source=r.fingerprint(), missing="warn") for n, r in picked.items()],
                   **params)

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        queries = list(queries)
        runs = [s(queries, run) for s in self.stages]
        out = _fusion.fuse_runs(runs, self.method, self.norm, self.weights, self.rrf_k, self.depth, name=self.name)
        # every query asked for appears, even when no input returned anything for it
        for q in queries:
            out.to_dict().setdefault(q.id, {})
        out.stats["items"] = sum(int(r.stats.get("items", r.num_items())) for r in runs)
        out.stats["stages"] = [st for r in runs for st in r.stats.get("stages", [])[-1:]]
        return out
