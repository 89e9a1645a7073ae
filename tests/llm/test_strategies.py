"""Sorting mechanics and budget accounting of the strategies, driven by a deterministic in-process
scorer that is a real function of the texts (query-term overlap), so the right answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rankstack.data.records import Document, Query, Run
from rankstack.llm.scorers import Budget, QueryContext
from rankstack.llm.strategies import StrategyConfig, rerank
from rankstack.stages.llm import LLMReranker

Q = Query("q1", "t0 t1 t2 t3 t4 t5 t6 t7 t8 t9 t10 t11 t12 t13 t14 t15 t16 t17 t18 t19")


def overlap(q: Query, d: Document) -> int:
    return len(set(q.text.split()) & set(d.text.split()))


def make_docs(n: int, seed: int = 0) -> list[Document]:
    """n documents whose overlap with Q is a shuffled 0..n-1 (distinct: a unique true order)."""
    rng = np.random.default_rng(seed)
    rel = rng.permutation(n)
    return [Document(f"d{i:02d}", " ".join(f"t{j}" for j in range(r)) + f" filler{i}") for i, r in enumerate(rel)]


class OverlapScorer:
    """Counts one call per prompt into the meter, like a backend would."""

    def __init__(self, kind: str):
        self.kind = kind
        self.name = {"point": "pointwise", "pair": "pairwise", "set": "setwise", "list": "listwise"}[kind]
        self.backend = self

    def config(self):
        return {"scorer": "overlap", "kind": self.kind}

    def _call(self, ctx, n=1):
        ctx.meter.add(n, 10 * n, 1 * n, 0.0)

    def score_docs(self, ctx, docs):
        self._call(ctx, len(docs))
        return np.array([overlap(ctx.query, d) for d in docs], dtype=float)

    def compare(self, ctx, pairs):
        self._call(ctx, 2 * len(pairs))
        return np.array([1.0 if overlap(ctx.query, a) > overlap(ctx.query, b) else 0.0 for a, b in pairs])

    def select(self, ctx, docs):
        self._call(ctx)
        s = np.array([overlap(ctx.query, d) for d in docs], dtype=float)
        e = np.exp(s - s.max())
        return e / e.sum()

    def rank(self, ctx, docs):
        self._call(ctx)
        s = [overlap(ctx.query, d) for d in docs]
        return sorted(range(len(docs)), key=lambda i: -s[i]), None


def truth(docs):
    return sorted(range(len(docs)), key=lambda i: -overlap(Q, docs[i]))


def order_of(scores):
    return sorted(range(len(scores)), key=lambda i: -scores[i])


@pytest.mark.parametrize(
    "kind,strategy,cfg,full,calls",
    [
        ("point", "single", StrategyConfig(), True, 20),
        ("pair", "allpairs", StrategyConfig(), True, 380),
        ("list", "single", StrategyConfig(), True, 1),
        # window 8, stride 4 over 20: windows end at 20,16,12,8 -> 4 calls; sorts the top 4 exactly
        ("list", "sliding", StrategyConfig(window=8, stride=4), False, 4),
        ("set", "single", StrategyConfig(), True, 1),
        ("set", "heapsort", StrategyConfig(k=5, set_size=4), False, None),
        ("pair", "heapsort", StrategyConfig(k=5), False, None),
        ("set", "bubble", StrategyConfig(k=5, set_size=4), False, None),
        ("pair", "bubble", StrategyConfig(k=5), False, None),
    ],
)
def test_strategies_sort_correctly(kind, strategy, cfg, full, calls):
    docs = make_docs(20, seed=3)
    ctx = QueryContext(Q)
    s = rerank(OverlapScorer(kind), strategy, ctx, docs, cfg)
    got = order_of(s)
    want = truth(docs)
    top = len(docs) if full else (4 if strategy == "sliding" else cfg.k)
    assert got[:top] == want[:top]
    if calls is not None:
        assert ctx.meter.calls == calls
    assert not ctx.budget_hit
    assert len(set(s.tolist())) == len(s)  # no ties: every strategy gives a strict order


def test_sliding_two_passes_sorts_more():
    docs = make_docs(20, seed=5)
    ctx = QueryContext(Q)
    s = rerank(OverlapScorer("list"), "sliding", ctx, docs, StrategyConfig(window=8, stride=4, passes=5))
    assert order_of(s) == truth(docs)
    assert ctx.meter.calls == 20


def test_heapsort_uses_fewer_calls_than_allpairs():
    docs = make_docs(20, seed=1)
    ctx = QueryContext(Q)
    rerank(OverlapScorer("pair"), "heapsort", ctx, docs, StrategyConfig(k=3))
    assert 0 < ctx.meter.calls < 380


def test_bubble_early_stop_on_sorted_input():
    docs = make_docs(12, seed=2)
    docs = [docs[i] for i in truth(docs)]  # already in the right order
    ctx = QueryContext(Q)
    s = rerank(OverlapScorer("pair"), "bubble", ctx, docs, StrategyConfig(k=10))
    assert order_of(s) == list(range(12))
    assert ctx.meter.calls == 2 * 11  # one pass of 11 comparisons (2 calls each), then it stops


@pytest.mark.parametrize("kind,strategy", [("point", "single"), ("pair", "allpairs"), ("pair", "heapsort"),
                                           ("set", "heapsort"), ("pair", "bubble"), ("list", "sliding")])
def test_budget_respected_and_rest_kept(kind, strategy):
    docs = make_docs(20, seed=4)
    ctx = QueryContext(Q, budget=Budget(max_calls=3))
    s = rerank(OverlapScorer(kind), strategy, ctx, docs, StrategyConfig(window=8, stride=4, k=5))
    assert ctx.meter.calls <= 3
    assert ctx.budget_hit
    assert sorted(order_of(s)) == list(range(20))
    if kind == "point":  # 3 scored by overlap, the other 17 after them in incoming order
        assert order_of(s)[3:] == list(range(3, 20))
        assert order_of(s)[:3] == sorted(range(3), key=lambda i: -overlap(Q, docs[i]))
    if kind == "list":  # 3 windows (ending at 20, 16, 12): positions 0..3 untouched
        assert order_of(s)[:4] == [0, 1, 2, 3]


def test_budget_tokens():
    docs = make_docs(20, seed=4)
    ctx = QueryContext(Q, budget=Budget(max_tokens=55))  # 11 tokens per call: stops after 5 calls
    rerank(OverlapScorer("list"), "sliding", ctx, docs, StrategyConfig(window=2, stride=1))
    assert ctx.meter.calls == 5 and ctx.budget_hit


def test_stage_stats_and_log(tmp_path):
    docs = make_docs(10, seed=7)
    store = {d.id: d for d in docs}
    run = Run({"q1": {d.id: 10.0 - i for i, d in enumerate(docs)}, "q2": {}})
    log = tmp_path / "log.jsonl"
    st = LLMReranker(OverlapScorer("pair"), "allpairs", docs=store, log_path=str(log))
    out = st([Q, Query("q2", "nothing")], run)
    best = max(docs, key=lambda d: overlap(Q, d)).id
    assert out.ranked("q1")[0][0] == best
    pq = out.stats["per_query"]["q1"]
    assert pq["llm_calls"] == 90 and pq["prompt_tokens"] == 900 and pq["budget_hit"] is False
    assert out.stats["llm"]["llm_calls"] == 90 and out["q2"] == {}
    assert out.stats["wall_s"] > 0
    assert log.exists() and log.read_text() == ""  # the overlap scorer logs nothing; the file is created and closed


def test_stage_progress_bar(capsys):
    docs = make_docs(6, seed=3)
    run = Run({"q1": {d.id: 6.0 - i for i, d in enumerate(docs)}, "q2": {}})
    st = LLMReranker(OverlapScorer("pair"), "allpairs", docs={d.id: d for d in docs}, progress=True)
    quiet = LLMReranker(OverlapScorer("pair"), "allpairs", docs={d.id: d for d in docs})
    out = st([Q, Query("q2", "nothing")], run)
    err = capsys.readouterr().err
    assert "llm-pairwise-allpairs" in err and "2/2" in err and "calls=30" in err
    assert quiet([Q, Query("q2", "nothing")], run).ranked("q1") == out.ranked("q1")
    assert capsys.readouterr().err == ""


def test_wrong_strategy_for_scorer():
    with pytest.raises(ValueError, match="does not apply"):
        rerank(OverlapScorer("list"), "heapsort", QueryContext(Q), make_docs(3))
    with pytest.raises(ValueError, match="unknown strategy"):
        rerank(OverlapScorer("list"), "quick", QueryContext(Q), make_docs(3))


def test_deterministic():
    docs = make_docs(15, seed=9)
    runs = [rerank(OverlapScorer("set"), "heapsort", QueryContext(Q), docs, StrategyConfig(k=6)) for _ in range(2)]
    assert np.array_equal(*runs)


def test_allpairs_win_rate_values():
    docs = make_docs(5, seed=0)
    s = rerank(OverlapScorer("pair"), "allpairs", QueryContext(Q), docs)
    # win rate of the j-th best is (n - 1 - j) / (n - 1)
    assert sorted(s.tolist(), reverse=True) == [1.0, 0.75, 0.5, 0.25, 0.0]
    _ = list(itertools.chain())
