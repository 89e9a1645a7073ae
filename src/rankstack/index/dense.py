"""Dense indexes: resumable corpus encoding and FAISS indexes (the artifacts of dense retrieval).

* :func:`encode_corpus` writes embeddings in shards (``shards/00000.npy`` ...) next to the document
  ids; a killed run restarts at the first missing shard.
* :class:`DenseIndex` holds the ids, the model configuration and a FAISS index, exact
  (``IndexFlatIP``) or approximate (``IndexHNSWFlat`` with ``M``, ``efConstruction``, ``efSearch``);
  it is written to disk and read back memory-mapped (``faiss.IO_FLAG_MMAP``) where FAISS supports
  it; :meth:`DenseIndex.add` adds documents incrementally.
* :meth:`DenseIndex.retriever` and :meth:`DenseIndex.reranker` hand out the stages over it
  (``dense`` and ``dense-rerank``, see :mod:`rankstack.stages.dense`).

This layer sits below the encoders: it takes any *encoder* object with ``encode(texts, progress=)``
(float32 ``[n, dim]``), ``config()`` and ``max_length`` -- a :class:`rankstack.encoders.BiEncoder`,
or your own.

Documents are encoded as ``title + " " + text`` (:attr:`Document.contents`), as BEIR and MTEB do.
Scores are cosine similarities for normalised models (all-MiniLM-L6-v2) or when ``metric="cosine"``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankstack import registry
from rankstack.data.records import Document, docs_fingerprint
from rankstack.errors import ConfigError, FormatError, IndexMismatchError, StageError
from rankstack.manifest import MANIFEST, verify, write_manifest
from rankstack.optional import require
from rankstack.progress import Bar

INDEX_FILE = "index.faiss"
META_FILE = "meta.json"
IDS_FILE = "ids.txt"


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
    encoder: Any,
    *,
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
        raise ConfigError(f"metric must be 'cosine' or 'dot', got {metric!r}")
    out = Path(out_dir)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    doc_list = _as_docs(docs)
    ids = [d.id for d in doc_list]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise StageError(f"duplicate document id {dup!r} in the corpus to encode")
    enc = encoder
    meta = {
        "model": enc.config(),
        "n": len(ids),
        "shard_size": shard_size,
        "metric": metric,
        "ids_digest": _ids_digest(ids),
        "docs": docs_fingerprint(doc_list),
    }
    meta_path = out / META_FILE
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FormatError(f"{meta_path}: not valid JSON ({e}): the encoding is damaged; delete {out} "
                              "and encode again") from None
        for key in ("model", "n", "shard_size", "metric", "ids_digest"):
            if json.dumps(old.get(key), sort_keys=True, default=str) != json.dumps(
                meta[key], sort_keys=True, default=str
            ):
                raise StageError(
                    f"{meta_path}: existing encoding has a different {key} ({old.get(key)!r} != {meta[key]!r}); "
                    "use another directory or delete it"
                )
        if old.get("docs", meta["docs"]) != meta["docs"]:
            raise IndexMismatchError(f"{meta_path}: the existing encoding was made from other document texts "
                                     f"(content fingerprint {old.get('docs')} != {meta['docs']}); delete {out} "
                                     "or use another directory")
    else:
        (out / IDS_FILE).write_text("\n".join(ids) + ("\n" if ids else ""))
        meta_path.write_text(json.dumps(meta, indent=1, default=str))
    n_shards = (len(ids) + shard_size - 1) // shard_size
    todo = [s for s in range(n_shards) if not (out / "shards" / f"{s:05d}.npy").exists()]
    done = (n_shards - len(todo)) * shard_size
    bar = Bar(len(ids), "encoding corpus", unit="doc", enabled=bool(progress and todo), initial=min(done, len(ids)))
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
            bar.advance(len(chunk))
    finally:
        bar.close()
    if truncated:
        warnings.warn(f"{truncated} of {len(ids)} texts truncated to {enc.max_length} tokens", stacklevel=2)
    complete = all((out / "shards" / f"{s:05d}.npy").exists() for s in range(n_shards))
    if complete and (new or not (out / MANIFEST).exists()):
        # the finished encoding's files, sizes and checksums: checked on every load, fully by `rankstack check`
        write_manifest(out, [META_FILE, IDS_FILE] + [f"shards/{s:05d}.npy" for s in range(n_shards)], "encoding",
                       f"delete {out} and encode again (rankstack index ... --dense)")
    return complete


def load_embeddings(enc_dir: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Ids and embeddings of a complete :func:`encode_corpus` directory."""
    d = Path(enc_dir)
    verify(d)  # sizes against the manifest of a finished encoding (older encodings have none)
    try:
        meta = json.loads((d / META_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{d / META_FILE}: not valid JSON ({e}): the encoding is damaged; delete {d} and "
                          "encode again") from None
    ids = (d / IDS_FILE).read_text().split("\n")[: meta["n"]]
    n_shards = (meta["n"] + meta["shard_size"] - 1) // meta["shard_size"]
    parts = []
    for s in range(n_shards):
        p = d / "shards" / f"{s:05d}.npy"
        if not p.exists():
            raise StageError(f"{d}: shard {p.name} is missing; finish the encoding (encode_corpus resumes)")
        try:
            parts.append(np.load(p))
        except (ValueError, OSError, EOFError) as e:
            raise FormatError(f"{p}: unreadable ({e}): a truncated or damaged shard; delete it and encode again "
                              "(the encoding resumes at the first missing shard)") from None
    emb = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    if len(emb) != len(ids):
        raise StageError(f"{d}: {len(emb)} embeddings for {len(ids)} ids")
    return ids, emb


#: at most this many vectors train a PQ codebook (a seeded sample; FAISS asks for >= 256 per centroid set)
PQ_TRAIN_MAX = 65_536


def train_pq(vectors: np.ndarray, pq_m: int = 48, seed: int = 0) -> Any:
    """An empty inner-product ``IndexPQ`` (``pq_m`` sub-vectors, 8 bits each) trained on ``vectors``
    (a seeded sample of at most :data:`PQ_TRAIN_MAX` rows): the codebook the shards of one
    collection share (``DenseIndex.from_embeddings(..., kind="pq", quantizer=...)``)."""
    faiss = require("faiss", "dense")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = x.shape[1] if x.ndim == 2 else 0
    if int(pq_m) < 1 or dim % int(pq_m):
        raise ConfigError(f"pq_m must divide the dimension {dim}, got {pq_m}")
    if len(x) < 256:
        raise ConfigError(f"a PQ codebook needs at least 256 training vectors (8-bit codes), got {len(x)}")
    if len(x) > PQ_TRAIN_MAX:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), PQ_TRAIN_MAX, replace=False))]
    index = faiss.IndexPQ(dim, int(pq_m), 8, faiss.METRIC_INNER_PRODUCT)
    index.pq.cp.seed = int(seed)
    index.train(x)
    return index


class DenseIndex:
    """Document ids + a FAISS inner-product index (+ the encoder configuration that built it).

    ``kind="flat"`` is exact search (``IndexFlatIP``); ``kind="hnsw"`` is ``IndexHNSWFlat`` (``M``
    links per node, ``ef_construction``; ``ef_search`` at query time); ``kind="pq"`` is product
    quantisation (``IndexPQ``: ``pq_m`` sub-vectors of 8-bit codes, ``pq_m`` bytes a vector against
    ``4 * dim`` for flat, scanned exhaustively with asymmetric distances). Its codebook is trained
    on the indexed vectors (a seeded sample of at most :data:`PQ_TRAIN_MAX`), or given as an empty
    trained index (``quantizer``, see :func:`train_pq`) so that the shards of one collection share it.
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
        raise ConfigError(f"index kind must be 'flat', 'hnsw' or 'pq', got {kind!r}")

    @classmethod
    def from_embeddings(
        cls,
        ids: list[str],
        emb: np.ndarray,
        *,
        kind: str = "flat",
        m: int = 32,
        ef_construction: int = 200,
        pq_m: int = 48,
        quantizer: Any = None,
        meta: dict[str, Any] | None = None,
    ) -> DenseIndex:
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if kind == "pq":
            if quantizer is None:
                quantizer = train_pq(emb, pq_m)
            elif quantizer.ntotal or not quantizer.is_trained or quantizer.d != emb.shape[1]:
                raise ConfigError(f"quantizer: an empty trained PQ index of dimension {emb.shape[1]} is needed "
                                  f"(got ntotal={quantizer.ntotal}, trained={quantizer.is_trained}, d={quantizer.d})")
            faiss = require("faiss", "dense")
            index = faiss.clone_index(quantizer)
            pq_m = int(index.pq.M)
        elif quantizer is not None:
            raise ConfigError(f"quantizer= applies to kind='pq', not {kind!r}")
        else:
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
        if kind == "pq":
            meta["pq_m"] = pq_m
        return cls(index, list(ids), meta)

    @classmethod
    def build(
        cls,
        docs: Mapping[str, Any] | Iterable[Document],
        out_dir: str | os.PathLike | None = None,
        *,
        encoder: Any,
        kind: str = "flat",
        m: int = 32,
        ef_construction: int = 200,
        pq_m: int = 48,
        shard_size: int = 1024,
        metric: str = "cosine",
        progress: bool = True,
        encodings_dir: str | os.PathLike | None = None,
    ) -> DenseIndex:
        """Encode ``docs`` (resumably, in ``encodings_dir`` or ``out_dir/encodings``) and index them.

        With ``out_dir`` the index is also saved there (see :meth:`save`). Without either directory,
        the encoding happens in memory.
        """
        enc = encoder
        doc_list = _as_docs(docs)
        if encodings_dir is None and out_dir is not None:
            encodings_dir = Path(out_dir) / "encodings"
        if encodings_dir is not None:
            encode_corpus(doc_list, encodings_dir, enc, shard_size=shard_size, metric=metric, progress=progress)
            ids, emb = load_embeddings(encodings_dir)
        else:
            ids = [d.id for d in doc_list]
            emb = enc.encode([d.contents for d in doc_list], progress=progress)
            if metric == "cosine":
                emb = _normalise(emb)
        meta = {"model": enc.config(), "metric": metric, "docs": docs_fingerprint(doc_list)}
        out = cls.from_embeddings(ids, emb, kind=kind, m=m, ef_construction=ef_construction, pq_m=pq_m, meta=meta)
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
        enc = encoder if encoder is not None else getattr(self, "_encoder", None)
        if enc is None:
            raise StageError("DenseIndex.add needs encoder= (the bi-encoder the index was built with)")
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
        write_manifest(d, [INDEX_FILE, "index_ids.txt", "index_meta.json"], "dense",
                       "rebuild it: rankstack index COLLECTION -o DIR --dense (or delete it from the cache)")
        self.path = d
        return d

    @classmethod
    def load(cls, index_dir: str | os.PathLike, mmap: bool = True) -> DenseIndex:
        """Read an index saved by :meth:`save`; ``mmap=True`` memory-maps the FAISS file if supported."""
        faiss = require("faiss", "dense")
        d = Path(index_dir)
        f = d / INDEX_FILE
        if not f.exists():
            raise FileNotFoundError(f"{f}: no dense index here (build one with rankstack index ... --dense)")
        verify(d)
        try:
            meta = json.loads((d / "index_meta.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FormatError(f"{d / 'index_meta.json'}: not valid JSON ({e}); rebuild the dense index") from None
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

    # -- stages over the index (PyTerrier's artifact idea) -------------------------------------
    def retriever(self, **params: Any) -> Any:
        """The ``dense`` retriever over this index (keywords as :class:`~rankstack.stages.dense.DenseRetriever`)."""
        return registry.create("dense", index=self, **params)

    def reranker(self, **params: Any) -> Any:
        """A ``dense-rerank`` stage with this index's bi-encoder (re-encodes the candidates' texts)."""
        m = self.meta.get("model", {})
        params.setdefault("model", m.get("model"))
        return registry.create("dense-rerank", **params)

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

    @property
    def fingerprint(self) -> str:
        """Identity of the index: its model, kind and metric and its document ids in order."""
        blob = json.dumps({k: v for k, v in self.meta.items() if k != "n"}, sort_keys=True, default=str)
        return hashlib.sha256((blob + _ids_digest(self.ids)).encode()).hexdigest()[:32]
