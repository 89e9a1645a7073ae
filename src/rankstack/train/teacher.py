"""Teacher scores for distillation from a fusion of runs (e.g. BM25 + a dense bi-encoder).

:func:`hybrid_teacher` fuses the runs of the training queries with :mod:`rankstack.stages.fusion`
(weighted sum of z-scored runs by default), with weights given or tuned for nDCG@10 on the training
judgments themselves, and then (``pin=True``) lifts judged documents above less relevant ones with
:func:`rankstack.train.data.pin_positives`, so that the teacher never contradicts the judgments it is
trained next to. The result feeds ``GroupedDataset.from_run(..., teacher=...)``, the balanced-margin
sampler of :class:`~rankstack.train.negatives.NegativeMiner`, or a group's ``teacher`` scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rankstack.train.data import pin_positives

__all__ = ["hybrid_teacher"]


def hybrid_teacher(
    runs: Sequence[Mapping[str, Mapping[str, float]]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    weights: Sequence[float] | None = None,
    method: str = "wsum",
    norm: str | None = "zscore",
    measure: str = "nDCG@10",
    pin: bool = True,
    margin: float = 1.0,
    min_grade: int = 1,
) -> tuple[dict[str, dict[str, float]], list[float]]:
    """Teacher scores ``qid -> doc id -> score`` over the documents of ``runs`` (each
    ``qid -> doc id -> score``, e.g. a BM25 run and the same candidates scored by a bi-encoder), and
    the fusion weights used.

    ``weights`` ``None``: tuned by :func:`rankstack.stages.fusion.tune_weights` for ``measure`` on
    ``qrels`` (only judged queries count; give the training queries' judgments, never the evaluation
    queries'). ``method``/``norm``: see :func:`rankstack.stages.fusion.fuse_runs`. ``pin``: apply
    :func:`~rankstack.train.data.pin_positives` with ``margin`` and ``min_grade``."""
    from rankstack.stages.fusion import fuse_runs, tune_weights

    if weights is None:
        weights = tune_weights(runs, qrels, measure, method=method, norm=norm)["weights"]
    w = [float(x) for x in weights]
    fused = fuse_runs(runs, method, norm, w)
    if not pin:
        return {q: dict(fused[q]) for q in fused}, w
    return pin_positives(fused, qrels, margin=margin, min_grade=min_grade), w
