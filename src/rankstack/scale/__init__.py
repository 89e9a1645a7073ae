"""Scale out on Ray (issue #21): :mod:`rankstack.scale.ray_runner`.

Light: nothing here imports Ray until a name is used (``pip install 'rankstack[ray]'``)."""

from __future__ import annotations

from typing import Any

__all__ = ["init_ray", "encode_corpus_ray", "build_dense_index_ray", "rerank_ray", "search_ray", "mine_negatives_ray",
           "evaluate_ray", "RayStage", "merge_topk",
           "ShardedDenseIndex", "exact_search"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rankstack.scale import ray_runner

        return getattr(ray_runner, name)
    raise AttributeError(f"module 'rankstack.scale' has no attribute {name!r}")
