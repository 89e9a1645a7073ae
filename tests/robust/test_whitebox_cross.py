"""White-box parts on the shipped SciFact cross-encoder (rankstack/ce-minilm-scifact): the gradient is
taken of the logit the victim scores, with respect to the document's token embeddings only, and
PRADA runs white-box against the cross-encoder victim."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.data import datasets
from rankstack.errors import ConfigError

CE = "rankstack/ce-minilm-scifact"
WORDS = "Tumour cells grow fast because of protein mutations in the genome".split()


@pytest.fixture(scope="module")
def ce_stage():
    pytest.importorskip("torch")
    from rankstack.stages.crossencoder import CrossEncoderReranker

    return CrossEncoderReranker(model=CE, max_length=256)


def test_kind_is_detected_from_the_model(ce_stage, tmp_path):
    from rankstack.robust.whitebox import GradientImportance, kind_of

    assert kind_of(ce_stage.encoder) == "cross-encoder" and kind_of(CE) == "cross-encoder"
    assert kind_of("rankstack/bi-minilm-scifact") == "bi-encoder"
    with pytest.raises(ConfigError, match="torch model directory"):
        GradientImportance(str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="kind"):
        GradientImportance(CE, kind="reranker")
    # an ONNX cross-encoder has no gradients: white-box on it is a clear error, not a crash
    from types import SimpleNamespace

    from rankstack.robust.attacks import prada
    from rankstack.robust.victim import Victim

    onnx = SimpleNamespace(model_path=ce_stage.encoder.model_path, backend="onnx", kind="cross-encoder")
    with pytest.raises(ConfigError, match="backend='onnx'"):
        GradientImportance(onnx)
    stage = SimpleNamespace(name="cross-encoder", encoder=onnx, score_batch=ce_stage.score_batch)
    assert not Victim(stage).white_box
    with pytest.raises(ConfigError, match="no gradients"):
        prada(Victim(stage), white_box=True)


def test_cross_encoder_gradient_is_of_the_victims_own_logit(ce_stage):
    from rankstack.robust.whitebox import GradientImportance

    imp = GradientImportance(ce_stage.encoder)
    assert imp.kind == "cross-encoder"
    text = " ".join(WORDS)
    g = imp("cancer protein", text, WORDS)
    # the model differentiated is the model the victim scores with: same logit for the same pair
    want = float(ce_stage.encoder.logits([("cancer protein", text)])[0, 0])
    assert imp.last_score == pytest.approx(want, abs=1e-4)
    assert g.shape == (len(WORDS),) and (g > 0).all() and imp.truncated_words == 0
    # topic words carry more of the gradient than function words
    for w in ("Tumour", "mutations", "genome"):
        assert g[WORDS.index(w)] > 2 * max(g[WORDS.index(f)] for f in ("of", "in", "the"))
    # a different query gives a different importance (the query is input, only never a leaf)
    assert not np.allclose(g, imp("stock market prices", text, WORDS))


def test_cross_encoder_truncates_the_document_never_the_query(ce_stage):
    from rankstack.robust.whitebox import GradientImportance

    imp = GradientImportance(ce_stage.encoder, max_length=16)
    words = WORDS * 3
    g = imp("cancer protein mutations", " ".join(words), words)
    # [CLS] + 3 query tokens + [SEP] + doc + [SEP] = 16 -> 10 document tokens survive
    kept = int(np.count_nonzero(g))
    assert imp.truncated_words == len(words) - kept and 0 < kept < len(WORDS) and (g[kept:] == 0).all()
    with pytest.raises(ConfigError, match="no room for the document"):
        GradientImportance(ce_stage.encoder, max_length=4)("cancer protein mutations genome", "a b", ["a", "b"])


def test_embedding_neighbours_of_the_cross_encoder(ce_stage):
    from rankstack.robust.whitebox import EmbeddingNeighbours

    got = EmbeddingNeighbours(ce_stage.encoder, k=5)("protein")
    assert got[0] == "proteins" and len(got) == 5 and all(w.isalpha() for w in got)


def test_white_box_prada_against_the_cross_encoder(ce_stage):
    from rankstack.index.bm25 import BM25Index
    from rankstack.robust.attacks import Constraints, TopK, prada
    from rankstack.robust.victim import QueryBudget, Victim, full_rank
    from rankstack.robust.whitebox import GradientImportance

    coll = datasets.load("scifact")
    q = list(coll.queries)[0]
    index = BM25Index.build(coll.docs.values(), None, progress=False)
    ids = [d for d, _ in index.retriever(k=12)([q]).ranked(q.id)]
    docs = [coll.docs[d] for d in ids]
    v = Victim(ce_stage, QueryBudget(50))
    assert v.white_box
    att = prada(v, constraints=Constraints(max_words=4, max_share=0.1), max_candidates=5)
    assert isinstance(att.importance, GradientImportance) and att.importance.kind == "cross-encoder"
    s0 = Victim(ce_stage).scores(q, docs)
    target = int(np.argsort(-s0, kind="stable")[-1])  # the cross-encoder's last of the 12
    r = att(v, q, docs, target, goal=TopK(3))
    assert q.text == "0-dimensional biomaterials show inductive properties."  # never modified
    assert r.start_rank == 12 and r.final_rank <= r.start_rank and 0 <= r.words_changed <= 4
    assert r.victim_queries == v.budget.used <= 50
    s = Victim(ce_stage).scores(q, docs, {target: r.text})
    assert full_rank(ids, s, target) == r.final_rank  # the re-check is the real victim's rank
    changed = sum(a != b for a, b in zip(r.text.split(), r.original.split()))
    assert changed == r.words_changed
