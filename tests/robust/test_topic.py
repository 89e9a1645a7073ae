"""The topic-oriented attack (TARA's goal) on real BM25 over SciFact: clusters by candidate overlap,
the share of a cluster's queries reached, re-checked per query, the budget kept for the re-check."""

from __future__ import annotations

import pytest

from rankstack.data import datasets
from rankstack.errors import ConfigError
from rankstack.index.bm25 import BM25Index
from rankstack.robust.attacks import Constraints
from rankstack.robust.topic import TopicAttack, overlap_clusters, summarize_topic
from rankstack.robust.victim import BM25TextScorer, BudgetExhausted, QueryBudget, Victim, full_rank


@pytest.fixture(scope="module")
def scifact():
    coll = datasets.load("scifact")
    index = BM25Index.build(coll.docs.values(), None, progress=False)
    qs = list(coll.queries)
    run = index.retriever(k=100)(qs)
    lists = {q.id: [d for d, _ in run.ranked(q.id)] for q in qs}
    return coll, index, {q.id: q for q in qs}, lists


def test_overlap_clusters_by_shared_candidates():
    lists = {"a": ["1", "2", "3"], "b": ["2", "3"], "c": ["3", "4"], "d": ["9"], "e": ["2", "3", "7"]}
    assert overlap_clusters(lists, ["a"], 3) == {"a": ["a", "b", "e"]}  # 2 shared each; tie -> smaller id
    assert overlap_clusters(lists, ["a"], 9) == {"a": ["a", "b", "e", "c"]}  # "d" shares nothing
    with pytest.raises(ConfigError, match="size >= 2"):
        overlap_clusters(lists, ["a"], 1)
    with pytest.raises(ConfigError, match="'z'"):
        overlap_clusters(lists, ["z"], 3)


def _setup(scifact, seed="1", size=5, rank=60):
    coll, index, qby, lists = scifact
    cluster = overlap_clusters(lists, [seed], size)[seed]
    docs_of = {q: [coll.docs[d] for d in lists[q]] for q in cluster}
    return [qby[q] for q in cluster], docs_of, coll.docs[lists[seed][rank - 1]]


def test_topic_attack_promotes_one_document_across_the_cluster(scifact):
    coll, index, qby, lists = scifact
    cluster, docs_of, target = _setup(scifact)
    assert [q.id for q in cluster] == ["1", "880", "5", "48", "598"]
    texts = [q.text for q in cluster]
    att = TopicAttack(constraints=Constraints(max_words=10, max_share=0.1))
    v = Victim(BM25TextScorer(index), QueryBudget(2000))
    r = att.attack(v, cluster, docs_of, target, k=10)
    assert [q.text for q in cluster] == texts  # queries never modified
    # the target is the seed's rank 60 and appended (rank 101) to the four lists that lack it
    assert r.start_ranks == {"1": 60, "880": 101, "5": 101, "48": 101, "598": 101} and r.start_share == 0.0
    assert r.final_ranks == {"1": 1, "880": 4, "5": 8, "48": 4, "598": 27}
    assert r.share == 0.8 and r.status == "partial" and r.words_changed == 10
    assert r.victim_queries == v.budget.used == 785
    for q in cluster:  # every rank is the real victim's, by a full re-sort
        ids = [d.id for d in docs_of[q.id]]
        docs = docs_of[q.id] + ([] if target.id in ids else [target])
        ids = [d.id for d in docs]
        s = Victim(BM25TextScorer(index)).scores(q, docs, {ids.index(target.id): r.text})
        assert full_rank(ids, s, ids.index(target.id)) == r.final_ranks[q.id]
    assert r.text.startswith(r.original) and len(r.text.split()) == len(r.original.split()) + 10
    again = att.attack(Victim(BM25TextScorer(index), QueryBudget(2000)), cluster, docs_of, target, k=10)
    assert again == r and again.text == r.text  # deterministic
    # the plain (uncapped) sum of margins lifts the seed and leaves most of the cluster behind
    plain = TopicAttack(constraints=Constraints(max_words=10, max_share=0.1), cap=None).attack(
        Victim(BM25TextScorer(index)), cluster, docs_of, target, k=10)
    assert plain.final_ranks["1"] == 1 and plain.share < r.share
    m = summarize_topic([r, plain])
    assert m["share_reached"] == pytest.approx((0.8 + plain.share) / 2) and m["cluster_success_rate"] == 0.0
    assert m["avg_boost"] == pytest.approx((sum(r.start_ranks[q] - r.final_ranks[q] for q in r.cluster) / 5
                                            + sum(plain.start_ranks[q] - plain.final_ranks[q]
                                                  for q in plain.cluster) / 5) / 2)


def test_topic_prepend_puts_the_same_terms_first(scifact):
    """BM25 is a bag of words: prepending finds the same edits and ranks as appending; only the order of
    the words differs (the inserted terms first, in insertion order, then the original text)."""
    coll, index, qby, lists = scifact
    cluster, docs_of, target = _setup(scifact)
    cons = Constraints(max_words=10, max_share=0.1)
    app = TopicAttack(constraints=cons).attack(Victim(BM25TextScorer(index)), cluster, docs_of, target, k=10)
    pre = TopicAttack(constraints=cons, position="prepend").attack(Victim(BM25TextScorer(index)), cluster,
                                                                   docs_of, target, k=10)
    assert pre.final_ranks == app.final_ranks and pre.words_changed == app.words_changed == 10
    added = app.text.split()[-10:]
    assert pre.text == " ".join(added) + " " + pre.original and pre.text != app.text
    with pytest.raises(ConfigError, match="'append' or 'prepend'"):
        TopicAttack(position="middle")


def test_topic_budget_is_kept_for_the_recheck(scifact):
    coll, index, qby, lists = scifact
    cluster, docs_of, target = _setup(scifact)
    att = TopicAttack(constraints=Constraints(max_words=10, max_share=0.1))
    with pytest.raises(BudgetExhausted, match="at least 10"):
        att.attack(Victim(BM25TextScorer(index), QueryBudget(9)), cluster, docs_of, target)
    v = Victim(BM25TextScorer(index), QueryBudget(300))
    r = att.attack(v, cluster, docs_of, target)
    assert r.status == "budget" and v.budget.used <= 300 and r.victim_queries == v.budget.used
    assert 0 < r.words_changed < 10  # the best text so far, re-checked: ranks gained, the top 10 not yet
    assert sum(r.final_ranks.values()) < sum(r.start_ranks.values()) and r.share == 0.0


def test_topic_bad_input_and_skipped(scifact):
    coll, index, qby, lists = scifact
    cluster, docs_of, target = _setup(scifact, rank=1)
    v = Victim(BM25TextScorer(index))
    # the seed's rank-1 document, asked for the top 101 of each list: already there -> skipped
    r = TopicAttack().attack(v, cluster, docs_of, target, k=101)
    assert r.status == "skipped" and r.share == 1.0 and r.words_changed == 0 and r.text == r.original
    assert summarize_topic([r])["share_reached"] is None
    for bad in (lambda: TopicAttack().attack(v, cluster, docs_of, target, k=0),
                lambda: TopicAttack().attack(v, [], docs_of, target),
                lambda: TopicAttack().attack(v, cluster, {}, target),
                lambda: TopicAttack(candidates=None, insert_terms=False),
                lambda: TopicAttack(max_candidates=0),
                lambda: Constraints(max_words=0)):
        with pytest.raises(ConfigError):
            bad()


def test_attack_cli_method_topic(scifact, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from rankstack.data.formats import write_run

    coll, index, qby, lists = scifact
    root = Path(__file__).resolve().parents[2]
    run = tmp_path / "bm25.trec"
    write_run(index.retriever(k=100)(list(qby.values())), run, tag="bm25")

    def rs(*more):
        return subprocess.run([sys.executable, "-m", "rankstack.interfaces.cli", "attack", str(run),
                               str(root / "data/scifact/queries.jsonl"), str(root / "data/scifact"), "--victim", "bm25",
                               *more], cwd=root, capture_output=True, text=True, timeout=600)

    out = tmp_path / "t.json"
    p = rs("--method", "topic", "--queries", "1", "--cluster", "3", "--budget", "500", "--targets", "easy5",
           "-o", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    row = json.loads(out.read_text())["attacks"][0]
    assert (row["method"], row["protocol"], row["targets"], row["cluster_size"]) == ("topic", "easy5", 5, 3.0)
    assert {"success_rate", "top10_rate", "top50_rate", "avg_boost", "perturbation", "victim_queries"} <= set(row)
    assert all(r["cluster"] == ["1", "880", "5"] and r["victim_queries"] <= 500 for r in row["results"])
    assert row["share_reached_before"] == 0.0 and row["share_reached"] == 1.0 and row["perturbation"] < 10
    assert row["position"] == "append"
    for bad, msg in ((("--cluster", "1"), "--cluster must be at least 2"), (("--budget", "5"), "too small"),
                     (("--position", "middle"), "--position must be append or prepend"),
                     (("-O", "max_length=192"), "--model and -O do not apply to the bm25 victim")):
        p = rs("--method", "topic", *bad, "-o", str(tmp_path / "x.json"))
        assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr
