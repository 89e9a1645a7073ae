"""Data layer: records, readers and writers, the disk-backed document store, known datasets."""

from rankstack.data.docstore import DocStore
from rankstack.data.formats import (
    FormatError,
    load_collection,
    read_docs,
    read_qrels,
    read_queries,
    read_run,
    write_qrels,
    write_queries,
    write_run,
)
from rankstack.data.records import Collection, Document, Qrel, Qrels, Query, Run, ScoredDoc

__all__ = [
    "Collection", "DocStore", "Document", "FormatError", "Qrel", "Qrels", "Query", "Run", "ScoredDoc",
    "load_collection", "read_docs", "read_qrels", "read_queries", "read_run", "write_qrels",
    "write_queries", "write_run",
]
