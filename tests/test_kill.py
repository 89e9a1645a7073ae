"""Kill tests (issue #16): a killed `index`, a killed `index --dense` and a killed experiment each
resume (or redo) to exactly the result of an uninterrupted run. Each job is a real subprocess,
killed with SIGKILL while it works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "rankstack.interfaces.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _corpus(tmp_path: Path, n: int) -> Path:
    lines = (ROOT / "data" / "scifact" / "corpus.jsonl").read_text().splitlines()[:n]
    f = tmp_path / "corpus.jsonl"
    f.write_text("\n".join(lines) + "\n")
    return f


def _run_killed(args: list[str], until, timeout: float = 300) -> None:
    """Start the command, SIGKILL it as soon as ``until()`` is true (it must not have finished)."""
    p = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        while not until():
            assert p.poll() is None, "the job finished before it could be killed"
            assert time.monotonic() - t0 < timeout
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait()


def _ok(args: list[str]) -> None:
    p = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]


def _tree(d: Path) -> dict[str, bytes]:
    skip = {"meta.json", "checksums.json"}  # the docstore's meta.json holds its build time (and its checksum)
    return {str(f.relative_to(d)): f.read_bytes() for f in sorted(d.rglob("*"))
            if f.is_file() and not (f.name in skip and f.parent.name == "docstore")}


def test_killed_index_redone_equals_uninterrupted(tmp_path):
    corpus = _corpus(tmp_path, 5183)
    _ok([*CLI, "index", str(corpus), "-o", str(tmp_path / "ref")])
    out = tmp_path / "killed"
    _run_killed([*CLI, "index", str(corpus), "-o", str(out)], lambda: (out / "docstore").exists())
    _ok([*CLI, "index", str(corpus), "-o", str(out)])
    ref, got = _tree(tmp_path / "ref"), _tree(out)
    ref.pop("manifest.json"), got.pop("manifest.json")  # names the output directory
    assert ref.keys() == got.keys() and ref == got


def test_killed_dense_index_resumes_to_the_same_vectors(tmp_path):
    from rankstack.index.dense import load_embeddings

    corpus = _corpus(tmp_path, 200)
    args = ["--dense", "--shard-size", "16"]
    _ok([*CLI, "index", str(corpus), "-o", str(tmp_path / "ref"), *args])
    out = tmp_path / "killed"
    shards = out / "dense" / "encodings" / "shards"
    _run_killed([*CLI, "index", str(corpus), "-o", str(out), *args],
                lambda: shards.exists() and len(list(shards.glob("*.npy"))) >= 3)
    done = len(list(shards.glob("*.npy")))
    assert 3 <= done < 13 and not (out / "dense" / "index.faiss").exists()
    _ok([*CLI, "index", str(corpus), "-o", str(out), *args])  # resumes the encoding at the first missing shard
    ids, emb = load_embeddings(out / "dense" / "encodings")
    ref_ids, ref = load_embeddings(tmp_path / "ref" / "dense" / "encodings")
    assert ids == ref_ids and np.array_equal(emb, ref)
    q = tmp_path / "q.tsv"
    q.write_text("q1\tcerebral white matter in newborns\nq2\tvitamin D and bone density\n")
    for d in ("ref", "killed"):
        _ok([*CLI, "search", str(tmp_path / d), str(q), "-o", str(tmp_path / f"{d}.trec"), "--retriever", "dense"])
    assert (tmp_path / "ref.trec").read_text() == (tmp_path / "killed.trec").read_text()


def test_killed_experiment_resumes_to_the_same_results(tmp_path):
    toml = f"""
[experiment]
name = "kill"
measures = ["nDCG@10", "R@100"]
baseline = "bm25"
output = "{tmp_path / 'OUT'}"
cache = "{tmp_path / 'CACHE'}"

[[collections]]
name = "dl19"

[[pipelines]]
name = "bm25"
stages = [{{ stage = "run", run = "bm25" }}]

[[pipelines]]
name = "bm25%10>>dense"
stages = [{{ stage = "run", run = "bm25" }}, {{ stage = "cutoff", k = 10 }}, {{ stage = "dense-rerank" }}]

[[pipelines]]
name = "bm25%10>>dense-dot"
stages = [{{ stage = "run", run = "bm25" }}, {{ stage = "cutoff", k = 10 }}, {{ stage = "dense-rerank", metric = "dot" }}]
"""

    def write(tag: str) -> Path:
        f = tmp_path / f"{tag}.toml"
        f.write_text(toml.replace("OUT", f"out-{tag}").replace("CACHE", f"cache-{tag}"))
        return f

    _ok([*CLI, "experiment", str(write("ref")), "--no-check"])
    runs = tmp_path / "cache-killed" / "dl19" / "runs"
    f = write("killed")
    # kill it once the first reranking is cached (the second is then under way)
    _run_killed([*CLI, "experiment", str(f), "--no-check"], lambda: runs.exists() and any(runs.glob("*.json")))
    assert len(list(runs.glob("*.json"))) == 1
    _ok([*CLI, "experiment", str(f), "--no-check"])

    def figures(tag):
        res = json.loads((tmp_path / f"out-{tag}" / "results.json").read_text())["results"]
        return {(r["collection"], r["pipeline"]): (r["aggregate"], r["per_query"]) for r in res}

    assert figures("killed") == figures("ref")
    assert len(list(runs.glob("*.json"))) == 2
