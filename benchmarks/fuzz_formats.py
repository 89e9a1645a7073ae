"""Fuzz the readers of rankstack.data.formats with mutated files of every shipped format.

    python benchmarks/fuzz_formats.py --cases 10000 --seed 1            # figures, written to docs/bench/fuzz.md
    python benchmarks/fuzz_formats.py --cases 1000 --seed 1 --show 17   # one case in detail (and its file)

The cases and their oracle are ``tests/data/fuzzcases.py`` (its docstring lists every mutation and
what it must give); ``tests/data/test_fuzz.py`` runs a seeded sample of 1,000 in CI. Each case is
judged against the reference parser of its format:

* clean: read without an error, and the records are exactly what the mutated bytes mean;
* clear error: a ``RankstackError`` where the bytes are invalid, naming the file (and the line, for
  the line formats);
* silent wrong answer: read without an error, but other records than the bytes mean, or invalid
  bytes read as if valid (a missing warning counts here too) -- must be 0;
* unclear error: an error that does not name the file or the right line -- must be 0;
* refused: an error on bytes that are valid -- must be 0;
* traceback: any other exception (a crash in the command line) -- must be 0.

``--cli N`` also runs N cases through ``rankstack evaluate`` (in this process, through the command
line's ``main``): exit 0 with the figure of what the files mean, or exit 2 with one ``error:`` line
naming the damaged file. ``--src DIR`` imports rankstack from another source tree (e.g. a copy of
the readers before a change, to measure what a fix changed).
"""

from __future__ import annotations

import argparse
import collections
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cli", type=int, default=300, help="cases run through `rankstack evaluate` (0: none)")
    ap.add_argument("--show", type=int, default=None, help="print case INDEX in detail and write its file")
    ap.add_argument("--src", default=str(ROOT / "src"), help="source tree to import rankstack from")
    ap.add_argument("--md", default=str(ROOT / "docs" / "bench" / "fuzz.md"), help="write the figures here ('' : no)")
    args = ap.parse_args()
    sys.path.insert(0, args.src)
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    import fuzzcases as fc  # noqa: I001 (from the paths just inserted)
    import rankstack

    sources = fc.build_sources()
    if args.show is not None:
        show(fc, sources, args)
        return
    original = fc.originals(sources)
    tmp = Path(tempfile.mkdtemp(prefix="fuzz_formats_"))
    t0 = time.perf_counter()
    counts: collections.Counter = collections.Counter()
    by_format: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    by_mutation: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures = []
    try:
        for i, case in enumerate(fc.generate(args.cases, args.seed, sources)):
            d = tmp / str(i)
            d.mkdir()
            o = fc.run_case(case, d, original)
            counts[o.verdict] += 1
            by_format[case.source.key + (".gz" if case.gz else "")][o.verdict] += 1
            by_mutation[case.mutation.split(":")[0].split("+")[0]][o.verdict] += 1
            if o.verdict not in ("clean", "error"):
                failures.append((i, case.name, o.verdict, o.detail))
            shutil.rmtree(d)
        elapsed = time.perf_counter() - t0
        cli = run_cli(fc, sources, args, tmp) if args.cli else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lines = [f"cases                {args.cases:,}",
             f"clean results        {counts['clean']:,}",
             f"clear errors         {counts['error']:,}",
             f"silent wrong answers {counts['wrong']:,}",
             f"unclear errors       {counts['unclear']:,}",
             f"refused valid input  {counts['refused']:,}",
             f"tracebacks           {counts['traceback']:,}",
             f"harness mistakes     {counts['harness']:,}",
             f"time                 {elapsed:.1f} s ({elapsed / max(1, args.cases) * 1e3:.2f} ms/case)"]
    if cli is not None:
        lines.append(f"evaluate command     {cli['cases']:,} cases: exit 0 right figure {cli['ok0']:,}, exit 2 one "
                     f"error line naming the file {cli['ok2']:,}, wrong {cli['bad']:,}, exit 3/traceback "
                     f"{cli['crash']:,} ({cli['elapsed']:.1f} s)")
    print("\n".join(lines))
    for i, name, verdict, detail in failures[:30]:
        print(f"  #{i} {name}: {verdict}: {detail[:300]}")
    if cli:
        for line in cli["failures"][:10]:
            print("  " + line)
    if args.md:
        write_md(Path(args.md), args, lines, by_format, by_mutation, failures, rankstack)
        print(f"written to {args.md}")
    bad = counts["wrong"] + counts["unclear"] + counts["refused"] + counts["traceback"] + counts["harness"]
    sys.exit(1 if bad or (cli and cli["bad"] + cli["crash"]) else 0)


def run_cli(fc, sources, args, tmp: Path) -> dict:
    t0 = time.perf_counter()
    res = {"cases": args.cli, "ok0": 0, "ok2": 0, "bad": 0, "crash": 0, "failures": []}
    for k, (qsrc, qdata, rsrc, rdata, case) in enumerate(fc.cli_cases(args.cli, args.seed + 1, sources)):
        qpath, rpath = fc.write_cli_case(tmp, k, qsrc, qdata, rsrc, rdata, case)
        want = fc.expected_cli(qdata, qsrc, rdata, rsrc, qpath, rpath)
        code, out, err = fc.run_cli_inprocess(["evaluate", str(qpath), str(rpath), "-m", "nDCG@10"])
        problem = fc.judge_cli(code, out, err, want)
        if problem is None:
            res["ok0" if code == 0 else "ok2"] += 1
        else:
            res["crash" if code == 3 or "Traceback" in err else "bad"] += 1
            res["failures"].append(f"cli #{k} {case.name}: {problem}")
        shutil.rmtree(qpath.parent)
    res["elapsed"] = time.perf_counter() - t0
    return res


def show(fc, sources, args) -> None:
    """One case in detail: what it is, what the reference says, what the library says; its file is
    written to the current directory."""
    case = fc.generate(args.show + 1, args.seed, sources)[args.show]
    out = Path.cwd() / f"fuzzcase-{args.seed}-{args.show}-{case.filename}"
    out.write_bytes(case.data)
    print(f"case #{args.show} (seed {args.seed}): {case.name}, expect {case.expect}; written to {out}")
    try:
        meaning, warns = fc.reference(case.source, case.data)
        print(f"reference: valid, {len(meaning)} queries/records, warnings expected: {warns or 'none'}")
    except fc.Invalid as e:
        print(f"reference: invalid at line {e.line}: {e.why}")
    tmp = Path(tempfile.mkdtemp(prefix="fuzz_show_"))
    try:
        o = fc.run_case(case, tmp, None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"library: {o.verdict}: {o.detail}")


def write_md(path: Path, args, lines, by_format, by_mutation, failures, rankstack) -> None:
    verdicts = ["clean", "error", "wrong", "unclear", "refused", "traceback"]
    heads = ["clean", "clear error", "silent wrong", "unclear error", "refused", "traceback"]

    def table(rows: dict, first: str) -> list[str]:
        out = [f"| {first} | cases | " + " | ".join(heads) + " |", "| --- " * (len(heads) + 2) + "|"]
        for key in sorted(rows):
            c = rows[key]
            out.append(f"| {key} | {sum(c.values()):,} | " + " | ".join(f"{c[v]:,}" for v in verdicts) + " |")
        return out

    cmd = f"python benchmarks/fuzz_formats.py --cases {args.cases} --seed {args.seed}" + (
        f" --cli {args.cli}" if args.cli != 300 else "")
    text = [
        "# fuzz: the readers of rankstack.data.formats on damaged files",
        "",
        "Command (the figures below are its output, on the shared 2-core build box):",
        "",
        f"    {cmd}",
        "",
        f"rankstack {rankstack.__version__}, Python {platform.python_version()}. The cases, the mutations and the oracle",
        "of each are in `tests/data/fuzzcases.py` (module docstring); CI runs a seeded sample of 1,000 in",
        "`tests/data/test_fuzz.py` (`RANKSTACK_FUZZ_SEED`, `RANKSTACK_FUZZ_CASES` change it).",
        "",
        "```",
        *lines,
        "```",
        "",
        "Every case is judged against an independent reference parser of its format, written from the",
        "readers' documentation: a clean result must be exactly what the mutated bytes mean (for the",
        "meaning-preserving mutations -- CRLF, BOM, blank lines, gzip, trailing whitespace in",
        "whitespace-separated formats -- exactly the undamaged file's records), an error must be a",
        "`RankstackError` naming the file, and for line formats (runs, qrels, TSV, JSONL) the line of the",
        "first problem.",
        "",
        "## By format",
        "",
        *table(by_format, "format"),
        "",
        "## By mutation",
        "",
        *table(by_mutation, "mutation"),
        "",
    ]
    if failures:
        text += ["## Failures", ""]
        text += [f"- #{i} {name}: {verdict}: {detail[:200]}" for i, name, verdict, detail in failures[:50]] + [""]
    # hand-written notes at the end of the file survive a rerun
    if path.exists() and KEPT in path.read_text():
        text += [KEPT + path.read_text().split(KEPT, 1)[1].rstrip(), ""]
    path.write_text("\n".join(text))


KEPT = "## Notes (kept when the script rewrites this file)"


if __name__ == "__main__":
    main()
