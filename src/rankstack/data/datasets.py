"""Datasets by name: the collections rankstack knows locally, and ir_datasets ids.

**Names.** :func:`load` resolves a name in this order:

1. a known local name (:data:`KNOWN`: ``scifact``, ``scifact/train``, ``dl19``, ``cranfield``), read
   from rankstack's data directories;
2. ``irds:<id>``: always the ir_datasets id ``<id>`` (``irds:cranfield`` is ir_datasets' Cranfield,
   not the local one);
3. any other name that ir_datasets registers (``beir/scifact/test``, ``antique/test``), read with
   ir_datasets.

An ir_datasets id is read only when its files are already in ``IR_DATASETS_HOME`` (nothing is
downloaded: :mod:`rankstack.data.irds`); otherwise :class:`~rankstack.errors.NotFoundError` names the
files and where ir_datasets wants them. A BEIR id with a split (``beir/scifact/test``) has only the
queries judged in that split, as the local ``scifact`` has.

**Data directories** for the known names, searched in order (the first one holding a dataset's files
wins): ``$RANKSTACK_DATA`` (``os.pathsep``-separated), ``./data``, ``../shared/data``, the user data
directory (``$XDG_DATA_HOME/rankstack``, default ``~/.local/share/rankstack``), and last the ``data/``
folder of a source checkout (only when rankstack runs from one: an installed package has none). Each
known dataset is a recipe (which files, which format) applied to that directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rankstack.data.records import Collection, Qrels, Query
from rankstack.errors import ConfigError, NotFoundError

__all__ = [
    "DatasetSpec", "KNOWN", "IRDS_PREFIX", "data_dirs", "user_data_dir", "locate", "spec_of", "available",
    "load", "load_queries", "load_qrels", "is_irds_id", "irds_id", "is_dataset",
]

#: the prefix that makes a name an ir_datasets id, whatever else it could be
IRDS_PREFIX = "irds:"


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


# -- where the local data is ----------------------------------------------------------------------
def user_data_dir() -> Path:
    """The per-user data directory: ``$XDG_DATA_HOME/rankstack`` (default ``~/.local/share/rankstack``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rankstack"


def _checkout_data() -> Path | None:
    """The ``data/`` folder of the source checkout rankstack runs from; ``None`` for an installed package
    (``src/rankstack/data/datasets.py``: the checkout is the parent of ``src``)."""
    here = Path(__file__).resolve()
    src = here.parents[2]
    if src.name != "src" or not (src.parent / "pyproject.toml").is_file():
        return None
    return src.parent / "data"


def data_dirs() -> list[Path]:
    """The data directories, in search order (see the module docstring)."""
    dirs: list[Path] = []
    env = os.environ.get("RANKSTACK_DATA")
    if env:
        dirs.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    dirs.append(Path.cwd() / "data")
    dirs.append(Path.cwd().parent / "shared" / "data")
    dirs.append(user_data_dir())
    checkout = _checkout_data()
    if checkout is not None:
        dirs.append(checkout)
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def locate(name: str) -> Path:
    """The folder holding dataset ``name``'s files; FileNotFoundError lists where it looked and how to point
    rankstack at the data."""
    spec = spec_of(name)
    dirs = data_dirs()
    for d in dirs:
        folder = d / spec.folder
        if (folder / spec.docs).exists():
            return folder
    looked = ", ".join(str(d / spec.folder) for d in dirs)
    raise FileNotFoundError(
        f"dataset {name!r} not found locally (it needs {spec.folder}/{spec.docs}); looked in: {looked}. "
        f"Set RANKSTACK_DATA to the folder that holds {spec.folder}/ (several folders: separate them with "
        f"{os.pathsep!r}), or copy {spec.folder}/ to {user_data_dir()}"
    )


def spec_of(name: str) -> DatasetSpec:
    try:
        return KNOWN[name]
    except KeyError:
        raise NotFoundError(f"unknown dataset {name!r}; known: {', '.join(KNOWN)} (or an ir_datasets id, "
                            f"e.g. {IRDS_PREFIX}beir/scifact/test, with its files in IR_DATASETS_HOME)") from None


def available() -> list[tuple[DatasetSpec, Path | None]]:
    """Every known dataset with its folder on this machine (``None``: not found). ir_datasets ids are
    accepted too but not listed: any id whose files are in ``IR_DATASETS_HOME`` loads."""
    out = []
    for name, spec in KNOWN.items():
        try:
            out.append((spec, locate(name)))
        except FileNotFoundError:
            out.append((spec, None))
    return out


# -- names ----------------------------------------------------------------------------------------
def is_irds_id(name: str) -> bool:
    """Whether ``name`` is written as an ir_datasets id (``irds:...``)."""
    return isinstance(name, str) and name.startswith(IRDS_PREFIX)


def irds_id(name: str) -> str | None:
    """The ir_datasets id ``name`` resolves to, or ``None`` for a known local name (the precedence of the
    module docstring). A bare name is checked against ir_datasets' registry (importing it); an unknown
    one raises :class:`NotFoundError`."""
    if is_irds_id(name):
        dsid = name[len(IRDS_PREFIX):]
        if not dsid:
            raise NotFoundError(f"{name!r}: give the ir_datasets id after {IRDS_PREFIX!r}, e.g. "
                                f"{IRDS_PREFIX}beir/scifact/test")
        return dsid
    if name in KNOWN:
        return None
    from rankstack.data import irds

    if irds.is_registered(name):
        return name
    spec_of(name)  # raises the unknown-dataset error
    return None  # pragma: no cover


def is_dataset(name: str) -> bool:
    """Whether ``name`` reads as a dataset, not a path: a known name or an ``irds:`` id. A bare
    ir_datasets id is not recognised here (it would need importing ir_datasets); :func:`load` takes it."""
    return isinstance(name, str) and (name in KNOWN or is_irds_id(name))


def _with_split(name: str, split: str | None) -> str:
    """``name`` narrowed to a BEIR split: ``beir/scifact`` + ``test`` -> ``beir/scifact/test``; for a
    known name, the known dataset of that split (``scifact`` + ``train`` -> ``scifact/train``)."""
    if split is None:
        return name
    if not split or "/" in split:
        raise ConfigError(f"--split must be a split name such as test or train, got {split!r}")
    if name in KNOWN:
        for cand, spec in KNOWN.items():
            if spec.folder == KNOWN[name].folder and spec.qrels and Path(spec.qrels).stem == split:
                return cand
        splits = sorted({Path(s.qrels).stem for s in KNOWN.values() if s.folder == KNOWN[name].folder and s.qrels})
        raise NotFoundError(f"dataset {name!r} has no split {split!r}; known: {', '.join(splits)}")
    return f"{name}/{split}"


def _dataset_or_no_file(name: str, source: str | os.PathLike) -> str | None:
    """:func:`irds_id` of ``name``; for a name that is no dataset either, FileNotFoundError (``source`` is no file)."""
    try:
        return irds_id(name)
    except NotFoundError:
        if is_irds_id(name):
            raise
        raise FileNotFoundError(f"{source}: no such file, known dataset (known: {', '.join(KNOWN)}) or ir_datasets "
                                f"id ({IRDS_PREFIX}ID)") from None


# -- loading --------------------------------------------------------------------------------------
def _load_known(name: str, parts: tuple[str, ...] = ("docs", "queries", "qrels")) -> Collection:
    from rankstack.data.formats import read_docs, read_qrels, read_queries

    spec = spec_of(name)
    folder = locate(name)
    docs = {d.id: d for d in read_docs(folder / spec.docs, format=spec.doc_format)} if "docs" in parts else None
    need_qrels = "qrels" in parts or ("queries" in parts and spec.restrict_to_qrels)
    qrels = read_qrels(folder / spec.qrels, format=spec.qrels_format) if spec.qrels and need_qrels else None
    queries = read_queries(folder / spec.queries, format=spec.query_format) if "queries" in parts else []
    if qrels is not None:
        qrels.name = name
        if spec.restrict_to_qrels:
            queries = [q for q in queries if q.id in qrels]
    runs = {k: str(folder / v) for k, v in spec.runs.items()}
    return Collection(name=name, docs=docs, queries=queries, qrels=qrels,
                      meta={"folder": str(folder), "runs": runs, "description": spec.description})


def load(name: str) -> Collection:
    """A dataset by name: a known local one or an ir_datasets id (see the module docstring for the order).

    Documents are a dict ``id -> Document`` (small collections), with the queries and qrels. The
    collection's ``name`` is ``name`` as given, so ``load(c.name)`` loads it again.
    """
    dsid = irds_id(name)
    if dsid is None:
        return _load_known(name)
    from rankstack.data import irds

    coll = irds.load_collection(dsid, name=name)
    coll.meta.setdefault("description", f"ir_datasets {dsid}")
    return coll


def load_queries(source: str | os.PathLike, *, split: str | None = None,
                 judged: str | os.PathLike | Qrels | None = None) -> list[Query]:
    """Queries from a file, a known dataset or an ir_datasets id.

    ``source``: an existing file wins (read with :func:`rankstack.data.formats.read_queries`); else a
    dataset name as :func:`load` takes it (only its queries are read). ``split`` (BEIR): for a file, keep
    the queries judged in ``qrels/SPLIT.tsv`` next to it; for a dataset, read the dataset of that split
    (``beir/scifact`` + ``test`` = ``beir/scifact/test``). ``judged``: keep only the queries judged in these
    qrels (a file, a dataset name or a :class:`Qrels`). Keeping none is a :class:`ConfigError`.
    """
    from rankstack.data.formats import read_queries

    if split is not None and judged is not None:
        raise ConfigError("give a split or qrels to filter the queries by, not both")
    path = Path(source)
    if path.exists():
        queries = read_queries(path)
        if split is not None:
            judged = path.parent / "qrels" / f"{split}.tsv"
            if not judged.exists():
                raise FileNotFoundError(f"{judged}: no such file (split {split!r} reads the BEIR qrels next to "
                                        f"{path})")
    else:
        name = _with_split(str(source), split)
        dsid = _dataset_or_no_file(name, source)
        if dsid is None:
            queries = _load_known(name, ("queries",)).queries
        else:
            from rankstack.data import irds

            queries = irds.load_queries(dsid)
    if judged is not None:
        qrels = judged if isinstance(judged, Qrels) else load_qrels(judged)
        queries = [q for q in queries if q.id in qrels]
        if not queries:
            raise ConfigError(f"{source}: none of its queries is judged in {getattr(qrels, 'name', judged)}")
    return queries


def load_qrels(source: str | os.PathLike, *, split: str | None = None) -> Qrels:
    """Judgments from a file (an existing path wins), a known dataset or an ir_datasets id; ``split`` as in
    :func:`load_queries` (for a file: ``qrels/SPLIT.tsv`` next to it)."""
    from rankstack.data.formats import read_qrels

    path = Path(source)
    if path.exists():
        if split is not None:
            path = (path.parent if path.is_file() else path) / "qrels" / f"{split}.tsv"
        return read_qrels(path)
    name = _with_split(str(source), split)
    dsid = _dataset_or_no_file(name, source)
    if dsid is None:
        qrels = _load_known(name, ("qrels",)).qrels
        if qrels is None:
            raise NotFoundError(f"dataset {name!r} has no qrels")
        return qrels
    from rankstack.data import irds

    return irds.load_qrels(dsid)
