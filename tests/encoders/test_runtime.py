"""Encoder runtime: equality with sentence-transformers, config reading, batching, truncation warnings."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from rankstack.encoders.runtime import (
    BiEncoder,
    CrossEncoderModel,
    default_model_path,
    load_encoder_config,
    plan_batches,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    out = []
    with open(ROOT / "data/scifact/corpus.jsonl") as f:
        for i, line in enumerate(f):
            if i >= 16:
                break
            d = json.loads(line)
            out.append(f"{d['title']} {d['text']}".strip())
    out += ["a short query", "what causes 0-dimensional biomaterials to lack inductive properties?"]
    return out


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(default_model_path(), device="cpu")


@pytest.fixture(scope="module")
def torch_encoder() -> BiEncoder:
    return BiEncoder()


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_config_of_minilm():
    cfg = load_encoder_config(default_model_path())
    assert (cfg.pooling, cfg.normalize, cfg.max_length) == ("mean", True, 256)
    assert load_encoder_config(default_model_path(), max_length=128).max_length == 128
    with pytest.raises(ValueError, match="exceeds the model's limit of 512"):
        load_encoder_config(default_model_path(), max_length=1024)


def test_torch_matches_sentence_transformers(texts, st_model, torch_encoder):
    ref = st_model.encode(texts, batch_size=16)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        emb = torch_encoder.encode(texts)
    assert emb.shape == (len(texts), 384) and emb.dtype == np.float32
    assert _cos(emb, ref).min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # exactly one warning, with the exact count of texts over 256 tokens
    n_long = sum(len(st_model.tokenizer(t)["input_ids"]) > 256 for t in texts)
    msgs = [str(x.message) for x in w if "truncated" in str(x.message)]
    assert msgs == [f"{n_long} of {len(texts)} texts truncated to 256 tokens"]
    assert 0 < n_long < len(texts)


def test_order_and_batching_do_not_change_embeddings(texts, torch_encoder):
    small = BiEncoder(max_tokens=300)  # one long text per batch
    a = torch_encoder.encode(texts[:8], warn=False)
    b = small.encode(texts[:8][::-1], warn=False)[::-1]
    np.testing.assert_allclose(a, b, atol=2e-5)
    assert torch_encoder.encode([]).shape[0] == 0


def test_plan_batches_respects_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 512, size=1000)
    batches = plan_batches(lengths, max_tokens=4096, max_batch=64)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(1000))
    for b in batches:
        assert len(b) <= 64 and (len(b) == 1 or len(b) * lengths[b].max() <= 4096)
    # longest first
    assert lengths[batches[0][0]] == lengths.max()


def test_cls_pooling_directory(tmp_path, texts):
    """A copy of the model with CLS pooling and no Normalize: read from the directory, as ST does."""
    from sentence_transformers import SentenceTransformer

    src = Path(default_model_path())
    d = tmp_path / "cls-model"
    shutil.copytree(src, d)
    pc = json.loads((d / "1_Pooling/config.json").read_text())
    pc.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (d / "1_Pooling/config.json").write_text(json.dumps(pc))
    mods = [m for m in json.loads((d / "modules.json").read_text()) if not m["type"].endswith("Normalize")]
    (d / "modules.json").write_text(json.dumps(mods))
    (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))
    cfg = load_encoder_config(str(d))
    assert (cfg.pooling, cfg.normalize, cfg.max_length) == ("cls", False, 128)
    ref = SentenceTransformer(str(d), device="cpu").encode(texts[:10])
    with pytest.warns(UserWarning, match=r"of 10 texts truncated to 128 tokens"):
        emb = BiEncoder(str(d)).encode(texts[:10])
    np.testing.assert_allclose(emb, ref, rtol=1e-4, atol=1e-4)
    assert abs(np.linalg.norm(emb[0]) - 1.0) > 1e-3  # not normalised


def test_onnx_fp32_and_int8(tmp_path, texts, torch_encoder):
    pytest.importorskip("onnxruntime")
    ref = torch_encoder.encode(texts, warn=False)
    fp32 = BiEncoder(backend="onnx", cache_dir=tmp_path)
    e32 = fp32.encode(texts, warn=False)
    assert _cos(e32, ref).min() >= 0.9999
    assert Path(fp32.onnx_path).name == "model.onnx"
    q8 = BiEncoder(backend="onnx", quantize="int8", cache_dir=tmp_path)
    e8 = q8.encode(texts, warn=False)
    c = _cos(e8, ref)
    assert c.mean() >= 0.98 and c.min() >= 0.95
    # the export is cached: a second runtime reuses the file
    again = BiEncoder(backend="onnx", cache_dir=tmp_path)
    again.encode(texts[:2], warn=False)
    assert again.onnx_path == fp32.onnx_path
    with pytest.raises(ValueError, match="needs backend='onnx'"):
        BiEncoder(quantize="int8")


def test_bad_model_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BiEncoder(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="no config.json"):
        BiEncoder(str(tmp_path))


@pytest.fixture(scope="module")
def ce_dir(tmp_path_factory) -> str:
    """all-MiniLM-L6-v2 with a seeded random 1-label head: no trained cross-encoder ships here."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    d = tmp_path_factory.mktemp("ce") / "minilm-ce"
    torch.manual_seed(13)
    m = AutoModelForSequenceClassification.from_pretrained(default_model_path(), num_labels=1)
    m.save_pretrained(d)
    AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(d)
    return str(d)


def _pairs(texts):
    return [("what is the effect of " + t.split()[0], t) for t in texts[:12]] + [("q", "")]


def test_cross_encoder_matches_sentence_transformers(ce_dir, texts):
    from sentence_transformers import CrossEncoder

    pairs = _pairs(texts)
    ref = CrossEncoder(ce_dir, device="cpu").predict(pairs)
    model = CrossEncoderModel(ce_dir)
    assert model.num_labels == 1 and model.activation == "sigmoid" and model.max_length == 512
    got = model.predict(pairs)
    assert got.shape == (len(pairs),)
    np.testing.assert_allclose(got, ref, atol=1e-4)
    logits = CrossEncoderModel(ce_dir, activation="none").predict(pairs)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), got, atol=1e-6)
    # ONNX Runtime gives the same scores
    pytest.importorskip("onnxruntime")
    onnx = CrossEncoderModel(ce_dir, backend="onnx", cache_dir=Path(ce_dir).parent / "onnx")
    np.testing.assert_allclose(onnx.predict(pairs), ref, atol=1e-4)


def test_cross_encoder_truncation_matches(ce_dir, texts):
    from sentence_transformers import CrossEncoder

    pairs = _pairs(texts)
    ref = CrossEncoder(ce_dir, device="cpu", max_length=64).predict(pairs)
    with pytest.warns(UserWarning, match=r"of 13 pairs truncated to 64 tokens"):
        got = CrossEncoderModel(ce_dir, max_length=64).predict(pairs)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_cross_encoder_two_labels(tmp_path, texts):
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(5)
    d = tmp_path / "ce2"
    AutoModelForSequenceClassification.from_pretrained(default_model_path(), num_labels=2).save_pretrained(d)
    AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(d)
    pairs = _pairs(texts)[:8]
    ref = CrossEncoder(str(d), device="cpu").predict(pairs)
    got = CrossEncoderModel(str(d)).predict(pairs)
    assert got.shape == (8, 2)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_default_budget_depends_on_backend_device_and_dtype():
    from rankstack.encoders.runtime import default_max_tokens

    assert default_max_tokens("onnx") == 512
    assert default_max_tokens("torch") == 1024
    assert default_max_tokens("torch", "cpu", "bfloat16") == 4096
    assert default_max_tokens("torch", "cuda:0", "bfloat16") == 16384
    m = BiEncoder()  # no budget given: torch fp32 on this CPU
    m.encode(["a short text"], warn=False)
    assert (m.device, m.dtype, m.max_tokens) == ("cpu", "float32", 1024)
    assert BiEncoder(max_tokens=300).max_tokens == 300  # an explicit budget wins
    assert BiEncoder(backend="onnx").max_tokens == 512


def test_dtype_auto_picks_bf16_only_where_the_cpu_has_it():
    from rankstack.encoders.runtime import cpu_has_bf16
    from rankstack.errors import ConfigError

    m = BiEncoder(dtype="auto")
    m.encode(["a short text"], warn=False)
    assert m.dtype == ("bfloat16" if cpu_has_bf16() else "float32")
    assert m.max_tokens == (4096 if cpu_has_bf16() else 1024)
    with pytest.raises(ConfigError, match="dtype must be"):
        BiEncoder(dtype="bf16")


def test_config_carries_the_resolved_dtype_and_budget_before_loading(tmp_path):
    """dtype and batch budget change scores (bf16; per-batch int8 activations), so they key caches.

    Before session 15 neither was in ``config()``: a stage cache written with bf16 or with the old
    16,384-token budget came back for an fp32 / 512-token run, with exit 0.
    """
    from rankstack.stages.base import Cached
    from rankstack.stages.crossencoder import CrossEncoderReranker

    m = BiEncoder(device="cpu")
    cfg = m.config()
    assert m._runner is None  # resolved without loading the model
    assert (cfg["dtype"], cfg["max_tokens"]) == ("float32", 1024)
    assert BiEncoder(device="cpu", dtype="bfloat16").config()["dtype"] == "bfloat16"
    assert BiEncoder(device="cpu", dtype="bfloat16").config()["max_tokens"] == 4096
    assert BiEncoder(backend="onnx", quantize="int8").config()["max_tokens"] == 512
    assert BiEncoder(backend="onnx", quantize="int8").config()["dtype"] == "int8"
    assert BiEncoder(max_tokens=300).config()["max_tokens"] == 300
    # what config() says is what runs
    m.encode(["a short text"], warn=False)
    assert (m.dtype, m.max_tokens) == (cfg["dtype"], cfg["max_tokens"])
    assert m.config() == cfg

    def key(**kw):
        stage = CrossEncoderReranker({}, model="rankstack/ce-minilm-scifact", device="cpu", **kw)
        return Cached(stage, tmp_path).key([], None)

    assert len({key(), key(dtype="bfloat16"), key(max_tokens=4096), key(backend="onnx")}) == 4
    assert key() == key(max_tokens=1024)  # the default budget spelled out: the same run, the same key
