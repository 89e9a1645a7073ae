"""Fuzzing the readers of rankstack.data.formats: a seeded sample of mutated files of every shipped
format (``tests/data/fuzzcases.py`` generates them and writes the oracle down), read by the library
and by ``rankstack evaluate``. Nothing may be a traceback, an error that does not name the file (and
the line, for line formats), or a clean answer other than what the mutated bytes mean.

``RANKSTACK_FUZZ_SEED`` / ``RANKSTACK_FUZZ_CASES`` change the sample; ``benchmarks/fuzz_formats.py``
runs 10,000 cases and more and reproduces a single case (``--show INDEX``).
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzzcases as fc

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("RANKSTACK_FUZZ_SEED", "20240617"))
CASES = int(os.environ.get("RANKSTACK_FUZZ_CASES", "1000"))
CLI_CASES = int(os.environ.get("RANKSTACK_FUZZ_CLI_CASES", "150"))


@pytest.fixture(scope="module")
def sources():
    return fc.build_sources()


def test_reference_reads_the_undamaged_files_as_the_readers_do(sources, tmp_path):
    """The oracle is only an oracle if it agrees with the readers on the real files."""
    assert {s.key for s in sources} == {"run", "qrels-trec", "qrels-beir", "qrels-cranfield", "queries-tsv",
                                        "queries-jsonl", "docs-jsonl", "docs-tsv", "topics-trec", "docs-trec",
                                        "docs-smart", "queries-smart"}
    for s in sources:
        for gz in (False, True):
            p = tmp_path / (s.filename + (".gz" if gz else ""))
            p.write_bytes(fc._gzip(s.text.encode()) if gz else s.text.encode())
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got = fc.read_with_library(s, p)
            want, warns = fc.reference(s, p.read_bytes())
            assert got == want and len(want) > 0, s.key
            assert all(fc._warned(caught, w) for w in warns), s.key
            if s.key == "docs-smart":  # the slice keeps Cranfield's record 240 (a .A inside its abstract)
                assert warns == ("stray",) and any("240 (line" in str(w.message) for w in caught)


def test_sample_covers_every_format_and_mutation(sources):
    cases = fc.generate(CASES, SEED, sources)
    kinds = collections.Counter(c.source.key for c in cases)
    assert set(kinds) == {s.key for s in sources}
    muts = {c.mutation.split("+")[0].split(":")[0] for c in cases}
    assert set(fc.MUTATIONS) | set(fc.GZIP_MUTATIONS) | {"double"} <= muts | {"space_in_id"}
    assert sum(c.gz for c in cases) > CASES // 20


def _summary(outcomes) -> str:
    return ", ".join(f"{k} {v}" for k, v in collections.Counter(o.verdict for _, o in outcomes).most_common())


def test_fuzz_readers(sources, tmp_path):
    """Every case: a clean answer equal to the reference's meaning, or a clear error; no traceback,
    no silent wrong answer (see fuzzcases' module docstring for the oracle of each mutation)."""
    original = fc.originals(sources)
    outcomes = []
    for i, case in enumerate(fc.generate(CASES, SEED, sources)):
        d = tmp_path / str(i)
        d.mkdir()
        outcomes.append((i, fc.run_case(case, d, original), case))
    bad = [(i, o, c) for i, o, c in outcomes if o.verdict not in ("clean", "error")]
    counts = collections.Counter(o.verdict for _, o, _ in outcomes)
    report = "\n".join(f"  #{i} {c.name}: {o.verdict}: {o.detail}  (reproduce: python benchmarks/fuzz_formats.py "
                       f"--seed {SEED} --cases {CASES} --show {i})" for i, o, c in bad[:15])
    assert not bad, f"{len(bad)} of {CASES} cases failed ({dict(counts)}):\n{report}"
    assert counts["clean"] > CASES // 4 and counts["error"] > CASES // 4, dict(counts)


def test_fuzz_evaluate_command(sources, tmp_path):
    """``rankstack evaluate`` on a mutated run or qrels: exit 0 with the figure of what the files
    mean, or exit 2 with one ``error:`` line naming the damaged file; never exit 3 or a traceback
    (in this process, through the command line's ``main``)."""
    bad = []
    codes = collections.Counter()
    for k, (qsrc, qdata, rsrc, rdata, case) in enumerate(fc.cli_cases(CLI_CASES, SEED + 1, sources)):
        qpath, rpath = fc.write_cli_case(tmp_path, k, qsrc, qdata, rsrc, rdata, case)
        want = fc.expected_cli(qdata, qsrc, rdata, rsrc, qpath, rpath)
        code, out, err = fc.run_cli_inprocess(["evaluate", str(qpath), str(rpath), "-m", "nDCG@10"])
        codes[code] += 1
        problem = fc.judge_cli(code, out, err, want)
        if problem:
            bad.append(f"  #{k} {case.name}: {problem}")
    assert not bad, f"{len(bad)} of {CLI_CASES} command lines failed:\n" + "\n".join(bad[:10])
    assert codes[0] and codes[2] and set(codes) <= {0, 2}, codes


def test_fuzz_evaluate_command_subprocess(sources, tmp_path):
    """A few of the same through a real ``python -m rankstack.interfaces.cli`` process."""
    picked: dict[tuple[int, str], tuple] = {}
    for k, item in enumerate(fc.cli_cases(200, SEED + 2, sources)):
        qsrc, qdata, rsrc, rdata, case = item
        qpath, rpath = fc.write_cli_case(tmp_path, k, *item)
        want = fc.expected_cli(qdata, qsrc, rdata, rsrc, qpath, rpath)
        key = (want[0], "qrels" if case.source is qsrc else "run")
        if key not in picked:
            picked[key] = (qpath, rpath, want, case)
        if len(picked) == 4:
            break
    assert len(picked) == 4
    for qpath, rpath, want, case in picked.values():
        p = subprocess.run([sys.executable, "-m", "rankstack.interfaces.cli", "evaluate", str(qpath), str(rpath),
                            "-m", "nDCG@10"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        problem = fc.judge_cli(p.returncode, p.stdout, p.stderr, want)
        assert problem is None, f"{case.name}: {problem}"
