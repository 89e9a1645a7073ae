"""Stages and the pipeline algebra.

Every retriever and reranker is a ``Stage``: ``stage(queries, run=None) -> Run``. Stages compose:

* ``a >> b``  -- pipeline: b re-ranks (or re-retrieves) what a returns;
* ``a % k``   -- cut every ranked list to its top k;
* ``a + b``   -- CombSUM of the two stages' scores (PyTerrier's linear combination); use
  :class:`rankstack.stages.fusion.Fuse` for RRF, CombMNZ and normalised fusion.

Every ``Run`` a stage returns carries efficiency figures in ``run.stats``: ``wall_s``,
``queries_per_s``, ``items`` (documents scored) and ``items_per_s``; pipelines keep each step's
figures under ``stats["stages"]``.

Outputs can be cached on disk (``stage.cached(dir)`` or ``Cached(stage, dir)``), keyed by the
stage's configuration and a fingerprint of its inputs (queries and the incoming run).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query, Run, queries_fingerprint


class StageError(RuntimeError):
    """A stage cannot do what it was asked (bad input, missing text, missing dependency)."""


class Stage:
    """Base class. Subclasses implement :meth:`transform` and :meth:`config`."""

    #: a short name used in reports and run tags
    name: str = "stage"
    #: ``True`` if the stage needs an incoming candidate run (a reranker)
    needs_candidates: bool = False

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Everything that changes this stage's output; it keys the cache."""
        return {"class": type(self).__qualname__, "name": self.name}

    # -- calling with timing -------------------------------------------------------------
    def __call__(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        queries = list(queries)
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
        from rankstack.stages.fusion import Fuse

        return Fuse([self, other], method="combsum", norm=None)

    def cached(self, cache_dir: str | os.PathLike) -> Cached:
        return Cached(self, cache_dir)

    def __repr__(self) -> str:
        cfg = {k: v for k, v in self.config().items() if k != "class"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"


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
            raise ValueError("a pipeline needs at least one stage")
        self.stages = flat
        self.name = " >> ".join(s.name for s in flat)
        self.needs_candidates = flat[0].needs_candidates

    def config(self) -> dict[str, Any]:
        return {"class": "Pipeline", "stages": [s.config() for s in self.stages]}

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
            raise ValueError(f"cutoff must be >= 0, got {k}")
        self.k = int(k)
        self.name = f"%{self.k}"

    def config(self) -> dict[str, Any]:
        return {"class": "Cutoff", "k": self.k}

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
        queries = list(queries)
        key = self.key(queries, run)
        path = self.cache_dir / f"{key}.json"
        if path.exists():
            self.hits += 1
            blob = json.loads(path.read_text())
            out = Run(blob["run"], name=blob["name"], stats=blob["stats"])
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


class Reranker(Stage):
    """A stage that scores each query's candidates. Subclasses implement :meth:`score`.

    ``docs`` is anything that maps a document id to a :class:`Document` (a ``DocStore``, a dict).
    A candidate whose text is missing raises :class:`StageError` naming the query and document.
    Ties in the new scores are ordered as trec_eval orders them (doc id descending).
    """

    needs_candidates = True

    def __init__(self, docs: Any = None):
        self.docs = docs

    def score(self, query: Query, docs: list[Document]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

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

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        assert run is not None
        out: dict[str, dict[str, float]] = {}
        items = 0
        for q in queries:
            cands = run.ranked(q.id)
            if not cands:
                out[q.id] = {}
                continue
            ids = [d for d, _ in cands]
            scores = np.asarray(self.score(q, self.documents(q, ids)), dtype=np.float64)
            if scores.shape != (len(ids),):
                raise StageError(f"{self.name}: returned {scores.shape} scores for {len(ids)} candidates")
            out[q.id] = dict(zip(ids, scores.tolist()))
            items += len(ids)
        return Run._wrap(out, name=self.name, stats={"items": items, "stages": list(run.stats.get("stages", []))})


class FromRun(Stage):
    """A fixed run as a stage (e.g. a shipped BM25 run file) -- the first stage of a pipeline."""

    def __init__(self, run: Run, name: str | None = None, source: str | None = None):
        self.run = run
        self.name = name or run.name
        self.source = source

    def config(self) -> dict[str, Any]:
        return {"class": "FromRun", "name": self.name, "source": self.source or self.run.fingerprint()}

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        data = {q.id: dict(self.run.get(q.id, {})) for q in queries}
        return Run._wrap(data, name=self.name, stats={"items": 0})

