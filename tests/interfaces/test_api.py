"""rankstack.rank(): the one-call API (like CrossEncoder.rank and rerankers' Reranker.rank)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

import rankstack
from rankstack.errors import ConfigError

DOCS = ["The moon's gravity pulls the oceans and causes tides.", "Bread rises because yeast makes gas.",
        "Tides are the rise and fall of sea levels caused by the moon and the sun.", "Cats sleep a lot."]


def test_rank_with_a_bi_encoder_equals_cosine_order():
    from rankstack.encoders.runtime import BiEncoder

    out = rankstack.rank("what causes ocean tides", DOCS)  # the packaged all-MiniLM-L6-v2: dense-rerank
    enc = BiEncoder()
    q, d = enc.encode(["what causes ocean tides"]), enc.encode(DOCS)
    cos = (d / np.linalg.norm(d, axis=1, keepdims=True)) @ (q[0] / np.linalg.norm(q[0]))
    assert [r["index"] for r in out] == list(np.argsort(-cos))
    assert [r["text"] for r in out] == [DOCS[r["index"]] for r in out]
    np.testing.assert_allclose([r["score"] for r in out], np.sort(cos)[::-1], atol=1e-5)
    assert {out[0]["index"], out[1]["index"]} == {0, 2}


def test_rank_with_a_cross_encoder_equals_predict_and_top_k():
    from rankstack.encoders.runtime import CrossEncoderModel
    from rankstack.testing import random_head_cross_encoder

    ce = random_head_cross_encoder()
    out = rankstack.rank("what causes ocean tides", DOCS, model=ce, top_k=2, return_documents=False)
    ref = CrossEncoderModel(ce).predict([("what causes ocean tides", t) for t in DOCS])
    assert [r["index"] for r in out] == list(np.argsort(-ref))[:2] and "text" not in out[0]
    np.testing.assert_allclose([r["score"] for r in out], np.sort(ref)[::-1][:2], atol=1e-5)
    many = rankstack.rank_many(["what causes ocean tides", "why does bread rise"], [DOCS, DOCS[:2]], model=ce)
    assert [len(m) for m in many] == [4, 2] and many[0][0]["index"] == out[0]["index"]


def test_rank_errors_are_clear():
    with pytest.raises(ConfigError, match="2 queries but 1 document lists"):
        rankstack.rank_many(["a", "b"], [["x"]])
    with pytest.raises(ConfigError, match="top_k must be >= 1"):
        rankstack.rank("a", ["x"], top_k=0)
