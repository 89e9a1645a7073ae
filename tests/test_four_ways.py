"""#17's "same figure four ways": SciFact test BM25 nDCG@10 = 0.6789 (Anserini's) through the CLI, a
TOML experiment, the Python ``Experiment`` and ``pt.Experiment`` over a rankstack stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import rankstack
from rankstack.data import datasets
from rankstack.experiments.config import load_experiment
from rankstack.experiments.runner import run_experiment
from rankstack.index.bm25 import BM25Index

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT / "data" / "scifact"


def rs(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rankstack.interfaces.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900)


def test_scifact_bm25_is_0_6789_four_ways(tmp_path):
    figures = {}
    # 1. the CLI
    assert rs("index", str(SCIFACT / "corpus.jsonl"), "-o", str(tmp_path / "idx"), cwd=tmp_path).returncode == 0
    p = rs("search", str(tmp_path / "idx"), str(SCIFACT / "queries.jsonl"), "--split", "test", "-o",
           str(tmp_path / "run.trec"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    p = rs("evaluate", str(SCIFACT / "qrels" / "test.tsv"), str(tmp_path / "run.trec"), "-m", "nDCG@10", "--json",
           cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    figures["cli"] = json.loads(p.stdout)["aggregate"]["nDCG@10"]
    # 2. a TOML experiment
    (tmp_path / "exp.toml").write_text('[experiment]\nmeasures = ["nDCG@10"]\ncache = "cache"\noutput = "out"\n'
                                       '[[collections]]\nname = "scifact"\n'
                                       '[[pipelines]]\nname = "bm25"\nstages = [{ stage = "bm25", k = 1000 }]\n')
    report = run_experiment(load_experiment(tmp_path / "exp.toml"), progress=False)
    figures["toml"] = report.results[0].aggregate["nDCG@10"]
    # 3. the Python Experiment
    coll = datasets.load("scifact")
    bm25 = BM25Index.build(coll.docs.values(), None, progress=False).retriever(k=1000)
    table = rankstack.Experiment([bm25], coll, measures=["nDCG@10"], names=["bm25"])
    figures["python"] = table.row("bm25")["nDCG@10"]
    # 4. pt.Experiment over the rankstack stage
    pt = pytest.importorskip("pyterrier")
    from rankstack.interfaces.pyterrier import qrels_to_df, queries_to_df, to_pyterrier

    res = pt.Experiment([to_pyterrier(bm25)], queries_to_df(coll.queries), qrels_to_df(coll.qrels),
                        eval_metrics=["ndcg_cut_10"])
    figures["pyterrier"] = float(res["ndcg_cut_10"].iloc[0])
    assert {k: round(v, 4) for k, v in figures.items()} == dict.fromkeys(figures, 0.6789), figures
    assert max(figures.values()) - min(figures.values()) < 1e-9, figures
