"""Cross-encoder reranker: scores equal CrossEncoder.predict, stats, passages (MaxP/FirstP/SumP),
query-aware summaries."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from rankstack.data.records import Document, Query, Run
from rankstack.encoders.runtime import CrossEncoderModel
from rankstack.stages.crossencoder import (
    CrossEncoderReranker,
    query_aware_summary,
    split_sentences,
    word_windows,
)
from rankstack.testing import random_head_cross_encoder as random_cross_encoder
from rankstack.testing import synthetic_collection


@pytest.fixture(scope="module")
def model() -> CrossEncoderModel:
    return CrossEncoderModel(random_cross_encoder())


def test_scores_equal_crossencoder_predict(model):
    from sentence_transformers import CrossEncoder

    fx = synthetic_collection()
    queries, run, docs = fx.queries, fx.run, fx.docs
    out = CrossEncoderReranker(docs, encoder=model)(queries, run)
    ref_model = CrossEncoder(random_cross_encoder(), device="cpu")
    for q in queries:
        ids = list(run[q.id])
        if not ids:
            assert out[q.id] == {}
            continue
        ref = ref_model.predict([(q.text, docs[d].contents) for d in ids])
        np.testing.assert_allclose([out[q.id][d] for d in ids], ref, atol=1e-4)
    st = out.stats
    assert st["pairs"] == run.num_items() == st["items"] and st["pairs_per_s"] > 0
    assert st["real_tokens"] <= st["tokens"] and st["truncated"] == 0


def test_model_is_required():
    with pytest.raises(ValueError, match="needs model="):
        CrossEncoderReranker({})


def test_windows_and_sentences():
    text = " ".join(f"w{i}" for i in range(10))
    assert word_windows(text, 4, 3) == ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9"]
    assert word_windows("a b", 4, 2) == ["a b"]
    assert split_sentences("One fact. Two facts! 3 more?\nLast line") == [
        "One fact.",
        "Two facts!",
        "3 more?",
        "Last line",
    ]


def test_query_aware_summary_keeps_best_sentences_in_order():
    sents = ["The sky is blue.", "Aspirin reduces fever in adults.", "Cats sleep a lot.", "Fever is common."]
    idf = {
        "aspirin": 2.0,
        "fever": 1.0,
        "sky": 1.0,
        "blue": 1.0,
        "cats": 1.0,
        "sleep": 1.0,
        "common": 1.0,
        "adults": 1.0,
        "reduces": 1.0,
        "lot": 1.0,
    }
    s = query_aware_summary("does aspirin reduce fever", sents, [5, 7, 5, 4], budget=11, idf=idf)
    assert s == "Aspirin reduces fever in adults. Fever is common."


def test_passages_maxp_firstp_sump(model):
    q = Query("q", "treatment of fever")
    head = "Fever is treated with rest and fluids. " * 3
    tail = "Unrelated words about geology and rocks. " * 40
    docs = {
        "long": Document("long", head + tail, "Fever"),
        "short": Document("short", "Fever treatment basics."),
    }
    run = Run({"q": {"long": 1.0, "short": 0.5}})
    by = {}
    for agg in ("maxp", "firstp", "sump"):
        rr = CrossEncoderReranker(docs, encoder=model, passages="window", window=20, stride=10, aggregate=agg)
        by[agg] = rr([q], run)
    texts = [f"Fever {p}" for p in word_windows(docs["long"].text, 20, 10)]
    s = model.predict([(q.text, t) for t in texts])
    assert by["maxp"]["q"]["long"] == pytest.approx(s.max(), abs=1e-5)
    assert by["firstp"]["q"]["long"] == pytest.approx(s[0], abs=1e-5)
    assert by["sump"]["q"]["long"] == pytest.approx(s.sum(), abs=1e-4)
    assert by["maxp"].stats["pairs"] == len(texts) + 1 and by["firstp"].stats["pairs"] == 2
    # token windows cut the original text
    tw = CrossEncoderReranker(docs, encoder=model, passages="window", unit="tokens", window=32, stride=16)
    assert tw([q], run).stats["pairs"] > 2


def test_query_aware_selection_fits_budget(model):
    small = CrossEncoderModel(random_cross_encoder(), max_length=64)
    q = Query("q", "aspirin fever")
    filler = " ".join(f"Sentence {i} talks about geology." for i in range(40))
    doc = Document("d", filler + " Aspirin lowers fever quickly. " + filler)
    rr = CrossEncoderReranker({"d": doc}, encoder=small, passages="query-aware")
    summary = rr._doc_texts(q, [doc])[0][0]
    assert "Aspirin lowers fever quickly." in summary
    n = len(small.tokenizer(q.text, summary)["input_ids"])
    assert n <= 64
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fits: no truncation warning
        out = rr([q], Run({"q": {"d": 1.0}}))
    assert out.stats["truncated"] == 0
