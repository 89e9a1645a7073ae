"""Readers and writers for the file formats of IR test collections.

Every reader returns the records of :mod:`rankstack.data.records` and takes an explicit ``format=``
name (``"auto"`` sniffs the first lines with :func:`detect_format`). Malformed input raises
:class:`FormatError` whose message (one line) starts with ``path:line:`` (1-based), the line of the
first problem in the file. Blank lines are skipped; every other line is either parsed or an error --
nothing is dropped silently. Ids (query and document ids of every format) are checked by one rule,
:mod:`~rankstack.data.formats.ids`: no whitespace, control or invisible character, at most
:data:`MAX_ID_LENGTH` (256) characters (``rankstack.data.formats.ids.MAX_ID_LENGTH`` can be raised). Files ending in ``.gz``
(or starting with the gzip magic bytes) are decompressed transparently. Lines are split on ``\\n``
only (a ``\\r`` before it is removed), so CRLF files read the same as LF files.

Formats (each described in its module's docstring)
--------------------------------------------------
* documents, :func:`read_docs` (:mod:`.docs`): ``jsonl``/``beir``, ``tsv`` (MS MARCO, DPR), ``trec``
  ``<DOC>``, ``smart``;
* queries, :func:`read_queries` (:mod:`.queries`): ``jsonl``/``beir``, ``tsv``, ``trec`` topics, ``smart``;
* qrels, :func:`read_qrels` (:mod:`.qrels`): ``trec``, ``beir``, ``cranfield``, ``pairs``;
* runs, :func:`read_run` / :func:`write_run` (:mod:`.runs`): TREC ``qid Q0 docid rank score tag``;
* SMART records (:mod:`.smart`) and collection directories, :func:`load_collection` (:mod:`.collection`).

Modules
-------
The readers are split by record kind; everything is re-exported here, so import from
``rankstack.data.formats``:

* :mod:`~rankstack.data.formats._lines` -- opening files (gzip), the one line reader all parsers use
  (decoding, ``path:line:`` errors), sniffing;
* :mod:`~rankstack.data.formats.ids` -- the rule every id read follows, :data:`MAX_ID_LENGTH`;
* :mod:`~rankstack.data.formats.detect` -- format names and :func:`detect_format`;
* :mod:`~rankstack.data.formats.smart` -- SMART ``.I`` records;
* :mod:`~rankstack.data.formats.docs`, :mod:`~rankstack.data.formats.queries`,
  :mod:`~rankstack.data.formats.qrels`, :mod:`~rankstack.data.formats.runs` -- the reader and writer
  of each record kind;
* :mod:`~rankstack.data.formats.collection` -- :func:`load_collection` (the only module here that
  uses the docstore).
"""

from __future__ import annotations

from rankstack.data.formats._lines import PathLike  # noqa: F401
from rankstack.data.formats.collection import load_collection
from rankstack.data.formats.detect import DOC_FORMATS, QRELS_FORMATS, QUERY_FORMATS, detect_format
from rankstack.data.formats.docs import read_docs, write_docs_jsonl
from rankstack.data.formats.ids import MAX_ID_LENGTH  # noqa: F401 (informative; change ids.MAX_ID_LENGTH)
from rankstack.data.formats.qrels import read_qrels, write_qrels
from rankstack.data.formats.queries import log, read_queries, write_queries  # noqa: F401 (log)
from rankstack.data.formats.runs import read_run, write_run
from rankstack.data.formats.smart import SmartRecord, read_smart_records

# names the single-module formats.py exposed by importing them; kept so that old imports work
from rankstack.data.records import Collection, Document, Qrels, Query, Run, ranked_items  # noqa: F401
from rankstack.errors import ConfigError, FormatError  # noqa: F401

__all__ = [
    "DOC_FORMATS",
    "QRELS_FORMATS",
    "QUERY_FORMATS",
    "FormatError",
    "SmartRecord",
    "detect_format",
    "load_collection",
    "read_docs",
    "read_qrels",
    "read_queries",
    "read_run",
    "read_smart_records",
    "write_docs_jsonl",
    "write_qrels",
    "write_queries",
    "write_run",
]
