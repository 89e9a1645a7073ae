"""The one-pass fast path of read_run / read_qrels (issue #22) returns exactly what the strict
line-by-line path returns, or hands the file to it: same data, same order, same name, same error."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from rankstack.data.formats import qrels as qrels_mod
from rankstack.data.formats import read_qrels, read_run
from rankstack.data.formats import runs as runs_mod
from rankstack.data.formats._fast import _fast_qrels, _fast_run
from rankstack.data.formats.detect import _BEIR_HEADER
from rankstack.errors import FormatError

ROOT = Path(__file__).resolve().parents[2]
RUNS = sorted((ROOT / "docs/bench/runs").glob("*.trec.gz"))
SCIFACT_QRELS = sorted((ROOT / "data/scifact/qrels").glob("*.tsv"))


def _strict(monkeypatch, fn, *args, **kw):
    with monkeypatch.context() as m:
        m.setattr(runs_mod, "_fast_run", lambda *a, **k: None)
        m.setattr(qrels_mod, "_fast_qrels", lambda *a, **k: None)
        return fn(*args, **kw)


def _outcome(fn, *args, **kw):
    try:
        r = fn(*args, **kw)
    except FormatError as e:
        return ("error", str(e))
    return ("ok", r.name, [(q, list(d.items())) for q, d in r.items()])


def _same(monkeypatch, fn, path, **kw):
    fast = _outcome(fn, path, **kw)
    strict = _outcome(lambda *a, **k: _strict(monkeypatch, fn, *a, **k), path, **kw)
    assert fast == strict
    return fast


@pytest.mark.parametrize("path", RUNS, ids=lambda p: p.name)
def test_real_runs_take_the_fast_path_and_match(monkeypatch, path):
    assert _fast_run(path, 256) is not None  # these regular files must not fall back
    out = _same(monkeypatch, read_run, path)
    assert out[0] == "ok" and sum(len(d) for _, d in out[2]) > 1000


@pytest.mark.parametrize("path", SCIFACT_QRELS, ids=lambda p: p.name)
def test_scifact_qrels_match(monkeypatch, path):
    out = _same(monkeypatch, read_qrels, path)
    assert out[0] == "ok"
    if path.name == "test.tsv":
        assert len(out[2]) == 300 and sum(len(d) for _, d in out[2]) == 339
        assert _fast_qrels(path, "beir", 256, _BEIR_HEADER, False) is not None


def _run_lines(rng: random.Random, nq=5, nd=8) -> list[str]:
    return [f"q{q} Q0 d{d} {d + 1} {rng.uniform(-5, 5)!r} tag{q}" for q in range(nq) for d in range(nd)]


#: irregularities the fast path must hand to the strict path (each applied to one random line)
_RUN_MUTATIONS = [
    lambda ln: ln + " extra",
    lambda ln: " ".join(ln.split()[:5]),
    lambda ln: ln.replace(ln.split()[4], "nan"),
    lambda ln: ln.replace(ln.split()[4], "1_0"),
    lambda ln: ln.replace(ln.split()[4], "abc"),
    lambda ln: ln.replace(ln.split()[4], "inf"),
    lambda ln: ln.replace(" Q0 ", " Q0 d\u200b"),
    lambda ln: ln.replace(" Q0 ", " Q0 dé"),
    lambda ln: ln.replace(" Q0 ", " Q0 x\x01"),
    lambda ln: ln.split()[0] + " Q0 " + "x" * 300 + " 1 1.0 t",
    lambda ln: ln.replace(f" {ln.split()[3]} ", " -3 "),
    lambda ln: ln.replace(f" {ln.split()[3]} ", " 1.5 "),
    lambda ln: ln + "\r",
    lambda ln: ln + "\n",
    lambda ln: ln + "\n   \t",
    lambda ln: "\ufeff" + ln,
    lambda ln: ln.replace(" ", "\t"),
    lambda ln: ln.replace(" ", "  \t "),
]


@pytest.mark.parametrize("seed", range(12))
def test_fuzzed_runs_match_the_strict_path(monkeypatch, tmp_path, seed):
    rng = random.Random(seed)
    for i, mutate in enumerate(_RUN_MUTATIONS):
        lines = _run_lines(rng)
        k = rng.randrange(len(lines))
        lines[k] = mutate(lines[k])
        if rng.random() < 0.3:  # a repeated pair, or a query split over two blocks
            lines.append(lines[rng.randrange(len(lines))] if rng.random() < 0.5 else "q0 Q0 dz 9 1.0 t")
        text = "\n".join(lines) + ("\n" if rng.random() < 0.7 else "")
        p = tmp_path / f"run{i}.trec"
        data = text.encode("utf-8")
        p.write_bytes(gzip.compress(data) if rng.random() < 0.3 else data)
        _same(monkeypatch, read_run, p)


def test_fast_path_refuses_exactly_like_the_strict_path(tmp_path):
    p = tmp_path / "r.trec"
    p.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 1.0 t\nq1 Q0 d1 3 0.5 t\n")
    with pytest.raises(FormatError, match=r"r.trec:3: document 'd1' repeated for query 'q1' \(first at line 1\)"):
        read_run(p)
    p.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 nan t\n")
    with pytest.raises(FormatError, match=r"r.trec:2: score is NaN"):
        read_run(p)
    p.write_bytes(gzip.compress("".join(f"q1 Q0 d{i} {i} 2.0 t\n" for i in range(1, 5000)).encode())[:-20])
    with pytest.raises(FormatError, match=r"gzip stream is truncated"):
        read_run(p)


def test_query_in_two_blocks_is_merged_as_strict(monkeypatch, tmp_path):
    p = tmp_path / "r.trec"
    p.write_text("q1 Q0 d1 1 2.0 a\nq2 Q0 d1 1 2.0 a\nq1 Q0 d2 2 1.0 a\n")
    out = _same(monkeypatch, read_run, p)
    assert out == ("ok", "a", [("q1", [("d1", 2.0), ("d2", 1.0)]), ("q2", [("d1", 2.0)])])


@pytest.mark.parametrize("seed", range(8))
def test_fuzzed_qrels_match_the_strict_path(monkeypatch, tmp_path, seed):
    rng = random.Random(seed)
    mutations = [
        lambda ln: ln, lambda ln: ln + " x", lambda ln: ln[: ln.rfind(" ")] + " 1.0",
        lambda ln: ln[: ln.rfind(" ")] + " 1_0", lambda ln: ln[: ln.rfind(" ")] + " 99999999999999999999",
        lambda ln: ln[: ln.rfind(" ")] + " -1", lambda ln: "0" + ln, lambda ln: "\ufeff" + ln,
        lambda ln: ln + "\n",
    ]
    for fmt in ("trec", "beir"):
        for i, mutate in enumerate(mutations):
            if fmt == "trec":
                lines = [f"{q} 0 d{d} {rng.randrange(4)}" for q in range(1, 6) for d in range(6)]
            else:
                lines = ["query-id corpus-id score"] + [f"{q} d{d} {rng.randrange(4)}" for q in range(1, 6)
                                                        for d in range(6)]
            k = rng.randrange(1, len(lines))
            lines[k] = mutate(lines[k])
            if rng.random() < 0.3:
                lines.append(lines[rng.randrange(1, len(lines))])  # a repeat: same grade (warning) or not
            p = tmp_path / f"q{fmt}{i}.txt"
            p.write_text("\n".join(lines) + "\n")
            for strip in (False, True):
                with _maybe_warn():  # identical repeats warn on both paths
                    _same(monkeypatch, read_qrels, p, format=fmt, strip_zeros=strip)


class _maybe_warn:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def test_identical_repeat_still_warns(tmp_path):
    p = tmp_path / "q.txt"
    p.write_text("1 0 d1 1\n1 0 d2 0\n1 0 d1 1\n")
    with pytest.warns(UserWarning, match="1 judgment"):
        q = read_qrels(p, format="trec")
    assert dict(q["1"]) == {"d1": 1, "d2": 0}


def test_empty_files_read_as_strict(monkeypatch, tmp_path):
    for text in ("", "\n", "  \n\n"):
        p = tmp_path / "e.trec"
        p.write_text(text)
        assert _same(monkeypatch, read_run, p) == ("ok", "e.trec", [])
        assert _same(monkeypatch, read_qrels, p, format="trec")[0] == "ok"
