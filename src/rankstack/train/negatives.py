"""Negative mining for learning to rank.

:class:`NegativeMiner` picks, for each training query, ``n`` negatives from a *candidate run* (BM25,
dense, or any retriever's run: "hard" negatives) and/or at random from the corpus, with guards against
false negatives (unjudged relevant documents that a retriever ranks high):

* **rank window** ``(lo, hi)``: only candidates ranked ``lo..hi`` (1-based, inclusive; trec_eval order)
  are eligible; skipping the very top (e.g. ``lo=10``) avoids the likeliest false negatives
  (RocketQA's denoising; Qu et al. 2021).
* **score margin / ratio** relative to the positive's retriever score: drop a candidate whose score is
  ``> pos_score - margin`` or ``> ratio * pos_score``. ``pos_score`` is the lowest score of a judged
  positive in the run (the least confident positive); queries whose positives were not retrieved skip
  this filter (counted in ``stats["no_pos_in_run"]``).
* **teacher filter**: drop a candidate whose teacher score is ``> teacher_pos - teacher_margin``
  (cross-encoder denoising, as in RocketQA / Margin-MSE data preparation).
* **pooling-bias correction** (after Cai et al. 2022, "Hard Negatives or False Negatives: Correcting
  Pooling Bias in Training Neural Ranking Models", CIKM): unjudged candidates that score like positives
  are likely unjudged relevant documents. We do *not* implement their learned coupled estimation; we
  estimate the probability that a candidate is a false negative from how close its retriever score is
  to the positive's: ``p_fn = sigmoid((score - pos_score) / pooling_temperature)``. With
  ``pooling="skip"`` candidates with ``p_fn > pooling_threshold`` are dropped; with
  ``pooling="weight"`` they are kept with weight ``1 - p_fn`` (returned in :attr:`Mined.weights`;
  the trainers keep each such negative in a training step with probability equal to its weight, so
  every loss sees the expected loss under the estimated false-negative probabilities).
* **STAR mixing** (Zhan et al. 2021, "Optimizing Dense Retrieval Model Training with Hard Negatives"):
  ``random_fraction`` of the ``n`` negatives are drawn uniformly from the corpus (static hard negatives
  mixed with random negatives).

**Balanced margins** (``sample="balanced"``, the pair sampling of TAS-Balanced; Hofstätter et al. 2021):
eligible candidates are binned by teacher margin ``teacher_pos - teacher(d)`` into ``n_bins`` equal-width
bins, and each draw picks a non-empty bin uniformly, then a candidate in it (without replacement), so
that the few low-margin (hard) negatives are not drowned by the many easy ones. Needs
``teacher_scores``; a query the teacher did not score falls back to uniform sampling (counted in
``stats["unbalanced"]``).

Sampling is deterministic: each query uses its own ``random.Random`` seeded from ``(seed, query id,
round)``, so results do not depend on query order or on other queries.

:class:`RemineCallback` is an ADORE-style hook (Zhan et al. 2021): every ``every_n_steps`` training
steps it re-scores the candidate pool with the *current* model and re-mines the negatives in place.
"""

from __future__ import annotations

import logging
import math
import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rankstack.data.records import Run, ranked_items
from rankstack.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["Mined", "NegativeMiner", "RemineCallback", "query_rng"]


def query_rng(seed: int, qid: str, round_: int = 0) -> random.Random:
    """A ``random.Random`` depending only on ``(seed, qid, round_)`` (stable across processes)."""
    return random.Random((seed * 1_000_003 + zlib.crc32(qid.encode("utf-8"))) * 1009 + round_)


@dataclass
class Mined:
    """Negatives of one query: document ids, a weight per negative (1.0 unless pooling="weight") and
    where each came from (``"hard"`` or ``"random"``)."""

    doc_ids: list[str]
    weights: list[float]
    sources: list[str]


@dataclass
class NegativeMiner:
    """Configurable negative sampler (see the module docstring for each guard).

    ``strategy``: ``"hard"`` (from the run only), ``"random"`` (corpus only) or ``"mixed"`` (STAR:
    ``random_fraction`` of them random). Hard negatives are sampled uniformly from the eligible window
    (``sample="uniform"``) or taken from the top of it (``sample="top"``).
    """

    n: int = 4
    strategy: str = "hard"
    rank_window: tuple[int, int] = (1, 100)
    sample: str = "uniform"
    margin: float | None = None
    ratio: float | None = None
    teacher_scores: Mapping[str, Mapping[str, float]] | None = None
    teacher_margin: float = 0.0
    pooling: str = "none"
    pooling_temperature: float = 1.0
    pooling_threshold: float = 0.5
    random_fraction: float = 0.0
    n_bins: int = 10
    seed: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strategy not in ("hard", "random", "mixed"):
            raise ConfigError(f"strategy must be 'hard', 'random' or 'mixed', got {self.strategy!r}")
        if self.pooling not in ("none", "skip", "weight"):
            raise ConfigError(f"pooling must be 'none', 'skip' or 'weight', got {self.pooling!r}")
        if self.sample not in ("uniform", "top", "balanced"):
            raise ConfigError(f"sample must be 'uniform', 'top' or 'balanced', got {self.sample!r}")
        if self.sample == "balanced" and self.teacher_scores is None:
            raise ConfigError("sample='balanced' bins candidates by teacher margin: give teacher_scores")
        if self.n_bins < 1:
            raise ConfigError("n_bins must be >= 1")
        lo, hi = self.rank_window
        if lo < 1 or hi < lo:
            raise ConfigError(f"rank_window must be 1 <= lo <= hi, got {self.rank_window}")
        if not 0.0 <= self.random_fraction <= 1.0:
            raise ConfigError("random_fraction must be in [0, 1]")
        if self.n < 0:
            raise ConfigError("n must be >= 0")

    # ------------------------------------------------------------------ public
    def mine(
        self,
        qrels: Mapping[str, Mapping[str, int]],
        run: Run | Mapping[str, Mapping[str, float]] | None = None,
        corpus_ids: Sequence[str] | None = None,
        query_ids: Sequence[str] | None = None,
        round_: int = 0,
    ) -> dict[str, Mined]:
        """Negatives for each query of ``query_ids`` (default: the queries of ``qrels`` with a positive).

        ``run`` is needed for ``"hard"``/``"mixed"``; ``corpus_ids`` for ``"random"``/``"mixed"`` (and
        to top up queries whose run has too few eligible candidates, which is logged and counted in
        ``stats["topped_up"]``). Judged documents (any grade) are never used as negatives; judged
        non-relevant documents (grade <= 0) are not excluded from the hard pool.
        """
        if self.strategy in ("hard", "mixed") and run is None:
            raise ConfigError(f"strategy={self.strategy!r} needs a candidate run")
        if self.strategy in ("random", "mixed") and not corpus_ids:
            raise ConfigError(f"strategy={self.strategy!r} needs corpus_ids")
        self.stats = {"queries": 0, "no_pos_in_run": 0, "dropped_margin": 0, "dropped_teacher": 0,
                      "dropped_pooling": 0, "topped_up": 0, "short": 0, "unbalanced": 0}
        qids = list(query_ids) if query_ids is not None else [q for q, d in qrels.items() if any(g > 0 for g in d.values())]
        out: dict[str, Mined] = {}
        for qid in qids:
            out[qid] = self.mine_query(qid, qrels.get(qid, {}), run.get(qid, {}) if run is not None else {},
                                       corpus_ids, round_)
        short = self.stats["short"]
        if short:
            log.warning("NegativeMiner: %d queries got fewer than %d negatives", short, self.n)
        return out

    def mine_query(
        self,
        qid: str,
        judged: Mapping[str, int],
        candidates: Mapping[str, float],
        corpus_ids: Sequence[str] | None,
        round_: int = 0,
    ) -> Mined:
        """Negatives for one query (see :meth:`mine`)."""
        self.stats["queries"] = self.stats.get("queries", 0) + 1
        rng = query_rng(self.seed, qid, round_)
        n_rand = 0
        if self.strategy == "random":
            n_rand = self.n
        elif self.strategy == "mixed":
            n_rand = int(round(self.n * self.random_fraction))
        n_hard = self.n - n_rand
        ids: list[str] = []
        weights: list[float] = []
        sources: list[str] = []
        if n_hard:
            pool = self._eligible(qid, judged, candidates)
            if self.sample == "top":
                picked = pool[:n_hard]
            elif self.sample == "balanced":
                picked = self._balanced(qid, judged, pool, n_hard, rng)
            else:
                picked = rng.sample(pool, min(n_hard, len(pool)))
            for d, w in picked:
                ids.append(d)
                weights.append(w)
                sources.append("hard")
            if len(picked) < n_hard:
                n_rand += n_hard - len(picked)
                if corpus_ids:
                    self.stats["topped_up"] = self.stats.get("topped_up", 0) + 1
        if n_rand and corpus_ids:
            taken = set(ids) | set(judged)
            tries = 0
            while n_rand and tries < 50 * self.n + 100:
                tries += 1
                d = corpus_ids[rng.randrange(len(corpus_ids))]
                if d in taken:
                    continue
                taken.add(d)
                ids.append(d)
                weights.append(1.0)
                sources.append("random")
                n_rand -= 1
        if len(ids) < self.n:
            self.stats["short"] = self.stats.get("short", 0) + 1
        return Mined(ids, weights, sources)

    # ------------------------------------------------------------------ internals
    def _balanced(self, qid: str, judged: Mapping[str, int], pool: list[tuple[str, float]], k: int,
                  rng: random.Random) -> list[tuple[str, float]]:
        t = self.teacher_scores.get(qid) if self.teacher_scores is not None else None
        tp = [t[d] for d, g in judged.items() if g > 0 and d in t] if t else []
        scored = [(d, w) for d, w in pool if t and d in t]
        if not tp or len(scored) < len(pool):
            self.stats["unbalanced"] = self.stats.get("unbalanced", 0) + 1
            return rng.sample(pool, min(k, len(pool)))
        ref = min(tp)
        margins = [ref - t[d] for d, _ in scored]
        lo, hi = min(margins), max(margins)
        bins: dict[int, list[tuple[str, float]]] = {}
        for item, m in zip(scored, margins):
            b = 0 if hi == lo else min(int((m - lo) / (hi - lo) * self.n_bins), self.n_bins - 1)
            bins.setdefault(b, []).append(item)
        picked = []
        while len(picked) < k and bins:
            key = sorted(bins)[rng.randrange(len(bins))]
            members = bins[key]
            picked.append(members.pop(rng.randrange(len(members))))
            if not members:
                del bins[key]
        return picked

    def _eligible(self, qid: str, judged: Mapping[str, int], candidates: Mapping[str, float]) -> list[tuple[str, float]]:
        ranked = ranked_items(candidates)
        pos_scores = [candidates[d] for d, g in judged.items() if g > 0 and d in candidates]
        pos_ref = min(pos_scores) if pos_scores else None
        if pos_ref is None and (self.margin is not None or self.ratio is not None or self.pooling != "none"):
            self.stats["no_pos_in_run"] = self.stats.get("no_pos_in_run", 0) + 1
        t = self.teacher_scores.get(qid) if self.teacher_scores is not None else None
        t_pos = None
        if t is not None:
            tp = [t[d] for d, g in judged.items() if g > 0 and d in t]
            t_pos = min(tp) if tp else None
        lo, hi = self.rank_window
        out: list[tuple[str, float]] = []
        for rank, (d, s) in enumerate(ranked, start=1):
            if rank < lo:
                continue
            if rank > hi:
                break
            if d in judged:
                continue
            if pos_ref is not None:
                if self.margin is not None and s > pos_ref - self.margin:
                    self.stats["dropped_margin"] += 1
                    continue
                if self.ratio is not None and s > self.ratio * pos_ref:
                    self.stats["dropped_margin"] += 1
                    continue
            if t is not None and t_pos is not None and d in t and t[d] > t_pos - self.teacher_margin:
                self.stats["dropped_teacher"] += 1
                continue
            w = 1.0
            if self.pooling != "none" and pos_ref is not None:
                z = (s - pos_ref) / self.pooling_temperature
                p_fn = 1.0 / (1.0 + math.exp(-max(min(z, 60.0), -60.0)))
                if self.pooling == "skip" and p_fn > self.pooling_threshold:
                    self.stats["dropped_pooling"] += 1
                    continue
                if self.pooling == "weight":
                    w = 1.0 - p_fn
            out.append((d, w))
        return out


def _trainer_callback_base() -> type:
    try:
        from transformers import TrainerCallback
    except ImportError:  # pragma: no cover - transformers is in the train extra
        return object
    return TrainerCallback


class RemineCallback(_trainer_callback_base()):  # type: ignore[misc]
    """ADORE-style dynamic re-mining (Zhan et al. 2021, "Optimizing Dense Retrieval Model Training with
    Hard Negatives"): every ``every_n_steps`` optimizer steps, ``rescore(model, pool) -> Run`` re-scores
    the candidate pool (``pool``: the static run whose candidates are re-ranked) with the current
    model, and ``miner`` re-mines the negatives of ``dataset`` (any object with a ``negatives`` dict
    ``qid -> Mined``, e.g. :class:`rankstack.train.data.GroupedDataset`) from the new run, with the
    round number folded into the seed. A ``transformers.TrainerCallback``; usable standalone by calling
    :meth:`remine`."""

    def __init__(
        self,
        miner: NegativeMiner,
        dataset: Any,
        qrels: Mapping[str, Mapping[str, int]],
        pool: Run,
        rescore: Callable[[Any, Run], Run],
        every_n_steps: int = 1000,
        corpus_ids: Sequence[str] | None = None,
    ):
        if every_n_steps < 1:
            raise ConfigError("every_n_steps must be >= 1")
        self.miner, self.dataset, self.qrels, self.pool = miner, dataset, qrels, pool
        self.rescore, self.every_n_steps, self.corpus_ids = rescore, every_n_steps, corpus_ids
        self.rounds = 0

    def remine(self, model: Any) -> None:
        """Re-score the pool with ``model`` and replace the dataset's negatives."""
        self.rounds += 1
        new_run = self.rescore(model, self.pool)
        qids = list(self.dataset.negatives)
        self.dataset.negatives.update(
            self.miner.mine(self.qrels, new_run, self.corpus_ids, query_ids=qids, round_=self.rounds)
        )

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> Any:
        if state.global_step > 0 and state.global_step % self.every_n_steps == 0 and model is not None:
            was_training = model.training
            model.eval()
            try:
                self.remine(model)
            finally:
                model.train(was_training)
        return control
