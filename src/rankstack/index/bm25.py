"""BM25 that scores exactly as Lucene 9 / Anserini do.

Anserini's BM25 baselines (and therefore Pyserini's) use Lucene's ``BM25Similarity``:

* IDF ``log(1 + (docCount - df + 0.5) / (df + 0.5))`` (always positive), where ``docCount`` counts
  the documents with at least one indexed term;
* a term's score ``idf * boost * tf / (tf + k1 * (1 - b + b * dl / avgdl))``, computed in 32-bit
  floats as ``w - w / (1 + tf * normInverse)`` with ``w = boost * idf``;
* the document length ``dl`` stored *lossily*: ``SmallFloat.intToByte4(length)`` keeps 24 exact
  small values and 4 significant bits above, decoded through a 256-entry table
  (``byte4ToInt``); ``avgdl`` is exact (``sumTotalTermFreq / docCount``);
* a query is a bag of words: each distinct analysed term is one clause, boosted by how many times it
  occurs in the query (Anserini's ``BagOfWordsQueryGenerator``); clause scores are summed in double
  precision and rounded to float.

:class:`BM25Index` reproduces all of this with numpy (postings in CSR form, term-major, stored as
``.npy`` files that are memory-mapped on load) and :class:`~rankstack.index.analysis.EnglishAnalyzer`
reproduces Anserini's analyzer, so on SciFact the scores equal Anserini's to float precision and
nDCG@10 is Anserini's 0.6789 (see ``docs/bench/bm25.md``). ``k1`` and ``b`` can be changed at query
time (the index stores term frequencies and lengths, not precomputed weights). ``norms="exact"``
uses exact document lengths instead (Robertson's BM25 with Lucene's IDF, what ``bm25s``'s
``method="lucene"`` computes).

Ranking order: score descending, ties by document id descending -- trec_eval's order, so cutting a
run to ``k`` (``run.cut(k)``) gives the same documents as retrieving with ``k``. (Lucene itself
breaks ties by index order; only documents with equal 32-bit scores are affected.)

Query kernels: :meth:`BM25Index.search` and :meth:`BM25Index.search_many` run a compiled kernel
(:mod:`rankstack.index._bm25_kernel`, numba: ``pip install 'rankstack[fast]'``) when numba is
installed, else numpy. Both give identical results, bit for bit (same float32 clause scores, same
float64 summation order, same tie rule at the cut). ``kernel="numba"`` requires the compiled one,
``kernel="numpy"`` forces the numpy reference; set it per index (``index.kernel = ...``) or per
call. The numpy path materialises a dense score array per query (a ``(queries, documents)`` matrix
per batch); the compiled one touches only the matching documents, one block of document ids at a
time (cache blocking: a per-thread float64 accumulator and an int32 scratch array of one block,
``_KERNEL_BLOCK`` documents, reset where used; the block size does not change the results) and
selects the top ``k`` by quickselect on the same int64 keys as :meth:`BM25Index._top`. It also keeps
every posting's float32 clause score for a boost of 1 at the last ``k1``/``b``/norms used
(``index.clause_cache``, on by default: 4 bytes a posting, e.g. 371 MiB for 97 M postings, computed
on the first query with those parameters, 0.2-0.3 s CPU at that size, about 1 s from a memory-mapped
index not yet in memory; same bits as computing them per query; calls that alternate k1/b/norms
recompute it each time, so set it to ``False`` for those, or to save the memory). Batches loop over
the queries inside the kernel: temporaries stay bounded by ``num_docs`` plus the requested output.
numba compiles the kernel on first use (a few seconds) and caches it on disk (``cache=True``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from rankstack import registry
from rankstack.data.formats import ids as ids_rules
from rankstack.data.records import Document
from rankstack.errors import ConfigError, FormatError, MissingDependencyError
from rankstack.index.analysis import MAX_TOKEN_LENGTH, EnglishAnalyzer
from rankstack.manifest import verify, write_manifest
from rankstack.optional import require
from rankstack.progress import Bar

__all__ = [
    "BM25Index",
    "LENGTH_TABLE",
    "byte4_to_int",
    "int_to_byte4",
]

FORMAT = "rankstack-bm25/1"
_FIELDS = ("title+text", "text", "title")
_NORMS = ("lucene", "exact")
_KERNELS = ("auto", "numba", "numpy")
#: output entries (queries x k) one compiled batch may hold; bounds search_many's temporaries
_OUT_BUDGET = 1 << 22
#: documents the compiled kernel scores at a time (cache blocking: its float64 accumulator and the
#: block's norms stay in L2); any value >= 1 gives the same results
_KERNEL_BLOCK = 1 << 15

_kernel_module: Any = None  # the compiled kernels' module, or the MissingDependencyError met importing it


def _numba_kernels(required: bool) -> Any:
    """:mod:`rankstack.index._bm25_kernel` if numba is installed; else ``None`` (or raise if ``required``)."""
    global _kernel_module
    if _kernel_module is None:
        try:
            require("numba", "fast")
        except MissingDependencyError as e:
            _kernel_module = e
        else:
            from rankstack.index import _bm25_kernel

            _kernel_module = _bm25_kernel
    if isinstance(_kernel_module, MissingDependencyError):
        if required:
            raise MissingDependencyError(f"BM25 kernel='numba': {_kernel_module}")
        return None
    return _kernel_module

# -- Lucene's SmallFloat length encoding -------------------------------------------------------------

_NUM_FREE_VALUES = 24  # 255 - longToInt4(Integer.MAX_VALUE)


def int_to_byte4(lengths: np.ndarray | Sequence[int] | int) -> np.ndarray:
    """Lucene's ``SmallFloat.intToByte4``: encode non-negative ints into one byte (vectorised).

    Values below 24 are kept exactly; larger ones keep their 4 most significant bits
    (``longToInt4(i - 24)``, a float with a 4-bit mantissa and implicit leading one).
    """
    x = np.asarray(lengths, dtype=np.int64)
    if (x < 0).any():
        raise ConfigError("lengths must be >= 0")
    v = x - _NUM_FREE_VALUES
    pos = np.maximum(v, 1)
    num_bits = np.frexp(pos.astype(np.float64))[1].astype(np.int64)  # bit length, exact below 2**53
    shift = np.maximum(num_bits - 4, 0)
    enc = np.where(num_bits < 4, v, ((v >> shift) & 0x07) | ((shift + 1) << 3))
    return np.where(x < _NUM_FREE_VALUES, x, _NUM_FREE_VALUES + enc).astype(np.uint8)


def byte4_to_int(codes: np.ndarray | Sequence[int] | int) -> np.ndarray:
    """Lucene's ``SmallFloat.byte4ToInt``: decode :func:`int_to_byte4` (vectorised)."""
    i = np.asarray(codes, dtype=np.int64) & 0xFF
    v = i - _NUM_FREE_VALUES
    bits = v & 0x07
    shift = (v >> 3) - 1
    decoded = np.where(shift == -1, bits, (bits | 0x08) << np.maximum(shift, 0))
    return np.where(i < _NUM_FREE_VALUES, i, _NUM_FREE_VALUES + decoded)


#: ``BM25Similarity.LENGTH_TABLE``: the document length each norm byte stands for
LENGTH_TABLE: np.ndarray = byte4_to_int(np.arange(256))


def _contents(doc: Any, fields: str) -> tuple[str, str]:
    if isinstance(doc, Document):
        did, title, text = doc.id, doc.title, doc.text
    else:
        try:
            did, text = doc.id, doc.text
        except AttributeError:
            raise TypeError(f"BM25Index.build needs Document records (id, text, title), got {type(doc).__name__}") from None
        title = getattr(doc, "title", "") or ""
    if fields == "title+text":
        body = f"{title} {text}" if title and text else (title or text)
    elif fields == "text":
        body = text
    else:
        body = title
    return str(did), body or ""


def _sha(*parts: bytes | np.ndarray) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


class BM25Index:
    """An inverted index with Lucene's BM25 statistics, stored as memory-mappable ``.npy`` files.

    Build with :meth:`build`, open with :meth:`load`. Arrays (``N`` documents, ``V`` terms,
    ``P`` postings):

    * ``doc_ids`` (``N``, unicode), ``doc_lengths`` (``N``, int32: terms indexed per document),
      ``doc_norms`` (``N``, uint8: Lucene's ``intToByte4(length)``), ``id_rank`` (``N``, int32: the
      rank of each id in string order, for trec_eval tie breaking);
    * ``term_offsets`` (``V + 1``, int64) into ``post_docs`` (``P``, int32, ascending per term) and
      ``post_tfs`` (``P``, float32);
    * ``vocab``: term -> term id (terms sorted), and ``meta`` (parameters, statistics, analyzer
      configuration, fingerprint).
    """

    def __init__(
        self,
        *,
        meta: dict[str, Any],
        vocab: dict[str, int],
        arrays: dict[str, np.ndarray],
        analyzer: Any,
        path: Path | None = None,
    ) -> None:
        self.meta = meta
        self.vocab = vocab
        self.analyzer = analyzer
        self.path = path
        self.doc_ids: np.ndarray = arrays["doc_ids"]
        self.doc_lengths: np.ndarray = arrays["doc_lengths"]
        self.doc_norms: np.ndarray = arrays["doc_norms"]
        self.id_rank: np.ndarray = arrays["id_rank"]
        self.term_offsets: np.ndarray = arrays["term_offsets"]
        self.post_docs: np.ndarray = arrays["post_docs"]
        self.post_tfs: np.ndarray = arrays["post_tfs"]
        self._doc_index: dict[str, int] | None = None
        self._doc_id_list: list[str] | None = None
        self._norm_cache: dict[tuple[float, float, str], np.ndarray] = {}
        #: query kernel: "auto" (compiled if numba is installed), "numba" or "numpy"; see the module doc
        self.kernel = "auto"
        self._workspace = threading.local()  # per-thread accumulator of the compiled kernel
        self._kernel_arrays: tuple[np.ndarray, ...] | None = None
        #: compiled kernel: keep every posting's float32 clause score for a boost of 1 at the current
        #: k1/b/norms (4 bytes a posting, computed on first use; same bits as computing them per query)
        self.clause_cache = True
        self._clauses: tuple[tuple[float, float, str], np.ndarray] | None = None
        self._clauses_lock = threading.Lock()

    # -- statistics ---------------------------------------------------------------------------
    num_docs = property(lambda self: int(self.meta["num_docs"]), doc="documents in the index")
    k1 = property(lambda self: float(self.meta["k1"]), doc="the index's default k1")
    b = property(lambda self: float(self.meta["b"]), doc="the index's default b")

    @property
    def doc_count(self) -> int:
        """Lucene's ``docCount``: documents with at least one indexed term."""
        return int(self.meta["doc_count"])

    @property
    def avgdl(self) -> float:
        """Lucene's ``avgFieldLength``: ``(float) (sumTotalTermFreq / (double) docCount)``."""
        return float(np.float32(self.meta["sum_total_term_freq"] / max(self.doc_count, 1)))

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])

    def __len__(self) -> int:
        return self.num_docs

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"BM25Index(docs={self.num_docs}, terms={len(self.vocab)}, k1={self.k1}, b={self.b}{where})"

    def doc_id_list(self) -> list[str]:
        """Document ids as a Python list (built once; faster to index than the numpy array)."""
        if self._doc_id_list is None:
            self._doc_id_list = self.doc_ids.tolist()
        return self._doc_id_list

    def doc_index(self, doc_id: str) -> int:
        """Position of ``doc_id`` in the index (``KeyError`` if absent)."""
        if self._doc_index is None:
            self._doc_index = {d: i for i, d in enumerate(self.doc_id_list())}
        return self._doc_index[doc_id]

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        docs: Iterable[Document],
        path: str | os.PathLike[str] | None = None,
        k1: float = 0.9,
        b: float = 0.4,
        analyzer: Any = None,
        fields: str = "title+text",
        progress: bool = True,
        batch_size: int = 8192,
    ) -> BM25Index:
        """Index ``docs`` and write the index to ``path`` (a directory; ``None`` keeps it in memory).

        ``k1``/``b`` are the defaults stored with the index (Anserini's 0.9/0.4); retrievers can
        override them. ``analyzer`` defaults to :class:`EnglishAnalyzer` (Anserini's default English
        analyzer); anything with ``encode_many`` and ``config`` works. ``fields``: ``"title+text"``
        (title and text indexed together as one field, Pyserini's BEIR "flat" indexes),
        ``"text"`` or ``"title"``. Documents whose indexed text is empty are kept (they can never be
        retrieved) and do not count in ``docCount``, as in Lucene. Duplicate ids raise ``ValueError``.
        """
        if fields not in _FIELDS:
            raise ConfigError(f"fields must be one of {_FIELDS}, got {fields!r}")
        _check_params(k1, b)
        analyzer = analyzer if analyzer is not None else EnglishAnalyzer()
        vocab: dict[str, int] = {}
        ids: list[str] = []
        term_chunks: list[np.ndarray] = []
        doc_chunks: list[np.ndarray] = []
        tf_chunks: list[np.ndarray] = []
        len_chunks: list[np.ndarray] = []
        bar = Bar(None, "indexing", unit="doc", enabled=progress)
        batch_ids: list[str] = []
        batch_texts: list[str] = []

        def flush() -> None:
            if not batch_ids:
                return
            term_ids, lengths = analyzer.encode_many(batch_texts, vocab, grow=True)
            base = len(ids) - len(batch_ids)
            local = np.repeat(np.arange(len(batch_ids), dtype=np.int64), lengths)
            # (term, doc) pairs with their counts, term-major
            keys, tfs = np.unique(term_ids * len(batch_ids) + local, return_counts=True)
            term_chunks.append((keys // len(batch_ids)).astype(np.int32 if len(vocab) < 2**31 else np.int64))
            doc_chunks.append((keys % len(batch_ids) + base).astype(np.int32))
            tf_chunks.append(tfs.astype(np.float32))
            len_chunks.append(lengths.astype(np.int32))
            bar.advance(len(batch_ids))
            batch_ids.clear()
            batch_texts.clear()

        truncated0 = getattr(analyzer, "truncated_tokens", 0)
        for doc in docs:
            did, body = _contents(doc, fields)
            if not (0 < len(did) <= ids_rules.max_id_length() and did.isprintable() and " " not in did):
                problem = ids_rules.id_problem(did, "document")
                if problem:  # the readers refuse these too; here for documents given from Python
                    raise ConfigError(f"BM25 index: document #{len(ids) + 1}: {problem}")
            ids.append(did)
            batch_ids.append(did)
            batch_texts.append(body)
            if len(batch_ids) >= batch_size:
                flush()
        flush()
        bar.close()
        cut = getattr(analyzer, "truncated_tokens", 0) - truncated0
        if cut:
            warnings.warn(f"BM25 index: {cut} distinct tokens longer than {MAX_TOKEN_LENGTH} characters were cut "
                          f"to that length", UserWarning, stacklevel=2)

        n = len(ids)
        if len(set(ids)) != n:
            seen: set[str] = set()
            dup = next(d for d in ids if d in seen or seen.add(d))  # type: ignore[func-returns-value]
            raise ConfigError(f"duplicate document id {dup!r} in the collection being indexed")
        # canonical term ids: sorted terms (independent of batching)
        terms_by_id = np.empty(len(vocab), dtype=object)
        for t, i in vocab.items():
            terms_by_id[i] = t
        order = np.argsort(terms_by_id.astype(str), kind="stable") if len(vocab) else np.zeros(0, np.int64)
        new_id = np.empty(len(vocab), dtype=np.int32 if len(vocab) < 2**31 else np.int64)
        new_id[order] = np.arange(len(vocab))
        terms_sorted = terms_by_id[order].tolist()

        # peak memory: drop each temporary as soon as it is used (the chunks, then the merged arrays)
        term_all = np.concatenate(term_chunks) if term_chunks else np.zeros(0, np.int32)
        term_chunks.clear()
        term_all = new_id[term_all]
        doc_all = np.concatenate(doc_chunks) if doc_chunks else np.zeros(0, np.int32)
        doc_chunks.clear()
        tf_all = np.concatenate(tf_chunks) if tf_chunks else np.zeros(0, np.float32)
        tf_chunks.clear()
        # stable sort by term keeps documents ascending within each posting list
        perm = np.argsort(term_all, kind="stable")
        post_docs = np.ascontiguousarray(doc_all[perm])
        del doc_all
        post_tfs = np.ascontiguousarray(tf_all[perm])
        del tf_all, perm
        df = np.bincount(term_all, minlength=len(vocab))
        del term_all
        term_offsets = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(df, out=term_offsets[1:])

        lengths = np.concatenate(len_chunks) if len_chunks else np.zeros(0, np.int32)
        doc_ids = np.array(ids, dtype=str) if ids else np.zeros(0, dtype="<U1")
        id_rank = np.empty(n, dtype=np.int32)
        id_rank[np.argsort(doc_ids, kind="stable")] = np.arange(n, dtype=np.int32)
        arrays = {
            "doc_ids": doc_ids,
            "doc_lengths": lengths,
            "doc_norms": int_to_byte4(lengths),
            "id_rank": id_rank,
            "term_offsets": term_offsets,
            "post_docs": post_docs.astype(np.int32, copy=False),
            "post_tfs": post_tfs,
        }
        vocab_sorted = {t: i for i, t in enumerate(terms_sorted)}
        meta: dict[str, Any] = {
            "format": FORMAT,
            "k1": float(k1),
            "b": float(b),
            "fields": fields,
            "analyzer": analyzer.config(),
            "num_docs": n,
            "doc_count": int((lengths > 0).sum()),
            "sum_total_term_freq": int(lengths.sum(dtype=np.int64)),
            "num_terms": len(vocab),
            "num_postings": int(len(post_docs)),
        }
        meta["fingerprint"] = _sha(
            json.dumps({k: meta[k] for k in ("fields", "analyzer")}, sort_keys=True).encode(),
            "\n".join(terms_sorted).encode(),
            # the arrays' bytes through the buffer protocol (the same bytes as .tobytes(), without a copy)
            *(np.ascontiguousarray(arrays[k]) for k in ("doc_ids", "doc_lengths", "term_offsets", "post_docs",
                                                         "post_tfs")),
        )[:16]
        index = cls(meta=meta, vocab=vocab_sorted, arrays=arrays, analyzer=analyzer)
        if path is not None:
            index.save(path)
        return index

    # -- persistence ------------------------------------------------------------------------------
    _ARRAYS = ("doc_ids", "doc_lengths", "doc_norms", "id_rank", "term_offsets", "post_docs", "post_tfs")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to directory ``path`` (``meta.json`` last, so a partial index cannot load)."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        meta_path = p / "meta.json"
        if meta_path.exists():
            meta_path.unlink()
        for name in self._ARRAYS:
            np.save(p / f"{name}.npy", np.asarray(getattr(self, name)), allow_pickle=False)
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        (p / "vocab.txt").write_text("\n".join(terms), encoding="utf-8")
        tmp = p / "meta.json.tmp"
        tmp.write_text(json.dumps(self.meta, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, meta_path)
        write_manifest(p, [f"{n}.npy" for n in self._ARRAYS] + ["vocab.txt", "meta.json"], "bm25",
                       "rebuild it: rankstack index COLLECTION -o DIR (or delete it from the cache)")
        self.path = p
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str], mmap: bool = True, analyzer: Any = None) -> BM25Index:
        """Open an index written by :meth:`build`/:meth:`save`; ``mmap=True`` memory-maps the arrays.

        The analyzer is rebuilt from the stored configuration unless one is given.
        """
        p = Path(path)
        meta_path = p / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{p} is not a rankstack BM25 index: {meta_path} is missing")
        verify(p)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FormatError(f"{meta_path}: not valid JSON ({e}); rebuild the index") from None
        if meta.get("format") != FORMAT:
            raise ConfigError(f"{meta_path}: index format {meta.get('format')!r}, this rankstack reads {FORMAT!r}")
        arrays = {}
        for name in cls._ARRAYS:
            f = p / f"{name}.npy"
            if not f.is_file():
                raise FileNotFoundError(f"BM25 index {p} is incomplete: {f.name} is missing")
            try:
                arrays[name] = np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise FormatError(f"{f}: unreadable ({e}): truncated or damaged; rebuild the index") from None
        text = (p / "vocab.txt").read_text(encoding="utf-8")
        terms = text.split("\n") if text else []
        if len(terms) != meta["num_terms"]:
            raise ConfigError(f"{p / 'vocab.txt'}: {len(terms)} terms, meta.json says {meta['num_terms']}")
        if analyzer is None:
            acfg = meta["analyzer"]
            if acfg.get("class") != "EnglishAnalyzer":
                raise ConfigError(f"{meta_path}: analyzer {acfg.get('class')!r} cannot be rebuilt; pass analyzer=")
            analyzer = EnglishAnalyzer.from_config(acfg)
        vocab = dict(zip(terms, range(len(terms))))
        return cls(meta=meta, vocab=vocab, arrays=arrays, analyzer=analyzer, path=p)

    # -- scoring ----------------------------------------------------------------------------------
    def query_terms(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Distinct indexed term ids of a query and their boosts (occurrences in the query)."""
        ids, _ = self.analyzer.encode_many([text], self.vocab, grow=False)
        if len(ids) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        uniq, counts = np.unique(ids, return_counts=True)
        return uniq, counts.astype(np.float32)

    def _norm_inverse(self, k1: float, b: float, norms: str, per_doc: bool = True) -> np.ndarray:
        """Per-document ``1 / (k1 * ((1 - b) + b * dl / avgdl))`` in float32, as Lucene caches it.

        ``per_doc=False`` with Lucene norms: the 256 values per norm byte instead (Lucene's cache;
        the per-document array is this table indexed by ``doc_norms``).
        """
        per_doc = per_doc or norms != "lucene"
        key = (float(k1), float(b), norms if per_doc else "lucene-table")
        cached = self._norm_cache.get(key)
        if cached is not None:
            return cached
        k1f, bf, avgdl = np.float32(k1), np.float32(b), np.float32(self.avgdl)
        if norms == "lucene":
            lengths = LENGTH_TABLE.astype(np.float32)
        else:
            lengths = np.asarray(self.doc_lengths, dtype=np.float32)
        with np.errstate(divide="ignore"):
            table = np.float32(1) / (k1f * ((np.float32(1) - bf) + bf * lengths / avgdl))
        out = table[np.asarray(self.doc_norms)] if norms == "lucene" and per_doc else table
        out.flags.writeable = False  # shared by every call (and the compiled kernel's one signature)
        self._norm_cache[key] = out
        return out

    def _idf(self, term_ids: np.ndarray) -> np.ndarray:
        offsets = np.asarray(self.term_offsets)  # a plain view of a memmap: cheaper to index
        df = (offsets[term_ids + 1] - offsets[term_ids]).astype(np.float64)
        n = float(self.doc_count)
        return np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)

    def _postings(
        self, term_ids: np.ndarray, boosts: np.ndarray, k1: float, b: float, norms: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Postings of the given terms: (term position, doc index, float32 clause score)."""
        starts = self.term_offsets[term_ids]
        ends = self.term_offsets[term_ids + 1]
        sizes = ends - starts
        total = int(sizes.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        # gather the posting ranges (contiguous slices: plain memory copies, also from a memmap)
        which = np.repeat(np.arange(len(term_ids)), sizes)
        pd, pt = self.post_docs, self.post_tfs
        spans = list(zip(starts.tolist(), ends.tolist()))
        docs = np.concatenate([pd[s:e] for s, e in spans])
        tfs = np.concatenate([pt[s:e] for s, e in spans])
        weight = (boosts * self._idf(term_ids)).astype(np.float32)[which]  # Lucene: boost * idf
        ninv = self._norm_inverse(k1, b, norms)[docs]
        score = weight - weight / (np.float32(1) + tfs * ninv)
        return which, docs, score

    def score_all(self, text: str, k1: float | None = None, b: float | None = None, norms: str = "lucene") -> np.ndarray:
        """BM25 scores (float32) of every document for one query; 0 where no term matches."""
        k1, b = self._params(k1, b, norms)
        tids, boosts = self.query_terms(text)
        _, docs, score = self._postings(tids, boosts, k1, b, norms)
        return np.bincount(docs, weights=score, minlength=self.num_docs).astype(np.float32)

    def _params(self, k1: float | None, b: float | None, norms: str) -> tuple[float, float]:
        if norms not in _NORMS:
            raise ConfigError(f"norms must be one of {_NORMS}, got {norms!r}")
        k1 = self.k1 if k1 is None else float(k1)
        b = self.b if b is None else float(b)
        _check_params(k1, b)
        return k1, b

    def _top(self, scores: np.ndarray, k: int) -> np.ndarray:
        """Indices of the top ``k`` matching documents in trec_eval order (score desc, id desc).

        One int64 key per matching document, ``(float32 bits of the score) << 32 | id rank``, orders
        exactly like (score, id): the bit patterns of positive floats are monotonic. So the tie
        rule also decides which tied documents make the cut at ``k``.
        """
        matched = np.flatnonzero(scores > 0)
        if len(matched) == 0 or k == 0:
            return matched[:0]
        key = (scores[matched].view(np.int32).astype(np.int64) << 32) | self.id_rank[matched]
        np.negative(key, out=key)
        if len(matched) > k:
            part = np.argpartition(key, k - 1)[:k]
            matched, key = matched[part], key[part]
        return matched[np.argsort(key)]

    # -- stages over the index (PyTerrier's artifact idea) -------------------------------------
    def retriever(self, **params: Any) -> Any:
        """The ``bm25`` retriever over this index (keywords as :class:`~rankstack.stages.bm25.BM25Retriever`)."""
        return registry.create("bm25", index=self, **params)

    def reranker(self, **params: Any) -> Any:
        """The ``bm25-rerank`` stage over this index (re-scores candidates without their texts)."""
        return registry.create("bm25-rerank", index=self, **params)

    def _use_numba(self, kernel: str | None) -> Any:
        """The compiled kernels' module for this call, or ``None`` for the numpy path."""
        kernel = self.kernel if kernel is None else kernel
        if kernel not in _KERNELS:
            raise ConfigError(f"BM25 kernel must be one of {_KERNELS}, got {kernel!r}")
        return None if kernel == "numpy" else _numba_kernels(required=kernel == "numba")

    def _compiled_top(
        self, kern: Any, tids: np.ndarray, q_ptr: np.ndarray, counts: np.ndarray, k: int, k1: float, b: float,
        norms: str,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top ``k`` of each query (terms ``tids[q_ptr[q]:q_ptr[q+1]]``, ascending; ``counts``: boosts)."""
        nq = len(q_ptr) - 1
        k = min(k, self.num_docs)
        if k == 0 or self.num_docs == 0:
            return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in range(nq)]
        if self._kernel_arrays is None:
            arrs = []
            for a, dt in ((self.term_offsets, np.int64), (self.post_docs, np.int32), (self.post_tfs, np.float32),
                          (self.id_rank, np.int32)):
                v = np.ascontiguousarray(np.asarray(a), dtype=dt).view()
                v.flags.writeable = False  # one compiled signature for in-memory and memory-mapped indexes
                arrs.append(v)
            rank_to_doc = np.empty(self.num_docs, np.int64)
            rank_to_doc[arrs[3]] = np.arange(self.num_docs)
            arrs.append(rank_to_doc)
            self._kernel_arrays = tuple(arrs)
            codes = np.ascontiguousarray(np.asarray(self.doc_norms), dtype=np.uint8).view()
            codes.flags.writeable = False
            self._kernel_codes = codes
            self._no_codes = codes[:0]
            self._no_clauses = np.zeros(0, np.float32)
            self._no_clauses.flags.writeable = False
        offsets, post_docs, post_tfs, id_rank, rank_to_doc = self._kernel_arrays
        # Lucene norms: a 256-entry table and one byte a document (less memory traffic than a float each)
        ninv = self._norm_inverse(k1, b, norms, per_doc=False)
        codes = self._kernel_codes if norms == "lucene" else self._no_codes
        ws = self._workspace
        block = max(1, min(self.num_docs, _KERNEL_BLOCK))
        if getattr(ws, "acc", None) is None or len(ws.acc) != block:
            ws.acc = np.zeros(block, np.float64)  # all zeros between calls (the kernel resets it)
            ws.scratch = np.empty(block + 1, np.int32)  # + 1: the kernel's branch-free append
        weights = (counts.astype(np.float32, copy=False) * self._idf(tids)).astype(np.float32, copy=False)
        tids = np.ascontiguousarray(tids, dtype=np.int64)
        use_pre = np.asarray(counts == 1)  # boost 1: the clause scores kept per posting
        pre = self._clause_scores(kern, k1, b, norms, ninv, codes) if self.clause_cache and use_pre.any() else None
        if pre is None:
            pre = self._no_clauses
            use_pre = np.zeros(len(tids), np.bool_)
        out: list[tuple[np.ndarray, np.ndarray]] = []
        step = max(1, _OUT_BUDGET // k)
        for lo in range(0, nq, step):
            hi = min(nq, lo + step)
            ptr = np.ascontiguousarray(q_ptr[lo : hi + 1] - q_ptr[lo], dtype=np.int64)
            sl = slice(int(q_ptr[lo]), int(q_ptr[hi]))
            docs = np.empty((hi - lo) * k, np.int64)
            scores = np.empty((hi - lo) * k, np.float32)
            got = np.empty(hi - lo, np.int64)
            kern.top_k_many(offsets, post_docs, post_tfs, codes, ninv, pre, id_rank, rank_to_doc, ptr, tids[sl],
                            weights[sl], use_pre[sl], k, ws.acc, ws.scratch, docs, scores, got)
            if hi - lo == 1:
                n = int(got[0])
                out.append((docs[:n], scores[:n]))
                continue
            for q, n in enumerate(got.tolist()):
                out.append((docs[q * k : q * k + n].copy(), scores[q * k : q * k + n].copy()))
        return out

    def _clause_scores(
        self, kern: Any, k1: float, b: float, norms: str, ninv: np.ndarray, codes: np.ndarray
    ) -> np.ndarray:
        """Every posting's float32 clause score for a boost of 1 at these parameters (kept for the
        last parameters used: ``P`` floats; ``clause_cache = False`` turns it off)."""
        key = (float(k1), float(b), norms)
        with self._clauses_lock:
            if self._clauses is None or self._clauses[0] != key:
                self._clauses = None  # free the previous ones first
                offsets, post_docs, post_tfs = self._kernel_arrays[:3]  # type: ignore[index]
                idf = self._idf(np.arange(len(offsets) - 1))
                out = np.empty(len(post_docs), np.float32)
                kern.clause_scores(offsets, post_docs, post_tfs, codes, ninv, idf, out)
                out.flags.writeable = False
                self._clauses = (key, out)
            return self._clauses[1]

    def search(
        self, text: str, k: int = 1000, k1: float | None = None, b: float | None = None, norms: str = "lucene",
        kernel: str | None = None,
    ) -> list[tuple[str, float]]:
        """The top ``k`` ``(doc_id, score)`` pairs for one query, best first.

        ``kernel``: ``"auto"``/``"numba"``/``"numpy"`` for this call (default: ``self.kernel``).
        """
        if k < 0:
            raise ConfigError(f"k must be >= 0, got {k}")
        kern = self._use_numba(kernel)
        if kern is None:
            scores = self.score_all(text, k1, b, norms)
            top = self._top(scores, k)
            return list(zip(_pick(self.doc_id_list(), top), scores[top].tolist()))
        k1, b = self._params(k1, b, norms)
        tids, boosts = self.query_terms(text)
        [(top, sc)] = self._compiled_top(kern, tids, np.array([0, len(tids)], np.int64), boosts, k, k1, b, norms)
        return list(zip(_pick(self.doc_id_list(), top), sc.tolist()))

    def search_many(
        self,
        texts: Sequence[str],
        k: int = 1000,
        k1: float | None = None,
        b: float | None = None,
        norms: str = "lucene",
        batch_size: int | None = None,
        kernel: str | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Top ``k`` (document indices, float32 scores) for each query, queries scored in batches.

        Compiled kernel (``kernel``, default ``self.kernel``; see the module doc): queries are
        analysed ``batch_size`` at a time (default 4096) and scored one after the other inside the
        kernel, with temporaries bounded by ``num_docs`` plus the requested output. numpy path: a
        batch's scores are one dense ``(queries, documents)`` matrix filled by a single
        ``np.bincount``; ``batch_size`` defaults to what fits in about 128 MB.
        """
        if k < 0:
            raise ConfigError(f"k must be >= 0, got {k}")
        k1, b = self._params(k1, b, norms)
        kern = self._use_numba(kernel)
        n = max(self.num_docs, 1)
        if batch_size is None:
            batch_size = max(1, min(len(texts), 4096 if kern is not None else (1 << 24) // n))
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for lo in range(0, len(texts), batch_size):
            chunk = texts[lo : lo + batch_size]
            if kern is not None and len(chunk) == 1:
                tids, boosts = self.query_terms(chunk[0])
                out.extend(self._compiled_top(kern, tids, np.array([0, len(tids)], np.int64), boosts, k, k1, b, norms))
                continue
            # analyse the whole batch in one call, then split per query
            ids, lengths = self.analyzer.encode_many(list(chunk), self.vocab, grow=False)
            qidx = np.repeat(np.arange(len(chunk)), lengths)
            keys, counts = np.unique(qidx * (len(self.vocab) + 1) + ids, return_counts=True)
            q_of = keys // (len(self.vocab) + 1)
            tids = keys % (len(self.vocab) + 1)
            if kern is not None:
                q_ptr = np.zeros(len(chunk) + 1, np.int64)
                np.cumsum(np.bincount(q_of, minlength=len(chunk)), out=q_ptr[1:])
                out.extend(self._compiled_top(kern, tids, q_ptr, counts, k, k1, b, norms))
                continue
            which, docs, score = self._postings(tids, counts.astype(np.float32), k1, b, norms)
            flat = q_of[which] * n + docs
            dense = np.bincount(flat, weights=score, minlength=len(chunk) * n).astype(np.float32)
            dense = dense.reshape(len(chunk), n)
            for row in dense:
                top = self._top(row, k)
                out.append((top, row[top]))
        return out


def _pick(items: list[str], idx: np.ndarray) -> Sequence[str]:
    """``[items[i] for i in idx]``, via ``operator.itemgetter`` (several times faster)."""
    if len(idx) == 0:
        return ()
    if len(idx) == 1:
        return (items[int(idx[0])],)
    return itemgetter(*idx.tolist())(items)


def _check_params(k1: float, b: float) -> None:
    if not (k1 >= 0):
        raise ConfigError(f"BM25 k1 must be >= 0, got {k1}")
    if not (0 <= b <= 1):
        raise ConfigError(f"BM25 b must be in [0, 1], got {b}")


def open_index(index: BM25Index | str | os.PathLike[str]) -> BM25Index:
    """``index`` itself, or the index saved in that directory."""
    return index if isinstance(index, BM25Index) else BM25Index.load(index)
