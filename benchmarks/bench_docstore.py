"""Benchmark DocStore against ir_datasets' docstore and an in-memory dict.

    python benchmarks/bench_docstore.py --n 1000000 [--peers] [--dir /tmp/bench_docstore]

Synthetic, deterministic corpus: ``n`` documents with MS MARCO-like numeric ids (a fixed random
permutation of 0..n-1), a 6-word title and 40-80 words of text drawn (Zipf-like) from a 50k-word
vocabulary, ~60 words per document. Each phase runs in its own process so that its peak RSS
(``resource.getrusage().ru_maxrss``) is its own:

* ``build``: stream the corpus into a DocStore; the time spent generating the corpus is measured
  inside the run and subtracted (same for ir_datasets).
* ``lookup``: open, then 10k random ids one by one: "cold" after evicting the store's files from the
  page cache (``posix_fadvise(DONTNEED)``), then the same ids again "warm"; plus ``get_many`` of 100.
* ``irds`` (``--peers``): ir_datasets' ``PickleLz4FullStore`` (lz4-compressed pickles + numpy sorted
  id index), same corpus, same lookups.
* ``dict`` (``--peers``): all documents in a Python ``dict[str, Document]``; and the memory of a
  ``dict`` of the ids alone (what an id -> row map in the Python heap would cost).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rankstack.data.records import Document


def corpus(n: int, seed: int = 13) -> Iterator[Document]:
    rng = np.random.default_rng(seed)
    vocab_rng = np.random.default_rng(seed + 1)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lens = vocab_rng.integers(2, 11, size=50_000)
    vocab = ["".join(vocab_rng.choice(letters, size=k)) for k in lens]
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    ids = rng.permutation(n)
    chunk = 10_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        nwords = rng.integers(40, 81, size=m)
        words = rng.choice(len(vocab), size=int(nwords.sum()) + 6 * m, p=p)
        pos = 0
        for i in range(m):
            k = int(nwords[i])
            title = " ".join([vocab[w] for w in words[pos:pos + 6]])
            text = " ".join([vocab[w] for w in words[pos + 6:pos + 6 + k]])
            pos += 6 + k
            yield Document(str(int(ids[start + i])), text, title)


class Timed:
    """Wrap an iterator and add up the time spent producing its items (the corpus generator)."""

    def __init__(self, it):
        self.it, self.s, self.chars = iter(it), 0.0, 0

    def __iter__(self):
        return self

    def __next__(self):
        t = time.perf_counter()
        try:
            x = next(self.it)
        finally:
            self.s += time.perf_counter() - t
        self.chars += len(x[-1]) + len(x[-2]) if isinstance(x, tuple) else len(x.text) + len(x.title)
        return x


def rss_mb() -> float:
    """Peak resident set size of this process (MiB), file-backed mmapped pages included."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now() -> dict[str, float]:
    """Current RssAnon (heap etc.) and RssFile (mapped file pages, reclaimable page cache) in MiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) / 1024
    return out


def sample_ids(n: int, k: int = 10_000) -> list[str]:
    rng = np.random.default_rng(7)
    return [str(int(i)) for i in rng.integers(0, n, size=k)]


def evict(paths: list[Path]) -> None:
    for p in paths:
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed_lookups(get, ids: list[str]) -> dict[str, float]:
    lat = np.empty(len(ids))
    pc = time.perf_counter_ns
    for i, d in enumerate(ids):
        t = pc()
        get(d)
        lat[i] = pc() - t
    return {"p50_us": float(np.percentile(lat, 50) / 1e3), "p99_us": float(np.percentile(lat, 99) / 1e3),
            "mean_us": float(lat.mean() / 1e3)}


def phase_build(n: int, d: Path) -> dict:
    from rankstack.data.docstore import DocStore

    gen = Timed(corpus(n))
    t = time.perf_counter()
    s = DocStore.build(gen, d / "docstore", progress=False)
    return {"build_s": time.perf_counter() - t, "gen_s": gen.s, "text_bytes": gen.chars, "disk_mb": s.disk_bytes() / 2**20, "rss_mb": rss_mb(),
            "files_mb": {f.name: f.stat().st_size / 2**20 for f in sorted(s.path.iterdir())}}


def phase_lookup(n: int, d: Path) -> dict:
    from rankstack.data.docstore import DocStore

    path = d / "docstore"
    evict(list(path.iterdir()))
    r0 = rss_mb()
    t = time.perf_counter()
    s = DocStore.open(path)
    open_s = time.perf_counter() - t
    ids = sample_ids(n)
    cold = timed_lookups(s.__getitem__, ids)
    warm = timed_lookups(s.__getitem__, ids)
    t = time.perf_counter()
    for k in range(0, len(ids), 100):
        s.get_many(ids[k:k + 100])
    many = (time.perf_counter() - t) / (len(ids) / 100) * 1e6
    return {"open_s": open_s, "cold": cold, "warm": warm, "get_many_100_us": many, "rss_mb": rss_mb(),
            "rss_before_open_mb": r0, "rss_now": rss_now()}


def phase_irds(n: int, d: Path) -> dict:
    from typing import NamedTuple

    from ir_datasets.indices import PickleLz4FullStore

    class Doc(NamedTuple):
        doc_id: str
        title: str
        text: str

    path = d / "irds"
    shutil.rmtree(path, ignore_errors=True)

    gen = Timed(Doc(x.id, x.title, x.text) for x in corpus(n))
    store = PickleLz4FullStore(str(path), lambda: gen, Doc, "doc_id", ["doc_id"])
    t = time.perf_counter()
    store.build()
    build_s = time.perf_counter() - t - gen.s
    build_rss = rss_mb()
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
    store = PickleLz4FullStore(str(path), lambda: iter(()), Doc, "doc_id", ["doc_id"])
    evict([f for f in path.rglob("*") if f.is_file()])
    ids = sample_ids(n)
    cold = timed_lookups(store.get, ids)
    warm = timed_lookups(store.get, ids)
    return {"build_s": build_s, "disk_mb": disk, "rss_build_mb": build_rss, "cold": cold, "warm": warm,
            "rss_mb": rss_mb()}


def phase_dict(n: int, d: Path) -> dict:
    perm = np.random.default_rng(13).permutation(n).tolist()
    r0 = rss_mb()
    ids_only = {str(x): i for i, x in enumerate(perm)}  # id strings + dict: an id -> row map in the heap
    ids_rss = rss_mb() - r0
    del ids_only, perm
    t = time.perf_counter()
    full = {x.id: x for x in corpus(n)}
    load_s = time.perf_counter() - t
    ids = sample_ids(n)
    warm = timed_lookups(full.__getitem__, ids)
    return {"load_s": load_s, "rss_mb": rss_mb(), "id_dict_rss_mb": ids_rss, "warm": warm}


def loaders() -> None:
    """Time the readers of rankstack.data.formats on the shared files against ir_datasets' and ranx's parsers."""
    from contextlib import contextmanager

    from rankstack.data.formats import read_docs, read_qrels, read_run

    data = ROOT / "data"

    class Local:  # ir_datasets' download-config interface, reading the local file
        def __init__(self, p):
            self.p = p

        @contextmanager
        def stream(self):
            with open(self.p, "rb") as f:
                yield f

        def path(self, force=True):
            return self.p

    def best(fn, k=7):
        ts = []
        for _ in range(k):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return min(ts)

    coll, qrels, run = data / "trec-dl-2019/collection.tsv", data / "trec-dl-2019/qrels.txt", data / "trec-dl-2019/bm25.top100.trec"
    rows: list[tuple[str, Any, Any, str]] = [
        ("SciFact corpus.jsonl (5,183 docs)", lambda: list(read_docs(data / "scifact/corpus.jsonl")), None, ""),
    ]
    try:
        from ir_datasets.formats import TrecQrels, TrecScoredDocs, TsvDocs

        rows += [
            ("DL19 collection.tsv (4,297 passages)", lambda: list(read_docs(coll)),
             lambda: list(TsvDocs(Local(coll)).docs_iter()), "ir_datasets TsvDocs"),
            ("DL19 qrels.txt (9,260 judgments)", lambda: read_qrels(qrels),
             lambda: list(TrecQrels(Local(qrels), {}).qrels_iter()), "ir_datasets TrecQrels"),
            ("DL19 bm25.top100.trec (4,300 lines)", lambda: read_run(run),
             lambda: list(TrecScoredDocs(Local(run)).scoredocs_iter()) if hasattr(TrecScoredDocs, "scoredocs_iter")
             else list(TrecScoredDocs(Local(run)).scoreddocs_iter()), "ir_datasets TrecScoredDocs"),
        ]
    except ImportError:
        pass
    try:
        import ranx

        rows += [("DL19 qrels.txt (9,260 judgments)", lambda: read_qrels(qrels),
                  lambda: ranx.Qrels.from_file(str(qrels), kind="trec"), "ranx Qrels.from_file"),
                 ("DL19 bm25.top100.trec (4,300 lines)", lambda: read_run(run),
                  lambda: ranx.Run.from_file(str(run), kind="trec"), "ranx Run.from_file")]
    except ImportError:
        pass
    print("| file | rankstack | peer | peer time | peer / rankstack |\n| --- | --- | --- | --- | --- |")
    for name, ours, peer, pname in rows:
        o = best(ours)
        p = best(peer) if peer else None
        print(f"| {name} | {o * 1e3:.1f} ms | {pname or '-'} | " + (f"{p * 1e3:.1f} ms | x{p / o:.2f} |" if p else "- | - |"))


PHASES = { "build": phase_build, "lookup": phase_lookup, "irds": phase_irds, "dict": phase_dict}


def child(phase: str, n: int, d: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--n", str(n), "--dir", str(d)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bench_docstore"))
    ap.add_argument("--peers", action="store_true", help="also run ir_datasets' docstore and a dict")
    ap.add_argument("--phase", choices=sorted(PHASES))
    ap.add_argument("--keep", action="store_true", help="keep the stores on disk")
    ap.add_argument("--loaders", action="store_true", help="only time the file readers on the shared data")
    a = ap.parse_args()
    if a.loaders:
        loaders()
        return
    if a.phase:
        print(json.dumps(PHASES[a.phase](a.n, a.dir)))
        return
    a.dir.mkdir(parents=True, exist_ok=True)
    res = {"n": a.n}
    for ph in ["build", "lookup"] + (["irds", "dict"] if a.peers else []):
        t = time.perf_counter()
        res[ph] = child(ph, a.n, a.dir)
        print(f"[{ph}] {time.perf_counter() - t:.1f}s {json.dumps(res[ph])}", file=sys.stderr)
    b, lk = res["build"], res["lookup"]
    per_doc_idmap = sum(b["files_mb"][f] for f in ("hash.npy", "hash_row.npy", "ids.bin", "ids_off.npy")) * 2**20 / a.n
    scale = 8_841_823 / a.n
    store_s = b["build_s"] - b["gen_s"]
    print(f"\nDocStore, n={a.n:,} synthetic docs ({b['text_bytes'] / a.n:.0f} chars/doc)")
    print(f"  build                         {store_s:.1f} s without the corpus generation ({b['gen_s']:.1f} s) "
          f"-> {a.n / store_s:,.0f} docs/s")
    print(f"  on disk                       {b['disk_mb']:.0f} MiB  ({b['files_mb']})")
    print(f"  build peak RSS                {b['rss_mb']:.0f} MiB")
    print(f"  open                          {lk['open_s'] * 1e3:.2f} ms")
    print(f"  random __getitem__ cold       p50 {lk['cold']['p50_us']:.1f} us  p99 {lk['cold']['p99_us']:.1f} us")
    print(f"  random __getitem__ warm       p50 {lk['warm']['p50_us']:.1f} us  p99 {lk['warm']['p99_us']:.1f} us")
    print(f"  get_many(100)                 {lk['get_many_100_us']:.0f} us per call")
    print(f"  lookup process peak RSS       {lk['rss_mb']:.0f} MiB (python+numpy alone: {lk['rss_before_open_mb']:.0f} MiB; "
          f"after the lookups RssAnon {lk['rss_now'].get('RssAnon', 0):.0f} MiB, "
          f"RssFile {lk['rss_now'].get('RssFile', 0):.0f} MiB of mapped file pages)")
    print(f"  id map on disk                {per_doc_idmap:.1f} B/doc -> 8.8M MS MARCO: "
          f"{per_doc_idmap * 8_841_823 / 2**20:.0f} MiB mmapped; "
          f"store ~{b['disk_mb'] * scale / 1024:.1f} GiB for this text length")
    if a.peers:
        ir, dc = res["irds"], res["dict"]
        print(f"\nir_datasets PickleLz4FullStore: build {ir['build_s']:.1f} s without generation (x{ir['build_s'] / store_s:.2f} of "
              f"DocStore), disk {ir['disk_mb']:.0f} MiB, build RSS {ir['rss_build_mb']:.0f} MiB, "
              f"cold p50 {ir['cold']['p50_us']:.1f} us p99 {ir['cold']['p99_us']:.1f} us, "
              f"warm p50 {ir['warm']['p50_us']:.1f} us (x{ir['warm']['p50_us'] / lk['warm']['p50_us']:.2f}) "
              f"p99 {ir['warm']['p99_us']:.1f} us")
        print(f"dict[str, Document]: load {dc['load_s']:.1f} s, peak RSS {dc['rss_mb']:.0f} MiB, "
              f"warm p50 {dc['warm']['p50_us']:.2f} us; dict str id -> int row alone {dc['id_dict_rss_mb']:.0f} MiB "
              f"(strings + dict) -> 8.8M ids ~{dc['id_dict_rss_mb'] * scale:.0f} MiB of Python heap")
    print("\n" + json.dumps(res))
    if not a.keep:
        shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
