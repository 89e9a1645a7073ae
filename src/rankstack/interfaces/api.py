"""The one-call API for the common case, as rerankers' ``Reranker(...).rank()`` and
sentence-transformers' ``CrossEncoder.rank()``::

    import rankstack
    rankstack.rank("what causes tides", ["The moon's gravity ...", "Tides are ...", "Bread rises ..."],
                   model="path/to/cross-encoder")
    # [{'index': 1, 'score': 0.93, 'text': 'Tides are ...'}, ...]

``model`` is any model directory or hub id: a cross-encoder (a model with a scoring head) is used as
``cross-encoder``, a bi-encoder (all-MiniLM-L6-v2 and the like) as ``dense-rerank``; ``reranker=``
picks any registered reranker by name instead (``"first"``, ``"pointwise"``, ... with an LLM
``model``). The stage is built once per (reranker, model, options) and reused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rankstack.data.records import Document, Query, Run
from rankstack.errors import ConfigError

__all__ = ["rank", "rank_many"]

_STAGES: dict[str, Any] = {}


def _reranker_for(model: str | None) -> str:
    """``cross-encoder`` for a model with a scoring head, ``dense-rerank`` for a bi-encoder."""
    from rankstack.encoders.runtime import resolve_model

    ref = resolve_model(model)
    cfg = Path(ref) / "config.json"
    if cfg.exists():
        archs = json.loads(cfg.read_text()).get("architectures") or []
    else:  # a hub id: its config from the local Hugging Face cache, if it is there
        try:
            from transformers import AutoConfig

            archs = AutoConfig.from_pretrained(ref).architectures or []
        except Exception as e:  # noqa: BLE001 - any failure to read it is the same answer
            raise ConfigError(f"rankstack.rank: cannot read the configuration of {model!r} ({e}); pass reranker="
                              "'cross-encoder' or 'dense-rerank'") from None
    heads = ("ForSequenceClassification", "ForSegmentCosine")
    return "cross-encoder" if any(a.endswith(heads) for a in archs) else "dense-rerank"


def _stage(reranker: str | None, model: str | None, options: dict[str, Any]) -> Any:
    from rankstack.stages.build import build_stage

    name = reranker or _reranker_for(model)
    key = json.dumps([name, model, options], sort_keys=True, default=str)
    if key not in _STAGES:
        spec = {"stage": name, "docs": {}, **({"model": model} if model is not None else {}), **options}
        _STAGES[key] = build_stage(spec, None, f"rankstack.rank(reranker={name!r})")
    return _STAGES[key]


def texts_as_run(units: Sequence[tuple[str, Sequence[str], int]]) -> tuple[list[Query], Run, dict[str, Document]]:
    """Queries, a candidate run and its documents for scoring raw texts through a built reranker: unit
    ``i`` = ``(query, texts, start)`` becomes query ``q{i}`` whose candidates are ``{i}:{start + j}``,
    scored by their incoming order (for rerankers that read it)."""
    docs: dict[str, Document] = {}
    cands: dict[str, dict[str, float]] = {}
    qs = []
    for i, (q, texts, start) in enumerate(units):
        qid = f"q{i}"
        qs.append(Query(qid, q))
        cands[qid] = {}
        for j, t in enumerate(texts):
            did = f"{i}:{start + j}"
            docs[did] = Document(did, t)
            cands[qid][did] = float(len(texts) - j)
    return qs, Run(cands), docs


def rank_many(queries: Sequence[str], documents: Sequence[Sequence[str]], model: str | None = None, *,
              reranker: str | None = None, top_k: int | None = None, return_documents: bool = True,
              **options: Any) -> list[list[dict[str, Any]]]:
    """:func:`rank` for several queries at once (one batch through the reranker)."""
    if len(queries) != len(documents):
        raise ConfigError(f"rank_many: {len(queries)} queries but {len(documents)} document lists")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    stage = _stage(reranker, model, options)
    for i, (q, texts) in enumerate(zip(queries, documents)):
        if not isinstance(q, str) or any(not isinstance(t, str) for t in texts):
            raise ConfigError(f"rank_many: query #{i + 1} and its documents must be strings")
    qs, run, docs = texts_as_run([(q, texts, 0) for q, texts in zip(queries, documents)])
    stage.docs = docs  # the texts of this call (the built stage is reused across calls)
    out = stage(qs, run)
    results = []
    for i, texts in enumerate(documents):
        scores = out.get(f"q{i}", {})
        ranked = sorted(((int(d.split(":")[1]), s) for d, s in scores.items()), key=lambda t: (-t[1], t[0]))
        rows = [{"index": j, "score": float(s), **({"text": texts[j]} if return_documents else {})}
                for j, s in ranked[:top_k]]
        results.append(rows)
    return results


def rank(query: str, documents: Sequence[str], model: str | None = None, *, reranker: str | None = None,
         top_k: int | None = None, return_documents: bool = True, **options: Any) -> list[dict[str, Any]]:
    """The documents ranked for ``query``: ``[{"index", "score", "text"}, ...]``, best first (ties in
    input order); ``top_k`` keeps the best k. Other keywords go to the reranker (e.g. ``backend="onnx"``)."""
    return rank_many([query], [documents], model, reranker=reranker, top_k=top_k,
                     return_documents=return_documents, **options)[0]
