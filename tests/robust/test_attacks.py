"""The attack framework on real parts: BM25 over SciFact (the text scorer equals the index's
reranker), rank conversion against a full re-sort, the query budget's hard stop, the re-check."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.data import datasets
from rankstack.errors import ConfigError, RankstackError
from rankstack.index.bm25 import BM25Index
from rankstack.robust.attacks import (
    Constraints,
    RankGain,
    TopK,
    WordSubstitution,
    keyword_spam,
    sample_targets,
    stuffing,
)
from rankstack.robust.metrics import Spamicity, summarize
from rankstack.robust.victim import BM25TextScorer, BudgetExhausted, QueryBudget, Victim, full_rank, rank_of


@pytest.fixture(scope="module")
def scifact():
    coll = datasets.load("scifact")
    index = BM25Index.build(coll.docs.values(), None, progress=False)
    qs = list(coll.queries)[:5]
    run = index.retriever(k=100)(qs)
    return coll, index, qs, run


def _cands(coll, run, q):
    ids = [d for d, _ in run.ranked(q.id)]
    return ids, [coll.docs[d] for d in ids]


def test_rank_of_equals_a_full_resort_ties_included():
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(1, 30))
        ids = [f"d{int(x)}" for x in rng.choice(1000, size=n, replace=False)]
        scores = rng.integers(0, 4, size=n).astype(np.float64)  # many ties
        t = int(rng.integers(0, n))
        assert rank_of(ids, scores, t) == full_rank(ids, scores, t)
    # ties go to the larger doc id (trec_eval): "d9" before "d10" before "d1" at the same score
    assert [rank_of(["d1", "d10", "d9"], np.ones(3), i) for i in range(3)] == [3, 2, 1]


def test_bm25_text_scorer_equals_the_index_reranker(scifact):
    coll, index, qs, run = scifact
    v, rr = Victim(BM25TextScorer(index)), index.reranker()
    for q in qs:
        ids, docs = _cands(coll, run, q)
        assert np.array_equal(v.scores(q, docs), rr.score_ids(q, ids).astype(np.float64))
    assert v.budget.used == len(qs)


def test_stuffing_moves_known_targets_on_bm25(scifact):
    coll, index, qs, run = scifact
    q = qs[0]
    ids, docs = _cands(coll, run, q)
    v = Victim(BM25TextScorer(index))
    r = stuffing(v, q, docs, 63)
    assert (r.start_rank, r.final_rank, r.success, r.status) == (64, 1, True, "succeeded")
    assert r.victim_queries == 3  # candidates once, the stuffed text, the re-check
    assert r.text == r.original + " 0-dimensional biomaterials show inductive properties"
    assert q.text == "0-dimensional biomaterials show inductive properties."  # never modified
    spam = keyword_spam(v, q, docs, 95, repeat=10)
    assert (spam.start_rank, spam.final_rank, spam.success) == (96, 1, True)
    det = Spamicity(index)
    assert det.score(q.text, spam.original) < 0.01 < 0.2 < det.score(q.text, spam.text)
    assert not det.flagged(q.text, spam.original) and det.flagged(q.text, spam.text)
    m = summarize([r, spam], {q.id: q.text}, det)
    assert m["success_rate"] == 1.0 and m["top10_rate"] == 1.0 and m["avg_boost"] == (63 + 95) / 2
    assert m["victim_queries"] == 6 and m["spam_flag_rate"] == 0.5 and m["spam_flag_rate_original"] == 0.0


class _Counting:
    """A stage wrapper that counts the candidate lists it is asked to score."""

    def __init__(self, stage):
        self.stage, self.calls = stage, 0

    def score_batch(self, batch):
        self.calls += len(batch.queries)
        return self.stage.score_batch(batch)


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 40, 400])
def test_query_budget_stops_at_exactly_n_calls(scifact, limit):
    coll, index, qs, run = scifact
    q = qs[1]
    ids, docs = _cands(coll, run, q)
    stage = _Counting(BM25TextScorer(index))
    v = Victim(stage, QueryBudget(limit))
    qterm = "genomes"
    att = WordSubstitution(candidates=lambda w: [qterm, w + "s"], constraints=Constraints(None, None))
    if limit == 1:  # reading the candidates would leave no call for the re-check
        with pytest.raises(BudgetExhausted):
            att(v, q, docs, 80, goal=TopK(1))
        assert stage.calls == v.budget.used == 0
        return
    r = att(v, q, docs, 80, goal=TopK(1))
    assert stage.calls == v.budget.used == r.victim_queries
    if r.status == "budget":  # stopped by the budget: every call spent but the kept-back re-check
        assert stage.calls == (limit if r.words_changed else limit - 1) and not r.success
    else:
        assert stage.calls < limit
    words = len(r.original.split())
    # importance by deletion (one call per replaceable word) then two candidates per position
    assert {2: "budget", 3: "budget", 7: "budget", 40: "budget"}.get(limit, r.status) == r.status
    assert words > 40


def test_a_claimed_success_that_fails_the_recheck_is_a_failure(scifact):
    coll, index, qs, run = scifact
    q = qs[0]
    ids, docs = _cands(coll, run, q)

    class Stale:  # scores lone texts (the search) as given, a full list from the stored texts
        def __init__(self):
            self.inner = BM25TextScorer(index)

        def score_batch(self, batch):
            if len(batch.doc_ids[0]) > 1:
                batch.docs = [[coll.docs[d] for d in ids] for ids in batch.doc_ids]
            return self.inner.score_batch(batch)

    r = stuffing(Victim(Stale()), q, docs, 63)
    assert (r.success, r.status, r.start_rank, r.final_rank) == (False, "recheck-failed", 64, 64)


def test_bad_configurations_raise_rankstack_errors(scifact):
    coll, index, qs, run = scifact
    ids, docs = _cands(coll, run, qs[0])
    for bad in (lambda: QueryBudget(0), lambda: TopK(0), lambda: Constraints(max_words=0),
                lambda: sample_targets(ids, "medium5"), lambda: sample_targets(ids[:20], "easy5"),
                lambda: stuffing(Victim(BM25TextScorer(index)), qs[0], docs, 5, position="middle")):
        with pytest.raises(RankstackError):
            bad()
    with pytest.raises(ConfigError):
        keyword_spam(Victim(BM25TextScorer(index)), qs[0], docs, 5, repeat=0)
    top = stuffing(Victim(BM25TextScorer(index)), qs[0], docs, 0)
    assert top.status == "skipped" and not top.success


def test_targets_are_seeded_and_follow_the_protocol(scifact):
    coll, index, qs, run = scifact
    ids, _ = _cands(coll, run, qs[0])
    e = sample_targets(ids, "easy5", seed=3)
    assert e == sample_targets(ids, "easy5", seed=3) and len(e) == 5 and all(50 <= i < 100 for i in e)
    assert sample_targets(ids, "hard5") == [95, 96, 97, 98, 99]


def test_rank_gain_goal_and_deterministic_substitution(scifact):
    coll, index, qs, run = scifact
    q = qs[2]
    ids, docs = _cands(coll, run, q)
    qt = [w for w in q.text.lower().replace(".", "").split() if len(w) > 4 and w.isalpha()]

    def cands(w):  # a substitution table that can put a query term in
        return [qt[0], w]

    att = WordSubstitution(cands, constraints=Constraints(max_words=3, max_share=0.5))
    a = att(Victim(BM25TextScorer(index)), q, docs, 70, goal=RankGain())
    b = att(Victim(BM25TextScorer(index)), q, docs, 70, goal=RankGain())
    assert a == b and a.text == b.text
    assert a.success and a.final_rank < a.start_rank and 1 <= a.words_changed <= 3
    # one swap to "abnormal" lifts it from 71 to 13 (the goal, any gain, is met at once); calls: the
    # candidates, one deletion per replaceable word, the 2 candidates of the first position, the re-check
    assert (a.start_rank, a.final_rank, a.words_changed, a.victim_queries) == (71, 13, 1, 111)
    assert a.text.lower().count("abnormal") == a.original.lower().count("abnormal") + 1


def test_attacks_that_cannot_work_are_skipped_or_refused(scifact):
    coll, index, qs, run = scifact
    q = qs[0]
    ids, docs = _cands(coll, run, q)
    att = WordSubstitution(candidates=lambda w: [w + "s"], constraints=Constraints(max_words=5, max_share=0.5))
    v = Victim(BM25TextScorer(index))
    top = att(v, q, docs, 0)  # BM25's rank 1 already: nothing to gain
    assert (top.status, top.success, top.start_rank, top.words_changed, top.victim_queries) == ("skipped", False, 1,
                                                                                               0, 1)
    # an edit budget that rounds to 0 words for this document: skipped, the text untouched
    none = WordSubstitution(lambda w: [w + "s"], constraints=Constraints(max_words=None, max_share=0.001))
    r = none(Victim(BM25TextScorer(index)), q, docs, 70)
    assert r.status == "skipped" and r.text == r.original and r.victim_queries == 1 and r.start_rank == 71
    assert summarize([top, r])["success_rate"] is None  # nothing attacked
    with pytest.raises(ConfigError, match="score_batch"):  # not a reranker stage
        Victim(object())
    with pytest.raises(ConfigError, match="QueryBudget"):
        Victim(BM25TextScorer(index), 5)
