"""DocStore: build / open / random access equals the source, errors name the missing id."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import pytest

from rankstack.data.docstore import DocStore
from rankstack.data.formats import read_docs
from rankstack.data.records import Document
from rankstack.errors import DocumentNotFoundError, DuplicateDocumentError, FormatError

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def scifact(tmp_path_factory):
    docs = list(read_docs(DATA / "scifact" / "corpus.jsonl"))
    store = DocStore.build(docs, tmp_path_factory.mktemp("ds") / "scifact", progress=False)
    return docs, store


def test_build_open_equals_source(scifact):
    docs, built = scifact
    store = DocStore.open(built.path)
    assert len(store) == 5183
    assert list(store) == [d.id for d in docs]  # build order
    assert list(store.iter_docs()) == docs
    rng = random.Random(0)
    for d in rng.sample(docs, 500):
        assert store[d.id] == d
    ids = [d.id for d in rng.sample(docs, 200)]
    assert store.get_many(ids) == [store[i] for i in ids]
    assert docs[0].id in store and "not-an-id" not in store and 4983 not in store


def test_missing_id(scifact):
    _, store = scifact
    with pytest.raises(KeyError) as e:
        store["no-such-doc"]
    assert str(e.value) == f"document 'no-such-doc' is not in the store {store.path}"
    assert store.get("no-such-doc") is None and store.get("no-such-doc", 7) == 7
    with pytest.raises(DocumentNotFoundError, match="1 document\\(s\\) not in the store .*'nope'"):
        store.get_many(["4983", "nope"])


def test_unicode_empty_and_pickle(tmp_path):
    docs = [Document("é-1", "tëxt ünïcode", "títle"), Document("b", ""), Document("c", "only text")]
    s = DocStore.build(docs, tmp_path / "u", progress=False)
    assert [s[d.id] for d in docs] == docs and list(s) == ["é-1", "b", "c"]
    assert pickle.loads(pickle.dumps(s))["é-1"] == docs[0]
    empty = DocStore.build([], tmp_path / "e", progress=False)
    assert len(empty) == 0 and list(empty) == [] and "a" not in empty


def test_duplicate_ids(tmp_path):
    with pytest.raises(DuplicateDocumentError, match="duplicate document id 'a' \\(documents #1 and #3\\)"):
        DocStore.build([Document("a", "x"), Document("b", "y"), Document("a", "z")], tmp_path / "d", progress=False)
    assert not (tmp_path / "d").exists()
    src = tmp_path / "c.tsv"
    src.write_text("1\tx\n2\ty\n\n1\tz\n")
    with pytest.raises(FormatError, match=r"c\.tsv:4: duplicate document id '1' \(first at line 1\)"):
        DocStore.from_path(src, tmp_path / "cache", progress=False)


def test_from_path_builds_once(tmp_path):
    src = DATA / "trec-dl-2019" / "collection.tsv"
    a = DocStore.from_path(src, tmp_path, progress=False)
    b = DocStore.from_path(src, tmp_path, progress=False)
    assert a.path == b.path and len(list(tmp_path.iterdir())) == 1
    assert len(b) == 4297 and b["8839920"].text.startswith("Weather In Ocho Rios Jamaica")
    assert b.meta["source"]["path"] == str(src.resolve())


def test_load_collection_with_docstore(tmp_path):
    from rankstack.data.formats import load_collection

    c = load_collection(DATA / "scifact", store="docstore", cache_dir=tmp_path)
    assert isinstance(c.docs, DocStore) and len(c.docs) == 5183 and len(c.queries) == 300
    assert c.docs["4983"].title.startswith("Microstructural development of human newborn")
