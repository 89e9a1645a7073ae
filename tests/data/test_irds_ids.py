"""ir_datasets ids wherever a dataset name is taken, from local files only; and the record coercions.

ir_datasets cannot download here, so the tests lay out its home (``IR_DATASETS_HOME``) by hand, exactly
where its own code looks (``ir_datasets/datasets/beir.py``, ``cranfield.py``, ``etc/downloads.json``):

* ``beir/scifact/source.zip``: the BEIR zip (``scifact/corpus.jsonl``, ``scifact/queries.jsonl``,
  ``scifact/qrels/{test,train}.tsv``), built from the repository's ``data/scifact`` files;
* ``cranfield/cran.tar.gz``: ``cran.all.1400``, ``cran.qry``, ``cranqrel`` from ``data/cranfield``.

ir_datasets checks an MD5 only while downloading: an existing file is used as it is. ir_datasets also
fixes its paths when first imported, so everything that reads through it runs in a subprocess with
``IR_DATASETS_HOME`` set (another test of this session may already have imported it with another home).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest

from rankstack.data import datasets
from rankstack.data.coerce import as_doc, as_docs, as_qrels, as_queries, as_query, as_run
from rankstack.data.records import Document, Qrel, Qrels, Query, Run, ScoredDoc
from rankstack.errors import ConfigError, DuplicateDocumentError, FormatError, NotFoundError

ROOT = Path(__file__).resolve().parents[2]
DATA = next((d for d in (ROOT / "data", ROOT.parent / "shared" / "data") if (d / "scifact").is_dir()), ROOT / "data")
SCIFACT, CRAN = DATA / "scifact", DATA / "cranfield"

pytest.importorskip("ir_datasets")


@pytest.fixture(scope="module")
def irds_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("irds_home")
    (home / "beir" / "scifact").mkdir(parents=True)
    with zipfile.ZipFile(home / "beir" / "scifact" / "source.zip", "w") as z:
        for f in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "qrels/train.tsv"):
            z.write(SCIFACT / f, f"scifact/{f}")
    (home / "cranfield").mkdir()
    with tarfile.open(home / "cranfield" / "cran.tar.gz", "w:gz") as t:
        for src, member in (("cran.all.1400", "cran.all.1400"), ("cran.qry", "cran.qry"), ("cran.qrels", "cranqrel")):
            t.add(CRAN / src, member)
    return home


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RANKSTACK_DATA"}
    env.update(IR_DATASETS_HOME=str(home), RANKSTACK_DATA=str(DATA), IR_DATASETS_DL_DISABLE_PBAR="true")
    return env


#: run first in every subprocess: any attempt to open a network connection fails the test loudly
NO_NETWORK = """
import socket
def _refuse(*a, **k):
    raise SystemExit("NETWORK ATTEMPTED")
socket.socket.connect = _refuse
socket.create_connection = _refuse
"""


def py(code: str, home: Path, timeout: float = 120) -> dict:
    """Run ``code`` (which prints one JSON line last) in a fresh interpreter with ``IR_DATASETS_HOME=home``."""
    p = subprocess.run([sys.executable, "-c", NO_NETWORK + textwrap.dedent(code)], env=_env(home), cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def cli(*args: str, home: Path, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rankstack.interfaces.cli", *args], env=_env(home), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


# -- ids, from local files ----------------------------------------------------------------------
def test_beir_scifact_id_equals_local_scifact(irds_home):
    out = py("""
        import json
        from rankstack.data import datasets
        a = datasets.load("irds:beir/scifact/test")
        bare = datasets.load("beir/scifact/test")
        b = datasets.load("scifact")
        print(json.dumps({
            "name": a.name, "bare_name": bare.name, "dataset_id": a.meta["dataset_id"],
            "docs": len(a.docs), "queries": len(a.queries), "judgments": sum(len(v) for v in a.qrels.values()),
            "same_docs": a.docs == b.docs, "same_order": list(a.docs) == list(b.docs),
            "same_queries": a.queries == b.queries, "same_qrels": a.qrels.to_dict() == b.qrels.to_dict(),
            "bare_same": bare.docs == a.docs and bare.queries == a.queries,
            "split_queries": datasets.load_queries("irds:beir/scifact", split="test") == a.queries,
            "all_queries": len(datasets.load_queries("irds:beir/scifact")),
            "train_queries": len(datasets.load_queries("beir/scifact/train")),
            "train_qrels": datasets.load_qrels("irds:beir/scifact", split="train").to_dict()
                           == datasets.load_qrels("scifact/train").to_dict(),
        }))
    """, irds_home)
    assert (out["docs"], out["queries"], out["judgments"]) == (5183, 300, 339)
    assert out["same_docs"] and out["same_order"] and out["same_queries"] and out["same_qrels"], out
    assert out["bare_same"] and out["split_queries"] and out["train_qrels"]
    assert (out["all_queries"], out["train_queries"]) == (1109, 809)
    assert (out["name"], out["bare_name"], out["dataset_id"]) == ("irds:beir/scifact/test", "beir/scifact/test",
                                                                  "beir/scifact/test")


def test_cranfield_id_equals_the_local_files(irds_home):
    out = py("""
        import json
        from rankstack.data import datasets
        from rankstack.data.formats import load_collection
        a = datasets.load("irds:cranfield")
        ours = load_collection(datasets.locate("cranfield"), cranfield_scale="raw")  # ir_datasets keeps -1
        local = datasets.load("cranfield")  # a known name wins over ir_datasets' bare id
        print(json.dumps({"n": [len(a.docs), len(a.queries), len(a.qrels)], "docs": a.docs == ours.docs,
                          "queries": a.queries == ours.queries, "qrels": a.qrels.to_dict() == ours.qrels.to_dict(),
                          "local_source": local.meta.get("source"), "irds_source": a.meta["source"]}))
    """, irds_home)
    assert out["n"] == [1400, 225, 225] and out["docs"] and out["queries"] and out["qrels"]
    assert (out["local_source"], out["irds_source"]) == (None, "ir_datasets")


def test_missing_local_copy_is_a_clear_error_at_once(tmp_path):
    """No files: NotFoundError naming each file and where ir_datasets wants it, without any network attempt
    (a connect() would end the subprocess with NETWORK ATTEMPTED), also past the up-front check."""
    empty = tmp_path / "empty_home"
    empty.mkdir()
    t0 = time.perf_counter()
    out = py("""
        import json
        from rankstack.data import datasets, irds
        msgs = []
        for name in ("irds:beir/scifact/test", "irds:cranfield"):
            try:
                datasets.load(name)
            except KeyError as e:
                msgs.append(str(e))
        irds.require_local = lambda *a, **k: None   # the guard alone: ir_datasets would download here
        try:
            datasets.load("irds:cranfield")
        except KeyError as e:
            msgs.append(str(e))
        try:
            datasets.load_queries("irds:beir/scifact/test")
        except KeyError as e:
            msgs.append(str(e))
        print(json.dumps(msgs))
    """, empty, timeout=60)
    assert time.perf_counter() - t0 < 45
    assert len(out) == 4
    assert all("not available locally" in m and f"IR_DATASETS_HOME={empty}" in m for m in out), out
    assert f"{empty}/beir/scifact/source.zip" in out[0] and "scifact.zip" in out[0] and "md5" in out[0]
    assert f"{empty}/cranfield/cran.tar.gz" in out[1] and f"{empty}/cranfield/docs.txt" in out[1]
    assert f"{empty}/cranfield/cran.tar.gz" in out[2]
    assert f"{empty}/beir/scifact/source.zip" in out[3]
    assert not any((empty / "cranfield").glob("cran.tar.gz*")), "nothing may be written in ir_datasets' place"


def test_unknown_ids_name_the_neighbours(irds_home):
    out = py("""
        import json
        from rankstack.data import datasets
        msgs = []
        for name in ("irds:beir/scifact/dev", "nosuch/dataset", "irds:"):
            try:
                datasets.load(name)
            except KeyError as e:
                msgs.append(str(e))
        print(json.dumps(msgs))
    """, irds_home)
    assert "ids under 'beir/scifact': beir/scifact, beir/scifact/test, beir/scifact/train" in out[0]
    assert "unknown dataset 'nosuch/dataset'; known: scifact" in out[1] and "irds:beir/scifact/test" in out[1]
    assert "give the ir_datasets id" in out[2]


def test_experiment_toml_takes_an_id(irds_home, tmp_path):
    toml = tmp_path / "e.toml"
    toml.write_text('[experiment]\nname = "irds"\nmeasures = ["nDCG@10"]\ncache = "cache"\n\n'
                    '[[collections]]\nname = "irds:beir/scifact/test"\n\n'
                    '[[pipelines]]\nname = "bm25"\nstages = [{ stage = "bm25", k = 100 }]\n')
    p = cli("experiment", str(toml), home=irds_home, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    row = next(line for line in p.stdout.splitlines() if "irds:beir/scifact/test" in line)
    assert "0.6789" in row  # Lucene BM25 on SciFact test, as from the local files
    p = cli("experiment", str(toml), home=tmp_path / "nothing", cwd=tmp_path, timeout=60)
    assert p.returncode == 2 and "error: ir_datasets dataset 'beir/scifact/test' is not available locally" in p.stderr


def test_cli_index_search_evaluate_with_ids(irds_home, tmp_path):
    idx, run = tmp_path / "idx", tmp_path / "run.trec"
    p = cli("index", "irds:beir/scifact/test", "-o", str(idx), home=irds_home)
    assert p.returncode == 0, p.stderr[-2000:]
    p = cli("search", str(idx), "irds:beir/scifact/test", "-o", str(run), "--k", "100", home=irds_home)
    assert p.returncode == 0, p.stderr[-2000:]
    assert len({line.split()[0] for line in run.read_text().splitlines()}) == 300
    for extra in (["irds:beir/scifact", "--split", "test"], [str(SCIFACT / "queries.jsonl"), "--qrels",
                                                            "irds:beir/scifact/test"]):
        other = tmp_path / "other.trec"
        p = cli("search", str(idx), *extra, "-o", str(other), "--k", "100", home=irds_home)
        assert p.returncode == 0, p.stderr[-2000:]
        assert other.read_text() == run.read_text()
    p = cli("evaluate", "irds:beir/scifact/test", str(run), "-m", "nDCG@10", home=irds_home)
    assert p.returncode == 0 and p.stdout.strip() == "nDCG@10\tall\t0.6789", p.stderr


# -- names and local data, in process (no ir_datasets data read) --------------------------------
def test_precedence_of_names():
    assert datasets.irds_id("scifact") is None and datasets.irds_id("cranfield") is None  # known names first
    assert datasets.irds_id("irds:cranfield") == "cranfield"  # the prefix always means ir_datasets
    assert datasets.irds_id("beir/scifact/test") == "beir/scifact/test"  # else a name ir_datasets registers
    with pytest.raises(NotFoundError, match="unknown dataset 'nope'; known: scifact"):
        datasets.irds_id("nope")
    assert datasets.is_dataset("dl19") and datasets.is_dataset("irds:x") and not datasets.is_dataset("q.tsv")
    assert [s.name for s, _ in datasets.available()] == list(datasets.KNOWN)


def test_queries_and_qrels_by_file_name_or_split(tmp_path):
    assert len(datasets.load_queries("scifact")) == 300
    assert len(datasets.load_queries("scifact", split="train")) == 809
    assert datasets.load_queries("scifact", split="test") == datasets.load_queries("scifact")
    assert len(datasets.load_queries(SCIFACT / "queries.jsonl")) == 1109
    assert datasets.load_queries(SCIFACT / "queries.jsonl", split="test") == datasets.load_queries("scifact")
    assert datasets.load_queries(SCIFACT / "queries.jsonl", judged="scifact") == datasets.load_queries("scifact")
    assert datasets.load_qrels("scifact/train").to_dict() == datasets.load_qrels(SCIFACT / "qrels" / "train.tsv").to_dict()
    with pytest.raises(NotFoundError, match="no split 'dev'; known: test, train"):
        datasets.load_queries("scifact", split="dev")
    with pytest.raises(FileNotFoundError, match="qrels/dev.tsv: no such file"):
        datasets.load_queries(SCIFACT / "queries.jsonl", split="dev")
    with pytest.raises(FileNotFoundError, match="nope.tsv: no such file, known dataset"):
        datasets.load_queries(tmp_path / "nope.tsv")
    with pytest.raises(ConfigError, match="not both"):
        datasets.load_queries("scifact", split="test", judged="scifact")
    (tmp_path / "q.tsv").write_text("x1\tnothing judged\n")
    with pytest.raises(ConfigError, match="none of its queries is judged"):
        datasets.load_queries(tmp_path / "q.tsv", judged="scifact")


# -- coercion of records ------------------------------------------------------------------------
def test_coercion_of_ir_datasets_records_round_trips():
    from ir_datasets.formats import GenericDoc, GenericQuery, GenericScoredDoc, TrecQrel, TrecQuery

    qs = as_queries([GenericQuery("1", "what"), TrecQuery("301", " Crime ", "Identify.", "narr")])
    assert qs == [Query("1", "what"), Query("301", "Crime")]
    assert as_queries([TrecQuery("301", "Crime", "Identify.", "n")], field="title+desc") == [Query("301", "Crime Identify.")]
    assert as_query(GenericQuery(1, "x")) == Query("1", "x")
    assert as_queries({"1": "what"}) == [Query("1", "what")]
    assert as_queries(GenericQuery("1", "one")) == [Query("1", "one")]  # one record, not its fields
    docs = as_docs([GenericDoc("d1", "body one"), Document("d2", "two", "T")])
    assert dict(docs) == {"d1": Document("d1", "body one"), "d2": Document("d2", "two", "T")}
    assert len(docs.fingerprint) == 32
    beir_doc = namedtuple("BeirTitleDoc", "doc_id text title")
    assert as_doc(beir_doc("d3", "abstract", "Title")) == Document("d3", "abstract", "Title")
    assert as_docs({"d4": "plain"}) == {"d4": Document("d4", "plain")}

    qrels = as_qrels([TrecQrel("1", "d1", 2, "0"), TrecQrel("1", "d2", 0, "0"), Qrel("2", "d1", 1)], name="q")
    assert qrels.to_dict() == {"1": {"d1": 2, "d2": 0}, "2": {"d1": 1}} and qrels.name == "q"
    assert as_qrels(list(qrels.records())).to_dict() == qrels.to_dict()
    assert as_qrels({"1": {"d1": 1}}).to_dict() == {"1": {"d1": 1}}

    run = as_run([GenericScoredDoc("1", "d1", 2.5), GenericScoredDoc("1", "d2", 1.0), ScoredDoc("2", "d9", 0.5, 1)])
    assert run.to_dict() == {"1": {"d1": 2.5, "d2": 1.0}, "2": {"d9": 0.5}}
    assert as_run(list(run.records()), name="again").to_dict() == run.to_dict()
    assert as_run({"1": {"d1": 1}}).to_dict() == {"1": {"d1": 1.0}}


def test_rankstack_objects_pass_through_unchanged():
    qs, docs = [Query("1", "a")], {"d": Document("d", "t")}
    qrels, run = Qrels({"1": {"d": 1}}), Run({"1": {"d": 1.0}})
    assert as_queries(qs) is qs and as_docs(docs) is docs and as_qrels(qrels) is qrels and as_run(run) is run
    assert as_query(qs[0]) is qs[0] and as_doc(docs["d"]) is docs["d"]


def test_an_ir_datasets_like_dataset_object_is_read_through_its_iterators():
    from ir_datasets.formats import GenericDoc, GenericQuery, GenericScoredDoc, TrecQrel

    class Fake:
        def docs_iter(self):
            return iter([GenericDoc("d1", "t")])

        def queries_iter(self):
            return iter([GenericQuery("1", "q")])

        def qrels_iter(self):
            return iter([TrecQrel("1", "d1", 1, "0")])

        def scoreddocs_iter(self):
            return iter([GenericScoredDoc("1", "d1", 3.0)])

    ds = Fake()
    assert list(as_docs(ds)) == ["d1"] and as_queries(ds) == [Query("1", "q")]
    assert as_qrels(ds).to_dict() == {"1": {"d1": 1}} and as_run(ds).to_dict() == {"1": {"d1": 3.0}}


def test_unreadable_records_are_format_errors_naming_type_and_field():
    from ir_datasets.formats import GenericDoc, GenericQuery, TrecQrel

    with pytest.raises(FormatError, match=r"cannot read GenericDoc\(doc_id, text\) as a query: it has no query_id field"):
        as_queries([GenericDoc("d", "t")])
    with pytest.raises(FormatError, match=r"record #2: cannot read GenericQuery\(query_id, text\) as a document: "
                                          "it has no doc_id field"):
        as_docs([GenericDoc("d", "t"), GenericQuery("1", "x")])
    with pytest.raises(FormatError, match=r"cannot read TrecQrel\(query_id, doc_id, relevance, iteration\) as a "
                                          "scored-document record: it has no score field"):
        as_run([TrecQrel("1", "d", 1, "0")])
    with pytest.raises(FormatError, match=r"cannot read GenericQuery\(query_id, text\) as a judgment record: it has "
                                          "no doc_id field"):
        as_qrels([GenericQuery("1", "x")])
    nodoc = namedtuple("Bare", "doc_id url")
    with pytest.raises(FormatError, match=r"Bare\(doc_id, url\) as a document: it has no text field"):
        as_doc(nodoc("d", "http://x"))
    with pytest.raises(FormatError, match="relevance 'high' is not an integer"):
        as_qrels([Qrel("1", "d", "high")])  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="grade 0 here, 1 at record #1"):
        as_qrels([Qrel("1", "d", 1), Qrel("1", "d", 0)])
    with pytest.raises(FormatError, match="score is NaN"):
        as_run([ScoredDoc("1", "d", math.nan)])
    with pytest.raises(FormatError, match="document 'd' is repeated"):
        as_run([ScoredDoc("1", "d", 1.0), ScoredDoc("1", "d", 2.0)])
    with pytest.raises(DuplicateDocumentError):
        as_docs([GenericDoc("d", "a"), GenericDoc("d", "b")])
    with pytest.raises(FormatError, match="give records, or read a file or an ir_datasets id"):
        as_queries("queries.tsv")
    with pytest.raises(FormatError, match="cannot read int"):
        as_qrels(3)


def test_stages_and_evaluate_take_ir_datasets_records_directly(tmp_path):
    """A BM25 stage called with GenericQuery records and evaluate() given TrecQrel/GenericScoredDoc
    records answer exactly what the same data as rankstack records gives."""
    from ir_datasets.formats import GenericDoc, GenericQuery, GenericScoredDoc, TrecQrel

    from rankstack.index import BM25Index
    from rankstack.measures import evaluate

    docs = [GenericDoc("d1", "tides follow the moon"), GenericDoc("d2", "bread rises with yeast"),
            GenericDoc("d3", "the moon and the sun pull the sea")]
    index = BM25Index.build(as_docs(docs).values(), tmp_path / "idx")
    stage = index.retriever(k=10)
    recs = [GenericQuery("1", "moon tides"), GenericQuery("2", "yeast bread")]
    run = stage(recs)
    assert run.to_dict() == stage([Query("1", "moon tides"), Query("2", "yeast bread")]).to_dict()
    assert run.ranked("1")[0][0] == "d1" and run.ranked("2")[0][0] == "d2"
    qrels = [TrecQrel("1", "d1", 1, "0"), TrecQrel("1", "d3", 1, "0"), TrecQrel("2", "d2", 2, "0")]
    scored = [GenericScoredDoc(q, d, s) for q, ds in run.items() for d, s in ds.items()]
    ev = evaluate(qrels, scored, ["nDCG@10", "AP"])
    ref = evaluate(as_qrels(qrels), run, ["nDCG@10", "AP"])
    assert ev["nDCG@10"] == ref["nDCG@10"] and ev["AP"] == ref["AP"] and 0 < ev["AP"] <= 1
    # a stage that takes candidates, given ScoredDoc records as its run
    from rankstack.stages.base import Cutoff

    top1 = Cutoff(1)(recs, scored)
    assert {q: list(ds) for q, ds in top1.items()} == {"1": ["d1"], "2": ["d2"]}
