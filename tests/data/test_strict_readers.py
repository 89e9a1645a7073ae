"""Strict readers (issue #16, "no silent wrong answer"): every rule the readers of
rankstack.data.formats enforce on ids, field counts, numbers, SMART markers and line numbers, one
test per rule, on crafted files; and the shipped files still read exactly as before."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import pytest

from rankstack.data.formats import (
    MAX_ID_LENGTH,
    detect_format,
    read_docs,
    read_qrels,
    read_queries,
    read_run,
    read_smart_records,
)
from rankstack.data.formats import ids as ids_module
from rankstack.errors import FormatError

ROOT = Path(__file__).resolve().parents[2]
DL19 = ROOT / "data" / "trec-dl-2019"
CRAN = ROOT / "data" / "cranfield"


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return p


def _fails(path: Path, read, line: int | None, *parts: str) -> str:
    with pytest.raises(FormatError) as e:
        read(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:{line}: " if line else f"{path}:"), msg
    assert "\n" not in msg, msg
    for part in parts:
        assert part in msg, msg
    return msg


READERS = {
    "docs": lambda p: list(read_docs(p)),
    "queries": read_queries,
    "qrels": read_qrels,
    "run": read_run,
}

# ------------------------------------------------------------------------------------------------- ids

BAD_IDS = [
    ("space", "d 1", "U+0020 SPACE"),
    ("tab-lookalike nbsp", "d\u00a01", "U+00A0"),
    ("ideographic space", "d\u30001", "U+3000"),
    ("zero width space", "d\u200b1", "U+200B ZERO WIDTH SPACE"),
    ("zero width joiner", "d\u200d1", "U+200D"),
    ("right-to-left mark", "d\u200f1", "U+200F"),
    ("right-to-left override", "\u202e1d", "U+202E"),
    ("byte-order mark inside", "\ufeffd1", "U+FEFF"),
    ("NUL", "d\x001", "U+0000"),
    ("escape", "d\x1b1", "U+001B"),
    ("C1 control", "d\x851", "U+0085"),
]


def _id_files(did: str) -> dict[str, tuple[str, str, str]]:
    """``format -> (kind, file name, content)`` with ``did`` as the id on line 2."""
    js = json.dumps(did, ensure_ascii=False)  # (a raw control character is invalid JSON anyway)
    return {
        "docs-tsv": ("docs", "c.tsv", f"d0\tfirst\n{did}\tsecond\n"),
        "docs-jsonl": ("docs", "c.jsonl", '{"_id": "d0", "text": "a"}\n' + f'{{"_id": {js}, "text": "b"}}\n'),
        "queries-tsv": ("queries", "q.tsv", f"q0\tfirst\n{did}\tsecond\n"),
        "queries-jsonl": ("queries", "q.jsonl", '{"_id": "q0", "text": "a"}\n' + f'{{"_id": {js}, "text": "b"}}\n'),
        "run": ("run", "r.trec", f"1 Q0 d0 1 2.0 t\n1 Q0 {did} 2 1.0 t\n"),
        "qrels": ("qrels", "qrels.txt", f"1 0 d0 1\n1 0 {did} 1\n1 0 d9 0\n"),
    }


@pytest.mark.parametrize("label, did, named", BAD_IDS, ids=[b[0] for b in BAD_IDS])
def test_ids_with_whitespace_or_invisible_characters_are_refused_at_their_line(tmp_path, label, did, named):
    for fmt, (kind, name, content) in _id_files(did).items():
        if kind in ("run", "qrels") and did.split() != [did]:
            continue  # whitespace-separated formats split such an id: a wrong field count, also an error
        p = _write(tmp_path, f"{fmt}-{name}", content)
        _fails(p, READERS[kind], 2, "ids cannot contain whitespace or control or invisible characters", named)


def test_ids_in_sgml_and_smart_files_follow_the_same_rule(tmp_path):
    p = _write(tmp_path, "d.trec", "<DOC>\n<DOCNO> FT 911 </DOCNO>\n<TEXT>x</TEXT>\n</DOC>\n")
    _fails(p, READERS["docs"], 1, "U+0020")
    p = _write(tmp_path, "t.txt", "<top>\n<num> Number: 30\u200b1\n<title> x\n</top>\n")
    _fails(p, READERS["queries"], 1, "U+200B")
    p = _write(tmp_path, "c.all", ".I 1\n.W\nx\n.I 2\x00\n.W\ny\n")
    _fails(p, READERS["docs"], 4, "U+0000")


def test_id_length_limit(tmp_path, monkeypatch):
    assert MAX_ID_LENGTH == ids_module.MAX_ID_LENGTH == 256
    ok, long = "x" * 256, "y" * 2019
    p = _write(tmp_path, "c.tsv", f"{ok}\tfine\n{long}\ttoo long\n")
    msg = _fails(p, READERS["docs"], 2, "2,019 characters", "limited to 256", "MAX_ID_LENGTH")
    assert long not in msg  # the message shows the start of the id, not all of it
    for fmt, (kind, name, content) in _id_files(long).items():
        _fails(_write(tmp_path, f"{fmt}-{name}", content), READERS[kind], 2, "limited to 256")
    # the limit is read at every call
    monkeypatch.setattr(ids_module, "MAX_ID_LENGTH", 4096)
    assert [d.id for d in read_docs(p)] == [ok, long]


def test_unusual_but_visible_ids_are_kept_exactly(tmp_path):
    """Ids are not normalised: NFC and NFD are two ids; private-use and other scripts are fine."""
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    p = _write(tmp_path, "c.tsv", f"{nfc}\tone\n{nfd}\ttwo\n\ue000x\tthree\n\u0661\u0662\tfour\n")
    assert [d.id for d in read_docs(p)] == [nfc, nfd, "\ue000x", "\u0661\u0662"]


# --------------------------------------------------------------------------------- fields and numbers


def test_a_tsv_line_without_its_tab_is_an_error_not_a_document(tmp_path):
    # a passage broken by an embedded newline: the rest of it is a line with one field
    p = _write(tmp_path, "collection.tsv", "1\tfirst passage\n2\tsecond passage broken\nhere by a newline\n3\tx\n")
    _fails(p, READERS["docs"], 3, "expected 2 tab-separated fields (id, text), got 1")
    p = _write(tmp_path, "dpr.tsv", "id\ttext\ttitle\n1\tt\tT\n2\tbroken\n")
    _fails(p, READERS["docs"], 3, "expected 3 tab-separated fields (id, text, title), got 2")
    p = _write(tmp_path, "q.tsv", "1\tq\nbroken\n")
    _fails(p, READERS["queries"], 2, "expected 2 tab-separated fields (qid, text), got 1")


@pytest.mark.parametrize("value", ["1_0", "\u0661", "\uff11", "nan"])
def test_scores_ranks_and_grades_are_plain_numbers(tmp_path, value):
    p = _write(tmp_path, "r.trec", f"1 Q0 d0 1 2.0 t\n1 Q0 d1 2 {value} t\n")
    _fails(p, read_run, 2, "score")
    if value != "nan":
        p = _write(tmp_path, "r2.trec", f"1 Q0 d0 1 2.0 t\n1 Q0 d1 {value} 1.0 t\n")
        _fails(p, read_run, 2, "rank")
    p = _write(tmp_path, "qrels.txt", f"1 0 d0 1\n1 0 d1 {value}\n1 0 d2 0\n")
    _fails(p, read_qrels, 2, "relevance grade")


def test_grades_beyond_64_bits_are_refused(tmp_path):
    p = _write(tmp_path, "qrels.txt", "1 0 d0 1\n1 0 d1 9223372036854775808\n1 0 d2 0\n")
    _fails(p, read_qrels, 2, "64-bit")
    p = _write(tmp_path, "q2.txt", "1 0 d0 1\n1 0 d1 9223372036854775807\n1 0 d2 -3\n1 0 d3 2.0\n")
    assert read_qrels(p).to_dict() == {"1": {"d0": 1, "d1": 2**63 - 1, "d2": -3, "d3": 2}}


def test_json_is_read_strictly(tmp_path):
    cases = [
        ('{"_id": "1", "text": "a", "_id": "2"}', "key '_id' appears more than once"),
        ('{"_id": "1", "text": "a", "text": "b"}', "key 'text' appears more than once"),
        ('{"_id": "1", "text": "a\\ud800b"}', "lone surrogate"),
        ('{"_id": "\\udc00", "text": "a"}', "U+DC00"),
        ('{"_id": ' + "1" * 5000 + ', "text": "a"}', "invalid JSON"),
        ('{"_id": "1", "text": ' + "[" * 100000 + "]" * 100000 + "}", "invalid JSON: nested too deeply"),
        ('{"_id": "1\\u200b", "text": "a"}', "U+200B"),
        ('{"_id": "1\\n2", "text": "a"}', "U+000A"),
    ]
    for k, (line, part) in enumerate(cases):
        p = _write(tmp_path, f"c{k}.jsonl", '{"_id": "0", "text": "ok"}\n' + line + "\n")
        _fails(p, READERS["docs"], 2, part)
    # keys we do not read may repeat (BEIR metadata); a valid surrogate pair is one character
    p = _write(tmp_path, "ok.jsonl", '{"_id": "1", "text": "a \\ud83d\\ude00", "metadata": {}, "metadata": {}}\n')
    assert [(d.id, d.text) for d in read_docs(p)] == [("1", "a \U0001f600")]


def test_error_messages_stay_on_one_line(tmp_path):
    p = _write(tmp_path, "c.jsonl", '{"title": "x", "weird\\nkey": 1}\n')
    _fails(p, READERS["docs"], 1, "no document id field", "weird\\nkey")


# ----------------------------------------------------------------------------------------------- SMART


def test_cranfield_record_240_warns_once_and_reads_as_before():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = {d.id: d for d in read_docs(CRAN / "cran.all.1400")}
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "1 document record(s)" in msgs[0] and "240 (line 7305: .A .B)" in msgs[0], msgs
    assert str(CRAN / "cran.all.1400") in msgs[0] and caught[0].filename == __file__  # the caller, not the reader
    # the reading itself is ir_datasets' (tests/data/test_formats.py compares every record)
    assert docs["240"].text.endswith("of the case where air is injected into the separated region  .")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_queries(CRAN / "cran.qry")) == 225  # nothing to warn about in the queries


def test_smart_markers(tmp_path):
    # a repeated .W appends to the text (Cranfield 576, 578): nothing lost, nothing to warn about
    p = _write(tmp_path, "a.all", ".I 1\n.T\nt\n.W\nfirst\n.W\nsecond\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [(d.title, d.text) for d in read_docs(p)] == [("t", "first\nsecond")]
    # a field repeated after the text: read as that field, warned about once with the record ids
    body = "".join(f".I {i}\n.T\nt{i}\n.A\nauthor\n.W\nabstract {i}\n.A\nmoved {i}\n" for i in range(1, 8))
    p = _write(tmp_path, "b.all", body)
    with pytest.warns(UserWarning, match=r"7 document record\(s\) .* e\.g\. 1 \(line 1: \.A\), 2 \(line 10: \.A\)"):
        docs = list(read_docs(p))
    assert docs[0].text == "abstract 1"
    assert next(iter(read_smart_records(p))).fields["A"] == "author\nmoved 1"
    q = _write(tmp_path, "q.qry", ".I 1\n.W\nquery text\n.B\nbib\n.W\nmore\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_queries(q)[0].text == "query text\nmore"
    # markers that are not markers are errors, not a silent move of the text to another field
    for k, (content, line, part) in enumerate([
        (".I 1\n.T\nt\n.V\nabstract\n", 4, "unknown SMART field marker '.V'"),
        (".I 1\n.T\nt\n.w\nabstract\n", 4, "looks like a field marker"),
        (".I 1\n.T\nt\n .W\nabstract\n", 4, "looks like a field marker"),
    ]):
        _fails(_write(tmp_path, f"m{k}.all", content), READERS["docs"], line, part)


# ------------------------------------------------------------------------------------- line numbers


def test_a_qrels_problem_on_line_n_is_reported_at_line_n(tmp_path):
    lines = (DL19 / "qrels.txt").read_text().splitlines()[:30]
    bad = lines.copy()
    bad[3] = " ".join(bad[3].split()[:3])  # line 4 lost its grade
    p = _write(tmp_path, "qrels.txt", "\n".join(bad) + "\n")
    _fails(p, read_qrels, 4, "expected 4 fields (qid iter docid rel), got 3")
    bad = lines.copy()
    bad[0] = " ".join(bad[0].split()[:3])  # even on the first line
    _fails(_write(tmp_path, "q1.txt", "\n".join(bad) + "\n"), read_qrels, 1, "expected 4 fields")
    bad = lines.copy()
    bad[5] += " extra"
    _fails(_write(tmp_path, "q2.txt", "\n".join(bad) + "\n"), read_qrels, 6, "got 5")
    # BEIR: a line without its grade under the header
    p = _write(tmp_path, "test.tsv", "query-id\tcorpus-id\tscore\n1\td1\t1\n2\td2\n3\td3\t1\n4\td4\t0\n")
    _fails(p, read_qrels, 3, "expected 3 fields")


def test_a_column_count_that_fits_no_format_is_an_error_at_its_line(tmp_path):
    p = _write(tmp_path, "qrels.txt", "\n\n" + (DL19 / "bm25.top100.trec").read_text()[:2000])
    _fails(p, read_qrels, 3, "6 columns fit no qrels format (is this a TREC run?)")
    p = _write(tmp_path, "q5.txt", "1 a b c d\n1 a b c e\n")
    _fails(p, read_qrels, 1, "5 columns fit no qrels format")
    p = _write(tmp_path, "q3.txt", "\n\n1 0 d1\n1 0 d2\n")
    _fails(p, read_qrels, 3, "without the relevance column")


def test_detection_names_the_first_non_blank_line(tmp_path):
    p = _write(tmp_path, "x.txt", "\n\n\njust words\n")
    with pytest.raises(FormatError, match=r"x\.txt:4: cannot detect a docs format"):
        detect_format(p, "docs")


def test_a_damaged_first_line_is_reported_by_the_reader(tmp_path):
    """One damaged first line does not make the whole file 'undetectable': the others decide."""
    lines = (DL19 / "collection.tsv").read_text().splitlines()[:10]
    p = _write(tmp_path, "collection.tsv", lines[0].replace("\t", " ") + "\n" + "\n".join(lines[1:]) + "\n")
    _fails(p, READERS["docs"], 1, "expected 2 tab-separated fields (id, text), got 1")
    jl = [f'{{"_id": "{i}", "text": "t"}}' for i in range(6)]
    p = _write(tmp_path, "q.jsonl", "z" + jl[0][1:] + "\n" + "\n".join(jl[1:]) + "\n")
    _fails(p, READERS["queries"], 1, "invalid JSON")


def test_duplicates_sharing_a_line_are_found(tmp_path):
    p = _write(tmp_path, "d.trec", "<DOC><DOCNO>a</DOCNO></DOC><DOC><DOCNO>a</DOCNO></DOC>\n")
    _fails(p, READERS["docs"], 1, "duplicate document id 'a'")
    p = _write(tmp_path, "d2.trec", "<DOC>\n<DOCNO>a</DOCNO>\n</DOC><DOC><DOCNO>b</DOCNO><TEXT>x</TEXT></DOC>junk\n")
    _fails(p, READERS["docs"], 3, "text after </DOC>")
    p = _write(tmp_path, "t.txt", "<top><num>1</num><title>x</title></top><top><num>1</num><title>y</title></top>\n")
    _fails(p, READERS["queries"], 1, "duplicate query id '1'")


def test_the_first_problem_of_a_queries_file_is_the_one_reported(tmp_path):
    p = _write(tmp_path, "q.tsv", "1\ta\n2\tb\n1\tc\n3\n")
    _fails(p, READERS["queries"], 3, "duplicate query id '1' (first at line 1)")


def test_text_outside_topics_is_located(tmp_path):
    p = _write(tmp_path, "t.txt", "<top>\n<num> 1\n<title> x\n</top>\n\n<b>\n  </b> junk\n")
    _fails(p, READERS["queries"], 7, "text outside <top>: 'junk'")
    p = _write(tmp_path, "t2.txt", "<top>\n<num> 1\n<title> x\n</top>\n\nju<i>nk\n<top>\n<num> 2\n<title> y\n</top>\n")
    _fails(p, READERS["queries"], 6, "text outside <top>: 'junk'")  # (was: line 4, the </top> before it)


# ------------------------------------------------------------------------------ valid files unchanged


def test_shipped_files_read_identically_plain_crlf_bom_and_gzip(tmp_path):
    for src, read in [(DL19 / "bm25.top100.trec", lambda p: read_run(p).to_dict()),
                      (DL19 / "qrels.txt", lambda p: read_qrels(p).to_dict()),
                      (DL19 / "queries.tsv", read_queries),
                      (DL19 / "collection.tsv", lambda p: list(read_docs(p))),
                      (CRAN / "cran.qry", read_queries)]:
        raw = src.read_bytes()
        want = read(src)
        lf = raw.replace(b"\r\n", b"\n")  # (cran.qry is written with CRLF)
        for k, data in enumerate([lf, lf.replace(b"\n", b"\r\n"), b"\xef\xbb\xbf" + raw, gzip.compress(raw),
                                  raw + b"\n\n  \n"]):
            p = _write(tmp_path, f"{k}-{src.name}", data)
            assert read(p) == want, (src.name, k)
