"""The columnar evaluation path of ``rankstack evaluate`` (issue #22): ``read_pair`` +
``evaluate_columns`` give exactly what ``evaluate(read_qrels(q), read_run(r))`` gives (max |difference|
0 on every per-query value), or hand the files back (``None``) when they are not regular; and the
command prints byte-identical output on both paths."""

from __future__ import annotations

import gzip
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from rankstack.data.formats import (  # noqa: E402
    _columnar,  # noqa: E402
    read_qrels,
    read_run,
)
from rankstack.data.formats._columnar import read_pair  # noqa: E402
from rankstack.errors import RankstackError  # noqa: E402
from rankstack.measures import columnar as columnar_mod  # noqa: E402
from rankstack.measures import evaluate  # noqa: E402
from rankstack.measures.columnar import evaluate_columns  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RUNS = sorted((ROOT / "docs/bench/runs").glob("*.trec.gz"))
SCIFACT_QRELS = ROOT / "data/scifact/qrels/test.tsv"
DL19 = ROOT / "data/trec-dl-2019"
MEASURES = ["nDCG@10", "nDCG", "AP", "AP@100", "RR", "RR@10", "P@10", "P(rel=2)@5", "R@100", "R", "Rprec",
            "Success@1", "Judged@10"]

sys.path.insert(0, str(ROOT / "tests" / "data"))


def _qrels_for(run: Path) -> Path:
    return SCIFACT_QRELS if run.name.startswith("scifact") else DL19 / "qrels.txt"


def _dict_path(qrels: Path, run: Path, measures=MEASURES, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evaluate(read_qrels(qrels), read_run(run), measures, **kw)


def _columns(qrels: Path, run: Path, measures=MEASURES, **kw):
    pair = read_pair(qrels, run)
    assert pair is not None, f"{qrels} / {run} should be regular"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evaluate_columns(pair, measures, **kw)


def _assert_same(a, b, measures=MEASURES):
    assert a.queries == b.queries
    assert (a.ignored_run_queries, a.missing_run_queries, a.all_judged) == \
        (b.ignored_run_queries, b.missing_run_queries, b.all_judged)
    for m in measures:
        x, y = a.arrays[str(m)], b.arrays[str(m)]
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y), (m, float(np.abs(x - y).max()))  # max |difference| 0
        assert a.aggregate[str(m)] == b.aggregate[str(m)] or (np.isnan(a.aggregate[str(m)])
                                                              and np.isnan(b.aggregate[str(m)]))
    assert a.per_query == b.per_query and a.providers == b.providers


@pytest.mark.parametrize("run", [*RUNS, DL19 / "bm25.top100.trec"], ids=lambda p: p.name)
@pytest.mark.parametrize("opts", [{}, {"all_judged": True}, {"remove_query_doc": True}], ids=str)
def test_real_runs_columnar_equals_dict_path(run, opts):
    qrels = _qrels_for(run)
    a, b = _dict_path(qrels, run, **opts), _columns(qrels, run, **opts)
    _assert_same(a, b)
    assert len(b.queries) in (43, 300) and b.arrays["nDCG@10"].max() > 0.5


def test_real_runs_are_read_exactly():
    """The arrays are the readers' data: same queries, documents and (bit-identical) scores, in file order."""
    for run in RUNS[:3] + [DL19 / "bm25.top100.trec"]:
        qrels = _qrels_for(run)
        pair = read_pair(qrels, run)
        r, q = read_run(run), read_qrels(qrels)
        names = np.asarray(pair._dictionary.to_pylist(), dtype=object)
        assert pair.run_qids == list(r)
        got = {qid: dict(zip(names[pair.run_docs[a:b]], pair.run_scores[a:b].tolist()))
               for qid, a, b in zip(pair.run_qids, pair.run_offsets[:-1], pair.run_offsets[1:])}
        assert got == r.to_dict()
        assert [list(d) for d in got.values()] == [list(d) for d in r.to_dict().values()]  # the file's order
        gq = {qid: dict(zip(names[pair.qrels_docs[a:b]], pair.qrels_grades[a:b].tolist()))
              for qid, a, b in zip(pair.qrels_qids, pair.qrels_offsets[:-1], pair.qrels_offsets[1:])}
        assert gq == q.to_dict() and pair.qrels_qids == list(q)
        assert pair.run_name == r.name


def _write_case(tmp_path: Path, rng: random.Random, *, ties: bool, shuffle: bool, nq: int = 12, nd: int = 40,
                gz: bool = False, tabs: bool = False, name: str = "r") -> tuple[Path, Path]:
    """A run and qrels with queries on one side only, a qrels query with no relevant document, a run
    query with no judged document, negative grades, and (``ties``) many equal scores."""
    run_lines, qrels_blocks = [], []
    order = list(range(nq))
    rng.shuffle(order)
    for q in order:
        qid = f"q{q}" if q % 5 else f"{q}"
        if q != 3:  # q3: in the qrels only
            docs = rng.sample(range(nd * 3), nd)
            if q == 4:
                docs[0] = qid  # a document whose id is the query id (remove_query_doc)
            scores = [rng.choice([0.0, -0.0, 1.0, 2.5, 1e-300]) if ties else rng.uniform(-10, 10) for _ in docs]
            rows = sorted(zip(scores, [f"d{d}" if isinstance(d, int) else d for d in docs]), reverse=True)
            if shuffle:
                rng.shuffle(rows)
            run_lines += [f"{qid} Q0 {d} {i + 1} {s!r} tag{q}" for i, (s, d) in enumerate(rows)]
        if q not in (5, 7):  # q5, q7: in the run only
            judged = rng.sample(range(nd * 3), nd // 2)
            grades = [0 if q == 8 else rng.choice([-1, 0, 0, 1, 2, 3]) for _ in judged]  # q8: no relevant doc
            if q == 9:
                grades = [0] * len(judged)
                judged = [d + 1000 for d in judged]  # q9: none of its run documents judged
            qrels_blocks.append([f"{qid} 0 d{d} {g}" for d, g in zip(judged, grades)])
    rng.shuffle(qrels_blocks)  # the qrels in another query order than the run
    sep = "\t" if tabs else " "
    rp, qp = tmp_path / f"{name}.trec", tmp_path / f"{name}.qrels"
    text = "".join(ln.replace(" ", sep) + "\n" for ln in run_lines).encode()
    if gz:
        rp = rp.with_suffix(".trec.gz")
        text = gzip.compress(text)
    rp.write_bytes(text)
    qp.write_text("".join(ln + "\n" for block in qrels_blocks for ln in block))
    return qp, rp


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_synthetic_runs_columnar_equals_dict_path(tmp_path, seed, ties):
    rng = random.Random(seed)
    qp, rp = _write_case(tmp_path, rng, ties=ties, shuffle=seed % 2 == 1, gz=seed % 3 == 0, tabs=seed % 4 == 1)
    for opts in ({}, {"all_judged": True}, {"remove_query_doc": True}, {"all_judged": True, "remove_query_doc": True}):
        a, b = _dict_path(qp, rp, **opts), _columns(qp, rp, **opts)
        _assert_same(a, b)
    ev = _columns(qp, rp)
    assert ev.ignored_run_queries == 2 and ev.missing_run_queries == 1 and len(ev.queries) == 9
    assert _columns(qp, rp, all_judged=True).queries == tuple(read_qrels(qp))


def test_every_ranking_branch_is_taken(tmp_path, monkeypatch):
    """Sorted without ties (no sort), sorted with ties in document order (no sort), ties out of
    order, and shuffled: each branch of ``_ranking`` gives the dict path's values."""
    seen = []
    real = columnar_mod._ranking

    def spy(qp, s, d, cols):
        out = real(qp, s, d, cols)
        seen.append("sorted" if out is None else "sort")
        return out

    monkeypatch.setattr(columnar_mod, "_ranking", spy)
    qrels = tmp_path / "q.txt"
    qrels.write_text("a 0 d1 1\na 0 d3 2\nb 0 d2 1\n")
    cases = {
        "distinct, in order": "a Q0 d1 1 3.0 t\na Q0 d2 2 2.0 t\na Q0 d3 3 1.0 t\nb Q0 d2 1 1.0 t\n",
        "ties by id descending": "a Q0 d3 1 1.0 t\na Q0 d2 2 1.0 t\na Q0 d1 3 1.0 t\nb Q0 d2 1 1.0 t\n",
        "ties by id ascending": "a Q0 d1 1 1.0 t\na Q0 d2 2 1.0 t\na Q0 d3 3 1.0 t\nb Q0 d2 1 1.0 t\n",
        "shuffled": "a Q0 d2 1 2.0 t\na Q0 d3 2 1.0 t\na Q0 d1 3 3.0 t\nb Q0 d2 1 1.0 t\n",
        "zero signs tie": "a Q0 d1 1 0.0 t\na Q0 d3 2 -0.0 t\na Q0 d2 3 -0.0 t\nb Q0 d2 1 1.0 t\n",
    }
    for text in cases.values():
        run = tmp_path / "r.trec"
        run.write_text(text)
        _assert_same(_dict_path(qrels, run), _columns(qrels, run))
        _assert_same(_dict_path(qrels, run, all_judged=True), _columns(qrels, run, all_judged=True))
    assert seen[::2] == ["sorted", "sorted", "sort", "sort", "sort"]
    # the ranking itself: ties by document id descending, as trec_eval
    run = tmp_path / "r.trec"
    run.write_text(cases["ties by id ascending"])
    assert _columns(qrels, run, ["RR"]).per_query["RR"]["a"] == 1.0  # d3 (grade 2) first


def test_scores_are_bit_identical_to_float(tmp_path):
    rng = random.Random(7)
    toks = [repr(rng.uniform(-1e6, 1e6)) for _ in range(3000)] + [repr(rng.random() * 10 ** rng.randint(-300, 300))
                                                                   for _ in range(3000)]
    toks += ["5.", ".5", "-0", "0.0", "-0.0", "1e5", "1E+3", "2e-3", "4.9e-324", "2.4703282292062327e-324",
             "1.7976931348623157e308", "1e999", "-1e999", "1e-400", "123456789012345678901234567890",
             "0.1000000000000000055511151231257827021181583404541015625", "9007199254740993",
             "2.2250738585072011e-308", "00012.50", "7"]
    run = tmp_path / "r.trec"
    run.write_text("".join(f"q1 Q0 d{i} {i + 1} {t} x\n" for i, t in enumerate(toks)))
    qrels = tmp_path / "q.txt"
    qrels.write_text("q1 0 d1 1\n")
    pair = read_pair(qrels, run)
    assert pair is not None
    want = np.array([float(t) for t in toks])
    assert np.array_equal(pair.run_scores.view(np.int64), want.view(np.int64))
    _assert_same(_dict_path(qrels, run), _columns(qrels, run))


_RUN_TEXT = "".join(f"q{q} Q0 d{d} {d + 1} {1.0 / (d + 1)!r} t\n" for q in range(1, 4) for d in range(5))
_QRELS_TEXT = "".join(f"q{q} 0 d{d} {(q + d) % 3}\n" for q in range(1, 4) for d in range(0, 6, 2))

#: run texts the readers read or refuse that the columnar reader must hand back (None)
_IRREGULAR_RUNS = {
    "CRLF": _RUN_TEXT.replace("\n", "\r\n"),
    "BOM": "\ufeff" + _RUN_TEXT,
    "double space": _RUN_TEXT.replace("q2 Q0", "q2  Q0", 1),
    "leading space": " " + _RUN_TEXT,
    "trailing space": _RUN_TEXT.replace("\n", " \n", 1),
    "7 fields": _RUN_TEXT.replace(" t\n", " t x\n", 1),
    "5 fields": _RUN_TEXT.replace(" t\n", "\n", 1),
    "nan": _RUN_TEXT.replace(" 0.5 ", " nan ", 1),
    "inf": _RUN_TEXT.replace(" 0.5 ", " inf ", 1),
    "underscore": _RUN_TEXT.replace(" 0.5 ", " 0_5 ", 1),
    "bad number": _RUN_TEXT.replace(" 0.5 ", " 1.2.3 ", 1),
    "lone e": _RUN_TEXT.replace(" 0.5 ", " 1e ", 1),
    "negative rank": _RUN_TEXT.replace(" d1 2 ", " d1 -2 ", 1),
    "non-integer rank": _RUN_TEXT.replace(" d1 2 ", " d1 2.0 ", 1),
    "repeated pair": _RUN_TEXT + "q1 Q0 d0 9 0.1 t\n",
    "split query": _RUN_TEXT + "q1 Q0 d9 9 0.1 t\n",
    "long id": _RUN_TEXT.replace(" d3 ", " " + "d" * 300 + " ", 1),
    "non-ASCII id": _RUN_TEXT.replace(" d3 ", " dé ", 1),
    "control char": _RUN_TEXT.replace(" d3 ", " d\x013 ", 1),
    "msmarco": "".join(f"q1\td{d}\t{d + 1}\n" for d in range(5)),
    "empty": "",
}
_IRREGULAR_QRELS = {
    "float grade": _QRELS_TEXT.replace(" 1\n", " 1.0\n", 1),
    "plus grade": _QRELS_TEXT.replace(" 1\n", " +1\n", 1),
    "huge grade": _QRELS_TEXT.replace(" 1\n", " 99999999999999999999\n", 1),
    "repeated judgment": _QRELS_TEXT + "q3 0 d0 0\n",
    "split query": _QRELS_TEXT + "q1 0 d9 1\n",
    "BOM": "\ufeff" + _QRELS_TEXT,
    "CRLF": _QRELS_TEXT.replace("\n", "\r\n"),
    "pairs": "q1 d0\nq1 d2\n",
}


@pytest.mark.parametrize("what", sorted(_IRREGULAR_RUNS))
def test_irregular_runs_go_to_the_reader(tmp_path, what):
    run, qrels = tmp_path / "r.trec", tmp_path / "q.txt"
    run.write_bytes(_IRREGULAR_RUNS[what].encode("utf-8"))
    qrels.write_text(_QRELS_TEXT)
    assert read_pair(qrels, run) is None


@pytest.mark.parametrize("what", sorted(_IRREGULAR_QRELS))
def test_irregular_qrels_go_to_the_reader(tmp_path, what):
    run, qrels = tmp_path / "r.trec", tmp_path / "q.txt"
    run.write_text(_RUN_TEXT)
    qrels.write_bytes(_IRREGULAR_QRELS[what].encode("utf-8"))
    assert read_pair(qrels, run) is None


def test_regular_variants_take_the_columnar_path(tmp_path):
    """Tabs, blank lines, no final newline, gzip, a BEIR header (any case), grades -1 and 007."""
    run, qrels = tmp_path / "r.trec", tmp_path / "q.tsv"
    for rtext, qtext in [
        (_RUN_TEXT.replace(" ", "\t"), _QRELS_TEXT),
        ("\n" + _RUN_TEXT.replace("\n", "\n\n", 2), _QRELS_TEXT),
        (_RUN_TEXT.rstrip("\n"), _QRELS_TEXT.rstrip("\n")),
        (_RUN_TEXT, "Query-ID\tcorpus-id\tSCORE\n" + "".join(f"q{q}\td{d}\t1\n" for q in (1, 3) for d in (0, 4))),
        (_RUN_TEXT, _QRELS_TEXT.replace(" 1\n", " -1\n", 1).replace(" 2\n", " 007\n", 1)),
    ]:
        run.write_text(rtext)
        qrels.write_text(qtext)
        _assert_same(_dict_path(qrels, run), _columns(qrels, run))
    gz = tmp_path / "r.trec.gz"
    gz.write_bytes(gzip.compress(_RUN_TEXT.encode()))
    _assert_same(_dict_path(qrels, gz), _columns(qrels, gz))


def test_external_measures_and_huge_grades_use_the_dict_path(tmp_path):
    run, qrels = tmp_path / "r.trec", tmp_path / "q.txt"
    run.write_text(_RUN_TEXT)
    qrels.write_text(_QRELS_TEXT)
    pair = read_pair(qrels, run)
    assert evaluate_columns(pair, ["nDCG@10", "Bpref"]) is None
    qrels.write_text(_QRELS_TEXT + f"q3 0 d9 {2**60}\n")
    pair = read_pair(qrels, run)
    assert pair is not None and evaluate_columns(pair, ["nDCG@10"]) is None


def test_no_common_query_is_nan_with_the_same_warning(tmp_path):
    run, qrels = tmp_path / "r.trec", tmp_path / "q.txt"
    run.write_text(_RUN_TEXT)
    qrels.write_text("x 0 d1 1\n")
    with pytest.warns(RuntimeWarning, match="no query to evaluate: the run has 3 queries, the qrels 1"):
        ev = evaluate_columns(read_pair(qrels, run), ["nDCG@10"])
    assert ev.queries == () and np.isnan(ev["nDCG@10"])
    with pytest.warns(UserWarning, match=r"P\(rel=5\)@5: no judgment reaches that relevance level"):
        evaluate_columns(read_pair(qrels, run), ["P(rel=5)@5"])


# -- the command: byte-identical output on both paths --------------------------------------------------
def _cli(args, monkeypatch=None, strict=False):
    import fuzzcases as fc

    if not strict:
        return fc.run_cli_inprocess(args)
    with monkeypatch.context() as m:
        m.setattr(_columnar, "read_pair", lambda *a, **k: None)
        return fc.run_cli_inprocess(args)


def _both(monkeypatch, args):
    calls = []
    real = _columnar.read_pair

    def spy(*a, **k):
        out = real(*a, **k)
        calls.append(out is not None)
        return out

    with monkeypatch.context() as m:
        m.setattr(_columnar, "read_pair", spy)
        fast = _cli(args)
    strict = _cli(args, monkeypatch, strict=True)
    # stdout and the exit code byte for byte; stderr too, but for the source line a warning is
    # attributed to (the dict path's is inside measures/compute.py)
    assert fast[:2] == strict[:2], (args, fast, strict)
    assert _unlocated(fast[2]) == _unlocated(strict[2]), (args, fast, strict)
    return fast, calls


def _unlocated(err: str) -> str:
    import re

    return re.sub(r"(?m)^\S+\.py:\d+: (\w+Warning: .*)\n  .*\n", r"\1\n", err)


@pytest.mark.parametrize("extra", [[], ["-q"], ["--json"], ["-q", "--json", "-c"], ["-c", "--remove-query-doc", "-q"],
                                   ["-m", "nDCG@10", "-m", "AP", "-m", "R@100", "-q"], ["-m", "Bpref", "-q"],
                                   ["-m", "P(rel=9)@5"], ["-m", "nope"]], ids=" ".join)
def test_cli_output_is_byte_identical(monkeypatch, tmp_path, extra):
    rng = random.Random(3)
    qp, rp = _write_case(tmp_path, rng, ties=True, shuffle=True)
    scifact_run = ROOT / "docs/bench/runs/scifact-test.bm25.top100.trec.gz"
    for q, r in [(qp, rp), (SCIFACT_QRELS, scifact_run), (DL19 / "qrels.txt", DL19 / "bm25.top100.trec")]:
        (code, out, err), calls = _both(monkeypatch, ["evaluate", str(q), str(r), *extra])
        assert calls == [True]  # the columnar path was taken
        if "nope" in extra:
            assert code == 2 and "nope" in err
        else:
            assert code == 0 and out.count("\n") >= (1 if "P(rel=9)@5" in extra else 5), (q, r, err)


def test_cli_errors_are_identical(monkeypatch, tmp_path):
    run, qrels = tmp_path / "r.trec", tmp_path / "q.txt"
    run.write_text(_RUN_TEXT)
    qrels.write_text("x 0 d1 1\n")
    (code, out, err), calls = _both(monkeypatch, ["evaluate", str(qrels), str(run)])
    assert calls == [True] and code == 2 and "share no query id" in err
    for what, text in _IRREGULAR_RUNS.items():
        run.write_bytes(text.encode("utf-8"))
        qrels.write_text(_QRELS_TEXT)
        (code, out, err), calls = _both(monkeypatch, ["evaluate", str(qrels), str(run), "-q"])
        assert calls == [False], what
        assert (code == 0) == (what in ("CRLF", "BOM", "double space", "leading space", "trailing space", "inf",
                                        "negative rank", "split query", "non-ASCII id", "msmarco")), (what, err)


def test_fuzzed_files_same_output_on_both_paths(monkeypatch, tmp_path):
    """The evaluate fuzz cases of tests/data/fuzzcases.py (one of the two files mutated): the command's
    exit code, output and error are the same with and without the columnar path."""
    import fuzzcases as fc

    sources = fc.build_sources()
    taken = 0
    for k, item in enumerate(fc.cli_cases(120, 20261204, sources)):
        qpath, rpath = fc.write_cli_case(tmp_path, k, *item)
        _, calls = _both(monkeypatch, ["evaluate", str(qpath), str(rpath), "-q", "-m", "nDCG@10", "-m", "AP"])
        taken += sum(calls)
    assert 5 <= taken < 100  # both paths were exercised


def test_a_bug_in_the_columnar_path_is_reported_as_a_bug(monkeypatch, capsys):
    from rankstack.interfaces import cli

    monkeypatch.setattr(_columnar, "read_pair", lambda *a, **k: 1 / 0)
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", str(DL19 / "qrels.txt"), str(DL19 / "bm25.top100.trec")])
    err = capsys.readouterr().err
    assert e.value.code == 3 and "internal error (a bug in rankstack" in err and "ZeroDivisionError" in err


def test_reader_errors_are_never_decided_here(tmp_path):
    """Whatever read_pair accepts, the readers accept too (the fuzz above checks the converse)."""
    rng = random.Random(11)
    for i in range(30):
        lines = _RUN_TEXT.splitlines()
        k = rng.randrange(len(lines))
        parts = lines[k].split()
        j = rng.randrange(6)
        parts[j] = rng.choice(["", "x", "-1", "1e3", "0x1", "1,5", "١", "nan", "1__0", ".", "-.5e-3", "Q0"])
        lines[k] = " ".join(parts)
        run, qrels = tmp_path / f"r{i}.trec", tmp_path / "q.txt"
        run.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
        qrels.write_text(_QRELS_TEXT)
        pair = read_pair(qrels, run)
        try:
            r = read_run(run)
        except RankstackError:
            assert pair is None, lines[k]
            continue
        if pair is not None:
            _assert_same(_dict_path(qrels, run), _columns(qrels, run))
            assert pair.run_qids == list(r)


def _all_strings(alphabet: str, up_to: int) -> list[str]:
    import itertools

    return ["".join(t) for n in range(1, up_to + 1) for t in itertools.product(alphabet, repeat=n)]


def test_score_syntax_is_a_subset_of_float():
    """Every token of up to 5 characters of ``0 1 . e E + - _ i n``: the columnar parser accepts it
    only if ``float()`` does (as the run reader does), and gives the same bits."""
    import pyarrow as pa

    accepted = 0
    for tok in _all_strings("01.eE+-", 4) + _all_strings("1.e+-_in", 3) + ["1e+10", "-.5e3", "+.5E-1", "00.00"]:
        got = _columnar._scores(pa.array([tok]))
        try:
            want = float(tok) if "_" not in tok else None
        except ValueError:
            want = None
        if got is not None:
            accepted += 1
            assert want is not None and got.view(np.int64)[0] == np.float64(want).view(np.int64), tok
    assert accepted > 200


def test_grade_syntax_is_int():
    import pyarrow as pa

    accepted = 0
    for tok in _all_strings("01-+.", 4) + ["9223372036854775807", "-9223372036854775808", "9223372036854775808"]:
        got = _columnar._grades(pa.array([tok]))
        if got is not None:
            accepted += 1
            assert "+" not in tok and "." not in tok and int(tok) == got[0], tok
    assert accepted > 30


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_many_queries_shuffled_columnar_equals_dict_path(tmp_path, ties):
    """90,000 lines, 300 queries in shuffled line order within each query: the vectorised ranking
    (one argsort) against the dict path's per-query sorts."""
    rng = np.random.default_rng(5)
    lines, qlines = [], []
    for q in range(300):
        docs = rng.permutation(3000)[:300]
        scores = np.round(rng.random(300), 2) if ties else rng.random(300) * 100 - 50
        lines += [f"q{q} Q0 d{d} {i + 1} {float(s)!r} x\n" for i, (d, s) in enumerate(zip(docs, scores))]
        qlines += [f"q{q} 0 d{d} {rng.integers(-1, 4)}\n" for d in rng.permutation(3000)[:60]]
    run, qrels = tmp_path / "r.trec", tmp_path / "q.txt"
    run.write_text("".join(lines))
    qrels.write_text("".join(qlines))
    for opts in ({}, {"all_judged": True}):
        a, b = _dict_path(qrels, run, **opts), _columns(qrels, run, **opts)
        _assert_same(a, b)
    assert b.arrays["AP"].max() > 0 and len(b.queries) == 300
