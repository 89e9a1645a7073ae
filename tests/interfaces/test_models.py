"""Shipped models (issue #18): listed by `rankstack models`, loadable by name everywhere a model is
accepted, fp16 on disk, and their recorded figures reproduced on a slice of SciFact test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rankstack import catalog
from rankstack.errors import NotFoundError

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT / "data" / "scifact"
BI = "rankstack/bi-minilm-scifact"
CE = "rankstack/ce-minilm-scifact"
SHIPPED = {BI: "bi-encoder", CE: "cross-encoder"}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "250"}


def cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rankstack.interfaces.cli", *args], capture_output=True,
                          text=True, env=ENV, cwd=cwd, timeout=timeout)


def test_models_lists_the_shipped_models_with_kind_path_and_figures():
    p = cli("models", "--json")
    assert p.returncode == 0, p.stderr
    rows = {r["name"]: r for r in json.loads(p.stdout)}
    assert {n: r["kind"] for n, r in rows.items()} == SHIPPED
    for r in rows.values():
        d = Path(r["path"])
        assert r["complete"] and (d / "model.safetensors").is_file() and (d / "README.md").is_file()
        assert 30 < r["size_mb"] < 60  # fp16: about 45 MB for MiniLM-L6
        assert any(f["collection"] == "scifact/test" and f["measure"] == "nDCG@10" for f in r["figures"])
        assert r["retrain"]
    assert BI in cli("models").stdout


def test_weights_are_fp16_and_names_resolve_to_the_directories():
    from safetensors import safe_open

    from rankstack.encoders.runtime import resolve_model

    for name in SHIPPED:
        path = Path(resolve_model(name))
        assert path == catalog.path_of(name)
        with safe_open(str(path / "model.safetensors"), "np") as f:
            dtypes = {str(f.get_tensor(k).dtype) for k in f.keys() if "embeddings.position_ids" not in k}
        assert dtypes == {"float16"}, dtypes


def test_an_unknown_shipped_name_names_the_shipped_ones():
    from rankstack.encoders.runtime import resolve_model

    with pytest.raises(NotFoundError, match=r"no shipped model of that name \(shipped: .*bi-minilm-scifact"):
        resolve_model("rankstack/bi-minilm-scifakt")


def _slice_figure(name: str) -> dict:
    card = json.loads((catalog.path_of(name) / "card.json").read_text())
    return next(f for f in card["figures"] if f.get("ci_check"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_recorded_figure_is_reproduced_on_a_slice_of_scifact_test(name):
    """The card's CI figure (the first 50 SciFact test queries, BM25 top-20 reranked by the shipped model)
    is reproduced to 1e-4. (The full-collection figures of the card take minutes: `rankstack models`.)"""
    pytest.importorskip("torch")
    from rankstack.data import datasets
    from rankstack.index import BM25Index
    from rankstack.measures import evaluate
    from rankstack.stages.build import build_stage

    fig = _slice_figure(name)
    coll = datasets.load("scifact")
    qids = sorted(coll.qrels)[: fig["ci_check"]["queries"]]
    queries = [q for q in coll.queries if q.id in set(qids)]
    bm25 = BM25Index.build(coll.docs.values(), None).retriever(k=fig["ci_check"]["depth"])
    spec = {"stage": {"cross-encoder": "cross-encoder", "bi-encoder": "dense-rerank"}[SHIPPED[name]], "model": name,
            "docs": coll.docs, **fig["ci_check"].get("options", {})}
    stage = build_stage(spec, None, "test")
    run = (bm25 >> stage)(queries)
    got = evaluate(coll.qrels, run, [fig["measure"]])[fig["measure"]]
    assert abs(got - fig["value"]) < 1e-4, (got, fig)  # the shipped weights, through the one construction path


def test_a_damaged_shipped_model_is_refused_naming_the_file(tmp_path, monkeypatch):
    """A truncated model.safetensors (a copy under $RANKSTACK_MODELS) is an error naming the file and
    both sizes, never loaded."""
    import shutil

    from rankstack.encoders.runtime import resolve_model

    src = catalog.path_of(BI)
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    with open(dst / "model.safetensors", "r+b") as f:
        f.truncate(1_000_000)
    monkeypatch.setenv("RANKSTACK_MODELS", str(tmp_path))
    size = json.loads((src / "card.json").read_text())["files"]["model.safetensors"]
    with pytest.raises(NotFoundError, match=rf"model\.safetensors is 1,000,000 bytes, its card records {size:,}"):
        resolve_model(BI)
    (dst / "tokenizer.json").unlink()
    with open(dst / "model.safetensors", "wb") as f, open(src / "model.safetensors", "rb") as g:
        f.write(g.read())
    with pytest.raises(NotFoundError, match=r"tokenizer\.json is missing"):
        resolve_model(BI)
    monkeypatch.delenv("RANKSTACK_MODELS")
    assert Path(resolve_model(BI)) == src
