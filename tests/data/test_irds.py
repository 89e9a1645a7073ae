"""The ir_datasets adapter.

No ir_datasets data can be downloaded here, so the adapter is tested on a real ir_datasets ``Dataset``
assembled from ir_datasets' own Cranfield classes reading the local Cranfield files (its code, our
files), plus a field-mapping unit test on ir_datasets' namedtuple record classes.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

from rankstack.data.formats import load_collection
from rankstack.data.irds import from_ir_datasets, irds_doc, irds_query

CRAN = Path(__file__).resolve().parents[2] / "data" / "cranfield"


class _Local:
    def __init__(self, p):
        self.p = p

    @contextmanager
    def stream(self):
        with open(self.p, "rb") as f:
            yield f

    def path(self, force=True):
        return self.p


def test_from_ir_datasets_cranfield(tmp_path, monkeypatch):
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path))
    pytest.importorskip("ir_datasets")
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.datasets.cranfield import CranfieldDocs, CranfieldQrels, CranfieldQueries

    ds = Dataset(CranfieldDocs(_Local(CRAN / "cran.all.1400")), CranfieldQueries(_Local(CRAN / "cran.qry")),
                 CranfieldQrels(_Local(CRAN / "cran.qrels")))
    c = from_ir_datasets(ds, name="cranfield")
    ours = load_collection(CRAN, cranfield_scale="raw")  # ir_datasets keeps the -1 grades
    assert c.docs == ours.docs
    assert c.queries == ours.queries
    assert c.qrels.to_dict() == ours.qrels.to_dict()


def test_field_mapping():
    pytest.importorskip("ir_datasets")
    from ir_datasets.formats import GenericDoc, GenericQuery, TrecQuery

    assert irds_doc(GenericDoc("d1", "body")).text == "body"
    q = TrecQuery("301", " International Crime ", "Identify organizations.", "narr")
    assert irds_query(q).text == "International Crime"
    assert irds_query(q, "title+desc").text == "International Crime Identify organizations."
    assert irds_query(q, "desc").text == "Identify organizations."
    assert irds_query(GenericQuery("1", "what")).text == "what"
    with pytest.raises(ValueError, match="no doc_id field"):
        irds_doc(GenericQuery("1", "x"))
