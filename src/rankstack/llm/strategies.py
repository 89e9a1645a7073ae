"""Strategies: how many prompts, over which passages, turn a scorer into a ranking.

===========  =============  ==============================================================================
strategy     scorer kinds   what it does
===========  =============  ==============================================================================
single       point, list,   every passage scored once (point); one window over the whole list (list);
             set, pair      one set (set, <= 26 passages); all pairs (pair)
sliding      list           RankGPT sliding window: ``window``, ``stride``, from the back of the list to
                            the front, ``passes`` times
heapsort     set, pair      top-k heap sort (Setwise, Zhuang et al. SIGIR 2024; PRP's heap sort): a d-ary
                            max-heap whose node comparisons are "best of {parent, children}"
bubble       set, pair      top-k bubble sort from the bottom up (PRP-Sliding; Setwise bubble sort), ``k``
                            passes, early stop when a pass changes nothing
allpairs     pair           every pair in both orders; score = win rate (PRP-Allpair)
===========  =============  ==============================================================================

Budget: before each call a strategy asks :meth:`QueryContext.allow`; once the budget is spent it stops,
keeps what it has decided, leaves every undecided passage in its incoming order, and the query is
marked ``budget_hit``.

Scores (so LLM runs can be fused, and documented here):

* ``point`` scorers: the scorer's value (``log p(Yes) - log p(No)``, mean query log-likelihood); passages
  left unscored by the budget get ``min(scored) - 1 - i/n`` (i = incoming position) so they stay below
  and in incoming order.
* ``allpairs``: the win rate, ``sum_j p(i > j) / (n - 1)`` (uncompared pairs count as the incoming order).
* every other strategy produces an order; ``score = n - rank + 0.5 * evidence`` (rank 0 = best, so
  scores are > 0 and strictly follow the order), where ``evidence`` in [0, 1] is what the LLM said about
  the passage: FIRST's softmax over identifiers in the last window that ranked it; the mean p(best)
  of the sets / pairs it was compared in (setwise, pairwise); 0 for generated permutations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankstack.data.records import Document
from rankstack.errors import ConfigError
from rankstack.llm.scorers import QueryContext, Scorer

STRATEGIES = ("single", "sliding", "heapsort", "bubble", "allpairs")
_KINDS = {"single": {"point", "list", "set", "pair"}, "sliding": {"list"}, "heapsort": {"set", "pair"},
          "bubble": {"set", "pair"}, "allpairs": {"pair"}}


@dataclass
class StrategyConfig:
    """Parameters of the strategies (unused ones are ignored by a given strategy)."""

    window: int = 20  # sliding: passages per prompt
    stride: int = 10  # sliding: step from the back to the front
    passes: int = 1  # sliding: repeated passes
    k: int = 10  # heapsort / bubble: how many top passages to sort
    set_size: int = 4  # heapsort / bubble with a setwise scorer: passages per prompt (parent + children)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Evidence:
    def __init__(self, n: int):
        self.sum = np.zeros(n)
        self.cnt = np.zeros(n)

    def add(self, idx: Sequence[int], vals: Sequence[float]) -> None:
        for i, v in zip(idx, vals):
            self.sum[i] += float(v)
            self.cnt[i] += 1

    def value(self) -> np.ndarray:
        return np.divide(self.sum, self.cnt, out=np.zeros_like(self.sum), where=self.cnt > 0)


def _order_scores(order: Sequence[int], evidence: np.ndarray | None) -> np.ndarray:
    n = len(order)
    out = np.empty(n)
    ev = np.zeros(n) if evidence is None else np.clip(np.nan_to_num(evidence), 0.0, 1.0)
    for rank, i in enumerate(order):
        out[i] = (n - rank) + 0.5 * ev[i]
    return out


def check(scorer: Scorer, strategy: str) -> None:
    if strategy not in _KINDS:
        raise ConfigError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if scorer.kind not in _KINDS[strategy]:
        ok = [s for s in STRATEGIES if scorer.kind in _KINDS[s]]
        raise ConfigError(f"strategy {strategy!r} does not apply to the {scorer.name} scorer ({scorer.kind}); "
                         f"use one of {', '.join(ok)}")


def rerank(scorer: Scorer, strategy: str, ctx: QueryContext, docs: Sequence[Document],
           cfg: StrategyConfig | None = None) -> np.ndarray:
    """Scores for ``docs`` (given in incoming rank order) by ``scorer`` under ``strategy``."""
    cfg = cfg or StrategyConfig()
    check(scorer, strategy)
    n = len(docs)
    if n == 0:
        return np.empty(0)
    if scorer.kind == "point":
        return _pointwise(scorer, ctx, docs)
    if strategy == "allpairs" or (strategy == "single" and scorer.kind == "pair"):
        return _allpairs(scorer, ctx, docs)
    if scorer.kind == "list":
        if strategy == "single":
            order, ev = _sliding(scorer, ctx, docs, window=n, stride=n, passes=1)
        else:
            order, ev = _sliding(scorer, ctx, docs, cfg.window, cfg.stride, cfg.passes)
        return _order_scores(order, ev)
    # set / pair kinds with a sorting strategy
    best = _BestOf(scorer, ctx, docs, cfg.set_size)
    if strategy == "single":
        if n > 26:
            raise ConfigError(f"setwise 'single' shows every passage in one prompt: at most 26, got {n}; use heapsort")
        p = best.probs(list(range(n)))
        if p is None:
            return _order_scores(list(range(n)), None)
        order = sorted(range(n), key=lambda i: (-p[i], i))
        return _order_scores(order, p)
    if strategy == "heapsort":
        order = _heapsort(best, n, min(cfg.k, n))
    else:
        order = _bubble(best, n, min(cfg.k, n))
    return _order_scores(order, best.ev.value())


# ---- point ------------------------------------------------------------------------------------
def _pointwise(scorer: Any, ctx: QueryContext, docs: Sequence[Document]) -> np.ndarray:
    n = len(docs)
    m = ctx.allow(n)
    out = np.empty(n)
    if m:
        out[:m] = scorer.score_docs(ctx, docs[:m])
    if m < n:
        floor = (out[:m].min() if m else 0.0) - 1.0
        out[m:] = floor - np.arange(m, n) / n
    return out


# ---- pairs ------------------------------------------------------------------------------------
def _allpairs(scorer: Any, ctx: QueryContext, docs: Sequence[Document]) -> np.ndarray:
    n = len(docs)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]  # top pairs first
    m = min(len(pairs), ctx.allow(2 * len(pairs)) // 2)
    if m < len(pairs):
        ctx.budget_hit = True
    p = scorer.compare(ctx, [(docs[i], docs[j]) for i, j in pairs[:m]]) if m else np.empty(0)
    wins = np.zeros(n)
    for t, (i, j) in enumerate(pairs):
        v = p[t] if t < m else 1.0  # uncompared: the incoming order (i is above j)
        wins[i] += v
        wins[j] += 1.0 - v
    return wins / max(1, n - 1)


class _BestOf:
    """'Which of these is the most relevant?' for a set or a pair scorer, with evidence and budget."""

    def __init__(self, scorer: Any, ctx: QueryContext, docs: Sequence[Document], set_size: int):
        self.scorer, self.ctx, self.docs = scorer, ctx, docs
        self.d = max(1, set_size - 1) if scorer.kind == "set" else 2  # heap arity
        self.window = max(2, set_size) if scorer.kind == "set" else 2
        self.ev = _Evidence(len(docs))
        self.stopped = False

    def probs(self, idx: list[int]) -> np.ndarray | None:
        """p(best) over ``idx`` or ``None`` when the budget is spent."""
        if len(idx) == 1:
            return np.ones(1)
        if self.scorer.kind == "set":
            need = getattr(self.scorer, "calls_per_select", lambda k: 1)(len(idx))
            if self.stopped or self.ctx.allow(need) < need:
                self.stopped = True
                return None
            p = self.scorer.select(self.ctx, [self.docs[i] for i in idx])
            self.ev.add(idx, p)
            return p
        # pairwise: a knockout over the set, each match asked in both orders (2 calls)
        cur = idx[0]
        for other in idx[1:]:
            if self.stopped or self.ctx.allow(2) < 2:
                self.stopped = True
                return None
            v = float(self.scorer.compare(self.ctx, [(self.docs[cur], self.docs[other])])[0])
            self.ev.add([cur, other], [v, 1.0 - v])
            if v < 0.5:
                cur = other
        out = np.zeros(len(idx))
        out[idx.index(cur)] = 1.0
        return out

    def best(self, idx: list[int]) -> int | None:
        p = self.probs(idx)
        if p is None:
            return None
        return idx[int(np.argmax(p))]  # ties: the earlier (higher incoming) position


def _heapsort(best: _BestOf, n: int, k: int) -> list[int]:
    arr = list(range(n))  # arr[pos] = doc index; heap over positions
    d = best.d

    def sift(root: int, size: int) -> bool:
        while True:
            kids = [c for c in range(d * root + 1, d * root + d + 1) if c < size]
            if not kids:
                return True
            b = best.best([arr[root]] + [arr[c] for c in kids])
            if b is None:
                return False
            if b == arr[root]:
                return True
            c = next(c for c in kids if arr[c] == b)
            arr[root], arr[c] = arr[c], arr[root]
            root = c

    top: list[int] = []
    for i in range((n - 2) // d, -1, -1):
        if not sift(i, n):
            return list(range(n))  # budget spent while building: the incoming order stands
    size = n
    while len(top) < k and size > 0:
        top.append(arr[0])
        size -= 1
        arr[0] = arr[size]
        if len(top) < k and size > 1 and not sift(0, size):
            break
    chosen = set(top)
    return top + [i for i in range(n) if i not in chosen]


def _bubble(best: _BestOf, n: int, k: int) -> list[int]:
    order = list(range(n))
    w = best.window
    for top in range(k):
        changed = False
        end = n
        while end - top > 1:
            start = max(top, end - w)
            idx = order[start:end]
            b = best.best(idx)
            if b is None:
                return order
            if b != order[start]:
                order.remove(b)
                order.insert(start, b)
                changed = True
            if start == top:
                break
            end = start + 1  # windows overlap by one passage: the best so far travels up
        if not changed:
            break  # early stop: a pass that moves nothing means the rest is in order w.r.t. the LLM
    return order


# ---- lists ------------------------------------------------------------------------------------
def _sliding(scorer: Any, ctx: QueryContext, docs: Sequence[Document], window: int, stride: int,
             passes: int) -> tuple[list[int], np.ndarray | None]:
    n = len(docs)
    window = max(1, min(window, n))
    stride = max(1, stride)
    order = list(range(n))
    ev = np.zeros(n)
    have_ev = False
    for _ in range(max(1, passes)):
        end = n
        while True:
            start = max(0, end - window)
            if end - start > 1:
                if not ctx.allow(1):
                    return order, (ev if have_ev else None)
                idx = order[start:end]
                perm, e = scorer.rank(ctx, [docs[i] for i in idx])
                order[start:end] = [idx[p] for p in perm]
                if e is not None:
                    have_ev = True
                    for p, v in zip(range(len(idx)), e):
                        ev[idx[p]] = v
            if start == 0:
                break
            end -= stride
    return order, (ev if have_ev else None)
