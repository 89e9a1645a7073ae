"""Readers/writers of rankstack.data.formats on the real shared collections and on crafted files."""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.data.formats import (
    FormatError,
    detect_format,
    load_collection,
    read_docs,
    read_qrels,
    read_queries,
    read_run,
    read_smart_records,
    write_docs_jsonl,
    write_qrels,
    write_queries,
    write_run,
)
from rankstack.data.records import Document, Qrels, Query, Run

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
SCIFACT = DATA / "scifact"
DL19 = DATA / "trec-dl-2019"
CRAN = DATA / "cranfield"


def _line_count(p: Path) -> int:
    with open(p, "rb") as f:
        return sum(1 for line in f if line.strip())


# ---------------------------------------------------------------- real collections


def test_scifact_corpus_jsonl():
    docs = list(read_docs(SCIFACT / "corpus.jsonl"))
    assert len(docs) == 5183
    assert docs[0].id == "4983"
    assert docs[0].title.startswith("Microstructural development of human newborn cerebral white matter")
    assert docs[0].text.startswith("Alterations of the architecture of cerebral white matter")
    assert docs[-1].id == "198309074"
    assert docs[-1].text.endswith("reducing the cell adhesion molecules and chemokines.")
    # independent check of every record with the json module
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as f:
        ref = [json.loads(line) for line in f]
    assert [(d.id, d.title, d.text) for d in docs] == [(r["_id"], r["title"], r["text"]) for r in ref]


def test_scifact_queries_and_qrels():
    qs = read_queries(SCIFACT / "queries.jsonl")
    assert len(qs) == 1109
    assert qs[0] == Query("0", "0-dimensional biomaterials lack inductive properties.")
    assert qs[-1] == Query("1407", "\u03b21/Ketel is able to bind microtubules.")
    test = read_qrels(SCIFACT / "qrels" / "test.tsv")
    assert detect_format(SCIFACT / "qrels" / "test.tsv", "qrels") == "beir"
    assert (len(test), sum(map(len, test.values()))) == (300, 339)
    assert test["1"] == {"31715818": 1}
    train = read_qrels(SCIFACT / "qrels" / "train.tsv")
    assert (len(train), sum(map(len, train.values()))) == (809, 919)
    assert train["1407"] == {"8087082": 1, "29863668": 1}


def test_dl19_collection_tsv():
    docs = list(read_docs(DL19 / "collection.tsv"))
    assert len(docs) == _line_count(DL19 / "collection.tsv") == 4297
    assert docs[0].id == "1722" and docs[0].text.startswith("Fields of Anthropology. There are now four")
    assert docs[-1].id == "8839920" and docs[-1].text.startswith("Weather In Ocho Rios Jamaica - Spring")
    # MS MARCO's encoding damage is kept as is
    assert sum("\u00e2" in d.text for d in docs) == 726
    with open(DL19 / "collection.tsv", encoding="utf-8", newline="") as f:
        ref = [tuple(r) for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    assert [(d.id, d.text) for d in docs] == ref


def test_dl19_queries_qrels_run():
    qs = read_queries(DL19 / "queries.tsv")
    assert len(qs) == 43 and qs[0] == Query("264014", "how long is life cycle of flea")
    assert qs[-1] == Query("1106007", "define visceral?")
    qrels = read_qrels(DL19 / "qrels.txt")
    assert detect_format(DL19 / "qrels.txt", "qrels") == "trec"
    assert len(qrels) == 43 and sum(map(len, qrels.values())) == 9260
    grades = [g for v in qrels.values() for g in v.values()]
    assert [grades.count(g) for g in range(4)] == [5158, 1601, 1804, 697]
    assert qrels["19335"]["1017759"] == 0
    run = read_run(DL19 / "bm25.top100.trec")
    assert run.name == "bm25" and len(run) == 43 and run.num_items() == 4300
    assert run["264014"]["5611210"] == 15.780599594116211
    assert run["1106007"]["6255354"] == 6.47769021987915
    assert run.ranked("264014")[0] == ("5611210", 15.780599594116211)
    # every candidate passage of the run is in the collection
    ids = {d.id for d in read_docs(DL19 / "collection.tsv")}
    assert {d for v in run.values() for d in v} == ids


def test_cranfield_smart():
    docs = list(read_docs(CRAN / "cran.all.1400"))
    assert detect_format(CRAN / "cran.all.1400", "docs") == "smart"
    assert len(docs) == 1400 and [d.id for d in docs] == [str(i) for i in range(1, 1401)]
    assert docs[0].title == "experimental investigation of the aerodynamics of a\nwing in a slipstream ."
    assert docs[0].text.endswith("the specific configuration of the experiment .")
    assert docs[-1].id == "1400" and docs[-1].text.endswith("to stiffener spacing of\ngraphical forms .")
    recs = {r.id: r for r in read_smart_records(CRAN / "cran.all.1400")}
    assert recs["1"].fields["A"] == "brenckman,m." and recs["1"].fields["B"] == "j. ae. scs. 25, 1958, 324."
    # doc 240 has a stray second .A/.B inside its abstract: appended to those fields, not dropped
    assert recs["240"].fields["A"] == "dean r. chapman\napplication to turbulent separations is made for a prandtl number of"
    qs = read_queries(CRAN / "cran.qry")
    assert len(qs) == 225 and [q.id for q in qs] == [str(i) for i in range(1, 226)]
    assert qs[0].text.startswith("what similarity laws must be obeyed")
    assert qs[-1].text == "what design factors can be used to control lift-drag ratios at mach\nnumbers above 5 ."
    assert [q.id for q in read_queries(CRAN / "cran.qry", renumber=False)][:4] == ["001", "002", "004", "008"]
    raw = read_qrels(CRAN / "cran.qrels", cranfield_scale="raw")
    assert len(raw) == 225 and sum(map(len, raw.values())) == 1837
    irds = read_qrels(CRAN / "cran.qrels")
    clev = read_qrels(CRAN / "cran.qrels", cranfield_scale="cleverdon")
    flat = lambda q: sorted(g for v in q.values() for g in v.values())
    assert flat(irds).count(0) == 225 and flat(irds).count(4) == 363 and flat(irds).count(1) == 128
    assert flat(clev).count(4) == 128 and flat(clev).count(1) == 363
    assert sum(g >= 1 for g in flat(irds)) == sum(g >= 1 for g in flat(clev)) == 1612
    assert raw["225"]["1188"] == -1 and irds["225"]["1188"] == 0 and clev["1"]["184"] == 3


def test_cranfield_equals_ir_datasets_parser():
    """Our SMART parsing gives exactly what ir_datasets' own Cranfield code gives on the same files."""
    pytest.importorskip("ir_datasets")
    from contextlib import contextmanager

    from ir_datasets.datasets.cranfield import CranfieldDocs, CranfieldQrels, CranfieldQueries

    class Local:
        def __init__(self, p):
            self.p = p

        @contextmanager
        def stream(self):
            with open(self.p, "rb") as f:
                yield f

    cd = CranfieldDocs(Local(CRAN / "cran.all.1400"))
    ref = list(CranfieldDocs.docs_iter.__wrapped__(cd))  # the raw parser, not its docstore wrapper
    mine = list(read_docs(CRAN / "cran.all.1400"))
    assert [(r.doc_id, r.title, r.text) for r in ref] == [(d.id, d.title, d.text) for d in mine]
    recs = list(read_smart_records(CRAN / "cran.all.1400"))
    assert [(r.author, r.bib) for r in ref] == [(s.fields.get("A", ""), s.fields.get("B", "")) for s in recs]
    rq = list(CranfieldQueries(Local(CRAN / "cran.qry")).queries_iter())
    assert [(q.query_id, q.text) for q in rq] == [(q.id, q.text) for q in read_queries(CRAN / "cran.qry")]
    rr = list(CranfieldQrels(Local(CRAN / "cran.qrels")).qrels_iter())
    raw = read_qrels(CRAN / "cran.qrels", cranfield_scale="raw")
    assert sorted((r.query_id, r.doc_id, r.relevance) for r in rr) == sorted(
        (q, d, g) for q, v in raw.items() for d, g in v.items())


def test_load_collection_layouts():
    sf = load_collection(SCIFACT)
    assert sf.meta["layout"] == "beir" and len(sf.docs) == 5183 and len(sf.queries) == 300
    assert sum(map(len, sf.qrels.values())) == 339
    assert len(load_collection(SCIFACT, split="train").queries) == 809
    assert len(load_collection(SCIFACT, all_queries=True).queries) == 1109
    with pytest.raises(FileNotFoundError, match="splits present: test, train"):
        load_collection(SCIFACT, split="dev")
    dl = load_collection(DL19)
    assert dl.meta["layout"] == "msmarco" and (len(dl.docs), len(dl.queries)) == (4297, 43)
    assert dl.meta["num_judgments"] == 9260
    cr = load_collection(CRAN)
    assert cr.meta["layout"] == "smart" and (len(cr.docs), len(cr.queries), len(cr.qrels)) == (1400, 225, 225)
    assert {q.id for q in cr.queries} == set(cr.qrels)
    assert cr.qrels["1"]["184"] == 2


# ---------------------------------------------------------------- round trips


def test_run_roundtrip_dl19(tmp_path):
    run = read_run(DL19 / "bm25.top100.trec")
    out = write_run(run, tmp_path / "run.trec", tag="bm25")
    again = read_run(out)
    assert again == run and again.to_dict() == run.to_dict()
    # written in trec_eval order: queries sorted, ranks 1..n
    lines = out.read_text().splitlines()
    assert lines[0].split()[:4] == [min(run), "Q0", run.ranked(min(run))[0][0], "1"]
    # the shipped file is already in that order per query: same lines as a set
    assert sorted(lines) == sorted((DL19 / "bm25.top100.trec").read_text().splitlines())


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(
    st.text("abcxyz019", min_size=1, max_size=4),
    st.dictionaries(st.text("abcdef0123_-", min_size=1, max_size=6),
                    st.floats(allow_nan=False, allow_infinity=True, width=64), max_size=8),
    max_size=5))
def test_run_roundtrip_exact_floats(tmp_path_factory, data):
    run = Run(data, name="h")
    p = tmp_path_factory.mktemp("r") / "run.txt"
    write_run(run, p)
    back = read_run(p) if run.num_items() else Run({})
    assert {q: v for q, v in back.items()} == {q: v for q, v in run.items() if v}
    for q, v in run.items():
        for d, s in v.items():
            assert math.copysign(1, back[q][d]) == math.copysign(1, s)  # even -0.0 survives


def test_write_run_rejects_bad(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        write_run(Run({"q": {"d": float("nan")}}), tmp_path / "r")
    with pytest.raises(ValueError, match="whitespace"):
        write_run(Run({"q": {"d x": 1.0}}), tmp_path / "r")
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_qrels_queries_docs_roundtrip(tmp_path):
    qrels = read_qrels(DL19 / "qrels.txt")
    for fmt in ("trec", "beir"):
        p = write_qrels(qrels, tmp_path / f"q.{fmt}", format=fmt)
        assert detect_format(p, "qrels") == fmt
        assert read_qrels(p).to_dict() == qrels.to_dict()
    qs = read_queries(DL19 / "queries.tsv")
    assert read_queries(write_queries(qs, tmp_path / "q.tsv")) == qs
    cq = read_queries(CRAN / "cran.qry")
    with pytest.raises(ValueError, match="normalize_whitespace"):
        write_queries(cq, tmp_path / "c.tsv")
    assert read_queries(write_queries(cq, tmp_path / "c.jsonl", format="jsonl")) == cq
    back = read_queries(write_queries(cq, tmp_path / "c.tsv", normalize_whitespace=True))
    assert back[0].text == "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft ."
    docs = list(read_docs(CRAN / "cran.all.1400"))
    p = write_docs_jsonl(docs, tmp_path / "corpus.jsonl.gz")
    with gzip.open(p) as f:
        assert f.read(1) == b"{"
    assert list(read_docs(p)) == docs


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize("content,kind,fmt", [
    ('{"_id": "1", "text": "x"}\n', "docs", "jsonl"),
    ("1\tsome text\n", "docs", "tsv"),
    ("<DOC>\n<DOCNO> A </DOCNO>\n</DOC>\n", "docs", "trec"),
    (".I 1\n.W\nx\n", "docs", "smart"),
    ('{"_id": "1", "text": "x"}\n', "queries", "jsonl"),
    ("1\tquery\n", "queries", "tsv"),
    ("<top>\n<num> Number: 1\n<title> x\n</top>\n", "queries", "trec"),
    (".I 001\n.W\nx\n", "queries", "smart"),
    ("query-id\tcorpus-id\tscore\n1\t2\t1\n", "qrels", "beir"),
    ("1 0 d1 1\n1 0 d2 0\n", "qrels", "trec"),
    ("1 Q0 d1 1\n", "qrels", "trec"),
    ("     1     28 0  0.0\n     1     35 0  0.0\n", "qrels", "pairs"),
    ("01 1410  0  0\n01 1572  0  0\n", "qrels", "pairs"),
    ("1 28\n", "qrels", "pairs"),
    ("1 28 2\n", "qrels", "beir"),
])
def test_detect_format(tmp_path, content, kind, fmt):
    p = tmp_path / "f.txt"
    p.write_text(content)
    assert detect_format(p, kind) == fmt


def test_detect_and_unknown_format_names(tmp_path):
    p = tmp_path / "cranqrels"
    p.write_text("1 184 2\n")
    assert detect_format(p, "qrels") == "cranfield"
    with pytest.raises(ValueError, match="known formats: jsonl, beir, tsv, trec, smart"):
        list(read_docs(SCIFACT / "corpus.jsonl", format="parquet"))
    with pytest.raises(ValueError, match="known formats: trec, beir, cranfield, pairs"):
        read_qrels(DL19 / "qrels.txt", format="svmlight")
    bad = tmp_path / "x.txt"
    bad.write_text("just words\n")
    with pytest.raises(FormatError, match=r"x\.txt:1: cannot detect a docs format"):
        detect_format(bad, "docs")


# ---------------------------------------------------------------- TREC <DOC> and <top>

TREC_DOCS = """<DOC>
<DOCNO> FT911-1 </DOCNO>
<PROFILE>_AN-BEOA7AAIFT</PROFILE>
<HEADLINE>
FT  14 MAY 91 / Costs rise
</HEADLINE>
<TEXT>
<P>First paragraph.</P>
<P>Second &amp; last.</P>
</TEXT>
</DOC>

<DOC><DOCNO>LA010189-0001</DOCNO><TITLE>Short</TITLE><TEXT>one line doc</TEXT></DOC><DOC><DOCNO>X2</DOCNO>
<TEXT>a</TEXT><TEXT>b</TEXT>
</DOC>
<DOC>
<DOCNO>NOTEXT</DOCNO>
plain body without TEXT
</DOC>
"""


def test_trec_docs(tmp_path):
    p = tmp_path / "docs.trec.gz"
    with gzip.open(p, "wt") as f:
        f.write(TREC_DOCS)
    docs = list(read_docs(p))
    assert [d.id for d in docs] == ["FT911-1", "LA010189-0001", "X2", "NOTEXT"]
    assert docs[0].title == "FT 14 MAY 91 / Costs rise"
    assert docs[0].text == "First paragraph.\nSecond &amp; last."
    assert docs[1] == Document("LA010189-0001", "one line doc", "Short")
    assert docs[2].text == "a\nb"
    assert docs[3] == Document("NOTEXT", "plain body without TEXT")


@pytest.mark.parametrize("content,line,msg", [
    ("<DOC>\n<DOCNO>a</DOCNO>\n<TEXT>x</TEXT>\n", 1, "not closed by </DOC>"),
    ("<DOC>\n<TEXT>x</TEXT>\n</DOC>\n", 1, "without <DOCNO>"),
    ("<DOC><DOCNO>a</DOCNO></DOC>\nstray\n", 2, "expected <DOC>"),
    ("<DOC><DOCNO>a</DOCNO></DOC>\n\n<DOC><DOCNO>a</DOCNO></DOC>\n", 3, "duplicate document id 'a' (first at line 1)"),
    ("<DOC>\n<DOCNO>a</DOCNO>\n<TEXT>x\n</DOC>\n", 1, "<TEXT> not closed"),
])
def test_trec_docs_malformed(tmp_path, content, line, msg):
    p = tmp_path / "bad.sgml"
    p.write_text(content)
    with pytest.raises(FormatError) as e:
        list(read_docs(p, format="trec"))
    assert str(e.value).startswith(f"{p}:{line}: ") and msg in str(e.value)


TOPICS = """<top>
<num> Number: 301
<title> International Organized Crime

<desc> Description:
Identify organizations that participate in international
criminal activity.

<narr> Narrative:
A relevant document must name the organization.
</top>

<top>
<num> Number: 302 </num>
<title> Poliomyelitis and Post-Polio </title>
<desc> Description: Is the disease under control?
</desc>
</top>
"""


def test_trec_topics(tmp_path):
    p = tmp_path / "topics.301-302"
    p.write_text(TOPICS)
    assert detect_format(p, "queries") == "trec"
    assert read_queries(p) == [Query("301", "International Organized Crime"),
                               Query("302", "Poliomyelitis and Post-Polio")]
    assert read_queries(p, field="desc")[0].text == (
        "Identify organizations that participate in international criminal activity.")
    assert read_queries(p, field="title+desc")[1].text == "Poliomyelitis and Post-Polio Is the disease under control?"
    with pytest.raises(FormatError, match=r"topics\.301-302:13: topic 302 has no <narr>"):
        read_queries(p, field="narr")
    bad = tmp_path / "t2"
    bad.write_text(TOPICS + "\njunk here\n")
    with pytest.raises(FormatError, match=r"t2:20: text outside <top>: .junk here."):
        read_queries(bad, format="trec")


# ---------------------------------------------------------------- SMART variants

CISI_LIKE = """.I 1
.T
18 Editions of the
Dewey Decimal Classifications
.A
Comaromi, J.P.
.W
   The present study is a history of the DEWEY Decimal
Classification.
.X
92\t1\t1
5\t1\t1
.I 2
.T Title on the marker line
.K
indexing, libraries
.N
CA600101 JB March 2, 1978  9:48 AM
.C
1.2 3.4
"""


def test_smart_variants(tmp_path):
    p = tmp_path / "CISI.ALL"
    p.write_bytes(CISI_LIKE.replace("\n", "\r\n").encode())
    docs = list(read_docs(p))
    assert docs[0] == Document("1", "The present study is a history of the DEWEY Decimal\nClassification.",
                               "18 Editions of the\nDewey Decimal Classifications")
    # .K keywords are indexed (appended to the text); .N/.C/.X are kept as fields only
    assert docs[1] == Document("2", "indexing, libraries", "Title on the marker line")
    recs = list(read_smart_records(p))
    assert recs[0].fields["X"] == "92\t1\t1\n5\t1\t1"
    assert recs[1].fields == {"T": "Title on the marker line", "K": "indexing, libraries",
                              "N": "CA600101 JB March 2, 1978  9:48 AM", "C": "1.2 3.4"}


def test_smart_queries_renumber(tmp_path):
    contiguous = tmp_path / "q1.qry"
    contiguous.write_text(".I 1\n.W\nfirst\n.I 2\n.W\nsecond\n")
    assert [q.id for q in read_queries(contiguous)] == ["1", "2"]
    padded = tmp_path / "q2.qry"
    padded.write_text(".I 01\n.W\nfirst\n.I 02\n.W\nsecond\n")
    assert [q.id for q in read_queries(padded)] == ["01", "02"]  # contiguous: not renumbered
    assert [q.id for q in read_queries(padded, strip_zeros=True)] == ["1", "2"]
    gaps = tmp_path / "q3.qry"
    gaps.write_text(".I 5\n.W\nfirst\n.I 9\n.W\nsecond\n")
    assert [q.id for q in read_queries(gaps)] == ["1", "2"]
    assert [q.id for q in read_queries(gaps, renumber=False)] == ["5", "9"]
    assert [q.id for q in read_queries(contiguous, renumber=True)] == ["1", "2"]


def test_smart_qrels_variants(tmp_path):
    p = tmp_path / "CISI.REL"
    p.write_text("     1     28 0  0.0\n     1     35 0  0.0\n     2     28 0  0.0\n")
    assert read_qrels(p).to_dict() == {"1": {"28": 1, "35": 1}, "2": {"28": 1}}
    c = tmp_path / "qrels.text"
    c.write_text("01 1410  0  0\n01 1572  0  0\n10 0007 0 0\n")
    assert read_qrels(c).to_dict() == {"01": {"1410": 1, "1572": 1}, "10": {"0007": 1}}
    assert read_qrels(c, strip_zeros=True).to_dict() == {"1": {"1410": 1, "1572": 1}, "10": {"0007": 1}}
    m = tmp_path / "MED.REL"
    m.write_text("1 0 13 1\n1 0 14 1\n")
    assert read_qrels(m).to_dict() == {"1": {"13": 1, "14": 1}}
    cr = tmp_path / "cranqrel"
    cr.write_text("1 184 2\n1 29 5\n")
    with pytest.raises(FormatError, match=r"cranqrel:2: Cranfield grade 5 not in \[-1, 1, 2, 3, 4\]"):
        read_qrels(cr)
    assert read_qrels(cr, cranfield_scale="cleverdon").to_dict() == {"1": {"184": 3, "29": 0}}


def test_smart_collection_with_zero_padded_qrels(tmp_path):
    """CACM-like: query file ids 1..n, qrels ids zero-padded: load_collection reconciles them."""
    (tmp_path / "cacm.all").write_text(".I 1\n.T\nA\n.W\nx\n.I 2\n.T\nB\n")
    (tmp_path / "query.text").write_text(".I 1\n.W\nq one\n.I 2\n.W\nq two\n")
    (tmp_path / "qrels.text").write_text("01 1 0 0\n02 2 0 0\n")
    c = load_collection(tmp_path)
    assert c.meta["query_ids_stripped"] is True
    assert [q.id for q in c.queries] == ["1", "2"] and c.qrels.to_dict() == {"1": {"1": 1}, "2": {"2": 1}}


# ---------------------------------------------------------------- malformed input names file and line

MALFORMED = [
    ("docs", "tsv", "1\ta\n\n2\tb\tc\n", 3, "expected 2 tab-separated fields (id, text), got 3"),
    ("docs", "tsv", "1\ta\nnotab\n", 2, "expected 2 tab-separated fields"),
    ("docs", "tsv", "1\ta\n1\tb\n", 2, "duplicate document id '1' (first at line 1)"),
    ("docs", "jsonl", '{"_id": "1", "text": "a"}\n{"_id": "2", "text": "b"\n', 2, "invalid JSON"),
    ("docs", "jsonl", '{"_id": "1", "text": "a"}\n{"title": "t", "text": "b"}\n', 2, "no document id field"),
    ("docs", "jsonl", '{"_id": "1"}\n', 1, "no text field"),
    ("docs", "jsonl", '{"_id": "1", "text": 3}\n', 1, "field 'text' must be a string"),
    ("docs", "jsonl", '[1, 2]\n', 1, "expected a JSON object"),
    ("docs", "smart", "junk\n.I 1\n", 1, "text before the first .I record"),
    ("docs", "smart", ".I 1\nno marker\n", 2, "text before any field marker"),
    ("docs", "smart", ".I\n.W\nx\n", 1, ".I needs one record id"),
    ("queries", "tsv", "1\tq\n2\n", 2, "expected 2 tab-separated fields (qid, text), got 1"),
    ("queries", "tsv", "1\tq\n1\tr\n", 2, "duplicate query id '1' (first at line 1)"),
    ("queries", "jsonl", '{"_id": "1", "text": "q"}\n{"_id": "1", "text": "q"}\n', 2, "duplicate query id"),
    ("qrels", "trec", "1 0 d 1\n1 0 d2\n", 2, "expected 4 fields (qid iter docid rel), got 3"),
    ("qrels", "trec", "1 0 d 1\n1 0 e high\n", 2, "relevance grade 'high' is not a number"),
    ("qrels", "trec", "1 0 d 1\n1 0 e 1.5\n", 2, "is not an integer"),
    ("qrels", "trec", "1 0 d 1\n\n1 0 d 2\n", 3, "repeated with grade 2, was 1 at line 1"),
    ("qrels", "beir", "query-id\tcorpus-id\tscore\n1\td\n", 2, "expected 3 fields"),
    ("qrels", "pairs", "1 28 0 1.0\n", 1, "expected 'qid docid 0 0.0'"),
    ("run", "trec", "1 Q0 d 1 2.0 t\n1 Q0 e 2 1.0\n", 2, "expected 6 fields (qid Q0 docid rank score tag), got 5"),
    ("run", "trec", "1 Q0 d 1 2.0 t\n1 Q0 e 2 abc t\n", 2, "score 'abc' is not a number"),
    ("run", "trec", "1 Q0 d 1 2.0 t\n1 Q0 e x 1.0 t\n", 2, "rank 'x' is not an integer"),
    ("run", "trec", "1 Q0 d 1 2.0 t\n1 Q0 e 2 1.0 t\n\n1 Q0 d 3 0.5 t\n", 4, "document 'd' repeated for query '1' (first at line 1)"),
    ("run", "trec", "1 Q0 d 1 nan t\n", 1, "score is NaN"),
]


@pytest.mark.parametrize("kind,fmt,content,line,msg", MALFORMED)
def test_malformed_names_file_and_line(tmp_path, kind, fmt, content, line, msg):
    p = tmp_path / f"bad_{kind}.txt"
    p.write_text(content)
    reader = {"docs": lambda: list(read_docs(p, fmt)), "queries": lambda: read_queries(p, fmt),
              "qrels": lambda: read_qrels(p, fmt), "run": lambda: read_run(p)}[kind]
    with pytest.raises(FormatError) as e:
        reader()
    assert str(e.value).startswith(f"{p}:{line}: "), str(e.value)
    assert msg in str(e.value)


def test_bad_utf8_names_line(tmp_path):
    p = tmp_path / "c.tsv"
    p.write_bytes(b"1\tok\n2\tbad \xff byte\n")
    with pytest.raises(FormatError, match=r"c\.tsv:2: not valid utf-8"):
        list(read_docs(p))


def test_identical_repeated_judgment_warns(tmp_path):
    p = tmp_path / "q.txt"
    p.write_text("1 0 d 1\n1 0 d 1\n")
    with pytest.warns(UserWarning, match="1 judgment"):
        q = read_qrels(p)
    assert q.to_dict() == {"1": {"d": 1}}


def test_blank_lines_and_crlf_allowed(tmp_path):
    p = tmp_path / "r.trec"
    p.write_bytes(b"\r\n1 Q0 d 1 2.5 t\r\n\r\n1 Q0 e 2 1.5 t\r\n")
    assert read_run(p).to_dict() == {"1": {"d": 2.5, "e": 1.5}}
    assert isinstance(read_qrels(SCIFACT / "qrels" / "test.tsv"), Qrels)
