"""The collections rankstack knows locally, by name.

Data directories are searched in order: ``$RANKSTACK_DATA`` (``os.pathsep``-separated), ``./data``,
the ``data/`` folder of a source checkout, and ``../shared/data``. Each known dataset is a recipe
(which files, which format) applied to the first directory that has its files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rankstack.data.records import Collection
from rankstack.errors import NotFoundError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str
    docs: str
    queries: str
    qrels: str | None
    description: str
    doc_format: str = "auto"
    query_format: str = "auto"
    qrels_format: str = "auto"
    #: runs shipped with the collection, e.g. the official BM25 candidates
    runs: dict[str, str] = field(default_factory=dict)
    #: query ids restricted to those judged in ``qrels`` (BEIR splits share one queries file)
    restrict_to_qrels: bool = False


KNOWN: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec(
            "scifact", "scifact", "corpus.jsonl", "queries.jsonl", "qrels/test.tsv",
            "BEIR SciFact test: 5,183 abstracts, 300 judged claims", restrict_to_qrels=True,
        ),
        DatasetSpec(
            "scifact/train", "scifact", "corpus.jsonl", "queries.jsonl", "qrels/train.tsv",
            "BEIR SciFact train: 5,183 abstracts, 809 judged claims", restrict_to_qrels=True,
        ),
        DatasetSpec(
            "dl19", "trec-dl-2019", "collection.tsv", "queries.tsv", "qrels.txt",
            "TREC DL 2019 passages: 43 judged queries, the 4,297 passages of the BM25 top-100",
            runs={"bm25": "bm25.top100.trec"},
        ),
        DatasetSpec(
            "cranfield", "cranfield", "cran.all.1400", "cran.qry", "cran.qrels",
            "Cranfield: 1,400 aeronautics abstracts, 225 queries (SMART)",
            doc_format="smart", query_format="smart", qrels_format="cranfield",
        ),
    ]
}


def data_dirs() -> list[Path]:
    dirs: list[Path] = []
    env = os.environ.get("RANKSTACK_DATA")
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    dirs.append(Path.cwd() / "data")
    checkout = Path(__file__).resolve().parents[3] / "data"
    dirs.append(checkout)
    dirs.append(Path.cwd().parent / "shared" / "data")
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def locate(name: str) -> Path:
    """The folder holding dataset ``name``'s files; FileNotFoundError lists where it looked."""
    spec = spec_of(name)
    for d in data_dirs():
        folder = d / spec.folder
        if (folder / spec.docs).exists():
            return folder
    looked = ", ".join(str(d / spec.folder) for d in data_dirs())
    raise FileNotFoundError(f"dataset {name!r} not found locally; looked in: {looked} (set RANKSTACK_DATA)")


def spec_of(name: str) -> DatasetSpec:
    try:
        return KNOWN[name]
    except KeyError:
        raise NotFoundError(f"unknown dataset {name!r}; known: {', '.join(KNOWN)}") from None


def available() -> list[tuple[DatasetSpec, Path | None]]:
    out = []
    for name, spec in KNOWN.items():
        try:
            out.append((spec, locate(name)))
        except FileNotFoundError:
            out.append((spec, None))
    return out


def load(name: str) -> Collection:
    """Load a known dataset: documents as a dict id -> Document (small collections), queries, qrels."""
    from rankstack.data.formats import read_docs, read_qrels, read_queries

    spec = spec_of(name)
    folder = locate(name)
    docs = {d.id: d for d in read_docs(folder / spec.docs, format=spec.doc_format)}
    queries = read_queries(folder / spec.queries, format=spec.query_format)
    qrels = read_qrels(folder / spec.qrels, format=spec.qrels_format) if spec.qrels else None
    if qrels is not None:
        qrels.name = name
        if spec.restrict_to_qrels:
            queries = [q for q in queries if q.id in qrels]
    runs = {k: str(folder / v) for k, v in spec.runs.items()}
    return Collection(name=name, docs=docs, queries=queries, qrels=qrels,
                      meta={"folder": str(folder), "runs": runs, "description": spec.description})
