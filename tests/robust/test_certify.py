"""CertDR certification on real parts: the Monte Carlo error term as published, the criterion on
hand-made lists, soundness against an exhaustive attack on a tiny BM25 collection whose substitution
sets can be enumerated, the closed-form BM25 smoothing against the text scorer, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rankstack.data.records import Document, Query
from rankstack.errors import ConfigError, RankstackError
from rankstack.index.bm25 import BM25Index
from rankstack.robust.certify import (
    CERTIFY_KS,
    Affine,
    NoiseAugmenter,
    SmoothedRanker,
    SubstitutionSets,
    certify,
    certify_list,
    mc_error,
)
from rankstack.robust.victim import BM25TextScorer, rank_of


def test_mc_error_is_certdrs_published_term():
    assert round(mc_error(1000, 0.05), 4) == 0.0859
    assert round(mc_error(2000, 0.05), 4) == 0.0607
    assert mc_error(1000) == pytest.approx(2 * np.sqrt(np.log(40) / 2000), abs=1e-15)
    assert mc_error(4000) == pytest.approx(mc_error(1000) / 2)  # 1 / sqrt(N)
    assert CERTIFY_KS == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60, 70, 80, 90)


def test_criterion_on_a_hand_made_list():
    # in smoothed order: a 0.9, b 0.5, c 0.45, d 0.1; only c can be moved (o_c = 0.3)
    c = certify_list("q", ["d", "c", "b", "a"], [0.1, 0.45, 0.5, 0.9], [0.0, 0.3, 0.0, 0.0], ks=[1, 2, 3, 4],
                     mc=mc_error(1000))
    assert c.doc_ids == ["a", "b", "c", "d"]
    # K=1: 0.9 - 0.5 - max(0.3, 0) - 0.0859 > 0; K=2: 0.5 - 0.45 - 0.3 < 0; K=3: 0.45 - 0.1 - 0 - 0.0859 > 0
    assert c.certified == {1: True, 2: False, 3: True}  # K=4: no document beyond rank 4
    assert c.margin[1] == pytest.approx(0.4 - 0.3 - 0.0858939, abs=1e-6)
    assert c.margin[3] == pytest.approx(0.35 - 0.0858939, abs=1e-6)
    # ties follow trec_eval (the larger id first): "b" and "a" tied, so the gap at K=1 is 0
    t = certify_list("q", ["a", "b", "c"], [0.5, 0.5, 0.1], [0.0, 0.0, 0.0], ks=[1, 2], mc=0.0)
    assert t.doc_ids == ["b", "a", "c"] and t.certified == {1: False, 2: True}


# -- a tiny collection with enumerable substitution sets ----------------------------------------
TABLE = {  # a chain of 5 (divided into sets of 3), a chain of 4, a pair, a clique of 3
    "cardiac": ["heart"], "heart": ["cardiac", "coronary"], "coronary": ["heart", "vascular"],
    "vascular": ["coronary", "vessel"], "vessel": ["vascular"],
    "cell": ["unit"], "unit": ["cell", "module"], "module": ["unit", "block"], "block": ["module"],
    "tumor": ["tumour"], "tumour": ["tumor"],
    "drug": ["medicine", "remedy"], "medicine": ["drug", "remedy"], "remedy": ["drug", "medicine"],
}
PLAIN = ["protein", "gene", "mouse", "arrest", "therapy", "study", "risk", "blood", "brain", "liver"]
CHAIN = ["cardiac", "heart", "coronary", "vascular", "vessel", "cell", "unit", "module", "block"]
SMALL = ["tumor", "tumour", "drug", "medicine", "remedy"]


def _toy(seed=1, n_docs=12, n_queries=24):
    """Documents of 1-2 words from the small sets, a chain word in about a third of them, and 2-6
    plain words; queries of 1-2 words."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n_docs):
        words = list(rng.choice(SMALL, size=int(rng.integers(1, 3)), replace=False))
        if rng.random() < 0.3:
            words.append(str(rng.choice(CHAIN)))
        words += list(rng.choice(PLAIN, size=int(rng.integers(2, 7)), replace=True))
        rng.shuffle(words)
        docs.append(Document(f"d{i:02d}", " ".join(words), ""))
    vocab = SMALL + CHAIN + PLAIN
    queries = [Query(f"q{i:02d}", " ".join(rng.choice(vocab, size=int(rng.integers(1, 3)), replace=False)))
               for i in range(n_queries)]
    index = BM25Index.build(docs, None, progress=False)
    sets = SubstitutionSets([w for d in docs for w in d.text.split()], lambda w: TABLE.get(w, []),
                            max_neighbours=2, mutual=True, max_set=3)
    return docs, queries, index, sets


def test_toy_sets_are_as_designed():
    sets = SubstitutionSets(list(TABLE) + PLAIN, lambda w: TABLE.get(w, []), max_neighbours=2, max_set=3)
    assert sets.smoothing_set("tumor") == ("tumor", "tumour") and sets.overlap("tumor") == 1.0
    assert sets.smoothing_set("drug") == ("drug", "medicine", "remedy") and sets.overlap("remedy") == 1.0
    # the chain of 5 is divided: S(heart) = heart and its neighbours, S(coronary) another three
    assert set(sets.smoothing_set("heart")) == {"cardiac", "heart", "coronary"}
    assert set(sets.smoothing_set("coronary")) == {"heart", "coronary", "vascular"}
    assert sets.overlap("heart") == pytest.approx(2 / 3)
    assert sets.substitutes("protein") == () and sets.overlap("protein") == 1.0
    assert sets.substitutes("Heart") == ("cardiac", "coronary")
    assert sets.tv_bound("Heart, tumor protein") == pytest.approx(1 / 3)
    cfg = sets.config()
    assert (cfg["components"], cfg["largest_component"], cfg["divided_components"]) == (4, 5, 2)
    # an attack set that is not mutual: "drug" lists "medicine", which does not list it back
    one_way = SubstitutionSets(["drug"], {"drug": ["medicine"], "medicine": ["remedy"]}.get, max_neighbours=1)
    assert one_way.substitutes("drug") == () and one_way.substitutes("medicine") == ()
    both = SubstitutionSets(["drug"], {"drug": ["medicine"], "medicine": ["remedy"]}.get, max_neighbours=1,
                            mutual=False)
    assert both.substitutes("medicine") == ("drug",) and both.vocab == {"drug", "medicine"}


def _exact_scores(sm, q, docs):
    return np.array([sm.exact(q, d) for d in docs])


def test_certificates_survive_an_exhaustive_attack():
    """Every (query, K) the certifier calls certified keeps its top K against every combination of
    substitutions in every document beyond rank K, with the smoothed scores computed exactly."""
    docs, queries, index, sets = _toy()
    sm = SmoothedRanker(BM25TextScorer(index), sets, samples=1000, seed=0)
    ks = [1, 2, 3, 4, 5]
    res = certify(sm, queries, {q.id: docs for q in queries}, ks=ks)
    ids = [d.id for d in docs]
    certified = broken = refused_broken = by_substitution = tv_mattered = 0
    needs_tv = 0  # (query, K) that the criterion without o_d would certify and the attack breaks
    for q, cert in zip(queries, res.per_query):
        exact = _exact_scores(sm, q, docs)
        variants = {}  # exact smoothed score of every attacked version of each document
        for j, d in enumerate(docs):
            words, pos, opts = sets.attacks(d.text)
            vs = []
            for combo in itertools.product(*opts):
                w = list(words)
                for p, c in zip(pos, combo):
                    w[p] = c
                vs.append(sm.exact(q, Document(d.id, " ".join(w), "")))
            variants[j] = vs  # the unattacked text is among them
        for k in ks:
            top = set(cert.doc_ids[:k])
            hit = sub = False
            for j, d in enumerate(docs):
                if d.id in top:
                    continue
                for v in variants[j]:
                    s = exact.copy()
                    s[j] = v
                    if rank_of(ids, s, j) <= k:
                        hit = True
                        sub = sub or rank_of(ids, exact, j) > k  # broken by a substitution, not by MC error
            if cert.certified[k]:
                certified += 1
                assert not hit, f"{q.id} K={k} certified but broken"
                tv_mattered += max(cert.tv[k:]) > 0
            else:
                refused_broken += hit
                by_substitution += sub
                no_tv = cert.scores[k - 1] - cert.scores[k] - res.mc_error > 0
                needs_tv += no_tv and sub
            broken += hit
    total = len(queries) * len(ks)
    # not vacuous: it certifies some and refuses some; the attack breaks some of the refused ones,
    # and some certificates hold with a movable document (o_d > 0) beyond rank K
    assert 0 < certified < total and by_substitution > 0 and tv_mattered > 0
    assert broken == refused_broken
    assert (certified, refused_broken, by_substitution, tv_mattered) == (11, 13, 2, 9)


def test_the_tv_term_refuses_a_query_that_a_substitution_breaks():
    # query "heart"; a holds it (S(heart) = cardiac heart coronary), b holds "vascular", whose set
    # lacks it; swapping vascular -> coronary (S = coronary heart vascular) ties b with a, and b wins
    # the tie (larger id). The smoothed gap alone clears the MC term; o_b = 1/3 does not.
    docs = [Document("a", "heart protein gene", ""), Document("b", "vascular protein gene", ""),
            Document("0", "protein liver", "")]
    sets = SubstitutionSets(list(TABLE), lambda w: TABLE.get(w, []), max_neighbours=2, max_set=3)
    sm = SmoothedRanker(BM25TextScorer(BM25Index.build(docs, None, progress=False)), sets, samples=2000)
    q = Query("q", "heart")
    cert = certify(sm, [q], {"q": docs}, ks=[1]).per_query[0]
    assert cert.doc_ids[:2] == ["a", "b"] and cert.scores[1] == 0.0
    assert cert.scores[0] - cert.scores[1] > mc_error(2000) and cert.tv[1] == pytest.approx(1 / 3)
    assert cert.certified == {1: False}
    attacked = sm.exact(q, Document("b", "coronary protein gene", ""))
    assert attacked == sm.exact(q, docs[0]) > 0 and rank_of(["a", "b", "0"], np.array([
        sm.exact(q, docs[0]), attacked, 0.0]), 1) == 1


def test_closed_form_bm25_equals_the_text_scorer_on_sampled_texts():
    docs, queries, index, sets = _toy()
    fast = SmoothedRanker(BM25TextScorer(index), sets, samples=40, seed=5)

    class Texts:  # the same scorer reached through the generic text path
        def __init__(self):
            self.inner = BM25TextScorer(index)

        def score_batch(self, batch):
            return self.inner.score_batch(batch)

    slow = SmoothedRanker(Texts(), sets, samples=40, seed=5, score_map=fast.score_map)
    assert not slow._bm25 and fast._bm25
    long = Query("long", " ".join(SMALL + CHAIN + PLAIN[:4]))  # >= 8 terms: numpy sums pairwise
    assert len(index.query_terms(long.text)[0]) >= 8
    for q in queries[:8] + [long]:
        for d in docs:
            assert np.array_equal(fast.sample_scores(q, d), slow.sample_scores(q, d))
            assert fast.exact(q, d) == slow.exact(q, d)
    assert slow.texts_scored == fast.texts_scored


def test_seeded_deterministic_and_order_free():
    docs, queries, index, sets = _toy()
    run = {q.id: docs for q in queries[:6]}
    a = certify(SmoothedRanker(BM25TextScorer(index), sets, samples=200, seed=7), queries[:6], run, ks=[1, 2, 3])
    b = certify(SmoothedRanker(BM25TextScorer(index), sets, samples=200, seed=7), queries[:6], run, ks=[1, 2, 3])
    ja, jb = a.to_json(), b.to_json()
    ja.pop("seconds"), jb.pop("seconds")
    assert ja == jb
    c = SmoothedRanker(BM25TextScorer(index), sets, samples=200, seed=8)
    sm = SmoothedRanker(BM25TextScorer(index), sets, samples=200, seed=7)
    alone = [sm.score(queries[0], d) for d in reversed(docs)][::-1]
    assert np.array_equal(np.array(alone), sm.scores(queries[0], docs))  # a doc's samples: seed and id only
    d = next(d for d in docs if sets.slots(d.text)[1])
    texts = sm.sample_texts(d, 50)
    assert texts == SmoothedRanker(BM25TextScorer(index), sets, samples=200, seed=7).sample_texts(d, 50)
    assert texts != c.sample_texts(d, 50) and len(set(texts)) > 1


def test_ratio_at_k_shape_and_the_mc_term_only_removes_certificates():
    docs, queries, index, sets = _toy()
    sm = SmoothedRanker(BM25TextScorer(index), sets, samples=300, seed=1)
    run = {q.id: docs for q in queries}
    r = certify(sm, queries, run)
    assert list(r.certified_ratio) == list(CERTIFY_KS)
    assert all(r.certified_ratio[k] is None and r.queries_at_k[k] == 0 for k in CERTIFY_KS if k >= len(docs))
    assert all(0 <= r.certified_ratio[k] <= 1 and r.queries_at_k[k] == len(queries) for k in range(1, 11))
    loose = certify(sm, queries, run, consider_mc_error=False)
    for c, lc in zip(r.per_query, loose.per_query):
        assert c.doc_ids == lc.doc_ids
        assert all(lc.certified[k] for k in c.certified if c.certified[k])  # certified with the term => without
    assert sum(loose.certified_ratio[k] for k in range(1, 11)) > sum(r.certified_ratio[k] for k in range(1, 11))
    j = r.to_json()
    assert j["mc_error"] == pytest.approx(mc_error(300)) and j["certified_ratio"]["90"] is None
    assert set(j["config"]["sets"]) >= {"max_neighbours", "mutual", "max_set", "divided_components"}


def test_bad_input_raises_rankstack_errors():
    docs, queries, index, sets = _toy()
    sm = SmoothedRanker(BM25TextScorer(index), sets, samples=10)
    for bad in (lambda: mc_error(0), lambda: mc_error(1000, 1.5), lambda: mc_error(1000, 0.0),
                lambda: SmoothedRanker(BM25TextScorer(index), sets, samples=0),
                lambda: SmoothedRanker(object(), sets),
                lambda: SubstitutionSets(["heart"], TABLE.get, max_set=0),
                lambda: SubstitutionSets(["heart"], TABLE.get, max_neighbours=0),
                lambda: Affine(1.0, 1.0),
                lambda: certify(sm, queries[:1], {queries[0].id: docs}, ks=[0]),
                lambda: certify(sm, queries[:1], {}),
                lambda: sm.exact(queries[0], next(d for d in docs if sets.slots(d.text)[1]), limit=1)):
        with pytest.raises(RankstackError):
            bad()
    with pytest.raises(ConfigError, match="no candidate documents"):
        certify(sm, queries[:1], {})


def test_noise_augmenter_draws_from_the_smoothing_sets():
    """Noise-augmented training (issue #19): every replaced word is a member of its smoothing set,
    capitalisation and punctuation kept; p=1 draws uniformly from S(x) (the word itself included);
    smaller p changes fewer words; the same seed gives the same texts; the collator augments
    documents, never queries."""
    from rankstack.train.data import CrossEncoderCollator

    sets = SubstitutionSets(list(TABLE) + PLAIN, lambda w: TABLE.get(w, []), max_neighbours=2, max_set=3)
    text = "Drug therapy, tumor protein."
    aug = NoiseAugmenter(sets, p=1.0, seed=0)
    outs = [aug(text).split() for _ in range(3000)]
    assert all(o[1] == "therapy," and o[3] == "protein." for o in outs)  # words without a set stay
    first = [o[0] for o in outs]
    assert set(first) == {"Drug", "Medicine", "Remedy"}  # capitalised like the original
    counts = np.array([first.count(w) for w in ("Drug", "Medicine", "Remedy")])
    assert np.all(np.abs(counts - 1000) < 100), counts  # uniform over S(drug), 3 members
    third = [o[2] for o in outs]
    assert set(third) == {"tumor,", "tumour,"} or set(third) == {"tumor", "tumour"}  # punctuation kept
    assert aug.texts == 3000 and 0 < aug.words_changed < 2 * 3000
    again = NoiseAugmenter(sets, p=1.0, seed=0)
    assert [again(text).split() for _ in range(3000)] == outs
    light = NoiseAugmenter(sets, p=0.2, seed=0)
    for _ in range(3000):
        light(text)
    assert light.words_changed < aug.words_changed / 3
    assert NoiseAugmenter(sets, seed=1)("protein gene") == "protein gene"
    for bad in (0.0, 1.5, -1):
        with pytest.raises(ConfigError, match="noise substitution probability"):
            NoiseAugmenter(sets, p=bad)

    class Tok:  # records what the collator tokenises
        def __call__(self, qs, ds, **kw):
            import torch

            self.qs, self.ds = qs, ds
            return {"input_ids": torch.zeros((len(qs), 4), dtype=torch.long),
                    "attention_mask": torch.ones((len(qs), 4), dtype=torch.long)}

    tok = Tok()
    coll = CrossEncoderCollator(tok, max_length=64, augment=NoiseAugmenter(sets, p=1.0, seed=3))
    batch = [{"query": "drug tumor", "docs": ["drug tumor"] * 20, "labels": [1.0] + [0.0] * 19, "idx": 0}]
    coll(batch)
    assert tok.qs == ["drug tumor"] * 20 and len(set(tok.ds)) > 1  # the query is never changed
