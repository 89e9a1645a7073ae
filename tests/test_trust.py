"""No silent wrong answer (issue #16, part): each defect of the trust issue that is fixed has its
test here, which fails on the code before the fix and passes after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rankstack.data.formats import read_qrels, read_queries, read_run
from rankstack.data.records import Collection, Document, Query
from rankstack.errors import FormatError, IndexMismatchError
from rankstack.measures import evaluate

ROOT = Path(__file__).resolve().parents[1]
DL19 = ROOT / "data" / "trec-dl-2019"


def rs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rankstack.interfaces.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def _bom(src: Path, dst: Path) -> Path:
    dst.write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    return dst


# -- a byte-order mark never ends up in an id ----------------------------------------------------
def test_bom_in_run_qrels_and_tsv_changes_nothing(tmp_path):
    run, qrels = read_run(DL19 / "bm25.top100.trec"), read_qrels(DL19 / "qrels.txt")
    brun = read_run(_bom(DL19 / "bm25.top100.trec", tmp_path / "run.trec"))
    bqrels = read_qrels(_bom(DL19 / "qrels.txt", tmp_path / "qrels.txt"))
    assert brun.to_dict() == run.to_dict() and bqrels.to_dict() == qrels.to_dict()
    assert evaluate(qrels, brun, ["nDCG@10"])["nDCG@10"] == pytest.approx(0.5058, abs=1e-4)  # was 0.4943 under -c
    assert evaluate(bqrels, run, ["nDCG@10"], all_judged=True)["nDCG@10"] == \
        pytest.approx(evaluate(qrels, run, ["nDCG@10"], all_judged=True)["nDCG@10"])
    q = read_queries(_bom(DL19 / "queries.tsv", tmp_path / "q.tsv"))
    assert q[0].id == "264014"


def test_trec_qrels_without_grades_is_an_error_not_beir(tmp_path):
    f = tmp_path / "qrels.txt"
    f.write_text("".join(" ".join(line.split()[:3]) + "\n" for line in (DL19 / "qrels.txt").read_text().splitlines()[:50]))
    with pytest.raises(FormatError, match=r"qrels.txt:1: .*without the relevance column"):
        read_qrels(f)


# -- evaluate with nothing to evaluate is an error; JSON is strict --------------------------------
@pytest.mark.parametrize("what, message", [
    ("empty-run", "the run ranks no document"),
    ("header-qrels", "no judgments"),
    ("disjoint", "share no query id"),
])
def test_evaluate_with_nothing_to_evaluate_fails(tmp_path, what, message):
    run, qrels = DL19 / "bm25.top100.trec", DL19 / "qrels.txt"
    if what == "empty-run":
        run = tmp_path / "empty.trec"
        run.write_text("")
    elif what == "header-qrels":
        qrels = tmp_path / "qrels.tsv"
        qrels.write_text("query-id\tcorpus-id\tscore\n")
    else:
        run = tmp_path / "other.trec"
        run.write_text("nope Q0 d1 1 1.0 x\n")
    for extra in ([], ["--json"]):
        p = rs("evaluate", str(qrels), str(run), "-m", "nDCG@10", *extra)
        assert p.returncode == 2 and message in p.stderr and "NaN" not in p.stdout, (p.stdout, p.stderr)


# -- a damaged document store is named --------------------------------------------------------------
def _store(tmp_path):
    from rankstack.data.docstore import DocStore

    docs = [Document(f"d{i}", f"text number {i} " * 20, f"title {i}") for i in range(40)]
    return DocStore.build(docs, tmp_path / "store", progress=False), docs


def test_truncated_docstore_files_are_named(tmp_path):
    from rankstack.data.docstore import DocStore

    store, docs = _store(tmp_path)
    assert store["d7"] == docs[7]
    text = tmp_path / "store" / "text.bin"
    text.write_bytes(text.read_bytes()[: text.stat().st_size // 2])
    with pytest.raises(FormatError, match=r"text.bin: .* bytes, checksums.json says .*truncated or damaged.*rebuild"):
        DocStore.open(tmp_path / "store")
    (tmp_path / "store" / "checksums.json").unlink()  # a store from before checksums: the offsets still see it
    with pytest.raises(FormatError, match=r"text.bin has .* bytes, the store's offsets need .*rebuild"):
        DocStore.open(tmp_path / "store")
    store, _ = _store(tmp_path)
    off = tmp_path / "store" / "text_off.npy"
    off.write_bytes(off.read_bytes()[:100])
    with pytest.raises(FormatError, match=r"text_off.npy: 100 bytes, checksums.json says"):
        DocStore.open(tmp_path / "store")
    (tmp_path / "store" / "checksums.json").unlink()
    with pytest.raises(FormatError, match=r"text_off.npy: unreadable .*rebuild"):  # without checksums: np.load's error, named
        DocStore.open(tmp_path / "store")
    store, _ = _store(tmp_path)
    (tmp_path / "store" / "meta.json").write_text("{not json")
    with pytest.raises(FormatError, match=r"meta.json: not valid JSON"):
        DocStore.open(tmp_path / "store")


# -- caches follow the documents' content -------------------------------------------------------------
def _collection(edit: bool = False) -> Collection:
    docs = {f"d{i}": Document(f"d{i}", f"common words here {'apple ' * (i % 4)} item {i}") for i in range(30)}
    if edit:
        docs["d5"] = Document("d5", "banana banana banana banana")
    return Collection(name="toy", docs=docs, queries=[Query("q1", "banana apple")], qrels=None)


def test_an_edited_document_rebuilds_the_index_and_misses_every_cache(tmp_path):
    from rankstack.stages import BuildContext, Cached, build_stage

    def run(coll):
        ctx = BuildContext(coll, tmp_path / "cache")
        first = Cached(build_stage({"stage": "bm25", "k": 10}, ctx), tmp_path / "runs")
        second = Cached(build_stage({"stage": "bm25-rerank", "k1": 1.2}, ctx), tmp_path / "runs")
        out = second(coll.queries, first(coll.queries))
        return out, first, second

    a, f1, s1 = run(_collection())
    assert (f1.misses, s1.misses) == (1, 1)
    b, f2, s2 = run(_collection())
    assert (f2.hits, s2.hits) == (1, 1) and b.to_dict() == a.to_dict()  # unchanged: every stage a hit
    c, f3, s3 = run(_collection(edit=True))
    assert (f3.misses, s3.misses) == (1, 1)  # one text edited: the index is rebuilt, nothing cached is reused
    assert "d5" in c["q1"] and "d5" not in a["q1"]


def test_reranker_key_follows_the_texts():
    from rankstack.stages import BuildContext, build_stage

    keys = [build_stage({"stage": "dense-rerank"}, BuildContext(_collection(edit))).config()["docs"]
            for edit in (False, False, True)]
    assert keys[0] == keys[1] != keys[2]


def test_dense_encoding_of_other_texts_is_refused(tmp_path):
    from rankstack.index.dense import encode_corpus
    from rankstack.testing import _bi_encoder

    docs = list(_collection().docs.values())
    assert encode_corpus(docs, tmp_path / "enc", _bi_encoder(), shard_size=8, progress=False)
    edited = list(_collection(edit=True).docs.values())
    with pytest.raises(IndexMismatchError, match=r"meta.json: the existing encoding was made from other document"):
        encode_corpus(edited, tmp_path / "enc", _bi_encoder(), shard_size=8, progress=False)


def test_index_dense_rerun_after_an_edit_encodes_again(tmp_path):
    def write(edit):
        (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"_id": d.id, "text": d.text}) + "\n"
                                                     for d in _collection(edit).docs.values()))

    write(False)
    assert rs("index", str(tmp_path / "docs.jsonl"), "-o", str(tmp_path / "idx"), "--dense").returncode == 0
    v1 = np.load(tmp_path / "idx" / "dense" / "encodings" / "shards" / "00000.npy")
    write(True)
    p = rs("index", str(tmp_path / "docs.jsonl"), "-o", str(tmp_path / "idx"), "--dense")
    assert p.returncode == 0 and "encoding again" in p.stderr, p.stderr
    v2 = np.load(tmp_path / "idx" / "dense" / "encodings" / "shards" / "00000.npy")
    assert not np.allclose(v1[5], v2[5]) and np.allclose(v1[4], v2[4])


# -- rerank does not drop queries silently ---------------------------------------------------------------
def test_rerank_names_run_queries_missing_from_the_queries_file(tmp_path):
    lines = (DL19 / "queries.tsv").read_text().splitlines()
    (tmp_path / "q.tsv").write_text("\n".join(lines[:3]) + "\n")
    base = ["rerank", str(DL19 / "bm25.top100.trec"), str(tmp_path / "q.tsv"), "dl19", "-o", str(tmp_path / "out"),
            "--reranker", "bm25-rerank", "--k", "10"]
    p = rs(*base)
    assert p.returncode == 2 and "40 of its 43 queries are not in" in p.stderr and "--skip-missing" in p.stderr
    p = rs(*base, "--skip-missing")
    assert p.returncode == 0 and "40 run queries are not in" in p.stderr, p.stderr
    out = read_run(tmp_path / "out")
    assert len(out) == 3 and all(len(v) == 10 for v in out.values())
    (tmp_path / "none.tsv").write_text("x1\tnothing\n")
    p = rs("rerank", str(DL19 / "bm25.top100.trec"), str(tmp_path / "none.tsv"), "dl19", "-o", str(tmp_path / "o2"),
           "--reranker", "bm25-rerank", "--skip-missing")
    assert p.returncode == 2 and "43 of its 43 queries" in p.stderr


# -- a model that cannot do what is asked is refused ------------------------------------------------------
def test_a_bi_encoder_checkpoint_is_not_a_cross_encoder(tmp_path):
    from rankstack.encoders.runtime import default_model_path
    from rankstack.errors import ConfigError
    from rankstack.stages import CrossEncoderReranker

    with pytest.raises(ConfigError, match=r"is not a cross-encoder: .*BertModel.*dense-rerank"):
        CrossEncoderReranker({}, model=default_model_path())
    assert CrossEncoderReranker({}, model=default_model_path(), allow_new_head=True).encoder.num_labels >= 1
    p = rs("rerank", str(DL19 / "bm25.top100.trec"), str(DL19 / "queries.tsv"), "dl19", "-o", str(tmp_path / "x"),
           "--model", str(default_model_path()))
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "dense-rerank" in p.stderr


def test_a_huge_token_is_cut_and_counted_not_a_huge_index():
    from rankstack.index.analysis import MAX_TOKEN_LENGTH
    from rankstack.index.bm25 import BM25Index

    docs = [Document(f"d{i}", "normal words here " * 20) for i in range(49)]
    docs.append(Document("big", "x" * 1_000_000 + " tail"))
    with pytest.warns(UserWarning, match=r"1 distinct tokens longer than 255 characters were cut"):
        idx = BM25Index.build(docs, None, progress=False)
    assert max(map(len, idx.vocab)) == MAX_TOKEN_LENGTH == 255  # was a 1M-character-wide vocabulary (8.5 GB)
    assert idx.search("tail", 3)[0][0] == "big"
    assert idx.search("x" * 300, 1)[0][0] == "big"  # the query side is cut the same way


# -- checked artifacts: a damaged file is named, with how to rebuild ------------------------------------------
def test_rankstack_check_names_the_damaged_file(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"text {i} " * 30}) + "\n" for i in range(50)))
    assert rs("index", str(docs), "-o", str(tmp_path / "idx")).returncode == 0
    p = rs("check", str(tmp_path / "idx"))
    assert p.returncode == 0 and p.stdout.count("\nok\t") + p.stdout.startswith("ok\t") == 2, p.stdout  # bm25, docstore
    assert "sizes and checksums ok" in p.stdout
    post = tmp_path / "idx" / "bm25" / "post_docs.npy"
    raw = bytearray(post.read_bytes())
    raw[-1] ^= 0xFF  # same size, one flipped byte: only the checksum sees it
    post.write_bytes(bytes(raw))
    p = rs("check", str(tmp_path / "idx"))
    assert p.returncode == 2 and "post_docs.npy: checksum differs" in p.stderr and "rankstack index" in p.stderr
    post.write_bytes(bytes(raw[:-10]))  # truncated: every open sees it, not only check
    from rankstack.index.bm25 import BM25Index

    with pytest.raises(FormatError, match=r"post_docs.npy: .* bytes, checksums.json says"):
        BM25Index.load(tmp_path / "idx" / "bm25")
    p = rs("search", str(tmp_path / "idx"), str(DL19 / "queries.tsv"), "-o", str(tmp_path / "run"))
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "post_docs.npy" in p.stderr


def test_a_damaged_cache_entry_is_computed_again(tmp_path):
    from rankstack.stages import BuildContext, Cached, build_stage

    coll = _collection()
    st = Cached(build_stage({"stage": "bm25", "k": 5}, BuildContext(coll, tmp_path / "c")), tmp_path / "runs")
    first = st(coll.queries)
    (entry,) = (tmp_path / "runs").glob("*.json")
    entry.write_text(entry.read_text()[:40])  # truncated
    with pytest.warns(UserWarning, match="a damaged cache entry"):
        again = st(coll.queries)
    assert again.to_dict() == first.to_dict() and st.misses == 2 and st.hits == 0
    assert st(coll.queries).stats["cache"] == "hit"  # rewritten whole


# -- #16 remainder: encodings in a manifest, ids bounded from Python -----------------------------------------
def test_a_finished_encoding_has_a_manifest_that_every_load_checks(tmp_path):
    from rankstack.index.dense import encode_corpus, load_embeddings
    from rankstack.testing import _bi_encoder

    docs = list(_collection().docs.values())
    enc = tmp_path / "enc"
    assert encode_corpus(docs, enc, _bi_encoder(), shard_size=8, progress=False)
    man = json.loads((enc / "checksums.json").read_text())
    assert man["kind"] == "encoding" and "shards/00000.npy" in man["files"] and "ids.txt" in man["files"]
    ids, emb = load_embeddings(enc)
    p = rs("check", str(enc))
    assert p.returncode == 0 and "encoding" in p.stdout and "sizes and checksums ok" in p.stdout, p.stderr
    shard = enc / "shards" / "00000.npy"
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF  # the same size: only the full check sees it
    shard.write_bytes(bytes(raw))
    p = rs("check", str(enc))
    assert p.returncode == 2 and "00000.npy: checksum differs" in p.stderr and "encode again" in p.stderr
    shard.write_bytes(bytes(raw[:-16]))  # truncated: every load sees it
    with pytest.raises(FormatError, match=r"shards/00000.npy: .* bytes, checksums.json says"):
        load_embeddings(enc)


def test_bm25_build_from_python_bounds_document_ids():
    from rankstack.errors import ConfigError
    from rankstack.index.bm25 import BM25Index

    docs = [Document("d1", "some text"), Document("x" * 2019, "other text")]
    with pytest.raises(ConfigError, match=r"document #2: document id of 2,019 characters .* limited to 256"):
        BM25Index.build(docs, None, progress=False)
    with pytest.raises(ConfigError, match=r"document #1: document id 'a b' contains U\+0020 SPACE"):
        BM25Index.build([Document("a b", "text")], None, progress=False)
