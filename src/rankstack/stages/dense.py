"""Dense retrieval with a bi-encoder: resumable corpus encoding, FAISS indexes, two stages.

* :func:`encode_corpus` writes embeddings in shards (``shards/00000.npy`` ...) next to the document
  ids; a killed run restarts at the first missing shard.
* :class:`DenseIndex` holds the ids, the model configuration and a FAISS index, exact
  (``IndexFlatIP``) or approximate (``IndexHNSWFlat`` with ``M``, ``efConstruction``, ``efSearch``);
  it is written to disk and read back memory-mapped (``faiss.IO_FLAG_MMAP``) where FAISS supports
  it; :meth:`DenseIndex.add` adds documents incrementally.
* :class:`DenseRetriever` (``name="dense"``) searches the index; :class:`DenseReranker` re-scores an
  incoming candidate run with the bi-encoder (cosine or dot product of query and document vectors).

Documents are encoded as ``title + " " + text`` (:attr:`Document.contents`), as BEIR and MTEB do.
Scores are cosine similarities for normalised models (all-MiniLM-L6-v2) or when ``metric="cosine"``.

CLI entry points: :func:`build_dense_index` and :func:`dense_search`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query, Run
from rankstack.stages.base import Reranker, Stage, StageError
from rankstack.stages.registry import require

INDEX_FILE = "index.faiss"
META_FILE = "meta.json"
IDS_FILE = "ids.txt"


def _encoder(model: Any = None, encoder: Any = None, **kwargs: Any) -> Any:
    if encoder is not None:
        return encoder
    from rankstack.encoders.runtime import BiEncoder

    return BiEncoder(model, **kwargs)


def _as_docs(docs: Mapping[str, Any] | Iterable[Document]) -> list[Document]:
    if isinstance(docs, Mapping):
        out = []
        for k, v in docs.items():
            out.append(v if isinstance(v, Document) else Document(str(k), str(v)))
        return out
    return [d if isinstance(d, Document) else Document(*d) for d in docs]


def _normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def _ids_digest(ids: Sequence[str]) -> str:
    h = hashlib.sha256()
    for i in ids:
        h.update(i.encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)


def encode_corpus(
    docs: Mapping[str, Any] | Iterable[Document],
    out_dir: str | os.PathLike,
    encoder: Any = None,
    *,
    model: Any = None,
    shard_size: int = 1024,
    limit: int | None = None,
    metric: str = "cosine",
    progress: bool = True,
) -> bool:
    """Encode ``docs`` into ``out_dir/shards/NNNNN.npy`` (float32), resumable.

    Shards already on disk are kept (the directory's ``ids.txt`` must list the same ids in the same
    order, else :class:`StageError`); ``limit`` stops after that many *new* shards (for tests and
    time-boxed jobs). Returns ``True`` when every shard exists.
    """
    if metric not in {"cosine", "dot"}:
        raise ValueError(f"metric must be 'cosine' or 'dot', got {metric!r}")
    out = Path(out_dir)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    doc_list = _as_docs(docs)
    ids = [d.id for d in doc_list]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise StageError(f"duplicate document id {dup!r} in the corpus to encode")
    enc = _encoder(model, encoder)
    meta = {
        "model": enc.config(),
        "n": len(ids),
        "shard_size": shard_size,
        "metric": metric,
        "ids_digest": _ids_digest(ids),
    }
    meta_path = out / META_FILE
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        for key in ("model", "n", "shard_size", "metric", "ids_digest"):
            if json.dumps(old.get(key), sort_keys=True, default=str) != json.dumps(
                meta[key], sort_keys=True, default=str
            ):
                raise StageError(
                    f"{meta_path}: existing encoding has a different {key} ({old.get(key)!r} != {meta[key]!r}); "
                    "use another directory or delete it"
                )
    else:
        (out / IDS_FILE).write_text("\n".join(ids) + ("\n" if ids else ""))
        meta_path.write_text(json.dumps(meta, indent=1, default=str))
    n_shards = (len(ids) + shard_size - 1) // shard_size
    todo = [s for s in range(n_shards) if not (out / "shards" / f"{s:05d}.npy").exists()]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        done = (n_shards - len(todo)) * shard_size
        bar = tqdm(total=len(ids), initial=min(done, len(ids)), desc="encoding corpus", unit="doc")
    new = 0
    import warnings

    truncated = 0
    try:
        for s in todo:
            if limit is not None and new >= limit:
                break
            chunk = doc_list[s * shard_size : (s + 1) * shard_size]
            texts = [d.contents for d in chunk]
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                emb = enc.encode(texts)
            truncated += sum(int(str(x.message).split(" ", 1)[0]) for x in w if "truncated" in str(x.message))
            if metric == "cosine":
                emb = _normalise(emb)
            _atomic_save(out / "shards" / f"{s:05d}.npy", emb.astype(np.float32))
            new += 1
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if truncated:
        warnings.warn(f"{truncated} of {len(ids)} texts truncated to {enc.max_length} tokens", stacklevel=2)
    return all((out / "shards" / f"{s:05d}.npy").exists() for s in range(n_shards))


def load_embeddings(enc_dir: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Ids and embeddings of a complete :func:`encode_corpus` directory."""
    d = Path(enc_dir)
    meta = json.loads((d / META_FILE).read_text())
    ids = (d / IDS_FILE).read_text().split("\n")[: meta["n"]]
    n_shards = (meta["n"] + meta["shard_size"] - 1) // meta["shard_size"]
    parts = []
    for s in range(n_shards):
        p = d / "shards" / f"{s:05d}.npy"
        if not p.exists():
            raise StageError(f"{d}: shard {p.name} is missing; finish the encoding (encode_corpus resumes)")
        parts.append(np.load(p))
    emb = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    if len(emb) != len(ids):
        raise StageError(f"{d}: {len(emb)} embeddings for {len(ids)} ids")
    return ids, emb


class DenseIndex:
    """Document ids + a FAISS inner-product index (+ the encoder configuration that built it).

    ``kind="flat"`` is exact search (``IndexFlatIP``); ``kind="hnsw"`` is ``IndexHNSWFlat`` (``M``
    links per node, ``ef_construction``; ``ef_search`` at query time).
    """

    def __init__(self, index: Any, ids: list[str], meta: dict[str, Any], path: Path | None = None):
        self.index = index
        self.ids = ids
        self.meta = meta
        self.path = path

    # -- building ------------------------------------------------------------------------
    @staticmethod
    def _new_index(dim: int, kind: str, m: int, ef_construction: int) -> Any:
        faiss = require("faiss", "dense")
        if kind == "flat":
            return faiss.IndexFlatIP(dim)
        if kind == "hnsw":
            idx = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = ef_construction
            return idx
        raise ValueError(f"index kind must be 'flat' or 'hnsw', got {kind!r}")

    @classmethod
    def from_embeddings(
        cls,
        ids: list[str],
        emb: np.ndarray,
        *,
        kind: str = "flat",
        m: int = 32,
        ef_construction: int = 200,
        meta: dict[str, Any] | None = None,
    ) -> DenseIndex:
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        index = cls._new_index(emb.shape[1], kind, m, ef_construction)
        if len(emb):
            index.add(emb)
        meta = dict(meta or {})
        meta.update(
            {
                "kind": kind,
                "m": m,
                "ef_construction": ef_construction,
                "dim": int(emb.shape[1]),
                "n": len(ids),
            }
        )
        return cls(index, list(ids), meta)

    @classmethod
    def build(
        cls,
        docs: Mapping[str, Any] | Iterable[Document],
        out_dir: str | os.PathLike | None = None,
        *,
        encoder: Any = None,
        model: Any = None,
        kind: str = "flat",
        m: int = 32,
        ef_construction: int = 200,
        shard_size: int = 1024,
        metric: str = "cosine",
        progress: bool = True,
        encodings_dir: str | os.PathLike | None = None,
    ) -> DenseIndex:
        """Encode ``docs`` (resumably, in ``encodings_dir`` or ``out_dir/encodings``) and index them.

        With ``out_dir`` the index is also saved there (see :meth:`save`). Without either directory,
        the encoding happens in memory.
        """
        enc = _encoder(model, encoder)
        if encodings_dir is None and out_dir is not None:
            encodings_dir = Path(out_dir) / "encodings"
        if encodings_dir is not None:
            encode_corpus(docs, encodings_dir, enc, shard_size=shard_size, metric=metric, progress=progress)
            ids, emb = load_embeddings(encodings_dir)
        else:
            doc_list = _as_docs(docs)
            ids = [d.id for d in doc_list]
            emb = enc.encode([d.contents for d in doc_list], progress=progress)
            if metric == "cosine":
                emb = _normalise(emb)
        meta = {"model": enc.config(), "metric": metric}
        out = cls.from_embeddings(ids, emb, kind=kind, m=m, ef_construction=ef_construction, meta=meta)
        out._encoder = enc
        if out_dir is not None:
            out.save(out_dir)
        return out

    def add(self, docs: Mapping[str, Any] | Iterable[Document], encoder: Any = None) -> int:
        """Encode and append documents (ids must be new); returns how many were added."""
        doc_list = _as_docs(docs)
        known = set(self.ids)
        for d in doc_list:
            if d.id in known:
                raise StageError(f"document {d.id!r} is already in the dense index")
            known.add(d.id)
        if not doc_list:
            return 0
        enc = encoder or self.encoder()
        emb = enc.encode([d.contents for d in doc_list])
        if self.meta.get("metric", "cosine") == "cosine":
            emb = _normalise(emb)
        if getattr(self, "_mmapped", False):
            # a memory-mapped index is read-only: materialise it first
            faiss = require("faiss", "dense")
            self.index = faiss.deserialize_index(faiss.serialize_index(self.index))
            self._mmapped = False
        self.index.add(np.ascontiguousarray(emb, dtype=np.float32))
        self.ids.extend(d.id for d in doc_list)
        self.meta["n"] = len(self.ids)
        return len(doc_list)

    # -- persistence ---------------------------------------------------------------------
    def save(self, out_dir: str | os.PathLike) -> Path:
        faiss = require("faiss", "dense")
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / (INDEX_FILE + ".tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, d / INDEX_FILE)
        (d / "index_ids.txt").write_text("\n".join(self.ids) + ("\n" if self.ids else ""))
        (d / "index_meta.json").write_text(json.dumps(self.meta, indent=1, default=str))
        self.path = d
        return d

    @classmethod
    def load(cls, index_dir: str | os.PathLike, mmap: bool = True) -> DenseIndex:
        """Read an index saved by :meth:`save`; ``mmap=True`` memory-maps the FAISS file if supported."""
        faiss = require("faiss", "dense")
        d = Path(index_dir)
        f = d / INDEX_FILE
        if not f.exists():
            raise FileNotFoundError(f"{f}: no dense index here (build one with build_dense_index)")
        meta = json.loads((d / "index_meta.json").read_text())
        ids = (d / "index_ids.txt").read_text().split("\n")[: meta["n"]]
        mapped = False
        if mmap:
            try:
                index = faiss.read_index(str(f), faiss.IO_FLAG_MMAP)
                mapped = True
            except RuntimeError:
                index = faiss.read_index(str(f))
        else:
            index = faiss.read_index(str(f))
        if index.ntotal != len(ids):
            raise StageError(f"{f}: {index.ntotal} vectors but {len(ids)} ids in index_ids.txt")
        out = cls(index, ids, meta, d)
        out._mmapped = mapped
        return out

    def encoder(self, **kwargs: Any) -> Any:
        """The bi-encoder this index was built with (same model, max_length)."""
        if getattr(self, "_encoder", None) is None:
            from rankstack.encoders.runtime import BiEncoder

            m = self.meta.get("model", {})
            self._encoder = BiEncoder(m.get("model"), max_length=m.get("max_length"), **kwargs)
        return self._encoder

    # -- searching -----------------------------------------------------------------------
    def search(
        self, q_emb: np.ndarray, k: int, ef_search: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search: ``(scores, row indices)``, both ``(n_queries, k)``; -1 rows mark no result."""
        q = np.ascontiguousarray(q_emb, dtype=np.float32)
        if self.meta.get("metric", "cosine") == "cosine":
            q = _normalise(q)
        if self.meta.get("kind") == "hnsw":
            self.index.hnsw.efSearch = int(ef_search or max(k, 64))
        k = min(k, max(len(self.ids), 1))
        return self.index.search(q, k)

    def __len__(self) -> int:
        return len(self.ids)


class DenseRetriever(Stage):
    """Bi-encoder retrieval from a :class:`DenseIndex` (exact or HNSW): ``dense(queries) -> Run``.

    ``index``: a :class:`DenseIndex` or a directory saved by it; or ``docs`` to build one in memory.
    ``k``: documents per query; ``ef_search`` for HNSW. Query encoding uses the index's model unless
    ``encoder`` is given.
    """

    name = "dense"

    def __init__(
        self,
        index: DenseIndex | str | os.PathLike | None = None,
        *,
        docs: Any = None,
        model: Any = None,
        encoder: Any = None,
        k: int = 1000,
        ef_search: int | None = None,
        kind: str = "flat",
        **encoder_kwargs: Any,
    ):
        if index is None and docs is None:
            raise StageError("dense retrieval needs an index (DenseIndex or directory) or docs to index")
        if index is None:
            enc = _encoder(model, encoder, **encoder_kwargs)
            index = DenseIndex.build(docs, encoder=enc, kind=kind, progress=False)
        elif not isinstance(index, DenseIndex):
            index = DenseIndex.load(index)
        self.index = index
        self.encoder = encoder or (
            index.encoder(**encoder_kwargs) if getattr(index, "_encoder", None) is None else index._encoder
        )
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)
        self.ef_search = ef_search

    def config(self) -> dict[str, Any]:
        return {
            "class": "DenseRetriever",
            "name": self.name,
            "model": self.encoder.config(),
            "k": self.k,
            "ef_search": self.ef_search,
            "index": {k: v for k, v in self.index.meta.items() if k != "model"},
            "ids": _ids_digest(self.index.ids),
        }

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        queries = list(queries)
        out: dict[str, dict[str, float]] = {}
        if not queries:
            return Run._wrap(out, name=self.name, stats={"items": 0})
        q_emb = self.encoder.encode([q.text for q in queries])
        scores, rows = self.index.search(q_emb, self.k, self.ef_search)
        ids = self.index.ids
        items = 0
        for qi, q in enumerate(queries):
            res = {ids[r]: float(s) for s, r in zip(scores[qi], rows[qi]) if r >= 0}
            out[q.id] = res
            items += len(res)
        return Run._wrap(out, name=self.name, stats={"items": items})


class DenseReranker(Reranker):
    """Re-scores candidates with a bi-encoder: cosine (``metric="cosine"``) or dot product.

    All queries' candidate documents are encoded together (length-sorted token-budget batches), each
    distinct document once.
    """

    name = "dense-rerank"

    def __init__(
        self,
        docs: Any = None,
        *,
        model: Any = None,
        encoder: Any = None,
        metric: str = "cosine",
        **encoder_kwargs: Any,
    ):
        super().__init__(docs)
        if metric not in {"cosine", "dot"}:
            raise ValueError(f"metric must be 'cosine' or 'dot', got {metric!r}")
        self.encoder = _encoder(model, encoder, **encoder_kwargs)
        self.metric = metric

    def config(self) -> dict[str, Any]:
        return {
            "class": "DenseReranker",
            "name": self.name,
            "model": self.encoder.config(),
            "metric": self.metric,
        }

    def _vectors(self, texts: list[str]) -> np.ndarray:
        e = self.encoder.encode(texts)
        return _normalise(e) if self.metric == "cosine" else e

    def score(self, query: Query, docs: list[Document]) -> np.ndarray:
        q = self._vectors([query.text])
        d = self._vectors([x.contents for x in docs])
        return (d @ q[0]).astype(np.float64)

    def transform(self, queries: Sequence[Query], run: Run | None = None) -> Run:
        assert run is not None
        queries = list(queries)
        per_q: list[tuple[Query, list[str]]] = []
        uniq: dict[str, int] = {}
        texts: list[str] = []
        for q in queries:
            ids = [d for d, _ in run.ranked(q.id)]
            per_q.append((q, ids))
            if ids:
                for doc in self.documents(q, ids):
                    if doc.id not in uniq:
                        uniq[doc.id] = len(texts)
                        texts.append(doc.contents)
        d_emb = self._vectors(texts) if texts else np.zeros((0, 1), np.float32)
        q_emb = self._vectors([q.text for q, ids in per_q if ids]) if texts else None
        out: dict[str, dict[str, float]] = {}
        j = 0
        for q, ids in per_q:
            if not ids:
                out[q.id] = {}
                continue
            assert q_emb is not None
            rows = np.fromiter((uniq[d] for d in ids), dtype=np.int64, count=len(ids))
            s = (d_emb[rows] @ q_emb[j]).astype(np.float64)
            j += 1
            out[q.id] = dict(zip(ids, s.tolist()))
        return Run._wrap(
            out,
            name=self.name,
            stats={
                "items": sum(len(i) for _, i in per_q),
                "stages": list(run.stats.get("stages", [])),
                "unique_docs": len(texts),
            },
        )


# ----------------------------------------------------------------------------------------------
# CLI entry points
# ----------------------------------------------------------------------------------------------


def build_dense_index(
    collection_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    model: Any = None,
    *,
    kind: str = "flat",
    backend: str = "torch",
    quantize: str | None = None,
    shard_size: int = 1024,
    progress: bool = True,
) -> DenseIndex:
    """``rankstack index COLLECTION OUT --dense [MODEL]``: encode (resumably) and save a dense index.

    ``collection_path`` is a document file or a collection directory (see
    :func:`rankstack.data.formats.load_collection`). Rerunning after an interruption resumes.
    """
    from rankstack.data.formats import read_docs

    p = Path(collection_path)
    if p.is_dir():
        from rankstack.data.formats import load_collection

        docs: Any = load_collection(p, all_queries=True).docs
        docs = list(docs.values()) if isinstance(docs, Mapping) else list(docs)
    else:
        docs = list(read_docs(p))
    from rankstack.encoders.runtime import BiEncoder

    enc = BiEncoder(model, backend=backend, quantize=quantize)
    return DenseIndex.build(docs, out_dir, encoder=enc, kind=kind, shard_size=shard_size, progress=progress)


def dense_search(
    index_dir: str | os.PathLike,
    queries: Sequence[Query],
    k: int = 1000,
    ef_search: int | None = None,
    **encoder_kwargs: Any,
) -> Run:
    """``rankstack search INDEX QUERIES --retriever dense``: search a saved dense index."""
    return DenseRetriever(DenseIndex.load(index_dir), k=k, ef_search=ef_search, **encoder_kwargs)(queries)
