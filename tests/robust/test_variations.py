"""Seeded rule-based query variations: deterministic per (seed, kind, query id), the id kept, each
rule doing what it says and nothing else."""

from __future__ import annotations

import pytest

from rankstack.data.records import Query
from rankstack.errors import ConfigError, MissingDependencyError
from rankstack.robust.variations import KINDS, vary, vary_queries

QS = [Query("1", "Aspirin lowers the risk of myocardial infarction."),
      Query("2", "Vitamin D deficiency increases fracture risk in elderly women"),
      Query("3", "BRCA1 mutations cause hereditary breast cancer"),
      Query("4", "the"),  # no content word
      Query("5", "insulin")]


def _wordnet():
    from rankstack.robust.wordnet import WordNet

    try:
        return WordNet()
    except MissingDependencyError:
        pytest.skip("WordNet 3.0 (wordnet-base) is not installed")


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_id_kept_and_order_independent(kind):
    wn = _wordnet() if kind == "synonym" else None
    a = vary_queries(QS, kind, seed=3, wordnet=wn)
    b = vary_queries(QS, kind, seed=3, wordnet=wn)
    assert [q.text for q in a.queries] == [q.text for q in b.queries]
    assert [q.id for q in a.queries] == [q.id for q in QS]
    # a query's variation depends on its id and the seed only, not on the other queries
    assert [vary(q, kind, 3, wordnet=wn).text for q in reversed(QS)] == [q.text for q in reversed(a.queries)]
    assert a.changed == sum(x.text != y.text for x, y in zip(QS, a.queries))
    assert a.queries[3].text == "the"  # nothing to vary: returned as it is, and not counted
    others = [vary_queries(QS, kind, seed=s, wordnet=wn) for s in range(4, 12)]
    assert any([q.text for q in o.queries] != [q.text for q in a.queries] for o in others)


def test_typo_is_one_swap_or_drop_inside_one_content_word():
    for seed in range(30):
        for q in QS[:3]:
            v = vary(q, "typo", seed).text.split()
            w = q.text.split()
            assert len(v) == len(w)
            diff = [i for i in range(len(w)) if v[i] != w[i]]
            assert len(diff) == 1
            old, new = w[diff[0]], v[diff[0]]
            assert old[0] == new[0]  # the first letter is kept
            if len(new) == len(old) - 1:  # a drop
                assert any(old[:j] + old[j + 1:] == new for j in range(1, len(old)))
            else:  # a swap of two different adjacent letters
                assert len(new) == len(old) and sorted(new) == sorted(old)
                j = next(j for j in range(len(old)) if old[j] != new[j])
                assert old[j] == new[j + 1] and old[j + 1] == new[j]


def test_order_keeps_the_words_and_changes_their_order():
    for seed in range(20):
        for q in QS[:3]:
            v = vary(q, "order", seed).text
            assert v != q.text and sorted(v.split()) == sorted(q.text.split())
    assert vary(QS[4], "order", 0).text == "insulin"


def test_drop_removes_n_content_words_never_the_last():
    for seed in range(20):
        v = vary(QS[1], "drop", seed, n=2).text.split()
        w = QS[1].text.split()
        assert len(v) == len(w) - 2
        gone = [x for x in w if x not in v]
        assert len(gone) == 2 and all(len(x) >= 3 and x.lower() not in ("the", "in") for x in gone)
    assert vary(QS[4], "drop", 0).text == "insulin"  # its only content word stays
    assert vary(Query("x", "insulin resistance"), "drop", 0, n=5).text in ("insulin", "resistance")


def test_synonym_swap_uses_wordnet_and_keeps_case_and_punctuation():
    wn = _wordnet()
    v = vary(QS[0], "synonym", 0, n=1, wordnet=wn).text.split()
    w = QS[0].text.split()
    diff = [i for i in range(len(w)) if v[i] != w[i]]
    assert len(diff) == 1
    i = diff[0]
    core = w[i].strip(".").lower()
    assert v[i].strip(".").lower() in wn.synonyms(core)[:3]
    assert w[i].endswith(".") == v[i].endswith(".") and w[i][0].isupper() == v[i][0].isupper()


def test_bad_input():
    with pytest.raises(ConfigError, match="unknown query variation 'typos'"):
        vary(QS[0], "typos")
    with pytest.raises(ConfigError, match="n >= 1"):
        vary(QS[0], "typo", n=0)
