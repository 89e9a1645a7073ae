"""Runs in MS MARCO's three columns and from standard input (#17)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rankstack.data.formats import detect_format, read_run, write_run
from rankstack.errors import FormatError

DL19 = Path(__file__).resolve().parents[2] / "data" / "trec-dl-2019"


def _msmarco(run, path: Path) -> Path:
    with open(path, "w") as f:
        for qid in sorted(run):
            for rank, (did, _) in enumerate(run.ranked(qid), 1):
                f.write(f"{qid}\t{did}\t{rank}\n")
    return path


def test_an_msmarco_run_reads_as_its_ranks_and_evaluates_like_the_trec_run(tmp_path):
    from rankstack.data.formats import read_qrels
    from rankstack.measures import evaluate

    trec = read_run(DL19 / "bm25.top100.trec")
    path = _msmarco(trec, tmp_path / "run.msmarco.tsv")
    assert detect_format(path, "run") == "msmarco"
    ms = read_run(path)
    assert sorted(ms) == sorted(trec)
    for qid in trec:  # the same order, scores 1/rank (Pyserini's conversion)
        assert [d for d, _ in ms.ranked(qid)] == [d for d, _ in trec.ranked(qid)]
        assert ms.ranked(qid)[0][1] == 1.0 and ms.ranked(qid)[1][1] == 0.5
    qrels = read_qrels(DL19 / "qrels.txt")
    a = evaluate(qrels, trec, ["nDCG@10", "AP"])
    b = evaluate(qrels, ms, ["nDCG@10", "AP"])
    assert b["nDCG@10"] == pytest.approx(0.5058, abs=5e-5)
    assert b["AP"] == pytest.approx(a["AP"], abs=1e-12)


@pytest.mark.parametrize("text, message", [
    ("q1\td1\t1\nq1\td2\t1\n", r":2: rank 1 repeated for query 'q1' \(first at line 1\)"),
    ("q1\td1\t1\nq1\td1\t2\n", r":2: document 'd1' repeated for query 'q1' \(first at line 1\)"),
    ("q1\td1\t0\n", r":1: rank '0' is not a positive integer"),
    ("q1\td1\tx\n", r":1: rank 'x' is not a positive integer"),
    ("q1\td1\t1\nq1\td2\t2\nq1 Q0 d3 3 1.0 t\n", r":3: expected 3 fields \(qid docid rank: an MS MARCO run\)"),
    ("q1\td1\t1\nq1 Q0 d3 3 1.0 t\nq1 Q0 d4 4 0.5 t\n", r":1: expected 6 fields"),  # most lines are TREC
])
def test_msmarco_run_errors_name_file_and_line(tmp_path, text, message):
    p = tmp_path / "r.tsv"
    p.write_text(text)
    with pytest.raises(FormatError, match=message):
        read_run(p)


def test_dash_reads_standard_input_for_every_command_reading_a_run(tmp_path):
    trec = read_run(DL19 / "bm25.top100.trec")
    body = _msmarco(trec, tmp_path / "r.tsv").read_bytes()
    exe = [sys.executable, "-m", "rankstack.interfaces.cli"]
    qrels = str(DL19 / "qrels.txt")
    out = subprocess.run(exe + ["evaluate", qrels, "-", "-m", "nDCG@10", "--json"], input=body,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert b'"nDCG@10": 0.5058' in out.stdout
    # a damaged line from standard input is named as <stdin>
    bad = subprocess.run(exe + ["evaluate", qrels, "-"], input=b"q1\td1\t1\nq1\td2\tx\n", capture_output=True,
                         timeout=120)
    assert bad.returncode == 2 and b"<stdin>:2: rank 'x' is not a positive integer" in bad.stderr
    # and a TREC run, gzipped, through the pipe
    import gzip

    written = write_run(trec, tmp_path / "r.trec")
    out = subprocess.run(exe + ["evaluate", qrels, "-", "-m", "AP"], input=gzip.compress(written.read_bytes()),
                         capture_output=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith(b"AP\tall\t"), out.stderr.decode()
