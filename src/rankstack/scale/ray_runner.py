"""rankstack's stages on Ray (issue #21): the same artifacts and runs as one process, across workers.

* :func:`encode_corpus_ray` / :func:`build_dense_index_ray` -- corpus encoding on a Ray Data actor
  pool. One dataset row per shard of :func:`rankstack.index.dense.encode_corpus` (same shard size,
  same texts per shard), so each worker encodes exactly what the local path encodes and the vectors
  are bit-identical. Each worker writes its shard file (atomically) when it finishes it; a killed job
  restarts from the finished shards; the shards are assembled into the same :class:`DenseIndex`.
* :func:`rerank_ray` -- any reranker stage over (query, candidates) rows; returns the same
  :class:`~rankstack.data.records.Run` as ``stage(queries, run)``.
* :func:`mine_negatives_ray` -- hard negatives for training: candidates (and teacher scores) on Ray,
  the seeded per-query sampling of :class:`~rankstack.train.negatives.NegativeMiner` in process.
* :func:`evaluate_ray` -- per-query evaluation over query chunks on Ray tasks; the same
  :class:`~rankstack.measures.Evaluation` as :func:`rankstack.measures.evaluate`.
* :class:`RayStage` -- any stage of a pipeline (an experiment's ``[experiment] ray``) on an actor
  pool, each worker rebuilding it from its spec in a context it opens itself.
* :func:`search_ray` -- retrieval pipelines (BM25, dense, fused) over an index directory that every
  worker opens itself (memory-mapped); the same run as the local pipeline.
* :class:`ShardedDenseIndex` -- exact dense search over index shards, each searched where it lives
  (one Ray actor per shard, or in process), top-k merged exactly (see :func:`merge_topk`).

Workers never receive live models: they rebuild the encoder from its *spec* (the
:class:`~rankstack.encoders.runtime.BiEncoder` keywords: ``{"model": PATH, "backend": ..., ...}``)
and a reranker from its stage spec (``{"stage": "cross-encoder", "model": PATH, ...}``) through
:func:`rankstack.stages.build.build_stage`, once per actor.

Ray is imported only when one of these functions runs (``pip install 'rankstack[ray]'``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query, Run, docs_fingerprint
from rankstack.errors import ConfigError, StageError
from rankstack.optional import require
from rankstack.stages.base import Stage

__all__ = [
    "init_ray",
    "encode_corpus_ray",
    "build_dense_index_ray",
    "rerank_ray",
    "search_ray",
    "mine_negatives_ray",
    "evaluate_ray",
    "RayStage",
    "merge_topk",
    "ShardedDenseIndex",
    "exact_search",
]


def _ray() -> Any:
    return require("ray", "ray")


def init_ray(address: str | None = None, num_cpus: int | None = None, **kwargs: Any) -> Any:
    """Start a local cluster (``address=None``) or connect to ``address``; a no-op when already up."""
    ray = _ray()
    if not ray.is_initialized():
        if address:
            ray.init(address=address, **kwargs)
        else:
            kwargs.setdefault("include_dashboard", False)
            ray.init(num_cpus=num_cpus, **kwargs)
    return ray


def _quiet(progress: bool) -> None:
    ray = _ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = bool(progress)
    ctx.print_on_execution_start = bool(progress)


def _check_workers(workers: int | None, cpus: float) -> None:
    if workers is not None and int(workers) < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if cpus <= 0:
        raise ConfigError(f"cpus_per_worker must be > 0, got {cpus}")


def _n_workers(ray: Any, workers: int | None, cpus: float) -> int:
    """``workers``, or (``None``) as many as the cluster's CPUs hold."""
    if workers is not None:
        return int(workers)
    return max(1, int(float(ray.cluster_resources().get("CPU", 1)) // cpus))


def _build_encoder(spec: Mapping[str, Any]) -> Any:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"an encoder spec is a table of BiEncoder keywords ({{'model': PATH, ...}}), "
                          f"got {type(spec).__name__}")
    from rankstack.encoders.runtime import BiEncoder

    return BiEncoder(**dict(spec))


def _worker_threads(threads: int) -> None:
    """A worker's share of the machine: ``threads`` compute threads for torch and for every model the
    worker builds (their runtime reads ``OMP_NUM_THREADS``, see ``encoders.runtime.default_threads``;
    without it each model took every CPU of the machine, and two workers oversubscribed two cores)."""
    os.environ["OMP_NUM_THREADS"] = str(max(1, int(threads)))
    try:
        import torch

        torch.set_num_threads(max(1, int(threads)))
    except ImportError:  # BM25 alone needs no torch
        pass


# -- corpus encoding -------------------------------------------------------------------------------
class _EncodeWorker:
    """One per actor: builds the encoder from its spec once, then encodes shard rows."""

    def __init__(self, spec: dict[str, Any], out_dir: str, metric: str, threads: int,
                 fault: dict[str, Any] | None = None):
        _worker_threads(threads)
        self.encoder = _build_encoder(spec)
        self.out = Path(out_dir) / "shards"
        self.metric = metric
        self.fault = fault

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import warnings

        from rankstack.index.dense import _atomic_save, _normalise

        shards, counts, truncated, secs = [], [], [], []
        for s, texts in zip(batch["shard"], batch["texts"]):
            s = int(s)
            if self.fault is not None and s == int(self.fault["shard"]):
                marker = Path(self.fault["marker"])
                if not marker.exists():  # a crash the first time this shard is reached (tests)
                    marker.write_text(f"killed at shard {s} in pid {os.getpid()}\n")
                    os._exit(1)
            t0 = time.perf_counter()
            texts = [str(t) for t in texts]
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                emb = self.encoder.encode(texts)
            n_trunc = sum(int(str(x.message).split(" ", 1)[0]) for x in w if "truncated" in str(x.message))
            if self.metric == "cosine":
                emb = _normalise(emb)
            _atomic_save(self.out / f"{s:05d}.npy", emb.astype(np.float32))
            if self.fault is not None and self.fault.get("log"):
                with open(self.fault["log"], "a") as f:
                    f.write(f"{s}\n")
            shards.append(s)
            counts.append(len(texts))
            truncated.append(n_trunc)
            secs.append(time.perf_counter() - t0)
        return {"shard": np.array(shards, np.int64), "n": np.array(counts, np.int64),
                "truncated": np.array(truncated, np.int64), "seconds": np.array(secs, np.float64),
                "pid": np.full(len(shards), os.getpid(), np.int64)}


class _SpecEncoder:
    """Stands in for the encoder on the driver: its ``config()`` and ``max_length``, no model loaded."""

    def __init__(self, spec: Mapping[str, Any]):
        enc = _build_encoder(spec)  # reads the model's configuration files only
        self._config, self.max_length = enc.config(), enc.max_length

    def config(self) -> dict[str, Any]:
        return self._config

    def encode(self, texts: Sequence[str], **_: Any) -> np.ndarray:  # pragma: no cover - never called
        raise StageError("the driver does not encode: the Ray workers do")


def encode_corpus_ray(
    docs: Mapping[str, Any] | Iterable[Document],
    out_dir: str | os.PathLike,
    encoder: Mapping[str, Any],
    *,
    shard_size: int = 1024,
    metric: str = "cosine",
    workers: int | None = 2,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    limit: int | None = None,
    progress: bool = False,
    fault: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Encode ``docs`` into ``out_dir`` exactly as :func:`rankstack.index.dense.encode_corpus` does
    (same ``meta.json``, ``ids.txt``, ``shards/NNNNN.npy``, manifest), on a pool of ``workers`` Ray
    actors (``None``: as many as the cluster's CPUs hold, ``cpus_per_worker`` each; ``gpus_per_worker``
    for GPU workers), each loading the model (``encoder``: its spec) once.

    Shards already on disk are kept (resumable; the directory's ids, model and shard size are
    checked as the local path checks them); ``limit`` encodes at most that many new shards. ``fault``
    is a test hook: ``{"shard": S, "marker": FILE}`` kills the worker (``os._exit``) the first time it
    reaches shard ``S``; Ray restarts the actor and retries the shard.

    Returns ``{"complete", "new_shards", "docs", "wall_s", "docs_per_s", "workers", "pids"}``.
    """
    from rankstack.index.dense import _as_docs
    from rankstack.index.dense import encode_corpus as local_encode

    _check_workers(workers, cpus_per_worker)
    if int(shard_size) < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    ray = init_ray()
    workers = _n_workers(ray, workers, cpus_per_worker)
    out = Path(out_dir)
    doc_list = _as_docs(docs)
    stand_in = _SpecEncoder(encoder)
    # meta.json / ids.txt written or checked by the local code itself (limit=0: no shard encoded)
    local_encode(doc_list, out, stand_in, shard_size=shard_size, metric=metric, limit=0, progress=False)
    n_shards = (len(doc_list) + shard_size - 1) // shard_size
    todo = [s for s in range(n_shards) if not (out / "shards" / f"{s:05d}.npy").exists()]
    if limit is not None:
        todo = todo[: max(0, int(limit))]
    t0 = time.perf_counter()
    pids: set[int] = set()
    n_docs = truncated = 0
    if todo:
        _quiet(progress)
        rows = [{"shard": s, "texts": [d.contents for d in doc_list[s * shard_size:(s + 1) * shard_size]]}
                for s in todo]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        res = ds.map_batches(
            _EncodeWorker,
            fn_constructor_kwargs={"spec": dict(encoder), "out_dir": str(out), "metric": metric,
                                   "threads": max(1, int(cpus_per_worker)), "fault": fault},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=int(workers)),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None,
            batch_format="numpy",
        )  # Ray Data restarts a dead actor and retries its task (max_restarts = max_task_retries = -1)
        for r in res.iter_rows():
            pids.add(int(r["pid"]))
            n_docs += int(r["n"])
            truncated += int(r["truncated"])
    wall = time.perf_counter() - t0
    if truncated:
        import warnings

        warnings.warn(f"{truncated} of {len(doc_list)} texts truncated to {stand_in.max_length} tokens",
                      stacklevel=2)
    # every shard there: the local code writes the manifest of the finished encoding
    complete = local_encode(doc_list, out, stand_in, shard_size=shard_size, metric=metric, limit=0,
                            progress=False)
    return {"complete": complete, "new_shards": len(todo), "docs": n_docs, "wall_s": wall,
            "docs_per_s": n_docs / wall if wall > 0 else 0.0, "workers": int(workers), "pids": sorted(pids)}


def build_dense_index_ray(
    docs: Mapping[str, Any] | Iterable[Document],
    out_dir: str | os.PathLike,
    encoder: Mapping[str, Any],
    *,
    kind: str = "flat",
    m: int = 32,
    ef_construction: int = 200,
    pq_m: int = 48,
    shard_size: int = 1024,
    metric: str = "cosine",
    **ray_options: Any,
) -> Any:
    """:meth:`rankstack.index.dense.DenseIndex.build` with the encoding on Ray: the same index
    (ids, vectors, meta) in ``out_dir`` (encodings in ``out_dir/encodings``, resumable)."""
    from rankstack.index.dense import DenseIndex, _as_docs, load_embeddings

    doc_list = _as_docs(docs)
    enc_dir = Path(out_dir) / "encodings"
    stats = encode_corpus_ray(doc_list, enc_dir, encoder, shard_size=shard_size, metric=metric, **ray_options)
    if not stats["complete"]:
        raise StageError(f"{enc_dir}: the encoding is not finished ({stats['new_shards']} new shards this run); "
                         "run again to resume")
    ids, emb = load_embeddings(enc_dir)
    meta = {"model": _SpecEncoder(encoder).config(), "metric": metric, "docs": docs_fingerprint(doc_list)}
    index = DenseIndex.from_embeddings(ids, emb, kind=kind, m=m, ef_construction=ef_construction, pq_m=pq_m,
                                       meta=meta)
    index.save(out_dir)
    index.ray_stats = stats
    return index


# -- reranking -------------------------------------------------------------------------------------
class _RerankWorker:
    """One per actor: builds the reranker from its spec once; each batch is a few queries' rows."""

    def __init__(self, spec: dict[str, Any], threads: int, index_dir: str | None):
        from rankstack.stages.build import BuildContext, build_stage

        _worker_threads(threads)
        self.docs: dict[str, Document] = {}
        ctx = BuildContext(index_dir=Path(index_dir) if index_dir else None, progress=False, _docs=self.docs)
        self.stage = build_stage(spec, ctx, where="ray rerank")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.docs.clear()
        queries, data = [], {}
        for qid, qtext, ids, scores, titles, texts in zip(batch["qid"], batch["qtext"], batch["doc_ids"],
                                                          batch["scores"], batch["titles"], batch["texts"]):
            qid = str(qid)
            queries.append(Query(qid, str(qtext)))
            ids = [str(d) for d in ids]
            data[qid] = dict(zip(ids, (float(s) for s in scores)))
            for d, ti, tx in zip(ids, titles, texts):
                self.docs[d] = Document(d, str(tx), str(ti))
        t0 = time.perf_counter()
        out = self.stage.transform(queries, Run(data))
        return _pack(queries, out, time.perf_counter() - t0)


def _pack(queries: Sequence[Query], out: Run, wall: float) -> dict[str, np.ndarray]:
    """A worker's answer for its batch: one row per query (ranked ids and scores as object arrays)."""
    qids, dids, scores = [], [], []
    for q in queries:
        r = out.get(q.id, {})
        qids.append(q.id)
        dids.append(np.array(list(r.keys()), dtype=object))
        scores.append(np.array(list(r.values()), dtype=np.float64))
    obj = np.empty(len(dids), dtype=object)
    sc = np.empty(len(scores), dtype=object)
    for i, (a, b) in enumerate(zip(dids, scores)):
        obj[i], sc[i] = a, b
    return {"qid": np.array(qids, dtype=object), "doc_ids": obj, "scores": sc,
            "wall": np.full(len(qids), wall / max(1, len(qids))), "pid": np.full(len(qids), os.getpid())}


def rerank_ray(
    spec: Mapping[str, Any],
    queries: Sequence[Query],
    run: Run,
    docs: Mapping[str, Any],
    *,
    workers: int | None = 2,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    queries_per_batch: int = 8,
    index_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> Run:
    """``build_stage(spec)(queries, run)`` on a Ray actor pool: one row per query with its candidates
    and their texts (from ``docs``), ``queries_per_batch`` queries per call. Returns the same run
    (scores and order); ``run.stats`` has the efficiency figures (``wall_s``, ``queries_per_s``,
    ``items_per_s``, ``items``) and ``workers``/``pids``."""
    from rankstack.stages.build import check_spec

    _check_workers(workers, cpus_per_worker)
    if int(queries_per_batch) < 1:
        raise ConfigError(f"queries_per_batch must be >= 1, got {queries_per_batch}")
    check_spec(spec, "ray rerank")
    queries = list(queries)
    absent = [q.id for q in queries if q.id not in run]
    if absent:
        raise StageError(f"rerank_ray: the incoming run has no candidates for {len(absent)} of the {len(queries)} "
                         f"queries (first: {absent[:3]})")
    rows = []
    for q in queries:
        ranked = run.ranked(q.id)
        ids = [d for d, _ in ranked]
        texts, titles = [], []
        for d in ids:
            try:
                doc = docs[d]
            except KeyError:
                raise StageError(f"rerank_ray: no text for document {d!r} (query {q.id!r})") from None
            doc = doc if isinstance(doc, Document) else Document(d, str(doc))
            texts.append(doc.text)
            titles.append(doc.title)
        rows.append({"qid": q.id, "qtext": q.text, "doc_ids": ids, "scores": [s for _, s in ranked],
                     "titles": titles, "texts": texts})
    ctor = {"spec": dict(spec), "threads": max(1, int(cpus_per_worker)),
            "index_dir": str(index_dir) if index_dir else None}
    return _map_queries(_RerankWorker, ctor, rows, queries, name=str(spec["stage"]), workers=workers,
                        cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                        queries_per_batch=queries_per_batch, progress=progress,
                        items=sum(len(r["doc_ids"]) for r in rows))


def _map_queries(worker: type, ctor: dict[str, Any], rows: list[dict[str, Any]], queries: Sequence[Query], *,
                 name: str, workers: int | None, cpus_per_worker: float, gpus_per_worker: float,
                 queries_per_batch: int, progress: bool, items: int) -> Run:
    """One dataset row per query through an actor pool of ``worker(**ctor)``; the answers as one run."""
    ray = init_ray()
    workers = _n_workers(ray, workers, cpus_per_worker)
    _quiet(progress)
    out: dict[str, dict[str, float]] = {q.id: {} for q in queries}
    t0 = time.perf_counter()
    pids: set[int] = set()
    if rows:
        n_blocks = max(1, (len(rows) + queries_per_batch - 1) // queries_per_batch)
        ds = ray.data.from_items(rows, override_num_blocks=n_blocks)
        res = ds.map_batches(
            worker,
            fn_constructor_kwargs=ctor,
            batch_size=int(queries_per_batch),
            compute=ray.data.ActorPoolStrategy(size=int(workers)),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None,
            batch_format="numpy",
        )  # Ray Data restarts a dead actor and retries its task (max_restarts = max_task_retries = -1)
        for r in res.iter_rows():
            out[str(r["qid"])] = dict(zip((str(d) for d in r["doc_ids"]), (float(s) for s in r["scores"])))
            pids.add(int(r["pid"]))
    wall = time.perf_counter() - t0
    if items < 0:  # retrieval: what came back
        items = sum(len(v) for v in out.values())
    stats = {"items": items, "wall_s": wall, "queries_per_s": len(queries) / wall if wall else 0.0,
             "items_per_s": items / wall if wall else 0.0, "workers": int(workers), "pids": sorted(pids),
             "stages": [{"name": name, "ray": True, "wall_s": wall}]}
    return Run._wrap(out, name=name, stats=stats)


# -- retrieval -------------------------------------------------------------------------------------
class _SearchWorker:
    """One per actor: opens the index directory and builds the retrieval pipeline(s) once."""

    def __init__(self, pipelines: list[list[dict[str, Any]]], fuse: dict[str, Any] | None, k: int | None,
                 threads: int, index_dir: str):
        from rankstack.stages.base import Fuse
        from rankstack.stages.build import BuildContext, build_pipeline

        _worker_threads(threads)
        ctx = BuildContext(index_dir=Path(index_dir), progress=False)
        built = [build_pipeline(p, ctx, f"ray search pipeline #{i + 1}") for i, p in enumerate(pipelines)]
        stage = built[0] if len(built) == 1 else Fuse(built, **(fuse or {}))
        self.stage = stage % k if k is not None else stage

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        queries = [Query(str(q), str(t)) for q, t in zip(batch["qid"], batch["qtext"])]
        t0 = time.perf_counter()
        out = self.stage.transform(queries, None)
        return _pack(queries, out, time.perf_counter() - t0)


def search_ray(
    pipelines: Sequence[Any],
    queries: Sequence[Query],
    index_dir: str | os.PathLike,
    *,
    fuse: Mapping[str, Any] | None = None,
    k: int | None = None,
    workers: int | None = 2,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    queries_per_batch: int = 64,
    progress: bool = False,
) -> Run:
    """Retrieval on a Ray actor pool: each worker opens ``index_dir`` (as written by ``rankstack
    index``; memory-mapped) and builds the pipeline from its specs once; queries are split in groups of
    ``queries_per_batch``. ``pipelines`` is one stage spec, or a list of pipelines, each a stage spec or
    a list of specs (``[[bm25, cross-encoder]]`` is one pipeline of two stages); several are fused with
    ``fuse`` (:class:`~rankstack.stages.base.Fuse` keywords, e.g. ``{"method": "rrf"}``). ``k`` cuts the result. The run equals the local ``stage(queries)``: every query is
    retrieved independently of the others in its group."""
    from rankstack.stages.build import check_spec

    _check_workers(workers, cpus_per_worker)
    if int(queries_per_batch) < 1:
        raise ConfigError(f"queries_per_batch must be >= 1, got {queries_per_batch}")
    if k is not None and int(k) < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if not Path(index_dir).is_dir():
        raise ConfigError(f"ray search: no index directory at {index_dir} (write one with `rankstack index`)")
    if isinstance(pipelines, Mapping):
        pipelines = [pipelines]
    parts = [[dict(p)] if isinstance(p, Mapping) else [dict(x) for x in p] for p in pipelines]
    if not parts or any(not p for p in parts):
        raise ConfigError("ray search: give at least one pipeline of at least one stage spec")
    if len(parts) > 1 and fuse is None:
        raise ConfigError(f"ray search: {len(parts)} pipelines need 'fuse' (e.g. {{'method': 'rrf'}})")
    for i, p in enumerate(parts):
        for j, s in enumerate(p):
            check_spec(s, f"ray search pipeline #{i + 1} stage #{j + 1}")
    queries = list(queries)
    rows = [{"qid": q.id, "qtext": q.text} for q in queries]
    ctor = {"pipelines": parts, "fuse": dict(fuse) if fuse is not None else None,
            "k": int(k) if k is not None else None, "threads": max(1, int(cpus_per_worker)),
            "index_dir": str(Path(index_dir).resolve())}
    name = "+".join(">>".join(str(s["stage"]) for s in p) for p in parts)
    return _map_queries(_SearchWorker, ctor, rows, queries, name=name, workers=workers,
                        cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                        queries_per_batch=queries_per_batch, progress=progress, items=-1)


# -- negative mining -------------------------------------------------------------------------------
def mine_negatives_ray(
    miner: Any,
    queries: Sequence[Query],
    qrels: Mapping[str, Mapping[str, int]],
    index_dir: str | os.PathLike,
    pipelines: Sequence[Any] = ({"stage": "bm25", "k": 100},),
    *,
    teacher: Mapping[str, Any] | None = None,
    fuse: Mapping[str, Any] | None = None,
    corpus_ids: Sequence[str] | None = None,
    round_: int = 0,
    workers: int | None = 2,
    cpus_per_worker: float = 1,
    queries_per_batch: int = 64,
) -> tuple[dict[str, Any], Run, Run | None]:
    """Hard negatives for training queries, with the costly parts on Ray: the candidate retrieval
    (:func:`search_ray` over ``index_dir``) and, with ``teacher`` (a reranker stage spec, e.g. a
    cross-encoder), the teacher's scores of every candidate (:func:`rerank_ray`; the texts come from
    the index's document store). The sampling itself is :class:`rankstack.train.negatives.NegativeMiner`
    (``miner``; its ``teacher_scores`` are set from the teacher's run) in this process: it is cheap and
    seeded per query, so the negatives equal a local mining over the same candidates.

    Returns ``(mined, candidates, teacher_run)``: ``mined`` maps each query id with a positive to its
    :class:`~rankstack.train.negatives.Mined`."""
    from rankstack.stages.build import BuildContext

    queries = list(queries)
    candidates = search_ray(pipelines, queries, index_dir, fuse=fuse, workers=workers,
                            cpus_per_worker=cpus_per_worker, queries_per_batch=queries_per_batch)
    teacher_run = None
    if teacher is not None:
        ctx = BuildContext(index_dir=Path(index_dir), progress=False)
        with_cands = [q for q in queries if candidates.get(q.id)]
        teacher_run = rerank_ray(teacher, with_cands, Run({q.id: candidates[q.id] for q in with_cands}), ctx.docs,
                                 workers=workers, cpus_per_worker=cpus_per_worker, index_dir=index_dir)
        miner.teacher_scores = {q: dict(d) for q, d in teacher_run.items()}
    asked = [q.id for q in queries if any(g > 0 for g in qrels.get(q.id, {}).values())]
    mined = miner.mine(qrels, candidates, corpus_ids=corpus_ids, query_ids=asked, round_=round_)
    return mined, candidates, teacher_run


# -- any stage of a pipeline -----------------------------------------------------------------------
class _StageWorker:
    """One per actor: builds the stage from its spec once, in the context ``context()`` returns (a
    picklable factory: e.g. an experiment's collection and artifact cache, opened on the worker)."""

    def __init__(self, spec: dict[str, Any], context: Any, threads: int):
        from rankstack.stages.build import build_stage

        _worker_threads(threads)
        self.stage = build_stage(spec, context(), where=f"ray stage {spec.get('stage')!r}")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        queries = [Query(str(q), str(t)) for q, t in zip(batch["qid"], batch["qtext"])]
        run = None
        if "doc_ids" in batch:
            run = Run({str(q): dict(zip((str(d) for d in ids), (float(x) for x in sc)))
                       for q, ids, sc in zip(batch["qid"], batch["doc_ids"], batch["scores"])})
        t0 = time.perf_counter()
        out = self.stage(queries, run)
        return _pack(queries, out, time.perf_counter() - t0)


class RayStage(Stage):
    """A pipeline stage whose calls run on a Ray actor pool: ``stage`` is the stage built on the driver
    (its name, config and cache key are the local stage's, so :class:`~rankstack.stages.base.Cached`
    entries are shared with local runs), ``spec`` what each worker rebuilds it from, ``context`` a
    picklable zero-argument factory of the worker's :class:`~rankstack.stages.build.BuildContext`.
    Queries go in groups of ``queries_per_batch`` with their incoming candidates (ids and scores; the
    worker's context has the texts)."""

    def __init__(self, stage: Any, spec: Mapping[str, Any], context: Any, *, workers: int | None = None,
                 cpus_per_worker: float = 1, gpus_per_worker: float = 0, queries_per_batch: int = 8):
        from rankstack.stages.build import check_spec

        _check_workers(workers, cpus_per_worker)
        if int(queries_per_batch) < 1:
            raise ConfigError(f"queries_per_batch must be >= 1, got {queries_per_batch}")
        check_spec(spec, "ray stage")
        self.stage, self.spec, self.context = stage, dict(spec), context
        self.name = stage.name
        self.needs_candidates = stage.needs_candidates
        self.workers, self.cpus_per_worker, self.gpus_per_worker = workers, cpus_per_worker, gpus_per_worker
        self.queries_per_batch = int(queries_per_batch)

    def config(self) -> dict[str, Any]:
        return self.stage.config()

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        return self(queries, run)

    def __call__(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        queries = list(queries)
        rows: list[dict[str, Any]] = []
        for q in queries:
            row: dict[str, Any] = {"qid": q.id, "qtext": q.text}
            if run is not None:
                ranked = run.ranked(q.id)
                row["doc_ids"], row["scores"] = [d for d, _ in ranked], [s for _, s in ranked]
            rows.append(row)
        ctor = {"spec": self.spec, "context": self.context, "threads": max(1, int(self.cpus_per_worker))}
        items = sum(len(r["doc_ids"]) for r in rows) if run is not None else -1
        return _map_queries(_StageWorker, ctor, rows, queries, name=self.name, workers=self.workers,
                            cpus_per_worker=self.cpus_per_worker, gpus_per_worker=self.gpus_per_worker,
                            queries_per_batch=self.queries_per_batch,
                            progress=False, items=items)


# -- evaluation ------------------------------------------------------------------------------------
def _evaluate_chunk(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], measures: list[str],
                    all_judged: bool, remove_query_doc: bool) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    import warnings

    from rankstack.measures import Evaluator

    with warnings.catch_warnings():  # the driver has warned once for the whole run
        warnings.simplefilter("ignore")
        ev = Evaluator(qrels, measures, all_judged=all_judged, remove_query_doc=remove_query_doc).evaluate(run)
    return ev.queries, ev.arrays


def evaluate_ray(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    measures: Any,
    *,
    all_judged: bool = False,
    remove_query_doc: bool = False,
    workers: int | None = 2,
    cpus_per_worker: float = 1,
    queries_per_task: int = 500,
) -> Any:
    """:func:`rankstack.measures.evaluate` with the queries split over Ray tasks (``queries_per_task``
    each, at most ``workers`` at a time): the same :class:`~rankstack.measures.Evaluation`, per-query
    values and means bit-identical (the per-query arrays are joined in the local order and averaged as
    the local evaluation averages them). The measures and the qrels are checked on the driver first,
    so a bad measure or an unreachable grade is reported once, before anything is sent.

    Per-query measures are cheap (a 1M-line run takes about 0.3 s in one process), so this pays only
    for runs that are large or already live on a cluster; at SciFact's size it is slower than local."""
    import warnings

    from rankstack.measures import Evaluation, Evaluator, ExternalMeasure
    from rankstack.measures.parse import measure_provider

    _check_workers(workers, cpus_per_worker)
    if int(queries_per_task) < 1:
        raise ConfigError(f"queries_per_task must be >= 1, got {queries_per_task}")
    local = Evaluator(qrels, measures, all_judged=all_judged, remove_query_doc=remove_query_doc)  # checks, warns
    names = [str(m) for m in local.measures]
    qids = list(qrels) if all_judged else [q for q in run if q in qrels]
    ray = init_ray()
    n_workers = _n_workers(ray, workers, cpus_per_worker)
    task = ray.remote(_evaluate_chunk).options(num_cpus=cpus_per_worker, max_retries=3)
    chunks = [qids[i:i + int(queries_per_task)] for i in range(0, len(qids), int(queries_per_task))]
    t0 = time.perf_counter()
    pending, results = [], {}
    for j, chunk in enumerate(chunks):  # at most n_workers chunks in flight
        if len(pending) >= n_workers:
            _, pending = ray.wait(pending, num_returns=1)
        pending.append(task.remote({q: dict(qrels[q]) for q in chunk},
                                   {q: dict(run[q]) for q in chunk if q in run}, names, all_judged,
                                   remove_query_doc))
        results[pending[-1]] = j
    parts = dict(zip((results[r] for r in results), ray.get(list(results))))
    wall = time.perf_counter() - t0
    queries: tuple[str, ...] = tuple(q for j in range(len(chunks)) for q in parts[j][0])
    if list(queries) != qids:
        raise StageError("evaluate_ray: the workers' queries differ from the run's (a worker dropped a query)")
    arrays = {n: np.concatenate([parts[j][1][n] for j in range(len(chunks))]) if chunks else np.zeros(0)
              for n in names}
    if qids:
        aggregate = {str(m): m.aggregate(arrays[str(m)]) if isinstance(m, ExternalMeasure)
                     else float(arrays[str(m)].mean()) for m in local.measures}
    else:
        warnings.warn("no query to evaluate on Ray: the run and the qrels have no query in common",
                      RuntimeWarning, stacklevel=2)
        aggregate = dict.fromkeys(names, float("nan"))
    providers = {str(m): measure_provider(m) for m in local.measures}
    ev = Evaluation(measures=local.measures, queries=queries, arrays=arrays, aggregate=aggregate,
                    all_judged=all_judged, ignored_run_queries=sum(1 for q in run if q not in qrels),
                    missing_run_queries=sum(1 for q in qrels if q not in run), providers=providers)
    ev.stats = {"wall_s": wall, "tasks": len(chunks), "workers": n_workers}  # type: ignore[attr-defined]
    return ev


# -- sharded exact search --------------------------------------------------------------------------
def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact merge of per-shard results ``(scores, global rows)``, each ``(n_queries, k_i)`` with -1
    rows for padding: the ``k`` best per query, ties by the lower global row (the order the documents
    were added in). Returns ``(scores, rows)``, ``(n_queries, k)``, padded with ``-inf``/``-1``."""
    if not parts:
        raise ConfigError("merge_topk needs at least one shard's results")
    scores = np.concatenate([np.asarray(p[0], np.float32) for p in parts], axis=1)
    rows = np.concatenate([np.asarray(p[1], np.int64) for p in parts], axis=1)
    nq = scores.shape[0]
    out_s = np.full((nq, k), -np.inf, np.float32)
    out_r = np.full((nq, k), -1, np.int64)
    for i in range(nq):
        ok = rows[i] >= 0
        s, r = scores[i][ok], rows[i][ok]
        order = np.lexsort((r, -s))[:k]
        out_s[i, : len(order)], out_r[i, : len(order)] = s[order], r[order]
    return out_s, out_r


def _shard_topk(index: Any, offset: int, q: np.ndarray, k: int,
                ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The shard's exact top-k under the tie rule of :func:`merge_topk`. FAISS picks tied vectors at
    the cut in heap order, so the search is widened until every vector tied with the k-th score is in
    (then the tie rule picks among them)."""
    n = len(index)
    k = min(k, n)
    if k == 0:
        return np.full((len(q), 0), -np.inf, np.float32), np.full((len(q), 0), -1, np.int64)
    want = min(n, k + 16)
    while True:
        s, r = index.search(q, want, ef_search=ef_search)
        if want >= n or bool(np.all(s[:, want - 1] < s[:, k - 1])):
            break
        want = min(n, want * 2)
    r = np.where(r >= 0, r + offset, -1)
    return merge_topk([(s, r)], k)


class _ShardSearcher:
    def __init__(self, path: str, offset: int, threads: int):
        import faiss

        from rankstack.index.dense import DenseIndex

        faiss.omp_set_num_threads(max(1, threads))
        self.index = DenseIndex.load(path)
        self.offset = offset

    def search(self, q: np.ndarray, k: int, ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        return _shard_topk(self.index, self.offset, q, k, ef_search)


class ShardedDenseIndex:
    """A dense index in ``n`` shards (each a :class:`DenseIndex` directory ``shard-NNN``, rows in
    order): searched in process, or where each shard lives with ``on_ray=True`` (one Ray actor per
    shard), the shards' top-k merged by :func:`merge_topk`.

    ``kind="flat"`` (exact): results equal one :class:`DenseIndex` over all vectors (scores, and rows
    under the tie rule of :func:`merge_topk`). ``kind="pq"``: every shard holds the codes of one
    codebook trained on a seeded sample of all the vectors (:func:`~rankstack.index.dense.train_pq`),
    so the sharded search equals one PQ index over all vectors, while each shard holds ``pq_m`` bytes a
    vector. ``kind="hnsw"``: one graph per shard; approximate, and not equal to one graph over all
    vectors (recall against exact search is measured in docs/scale.md)."""

    def __init__(self, shard_dirs: Sequence[str | os.PathLike], offsets: Sequence[int], ids: list[str]):
        self.shard_dirs = [Path(p) for p in shard_dirs]
        self.offsets = [int(o) for o in offsets]
        self.ids = ids
        self._actors: list[Any] | None = None
        self._local: list[Any] | None = None

    @classmethod
    def write(cls, ids: Sequence[str], emb: np.ndarray, out_dir: str | os.PathLike, n_shards: int,
              meta: dict[str, Any] | None = None, *, kind: str = "flat", m: int = 32, ef_construction: int = 200,
              pq_m: int = 48, seed: int = 0) -> ShardedDenseIndex:
        """Split ``(ids, emb)`` into ``n_shards`` contiguous shards of ``kind`` (flat | hnsw | pq; ``m``,
        ``ef_construction``: HNSW; ``pq_m``, ``seed``: PQ, one shared codebook) under ``out_dir``."""
        from rankstack.index.dense import DenseIndex, train_pq

        if int(n_shards) < 1:
            raise ConfigError(f"n_shards must be >= 1, got {n_shards}")
        if len(ids) != len(emb):
            raise StageError(f"{len(ids)} ids for {len(emb)} vectors")
        if kind not in ("flat", "hnsw", "pq"):
            raise ConfigError(f"kind must be 'flat', 'hnsw' or 'pq', got {kind!r}")
        quantizer = train_pq(emb, pq_m, seed) if kind == "pq" else None
        bounds = np.linspace(0, len(ids), int(n_shards) + 1).astype(int)
        dirs, offsets = [], []
        for j in range(int(n_shards)):
            a, b = int(bounds[j]), int(bounds[j + 1])
            d = Path(out_dir) / f"shard-{j:03d}"
            DenseIndex.from_embeddings(list(ids[a:b]), emb[a:b], kind=kind, m=m, ef_construction=ef_construction,
                                       pq_m=pq_m, quantizer=quantizer,
                                       meta={**(meta or {}), "offset": a}).save(d)
            dirs.append(d)
            offsets.append(a)
        return cls(dirs, offsets, list(ids))

    def search(self, q_emb: np.ndarray, k: int, on_ray: bool = False,
               cpus_per_shard: float | None = None, ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, global rows)``, ``(n_queries, min(k, n))``, as :meth:`DenseIndex.search`
        (``ef_search``: HNSW shards' search breadth, default ``max(k, 64)``)."""
        if int(k) < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        q = np.ascontiguousarray(q_emb, dtype=np.float32)
        k = min(int(k), max(len(self.ids), 1))
        if on_ray:
            ray = init_ray()
            if self._actors is None:
                cpus = cpus_per_shard
                if cpus is None:
                    cpus = min(1.0, float(ray.cluster_resources().get("CPU", 1)) / len(self.shard_dirs))
                Actor = ray.remote(_ShardSearcher).options(num_cpus=cpus, max_restarts=-1, max_task_retries=-1)
                self._actors = [Actor.remote(str(p), o, 1) for p, o in zip(self.shard_dirs, self.offsets)]
            q_ref = ray.put(q)
            parts = ray.get([a.search.remote(q_ref, k, ef_search) for a in self._actors])
        else:
            if self._local is None:
                from rankstack.index.dense import DenseIndex

                self._local = [DenseIndex.load(p) for p in self.shard_dirs]
            parts = [_shard_topk(ix, o, q, k, ef_search) for ix, o in zip(self._local, self.offsets)]
        return merge_topk(parts, k)

    def shard_memory(self) -> list[int]:
        """Bytes each shard's FAISS index holds (its serialised size: the float32 vectors of a flat
        shard, plus the graph links of an HNSW one; the codes and the codebook of a PQ one)."""
        from rankstack.index.dense import INDEX_FILE

        return [int((Path(p) / INDEX_FILE).stat().st_size) for p in self.shard_dirs]

    def close(self) -> None:
        if self._actors is not None:
            ray = _ray()
            for a in self._actors:
                ray.kill(a)
            self._actors = None


def exact_search(index: Any, q_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One :class:`DenseIndex`'s exact top-k under the tie rule of :func:`merge_topk` (the reference
    the sharded search equals)."""
    return _shard_topk(index, 0, np.ascontiguousarray(q_emb, dtype=np.float32), k)
