"""A disk-backed document store: ``Document`` lookup by id without holding texts in memory.

Layout of a store directory (all little-endian, numpy ``.npy`` files are memory-mapped on open)::

    meta.json        format version, count, id-map layout, source description
    text.bin         per document: UTF-8 title bytes followed by UTF-8 text bytes, concatenated
    text_off.npy     int64[n+1]  start of document i in text.bin (offsets[n] = file size)
    title_len.npy    uint32[n]   byte length of the title of document i
    ids.bin          UTF-8 document ids, concatenated in row order
    ids_off.npy      int64[n+1]  start of id i in ids.bin
    hash.npy         uint64[n]   64-bit BLAKE2b hashes of the ids, sorted
    hash_row.npy     uint32[n]   (int64 for n >= 2**32) row of each sorted hash

Lookup hashes the id, finds it with ``np.searchsorted`` in the sorted hash array and checks the
stored id bytes (so a hash collision can never return the wrong document). The id map costs 12 bytes
per document on disk (hash + row) plus the ids themselves, and nothing in the Python heap: for 8.8M
MS MARCO passages that is ~106 MB of mmapped arrays, paged in on demand, instead of a ~1 GB
``dict`` of 8.8M ``str`` keys. Building streams the documents to disk; the only per-document memory
it holds is 8 bytes of hash, 8+8 bytes of offsets and 4 bytes of title length (numpy arrays).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import sys
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, overload

import numpy as np

# one-way edge into the formats package: only the low-level document reader (formats.docs never
# imports this module; load_collection(store="docstore") in formats.collection imports it lazily)
from rankstack.data.formats.docs import read_docs
from rankstack.data.records import DocsHasher, Document, docs_fingerprint
from rankstack.errors import ConfigError, DocumentNotFoundError, DuplicateDocumentError, FormatError
from rankstack.manifest import verify, write_manifest
from rankstack.progress import Bar

__all__ = ["DocStore", "DocumentNotFoundError", "DuplicateDocumentError"]

_VERSION = 1
_FILES = ("text.bin", "text_off.npy", "title_len.npy", "ids.bin", "ids_off.npy", "hash.npy", "hash_row.npy")




def _hash(b: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little")


class DocStore(Mapping[str, Document]):
    """Read-only, memory-mapped mapping ``doc_id -> Document`` (see the module docstring).

    Create one with :meth:`build` (streaming from any iterable of documents), open an existing one
    with :meth:`open`, or use :meth:`from_path` to build from a collection file once and reuse it.
    Iteration yields ids in the order the documents were given to :meth:`build`.
    """

    def __init__(self, path: str | os.PathLike):
        # prefer DocStore.open(path); kept for Mapping-like construction
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.path}: not a DocStore (no meta.json); build it with DocStore.build")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FormatError(f"{meta_path}: not valid JSON ({e}); the store is damaged: rebuild it "
                              "(rankstack index)") from None
        if self.meta.get("version") != _VERSION:
            raise FormatError(f"{self.path}: DocStore version {self.meta.get('version')} != {_VERSION}; rebuild it")
        verify(self.path)  # sizes against checksums.json (the checksums themselves: rankstack check)
        self._n = int(self.meta["count"])
        mode = "r" if self._n else None  # numpy cannot memory-map an empty array
        self._off = _load(self.path / "text_off.npy", mode)
        self._tlen = _load(self.path / "title_len.npy", mode)
        self._ioff = _load(self.path / "ids_off.npy", mode)
        self._hash = _load(self.path / "hash.npy", mode)
        self._hrow = _load(self.path / "hash_row.npy", mode)
        for name, arr, n in (("text_off", self._off, self._n + 1), ("title_len", self._tlen, self._n),
                             ("ids_off", self._ioff, self._n + 1), ("hash", self._hash, self._n),
                             ("hash_row", self._hrow, self._n)):
            if len(arr) != n:
                raise FormatError(f"{self.path}/{name}.npy has {len(arr)} entries, expected {n}: store is corrupt")
        self._text = _map(self.path / "text.bin")
        self._ids = _map(self.path / "ids.bin")
        for name, data, want in (("text.bin", self._text, int(self._off[-1]) if self._n else 0),
                                 ("ids.bin", self._ids, int(self._ioff[-1]) if self._n else 0)):
            if len(data) != want:
                raise FormatError(f"{self.path}/{name} has {len(data):,} bytes, the store's offsets need {want:,}: "
                                  "the file is truncated or damaged; rebuild the store (rankstack index)")
        _advise(self._text, "MADV_RANDOM")  # lookups are random: no readahead of neighbouring pages
        _advise(self._ids, "MADV_RANDOM")

    @property
    def fingerprint(self) -> str:
        """Content fingerprint of the documents (ids, titles, texts, in order), written at build time
        (computed once for stores built before it was recorded)."""
        fp = self.meta.get("fingerprint")
        if fp is None:
            fp = self.meta["fingerprint"] = docs_fingerprint(self.iter_docs())
        return str(fp)

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, path: str | os.PathLike) -> DocStore:
        """Open a store written by :meth:`build` (memory-maps its files; O(1) memory)."""
        return cls(path)

    @classmethod
    def build(
        cls,
        docs: Iterable[Document],
        path: str | os.PathLike,
        progress: bool = True,
        source: dict[str, Any] | None = None,
    ) -> DocStore:
        """Write ``docs`` to a new store at ``path`` (a directory, replaced if it exists) and open it.

        Streams: texts go straight to disk. A repeated id raises :class:`DuplicateDocumentError`
        and leaves nothing at ``path``. ``progress`` shows a progress bar on a terminal.
        """
        final = Path(path)
        tmp = final.with_name(f".{final.name}.building{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            n, fingerprint = _write(docs, tmp, progress)
            meta = {"version": _VERSION, "count": n, "id_map": "blake2b64-sorted", "source": source or {},
                    "fingerprint": fingerprint, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            write_manifest(tmp, [*_FILES, "meta.json"], "docstore", "rebuild it: rankstack index COLLECTION -o DIR")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(final)

    @classmethod
    def from_path(
        cls,
        collection_path: str | os.PathLike,
        cache_dir: str | os.PathLike,
        format: str = "auto",
        progress: bool = True,
    ) -> DocStore:
        """A store for a collection file, built on first use under ``cache_dir`` and reused after.

        The cache key is the file's absolute path, size and modification time, and the format: a
        changed file gets a new store. A duplicate id is reported as a
        :class:`~rankstack.data.formats.FormatError` naming both lines of the file.
        """
        src = Path(collection_path).resolve()
        st = src.stat()
        key = hashlib.sha256(f"{src}\0{st.st_size}\0{st.st_mtime_ns}\0{format}\0{_VERSION}".encode()).hexdigest()[:16]
        target = Path(cache_dir) / f"{src.name}-{key}"
        if (target / "meta.json").exists():
            return cls(target)
        source = {"path": str(src), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "format": format}
        try:
            return cls.build(read_docs(src, format, check_duplicates=False), target, progress, source)
        except DuplicateDocumentError:
            # re-read with the line-tracking check to name both lines of the file
            for _ in read_docs(src, format, check_duplicates=True):
                pass
            raise  # not reached unless the file changed while building

    # ------------------------------------------------------------------ lookup
    def _row_of(self, doc_id: str) -> int:
        b = doc_id.encode("utf-8")
        h = _hash(b)
        hs = self._hash
        i = int(np.searchsorted(hs, np.uint64(h)))
        n = self._n
        while i < n and int(hs[i]) == h:
            row = int(self._hrow[i])
            if self._ids[int(self._ioff[row]):int(self._ioff[row + 1])] == b:
                return row
            i += 1
        return -1

    def _doc_at(self, row: int, doc_id: str | None = None) -> Document:
        a, z = int(self._off[row]), int(self._off[row + 1])
        t = a + int(self._tlen[row])
        if doc_id is None:
            doc_id = self._ids[int(self._ioff[row]):int(self._ioff[row + 1])].decode("utf-8")
        return Document(doc_id, self._text[t:z].decode("utf-8"), self._text[a:t].decode("utf-8"))

    def __getitem__(self, doc_id: str) -> Document:
        """The document with id ``doc_id``; ``KeyError`` naming the id (and the store) if absent."""
        row = self._row_of(doc_id) if isinstance(doc_id, str) else -1
        if row < 0:
            raise DocumentNotFoundError(f"document {doc_id!r} is not in the store {self.path}")
        return self._doc_at(row, doc_id)

    @overload
    def get(self, doc_id: str) -> Document | None: ...
    @overload
    def get(self, doc_id: str, default: Any) -> Document | Any: ...
    def get(self, doc_id: str, default: Any = None) -> Any:
        """The document, or ``default`` when the id is absent."""
        row = self._row_of(doc_id) if isinstance(doc_id, str) else -1
        return default if row < 0 else self._doc_at(row, doc_id)

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self._row_of(doc_id) >= 0

    def get_many(self, doc_ids: Iterable[str]) -> list[Document]:
        """The documents of ``doc_ids`` in order (one vectorised search); ``KeyError`` lists missing ids."""
        ids = list(doc_ids)
        if not ids:
            return []
        n = self._n
        bs = [d.encode("utf-8") for d in ids]
        hs = np.fromiter((_hash(b) for b in bs), dtype=np.uint64, count=len(bs))
        pos = np.searchsorted(self._hash, hs)
        ok = pos < n
        posc = np.minimum(pos, max(n - 1, 0))
        if n:
            ok &= self._hash[posc] == hs
        rows = np.where(ok, self._hrow[posc] if n else 0, 0).astype(np.int64)
        io_a = self._ioff[rows].tolist() if n else []
        io_z = self._ioff[rows + 1].tolist() if n else []
        oka = ok.tolist()
        missing: list[str] = []
        for k, d in enumerate(ids):
            if oka[k] and self._ids[io_a[k]:io_z[k]] == bs[k]:
                continue
            r = self._row_of(d)  # absent, or a hash collision: the slow exact path
            if r < 0:
                missing.append(d)
            else:
                rows[k] = r
        if missing:
            raise DocumentNotFoundError(f"{len(missing)} document(s) not in the store {self.path}: "
                                        f"{', '.join(map(repr, missing[:10]))}{' ...' if len(missing) > 10 else ''}")
        a = self._off[rows].tolist()
        z = self._off[rows + 1].tolist()
        t = (self._off[rows] + self._tlen[rows]).tolist()
        buf = self._text
        return [Document(d, buf[t[k]:z[k]].decode("utf-8"), buf[a[k]:t[k]].decode("utf-8")) for k, d in enumerate(ids)]

    # ------------------------------------------------------------------ iteration
    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[str]:
        """Document ids in build order."""
        off = self._ioff
        buf = self._ids
        for start in range(0, self._n, 65536):
            o = np.asarray(off[start:min(self._n, start + 65536) + 1]).tolist()
            chunk = buf[o[0]:o[-1]].decode("utf-8") if o[-1] > o[0] else ""
            if chunk.isascii():
                base = o[0]
                for k in range(len(o) - 1):
                    yield chunk[o[k] - base:o[k + 1] - base]
            else:
                for k in range(len(o) - 1):
                    yield buf[o[k]:o[k + 1]].decode("utf-8")

    def iter_docs(self) -> Iterator[Document]:
        """All documents in build order (sequential reads)."""
        _advise(self._text, "MADV_SEQUENTIAL")
        try:
            for row, did in enumerate(self):
                yield self._doc_at(row, did)
        finally:
            _advise(self._text, "MADV_RANDOM")

    def __repr__(self) -> str:
        return f"DocStore({str(self.path)!r}, docs={self._n})"

    def disk_bytes(self) -> int:
        """Total size of the store's files."""
        return sum((self.path / f).stat().st_size for f in (*_FILES, "meta.json"))

    def close(self) -> None:
        """Release the memory maps (the store is unusable afterwards)."""
        for m in (self._text, self._ids):
            if isinstance(m, mmap.mmap):
                m.close()

    def __getstate__(self) -> dict[str, Any]:  # picklable for multiprocessing: reopen by path
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]


def _load(p: Path, mode: str | None) -> np.ndarray:
    """An ``.npy`` array of the store, memory-mapped; a damaged file is named, with the fix."""
    try:
        return np.load(p, mmap_mode=mode)
    except FileNotFoundError:
        raise FormatError(f"{p}: missing; the store is incomplete: rebuild it (rankstack index)") from None
    except (ValueError, OSError, EOFError) as e:
        raise FormatError(f"{p}: unreadable ({e}): the file is truncated or damaged; rebuild the store "
                          "(rankstack index)") from None


def _map(p: Path) -> mmap.mmap | bytes:
    if p.stat().st_size == 0:
        return b""
    with open(p, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _advise(m: mmap.mmap | bytes, name: str) -> None:
    """``madvise`` hint where the platform has it (Linux, macOS); a no-op elsewhere."""
    flag = getattr(mmap, name, None)
    if flag is not None and isinstance(m, mmap.mmap) and hasattr(m, "madvise"):
        m.madvise(flag)


def _write(docs: Iterable[Document], d: Path, progress: bool) -> tuple[int, str]:
    """Write the store's files; returns the number of documents and their content fingerprint."""
    hasher = DocsHasher()
    off = array("q", [0])
    ioff = array("q", [0])
    tlen = array("I")
    hashes = array("Q")
    pos = ipos = 0
    total = getattr(docs, "__len__", lambda: None)()
    bar = Bar(total, "building DocStore", unit="doc", enabled=bool(progress and sys.stderr.isatty()), leave=False)
    t0 = time.perf_counter()
    blake = hashlib.blake2b
    with open(d / "text.bin", "wb", buffering=1 << 20) as ft, open(d / "ids.bin", "wb", buffering=1 << 20) as fi:
        n = 0
        for doc in docs:
            if not isinstance(doc, Document):
                raise TypeError(f"DocStore.build expects Document records, got {type(doc).__name__} (item #{n + 1})")
            bid = doc.id.encode("utf-8")
            if not bid:
                raise ConfigError(f"empty document id (item #{n + 1})")
            hasher.add(doc)
            bt = doc.title.encode("utf-8")
            bx = doc.text.encode("utf-8")
            ft.write(bt)
            ft.write(bx)
            fi.write(bid)
            pos += len(bt) + len(bx)
            ipos += len(bid)
            off.append(pos)
            ioff.append(ipos)
            tlen.append(len(bt))
            hashes.append(int.from_bytes(blake(bid, digest_size=8).digest(), "little"))
            n += 1
            if n % 20000 == 0:
                bar.advance(20000, rate=f"{n / (time.perf_counter() - t0):,.0f} docs/s")
        bar.advance(n % 20000)
        bar.close()
    h = np.frombuffer(hashes, dtype=np.uint64) if n else np.zeros(0, np.uint64)
    order = np.argsort(h, kind="stable")
    hs = h[order]
    dup = np.flatnonzero(hs[1:] == hs[:-1]) if n > 1 else np.zeros(0, np.int64)
    if len(dup):  # equal hashes: compare the ids themselves (all pairs within each run of equal hashes)
        o = np.frombuffer(ioff, dtype=np.int64)
        with open(d / "ids.bin", "rb") as fi:
            data = fi.read()
        k = 0
        starts = sorted(set(dup.tolist()))
        for s in starts:
            if s < k:
                continue
            k = s + 1
            while k < n and hs[k] == hs[s]:
                k += 1
            rows = sorted(int(r) for r in order[s:k])
            seen: dict[bytes, int] = {}
            for r in rows:
                b = data[o[r]:o[r + 1]]
                if b in seen:
                    raise DuplicateDocumentError(b.decode("utf-8"), (seen[b], r))
                seen[b] = r
    np.save(d / "text_off.npy", np.frombuffer(off, dtype=np.int64))
    np.save(d / "ids_off.npy", np.frombuffer(ioff, dtype=np.int64))
    np.save(d / "title_len.npy", np.frombuffer(tlen, dtype=np.uint32) if n else np.zeros(0, np.uint32))
    np.save(d / "hash.npy", hs)
    np.save(d / "hash_row.npy", order.astype(np.uint32 if n < 2**32 else np.int64))
    return n, hasher.hexdigest()
