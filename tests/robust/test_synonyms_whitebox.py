"""Offline synonyms (WordNet 3.0 reader, embedding neighbours) and the white-box PRADA path on the
real all-MiniLM-L6-v2 bi-encoder over a handful of SciFact documents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rankstack.data import datasets
from rankstack.errors import ConfigError, FormatError, MissingDependencyError
from rankstack.robust.wordnet import DEFAULT_WORDNET, WordNet

needs_wordnet = pytest.mark.skipif(not (DEFAULT_WORDNET / "index.noun").is_file(),
                                   reason="WordNet 3.0 absent: apt-get install wordnet-base")


def test_missing_wordnet_says_how_to_install(tmp_path):
    with pytest.raises(MissingDependencyError, match="apt-get install wordnet-base"):
        WordNet(tmp_path)


@needs_wordnet
def test_wordnet_synonyms_and_exceptions():
    wn = WordNet()
    assert wn.synonyms("good", "a")[:4] == ["full", "estimable", "honorable", "respectable"]
    assert wn.lemmas("mice", "n") == ["mouse"]  # noun.exc
    assert wn.lemmas("children", "n") == ["child"]
    assert wn.lemmas("increased", "v") == ["increase"]  # regular ending
    assert "large" in wn.synonyms("big") and "big" not in wn.synonyms("big")
    assert all("_" not in s and " " not in s for s in wn.synonyms("dog"))
    assert wn.synonyms("qqqzzx") == []


def test_wordnet_bad_index_line_names_file_and_line(tmp_path):
    (tmp_path / "index.noun").write_text("  licence\ndog n notanumber\n")
    with pytest.raises(FormatError) as e:
        WordNet(tmp_path).synonyms("dog", "n")
    assert "index.noun:2:" in str(e.value)


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("torch")
    from rankstack.encoders.runtime import BiEncoder

    return BiEncoder(max_length=256)


def test_embedding_neighbours_are_whole_words(minilm):
    from rankstack.robust.whitebox import EmbeddingNeighbours

    nn = EmbeddingNeighbours(minilm, k=5)
    got = nn("protein")
    assert got[0] == "proteins" and len(got) == 5 and "protein" not in got
    assert all(w.isalpha() and not w.startswith("##") for w in got)
    assert nn("xyzzyq") == [] and nn("PROTEIN") == got
    with pytest.raises(ConfigError):
        EmbeddingNeighbours(minilm, k=0)


def test_gradient_importance_ranks_topic_words_over_function_words(minilm):
    from rankstack.robust.whitebox import GradientImportance

    words = "Tumour cells grow fast because of protein mutations in the genome".split()
    imp = GradientImportance(minilm)("cancer protein", " ".join(words), words)
    assert imp.shape == (len(words),) and (imp > 0).all()
    top = {words[i] for i in np.argsort(-imp)[:2]}
    assert top == {"Tumour", "protein"}
    assert imp[words.index("protein")] > 4 * imp[words.index("the")]


def test_white_box_prada_on_the_real_bi_encoder(minilm):
    from rankstack.index.bm25 import BM25Index
    from rankstack.robust.attacks import Constraints, TopK, prada
    from rankstack.robust.victim import BM25TextScorer, Victim
    from rankstack.stages.dense import DenseReranker

    coll = datasets.load("scifact")
    q = list(coll.queries)[0]
    index = BM25Index.build(coll.docs.values(), None, progress=False)
    ids = [d for d, _ in index.retriever(k=12)([q]).ranked(q.id)]
    docs = [coll.docs[d] for d in ids]
    stage = DenseReranker(encoder=minilm)
    v = Victim(stage)
    assert v.white_box and not Victim(BM25TextScorer(index)).white_box
    with pytest.raises(ConfigError, match="no gradients"):
        prada(Victim(BM25TextScorer(index)), white_box=True)
    wn = WordNet() if (DEFAULT_WORDNET / "index.noun").is_file() else None
    att = prada(v, wordnet=wn, constraints=Constraints(max_words=5, max_share=0.1), max_candidates=6)
    s0 = v.scores(q, docs)
    target = int(np.argsort(-s0, kind="stable")[-1])  # the bi-encoder's last of the 12
    r = att(v, q, docs, target, goal=TopK(3))
    r2 = att(Victim(DenseReranker(encoder=minilm)), q, docs, target, goal=TopK(3))
    assert r == r2 and r.text == r2.text  # deterministic
    assert q.text == "0-dimensional biomaterials show inductive properties."
    assert r.start_rank == 12 and 0 <= r.words_changed <= 5 and r.final_rank <= r.start_rank
    # the re-check is the real victim's rank of the attacked text
    s = v.scores(q, docs, {target: r.text})
    from rankstack.robust.victim import full_rank
    assert full_rank(ids, s, target) == r.final_rank
    changed = sum(a != b for a, b in zip(r.text.split(), r.original.split()))
    assert changed == r.words_changed and len(r.text.split()) == len(r.original.split())
    print("white-box PRADA", r.start_rank, "->", r.final_rank, r.words_changed, r.victim_queries, r.status)
    assert Path(stage.encoder.model_path).is_dir()
