"""`rankstack attack` and `rankstack certify` as a user runs them (a subprocess), on SciFact with a
BM25 victim: the JSON fields, figures that could be wrong, and bad input as one error line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT / "data" / "scifact"
FIELDS = {"success_rate", "top10_rate", "top50_rate", "avg_boost", "perturbation", "victim_queries"}


def rs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rankstack.interfaces.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    """A BM25 top-100 run of the first 3 SciFact test queries."""
    from rankstack.data import datasets
    from rankstack.data.formats import write_run
    from rankstack.index.bm25 import BM25Index

    coll = datasets.load("scifact")
    index = BM25Index.build(coll.docs.values(), None, progress=False)
    path = tmp_path_factory.mktemp("attack") / "bm25.trec"
    write_run(index.retriever(k=100)(list(coll.queries)[:3]), path, tag="bm25")
    return path


def _args(run_file, *more):
    return (str(run_file), str(SCIFACT / "queries.jsonl"), str(SCIFACT), *more)


def test_attack_stuffing_and_prada_on_bm25(run_file, tmp_path):
    out = tmp_path / "a.json"
    p = rs("attack", *_args(run_file, "--victim", "bm25", "--method", "stuffing,prada", "--targets", "easy5",
                            "--queries", "2", "--budget", "300", "--seed", "1", "-o", str(out)))
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(out.read_text())
    assert d["victim"] == "bm25" and len(d["queries"]) == 2 and d["budget"] == 300 and d["goal"] == 10
    stuff, prada = d["attacks"]
    assert (stuff["method"], stuff["protocol"], prada["method"]) == ("stuffing", "easy5", "prada")
    for row in (stuff, prada):
        assert FIELDS <= set(row) and row["targets"] == len(row["results"]) == 10
        assert {r["query_id"] for r in row["results"]} == set(d["queries"])
        assert all(51 <= r["start_rank"] <= 100 for r in row["results"])  # Easy-5: victim ranks 51-100
    # stuffing every query term into a lexical model's document always works, in 3 calls a target
    assert stuff["success_rate"] == 1.0 and stuff["top10_rate"] == 1.0 and stuff["victim_queries"] == 30
    assert 0 < stuff["perturbation"] < 10 and stuff["avg_boost"] > 40
    # PRADA changes few words (at most 10 % here) and rarely reaches the top 10 of BM25
    assert 0 <= prada["success_rate"] <= 0.5 and prada["perturbation"] <= 10
    assert 0 < prada["victim_queries"] <= 10 * 300
    assert all(r["victim_queries"] <= 300 for r in prada["results"])


def test_certify_bm25_small_n(run_file, tmp_path):
    out = tmp_path / "c.json"
    p = rs("certify", *_args(run_file, "--victim", "bm25", "--samples", "100", "--queries", "2", "--k", "30",
                             "-o", str(out)))
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(out.read_text())
    ks = [str(k) for k in (*range(1, 11), *range(20, 100, 10))]
    assert list(d["certified_ratio"]) == ks and d["samples"] == 100 and d["queries"] == 2
    assert d["mc_error"] == pytest.approx(2 * math.sqrt(math.log(40) / 200))
    assert all(0 <= d["certified_ratio"][k] <= 1 for k in ks[:11])  # K <= 20 < 30 candidates
    assert all(d["certified_ratio"][k] is None and d["queries_at_k"][k] == 0 for k in ks[11:])
    assert d["texts_scored"] == 2 * 30 * 100 and d["config"]["score_map"] == {"map": "bm25-max"}
    q = d["per_query"][0]
    assert len(q["doc_ids"]) == 30 and q["scores"] == sorted(q["scores"], reverse=True)
    assert all(0 <= s < 1 for s in q["scores"])


@pytest.mark.parametrize("extra, message", [
    (("attack", "--budget", "0"), "query budget must be a positive integer"),
    (("attack", "--victim", "nope"), "unknown stage 'nope'"),
    (("attack", "--victim", "cutoff"), "is not a reranker"),
    (("attack", "--method", "pat"), "--method must be prada, stuffing or spam"),
    (("attack", "--targets", "medium5"), "--targets must be easy5 or hard5"),
    (("attack", "--white-box"), "exposes no gradients"),
    (("certify", "--samples", "0"), "number of samples must be a positive integer"),
    (("certify", "--victim", "nope"), "unknown stage 'nope'"),
])
def test_bad_input_is_one_error_line(run_file, tmp_path, extra, message):
    cmd, *opts = extra
    p = rs(cmd, *_args(run_file, *opts, "-o", str(tmp_path / "x.json")))
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], p.stderr
    assert not (tmp_path / "x.json").exists()


def test_bad_runs_name_the_query(run_file, tmp_path):
    bad = tmp_path / "bad.trec"
    lines = run_file.read_text().splitlines()
    qid = lines[0].split()[0]
    bad.write_text("\n".join(lines[:3] + [f"{qid} Q0 no-such-doc 4 0.5 x"]) + "\n")
    p = rs("certify", *_args(bad, "--samples", "10", "-o", str(tmp_path / "x.json")))
    assert p.returncode == 2 and f"query {qid!r} ranks document 'no-such-doc', which is not in" in p.stderr
    p = rs("attack", *_args(run_file, "--method", "stuffing", "--targets", "easy5", "--k", "30", "--queries", "1",
                            "-o", str(tmp_path / "x.json")))
    assert p.returncode == 2 and "easy5 targets need at least 55 candidates, got 30" in p.stderr
    assert f"query {qid!r}" in p.stderr and len(p.stderr.strip().splitlines()) == 1
