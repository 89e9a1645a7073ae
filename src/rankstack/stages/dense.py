"""Dense stages over a :class:`~rankstack.index.dense.DenseIndex`: :class:`DenseRetriever`
(``dense``) searches the index; :class:`DenseReranker` (``dense-rerank``) re-scores an incoming
candidate run with the bi-encoder (cosine or dot product of query and document vectors).

Corpus encoding and the FAISS index live in :mod:`rankstack.index.dense`; these stages are thin.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.data.records import Query, Run
from rankstack.errors import ConfigError, StageError
from rankstack.index.dense import DenseIndex, _normalise
from rankstack.stages.base import Candidates, Reranker, Stage

__all__ = ["DenseReranker", "DenseRetriever"]


def _encoder(model: Any = None, encoder: Any = None, **kwargs: Any) -> Any:
    if encoder is not None:
        return encoder
    from rankstack.encoders.runtime import BiEncoder

    return BiEncoder(model, **kwargs)


def _index_encoder(index: DenseIndex, **kwargs: Any) -> Any:
    """The bi-encoder ``index`` was built with (same model, max_length)."""
    enc = getattr(index, "_encoder", None)
    if enc is None:
        from rankstack.encoders.runtime import BiEncoder

        m = index.meta.get("model", {})
        enc = index._encoder = BiEncoder(m.get("model"), max_length=m.get("max_length"), **kwargs)
    return enc


class DenseRetriever(Stage):
    """Bi-encoder retrieval from a :class:`DenseIndex` (exact or HNSW): ``dense(queries) -> Run``.

    ``index``: a :class:`DenseIndex` or a directory saved by it; or ``docs`` to build one in memory
    (with ``model``/``encoder`` and ``kind``). ``k``: documents per query; ``ef_search`` for HNSW.
    Query encoding uses the index's model unless ``encoder`` is given.
    """

    name = "dense"
    _not_in_key = ("progress", "docs", "model", "kind")  # all three are in the index's fingerprint

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
        self.docs, self.model, self.kind = docs, model, kind
        self.encoder = encoder or _index_encoder(index, **encoder_kwargs)
        if int(k) < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        self.k = int(k)
        self.ef_search = ef_search

    @classmethod
    def from_context(cls, ctx: Any, **params: Any) -> DenseRetriever:
        """The context's dense index: an index directory's (queries encoded by its model, with any
        ``backend``/``quantize`` given), or the collection's for ``model`` (and ``kind``, ``backend``,
        ``quantize``), built (resumably) once into the context's cache."""
        if "index" in params:
            return cls(**params)
        if ctx.index_dir is not None:
            if params.get("model") is not None:
                raise ConfigError(f"the dense index in {ctx.index_dir} fixes the model; 'model' cannot be set")
            params.pop("model", None)
            return cls(ctx.dense_index(), **params)
        from rankstack.encoders.runtime import BiEncoder

        enc_opts = {k: params.pop(k) for k in ("backend", "quantize") if k in params}
        model, kind = params.pop("model", None), params.pop("kind", "flat")
        encoder = BiEncoder(model, **enc_opts)
        return cls(ctx.dense_index(encoder, kind=kind, tag=[model, kind, enc_opts]), encoder=encoder, **params)

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

    def __init__(self, docs: Any = None, *, model: Any = None, encoder: Any = None, metric: str = "cosine",
                 progress: bool = False, **encoder_kwargs: Any):
        super().__init__(docs)
        self.progress = bool(progress)
        if metric not in {"cosine", "dot"}:
            raise ConfigError(f"metric must be 'cosine' or 'dot', got {metric!r}")
        self.model = model
        self.encoder = _encoder(model, encoder, **encoder_kwargs)
        self.metric = metric

    def _vectors(self, texts: list[str]) -> np.ndarray:
        e = self.encoder.encode(texts, progress=self.progress and len(texts) > 1)
        return _normalise(e) if self.metric == "cosine" else e

    def score_batch(self, batch: Candidates) -> list[np.ndarray]:
        assert batch.docs is not None
        uniq: dict[str, int] = {}
        texts: list[str] = []
        for docs in batch.docs:
            for doc in docs:
                if doc.id not in uniq:
                    uniq[doc.id] = len(texts)
                    texts.append(doc.contents)
        asked = [j for j, ids in enumerate(batch.doc_ids) if ids]
        d_emb = self._vectors(texts)
        q_emb = dict(zip(asked, self._vectors([batch.queries[j].text for j in asked])))
        batch.stats["unique_docs"] = len(texts)
        out = []
        for j, ids in enumerate(batch.doc_ids):
            if not ids:
                out.append(np.empty(0))
                continue
            rows = np.fromiter((uniq[d] for d in ids), dtype=np.int64, count=len(ids))
            out.append((d_emb[rows] @ q_emb[j]).astype(np.float64))
        return out
