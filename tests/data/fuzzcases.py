"""Fuzz cases for the readers of :mod:`rankstack.data.formats`: mutated versions of every shipped
file format, each with its oracle. Used by ``tests/data/test_fuzz.py`` (a seeded sample in CI) and
``benchmarks/fuzz_formats.py`` (10,000 cases and more).

Sources
-------
Small slices of the repository's data files, one per reader format, and each also gzipped: a TREC
run and TREC qrels (``data/trec-dl-2019``), BEIR qrels TSV, BEIR JSONL queries and documents
(``data/scifact``), MS MARCO TSV queries and documents (``data/trec-dl-2019``), Cranfield qrels and
SMART documents and queries (``data/cranfield``; the document slice includes record 240 with its
stray ``.A``), and TREC ``<top>`` topics and ``<DOC>`` documents written from the DL19 slices (the
repository ships none).

The oracle
----------
Every case is judged against a **reference parser** of its format, written here independently of
the readers from the formats' documentation (the readers' module docstrings): it returns what the
bytes mean -- ``{qid: {docid: score}}`` for runs, ``{qid: {docid: grade}}`` for qrels, the
``(id, title, text)`` list of documents, the ``(id, text)`` list of queries -- or says the bytes are
invalid (and, for line formats, at which line). A reader's answer is then exactly one of

* ``clean``: no exception, and the records are *exactly* the reference's meaning of the mutated
  bytes (with the warnings the reference expects: repeated judgments, SMART fields repeated after
  the text);
* ``error``: a :class:`~rankstack.errors.RankstackError` where the reference says invalid, whose
  message names the file, and for line formats (run, qrels, TSV, JSONL) the line the reference
  names (``path:line:``);
* a failure: ``wrong`` (a clean answer other than the meaning, or a clean answer to invalid bytes:
  a silent wrong answer), ``unclear`` (an error not naming the file or the line), ``refused`` (an
  error on bytes the reference reads: the reader is stricter than its documentation) or
  ``traceback`` (any other exception).

Mutations, and what each must give (written down per mutation as ``expect``; the harness checks the
expectation against the reference, so a mislabelled mutation fails loudly as ``harness``):

=================  =======  ===================================================================
mutation           expect   meaning
=================  =======  ===================================================================
crlf               same     ``\\n`` -> ``\\r\\n`` everywhere
bom                same     UTF-8 byte-order mark at the start
trailing_blank     same     blank (and whitespace-only) lines at the end
leading_blank      same     blank lines at the start
blank_between      same     a blank line between two records
gzip               same     the file gzipped (and gzip of the CRLF/BOM variants)
trailing_ws        same*    spaces/tabs at the end of a line (*same for whitespace-split formats,
                            JSONL and topics; what the reference says for TSV/SMART/TREC texts)
swap_lines         same*    two lines swapped (*same for runs and qrels; else the reference)
flip_byte          ref      one bit of one byte flipped (of the gzip stream for .gz cases)
cut_line           ref      one line removed
truncate           ref      the file cut at a random byte
dup_line           ref      one line repeated (runs: error; qrels: same, with a warning)
drop_column        ref      one field removed from a line (JSONL: one key)
add_column         ref      one field added to a line (JSONL: a key, possibly a repeated one)
split_line         ref      a newline inserted inside a line (a passage broken in two)
join_lines         ref      a newline removed
lone_cr            ref      a ``\\n`` turned into a lone ``\\r``
huge_token         ref      a 100,000-character token inserted in a line
huge_id            error    an id replaced by one of 300 to 5,000 characters, at its line
long_id            same*    an id replaced by one of exactly 256 characters (the limit): read
space_in_id        error    a space inside an id (TSV, JSONL), at its line
unicode_nfd        ref      the whole file in NFD (decomposed accents)
unicode_accent     ref      a letter replaced by an accented one, NFC or NFD
zero_width         ref      U+200B/U+200C/U+200D/U+2060/U+FEFF inserted somewhere
rtl                ref      U+200F/U+202E/U+2067 inserted somewhere
nbsp               ref      U+00A0/U+2003/U+3000 inserted somewhere
control            ref      a control character (NUL, ESC, VT, FF, DEL, U+0085, U+001C) inserted
invalid_utf8       error    a byte that is not UTF-8 inserted, at its line
bom_middle         ref      a byte-order mark at the start of a line in the middle
case               ref      one line upper- or lower-cased
number             ref      a score, rank or grade replaced (``1_0``, other scripts' digits, inf,
                            nan, 1e400, hex, 5,000 digits, empty, ...)
json_value         ref      a JSON value replaced (1e400, 5,000 digits, 50,000 nested arrays, lone
                            surrogate escapes, NUL, zero-width, other types, a 300-char string)
escape             ref      a backslash escape written into a line (JSON: it means something)
marker             ref      SMART: a marker letter changed, lower-cased or followed by text;
                            SGML: a tag renamed, its case changed, broken or removed
empty              ref      the empty file, or only blank lines
gzip_truncate      error    the gzip stream cut short
gzip_garbage       error    bytes that are not gzip after the gzip stream
gzip_damage        ref      a byte of the gzip stream replaced (header, body or trailer)
double             ref      two of the mutations above, one after the other
=================  =======  ===================================================================
"""

from __future__ import annotations

import gzip
import io
import json
import math
import random
import re
import unicodedata
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
MAX_ID = 256  # the documented limit (rankstack.data.formats.ids.MAX_ID_LENGTH)

# ============================================================================ reference parsers


class Invalid(Exception):
    """The reference says the bytes are not a valid file of the format (at ``line`` when known)."""

    def __init__(self, line: int | None, why: str):
        super().__init__(f"line {line}: {why}")
        self.line, self.why = line, why


_BAD_ID_CATEGORIES = {"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"}


def ref_id(s: str, line: int | None) -> str:
    if not s:
        raise Invalid(line, "empty id")
    if len(s) > MAX_ID:
        raise Invalid(line, "id too long")
    for c in s:
        if unicodedata.category(c) in _BAD_ID_CATEGORIES:
            raise Invalid(line, f"id has {c!r}")
    return s


def ref_lines(data: bytes, lenient: bool = False) -> Iterator[tuple[int, str]]:
    """Numbered lines, lazily (a line that is not UTF-8 is invalid when it is reached, as a reader
    that streams meets it): gunzipped when it starts with the gzip magic, split on ``\\n`` only,
    one ``\\r`` removed from the end, a BOM removed from the first line, strict UTF-8 (``lenient``:
    undecodable bytes replaced, as format detection reads the first lines)."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.GzipFile(fileobj=io.BytesIO(data)).read()
        except (OSError, EOFError, zlib.error) as e:
            raise Invalid(None, f"gzip: {e}") from None
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    for i, raw in enumerate(parts, 1):
        try:
            s = raw.decode("utf-8", errors="replace" if lenient else "strict")
        except UnicodeDecodeError:
            raise Invalid(i, "not utf-8") from None
        if i == 1:
            s = s.removeprefix("\ufeff")
        yield i, s.removesuffix("\r")


def _nonblank(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """The non-blank lines; none at all is invalid (format detection finds nothing to detect)."""
    some = False
    for n, s in lines:
        if s.strip():
            some = True
            yield n, s
    if not some:
        raise Invalid(None, "no content")


def _plain_float(s: str, line: int) -> float:
    if not s.isascii() or "_" in s:
        raise Invalid(line, "number")
    try:
        v = float(s)
    except ValueError:
        raise Invalid(line, "number") from None
    return v


def ref_run(lines):
    data: dict[str, dict[str, float]] = {}
    for no, s in lines:
        p = s.split()
        if not p:
            continue
        if len(p) != 6:
            raise Invalid(no, "fields")
        q, _, d, rank, score, _tag = p
        v = _plain_float(score, no)
        if math.isnan(v):
            raise Invalid(no, "nan")
        r = rank.removeprefix("-")
        if not (r.isascii() and r.isdigit()):
            raise Invalid(no, "rank")
        ref_id(q, no)
        ref_id(d, no)
        if d in data.get(q, {}):
            raise Invalid(no, "repeated")
        data.setdefault(q, {})[d] = v
    return data, ()


def _grade(s: str, line: int) -> int:
    """An integer grade, written as an integer or an integral float, in the 64-bit range."""
    v = _plain_float(s, line)
    try:
        g = int(s)
    except ValueError:
        if not math.isfinite(v) or v != int(v):
            raise Invalid(line, "grade") from None
        g = int(v)
    if not -2**63 <= g < 2**63:
        raise Invalid(line, "grade out of range")
    return g


_CRAN = {-1: 0, 1: 1, 2: 2, 3: 3, 4: 4}


def _zero(s: str) -> bool:
    try:
        return float(s) == 0.0
    except ValueError:
        return False


def ref_detect_qrels(rows: list[tuple[int, list[str]]], cran_name: bool) -> str:
    """The documented qrels detection on the first 20 non-blank lines: the BEIR header; 2 and 4
    columns with zeros are pairs; else the most common width (the first line's on a tie): 4 trec
    (pairs if the last two columns are all zero and the second is not 0/Q0), 3 cranfield for a
    ``cran*`` file name else beir (an error if the second column is all 0/Q0: TREC qrels without
    their grades), 2 pairs, anything else an error at the first line of that width."""
    first = rows[0][1]
    if [x.lower() for x in first] == ["query-id", "corpus-id", "score"]:
        return "beir"
    widths = [len(r) for _, r in rows]
    if set(widths) <= {2, 4} and 2 in widths and all(_zero(r[2]) and _zero(r[3]) for _, r in rows if len(r) == 4):
        return "pairs"
    best = max(widths, key=lambda w: (widths.count(w), -widths.index(w)))
    same = [(n, r) for n, r in rows if len(r) == best]
    if best == 4:
        if not all(r[1] in ("0", "Q0") for _, r in same) and all(_zero(r[2]) and _zero(r[3]) for _, r in same):
            return "pairs"
        return "trec"
    if best == 3:
        if cran_name:
            return "cranfield"
        if all(r[1] in ("0", "Q0") for _, r in same):
            raise Invalid(same[0][0], "trec qrels without grades")
        return "beir"
    if best == 2:
        return "pairs"
    raise Invalid(same[0][0], f"{best} columns")


def ref_qrels(cran_name: bool):
    def parse(data: bytes):
        rows = []
        for n, s in ref_lines(data, lenient=True):
            if s.strip():
                rows.append((n, s.split()))
                if len(rows) == 20:
                    break
        if not rows:
            raise Invalid(None, "no content")
        fmt = ref_detect_qrels(rows, cran_name)
        lines = ref_lines(data)
        data: dict[str, dict[str, int]] = {}
        repeats = 0
        for k, (no, s) in enumerate((n, s) for n, s in lines if s.strip()):
            p = s.split()
            if k == 0 and fmt == "beir" and [x.lower() for x in p] == ["query-id", "corpus-id", "score"]:
                continue
            if fmt == "pairs":
                if len(p) not in (2, 4) or (len(p) == 4 and not (_zero(p[2]) and _zero(p[3]))):
                    raise Invalid(no, "fields")
                q, d, g = p[0], p[1], 1
            else:
                if len(p) != (4 if fmt == "trec" else 3):
                    raise Invalid(no, "fields")
                q, d, g = (p[0], p[2], p[3]) if fmt == "trec" else (p[0], p[1], p[2])
                g = _grade(g, no)
            if fmt == "cranfield":
                if g not in _CRAN:
                    raise Invalid(no, "cranfield grade")
                g = _CRAN[g]
            ref_id(q, no)
            ref_id(d, no)
            prev = data.get(q, {}).get(d)
            if prev is not None:
                if prev != g:
                    raise Invalid(no, "conflicting grade")
                repeats += 1
            data.setdefault(q, {})[d] = g
        return data, ("repeated",) if repeats else ()
    _RAW_REFS.add(parse)
    return parse


_RAW_REFS: set = set()  # reference parsers that take the bytes (they read the lines twice)


def ref_tsv(kind: str):
    def parse(lines):
        out, seen = [], set()
        for no, s in _nonblank(lines):
            p = s.split("\t")
            if len(p) != 2:
                raise Invalid(no, "fields")
            ref_id(p[0], no)
            if p[0] in seen:
                raise Invalid(no, "repeated id")
            seen.add(p[0])
            out.append((p[0], "", p[1]) if kind == "docs" else (p[0], p[1]))
        return out, ()
    return parse


class _Pairs(list):
    pass


def ref_jsonl(kind: str):
    id_keys = ("_id", "id", "docid", "doc_id", "docno", "pid") if kind == "docs" else ("_id", "id", "qid", "query_id")
    text_keys = ("text", "contents", "body", "passage") if kind == "docs" else ("text", "query")

    def get(obj, keys, no):
        for k in keys:
            vals = [v for kk, v in obj if kk == k]
            if len(vals) > 1:
                raise Invalid(no, "repeated key")
            if vals:
                return True, vals[0]
        return False, None

    def string(obj, keys, no, required):
        found, v = get(obj, keys, no)
        if not found:
            if required:
                raise Invalid(no, "missing")
            return ""
        if v is None:
            return ""
        if not isinstance(v, str):
            raise Invalid(no, "not a string")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise Invalid(no, "surrogate") from None
        return v

    def parse(lines):
        out, seen = [], set()
        for no, s in _nonblank(lines):
            try:
                obj = json.loads(s, object_pairs_hook=_Pairs)
            except (ValueError, RecursionError):
                raise Invalid(no, "json") from None
            if not isinstance(obj, _Pairs):
                raise Invalid(no, "not an object")
            found, did = get(obj, id_keys, no)
            if not found or isinstance(did, bool) or not isinstance(did, (str, int)):
                raise Invalid(no, "id")
            did = ref_id(str(did), no)
            text = string(obj, text_keys, no, True)
            if did in seen:
                raise Invalid(no, "repeated id")
            seen.add(did)
            if kind == "docs":
                out.append((did, string(obj, ("title",), no, False), text))
            else:
                out.append((did, text))
        return out, ()
    return parse


_MARK = re.compile(r"\.([A-Z])(?:[ \t]+(.*))?$")
_SMART_FIELDS = set("ITABWKNXC")


def _smart_records(lines):
    recs = []  # [id, line, {letter: [lines]}, [order]]
    cur = None
    for no, s in lines:
        m = _MARK.match(s) if s.startswith(".") else None
        if m is None and re.fullmatch(r"\.[a-z][ \t]*|[ \t]+\.[A-Za-z][ \t]*", s):
            raise Invalid(no, "a damaged marker")
        if m is None:
            if not recs:
                if s.strip():
                    raise Invalid(no, "text before .I")
                continue
            if cur is None:
                if s.strip():
                    raise Invalid(no, "text before a marker")
                continue
            cur.append(s)
            continue
        letter, rest = m.group(1), m.group(2)
        if letter not in _SMART_FIELDS:
            raise Invalid(no, "unknown marker")
        if letter == "I":
            rid = (rest or "").strip()
            if len(rid.split()) != 1:
                raise Invalid(no, ".I id")
            recs.append([ref_id(rid, no), no, {}, []])
            cur = None
            continue
        if not recs:
            raise Invalid(no, "marker before .I")
        recs[-1][3].append(letter)
        cur = recs[-1][2].setdefault(letter, [])
        if rest and rest.strip():
            cur.append(rest)
    if not recs:
        raise Invalid(None, "no records")
    return [(rid, no, {k: "\n".join(v).strip() for k, v in f.items()}, order) for rid, no, f, order in recs]


def _stray(order, kept) -> bool:
    """A field not kept in the record that is repeated after the text (.W) started."""
    before, text = set(), False
    for x in order:
        if x == "W":
            text = True
        elif not text:
            before.add(x)
        elif x in before and x not in kept:
            return True
    return False


def _zeros(q: str) -> str:
    return (q.lstrip("0") or "0") if q.isdigit() and q[0] == "0" and len(q) > 1 else q


def ref_smart(kind: str):
    def parse(lines):
        recs = _smart_records(lines)
        stray = any(_stray(order, set("TWK") if kind == "docs" else {"W"}) for _, _, _, order in recs)
        if kind == "docs":
            out = []
            for rid, _, f, _ in recs:
                text, kw = f.get("W", ""), f.get("K", "")
                if kw:
                    text = f"{text}\n{kw}" if text else kw
                out.append((rid, f.get("T", ""), text))
        else:
            out = [(rid, f.get("W") or f.get("T", "")) for rid, _, f, _ in recs]
            if [_zeros(i) for i, _ in out] != [str(i) for i in range(1, len(out) + 1)]:
                out = [(str(i), t) for i, (_, t) in enumerate(out, 1)]
        seen = {}
        for (rid, *_), (_, no, _, _) in zip(out, recs):
            if rid in seen:
                raise Invalid(no, "repeated id")
            seen[rid] = no
        return out, ("stray",) if stray else ()
    return parse


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9_]*)(?:\s[^>]*)?>")
_ANY_TAG = re.compile(r"</?[A-Za-z][^>]*>")


def _outside_ok(s: str) -> bool:
    return not _ANY_TAG.sub("", re.sub(r"(?i)</?topics?>", "", s)).strip()


def ref_topics(lines):
    """TREC topics, field ``title`` (detected: the first non-blank line starts with ``<top>`` or
    ``<topics``): ``<top>`` blocks; inside, a tag starts a field that runs to the
    next tag; whitespace collapsed; ``Number:``/``Topic:`` prefixes dropped; a repeated field is
    appended; one ``<num>`` token; nothing but tags outside the blocks."""
    lines = list(lines)
    first = next(((n, s) for n, s in lines if s.strip()), None)
    if first is None or not first[1].lstrip().upper().startswith(("<TOP>", "<TOPICS")):
        raise Invalid(first and first[0], "format detection: the first line does not start a topic")
    text = "\n".join(s for _, s in lines)
    out, pos = [], 0
    for m in re.finditer(r"(?is)<top>(.*?)</top>", text):
        if not _outside_ok(text[pos:m.start()]):
            raise Invalid(None, "outside")
        pos = m.end()
        body = m.group(1)
        tags = list(_TAG.finditer(body))
        vals: dict[str, str] = {}
        for i, t in enumerate(tags):
            if t.group(1):
                continue
            name = t.group(2).lower()
            v = " ".join(body[t.end():tags[i + 1].start() if i + 1 < len(tags) else len(body)].split())
            pre = {"num": "number:", "title": "topic:", "desc": "description:", "narr": "narrative:"}.get(name)
            if pre and v.lower().startswith(pre):
                v = v[len(pre):].strip()
            vals[name] = f"{vals[name]} {v}".strip() if name in vals else v
        num = vals.get("num", "")
        if len(num.split()) != 1:
            raise Invalid(None, "num")
        ref_id(num, None)
        if "title" not in vals:
            raise Invalid(None, "no title")
        out.append((num, vals["title"]))
    if not _outside_ok(text[pos:]):
        raise Invalid(None, "outside")
    if not out:
        raise Invalid(None, "no topics")
    if len({q for q, _ in out}) != len(out):
        raise Invalid(None, "repeated id")
    return out, ()


_CLOSE_DOC = re.compile(r"(?i)</DOC>")
_KNOWN_DOC_TAGS = ("DOCNO", "DOCID", "DOCHDR", "TITLE", "HEADLINE", "HEAD", "HL", "TEXT")


def ref_trec_docs(lines):
    """TREC ``<DOC>`` documents: each ``<DOC>`` starts a line (after blanks) and ends at the next
    ``</DOC>``, after which only another ``<DOC>`` may follow on the line; inside, top-level
    DOCNO/title/TEXT elements (a known tag inside another is content); exactly one non-empty DOCNO;
    title = the title elements, inner tags removed, whitespace collapsed; text = the TEXT elements
    (tags removed, stripped, joined by newlines) or else everything else with tags removed."""
    text = "\n".join(s for _, s in lines)
    out, seen = [], set()
    pos = 0
    n = len(text)
    while True:
        m = re.compile(r"\s*").match(text, pos)
        pos = m.end()
        if pos >= n:
            break
        if text[pos:pos + 5].upper() != "<DOC>":
            raise Invalid(None, "expected <DOC>")
        close = _CLOSE_DOC.search(text, pos + 5)
        if close is None:
            raise Invalid(None, "not closed")
        body = text[pos + 5:close.start()]
        pos = close.end()
        elements: dict[str, list[str]] = {}
        rest, start, stack = [], 0, []
        for t in _TAG.finditer(body):
            closing, name = t.group(1), t.group(2).upper()
            if name not in _KNOWN_DOC_TAGS:
                continue
            if not closing:
                if not stack:
                    rest.append(body[start:t.start()])
                    stack.append((name, t.end()))
            elif stack and stack[-1][0] == name:
                _, s0 = stack.pop()
                elements.setdefault(name, []).append(body[s0:t.start()])
                start = t.end()
        if stack:
            raise Invalid(None, "element not closed")
        rest.append(body[start:])
        docno = elements.get("DOCNO", [])
        if len(docno) != 1 or not docno[0].strip():
            raise Invalid(None, "docno")
        did = ref_id(docno[0].strip(), None)
        title = " ".join(_ANY_TAG.sub(" ", x).strip() for tg in ("TITLE", "HEADLINE", "HEAD", "HL")
                         for x in elements.get(tg, []))
        if "TEXT" in elements:
            body_text = "\n".join(_ANY_TAG.sub("", x).strip() for x in elements["TEXT"])
        else:
            body_text = _ANY_TAG.sub("", "".join(rest)).strip()
        if did in seen:
            raise Invalid(None, "repeated id")
        seen.add(did)
        out.append((did, " ".join(title.split()), body_text.strip()))
    if not out:
        raise Invalid(None, "no documents")
    return out, ()


# ============================================================================ sources


@dataclass
class Source:
    key: str          # e.g. "run", "qrels-trec"
    kind: str         # run | qrels | docs | queries
    filename: str     # the name the case is written under (detection may depend on it)
    text: str         # the undamaged content
    ref: Callable     # reference parser: numbered lines -> (meaning, expected warnings)
    line_format: bool  # errors must name the reference's line
    split_ws: bool    # fields are whitespace-separated (trailing whitespace is insignificant)
    order_free: bool  # the meaning does not depend on the order of lines
    id_spans: Callable[[str], list[tuple[int, int]]] = field(repr=False, default=None)  # (start, end) of ids


def _read(p: Path) -> list[str]:
    return p.read_text(encoding="utf-8").splitlines()


def _tok_spans(line: str, idx: tuple[int, ...]) -> list[tuple[int, int]]:
    out = [(m.start(), m.end()) for m in re.finditer(r"\S+", line)]
    return [out[i] for i in idx if i < len(out)]


def _first_field(sep: str) -> Callable[[str], list[tuple[int, int]]]:
    return lambda line: [(0, line.index(sep))] if sep in line else []


def _json_id_span(line: str) -> list[tuple[int, int]]:
    m = re.search(r'"_id": "([^"]*)"', line)
    return [(m.start(1), m.end(1))] if m else []


def _smart_id_span(line: str) -> list[tuple[int, int]]:
    m = re.match(r"\.I (\S+)", line)
    return [(m.start(1), m.end(1))] if m else []


def _docno_span(line: str) -> list[tuple[int, int]]:
    m = re.search(r"<DOCNO> (\S+) </DOCNO>", line) or re.search(r"<num> Number: (\S+)", line)
    return [(m.start(1), m.end(1))] if m else []


def build_sources() -> list[Source]:
    dl = DATA / "trec-dl-2019"
    run_lines = _read(dl / "bm25.top100.trec")
    qids: list[str] = []
    for ln in run_lines:
        q = ln.split()[0]
        if q not in qids:
            qids.append(q)
    qids = qids[:3]
    run = [ln for ln in run_lines if ln.split()[0] in qids and int(ln.split()[3]) <= 15]
    in_run = {(ln.split()[0], ln.split()[2]) for ln in run}
    qrels_all = [ln for ln in _read(dl / "qrels.txt") if ln.split()[0] in qids]
    qrels = [ln for ln in qrels_all if (ln.split()[0], ln.split()[2]) in in_run]
    qrels += [ln for ln in qrels_all if ln not in qrels][: 60 - len(qrels)]
    sf = DATA / "scifact"
    beir = _read(sf / "qrels" / "test.tsv")[:41]
    cran_q = _read(DATA / "cranfield" / "cran.qrels")[:40]
    queries_tsv = _read(dl / "queries.tsv")[:25]
    queries_jsonl = _read(sf / "queries.jsonl")[:25]
    corpus = _read(sf / "corpus.jsonl")[:6]
    coll = _read(dl / "collection.tsv")[:20]
    cran_lines = _read(DATA / "cranfield" / "cran.all.1400")
    recs, cur = [], []
    for ln in cran_lines:
        if ln.startswith(".I ") and cur:
            recs.append(cur)
            cur = []
        cur.append(ln)
    recs.append(cur)
    cran_docs = [ln for r in recs[:5] + [recs[239]] for ln in r]
    qry_lines = _read(DATA / "cranfield" / "cran.qry")
    qrecs, cur = [], []
    for ln in qry_lines:
        if ln.startswith(".I ") and cur:
            qrecs.append(cur)
            cur = []
        cur.append(ln)
    qrecs.append(cur)
    cran_qry = [ln for r in qrecs[:10] for ln in r]
    topics = []
    for ln in queries_tsv[:12]:
        q, t = ln.split("\t")
        topics += ["<top>", f"<num> Number: {q}", f"<title> {t}", "", "<desc> Description:",
                   f"Find documents about {t}.", "</top>", ""]
    trec_docs = []
    for ln in coll[:8]:
        d, t = ln.split("\t")
        words = t.split()
        trec_docs += ["<DOC>", f"<DOCNO> {d} </DOCNO>", f"<HEADLINE> {' '.join(words[:5])} </HEADLINE>", "<TEXT>",
                      " ".join(words[:25]), " ".join(words[25:]), "</TEXT>", "</DOC>"]

    def text(lines: list[str]) -> str:
        return "\n".join(lines) + "\n"

    tok = _tok_spans
    return [
        Source("run", "run", "bm25.top100.trec", text(run), ref_run, True, True, True,
               lambda line: tok(line, (0, 2))),
        Source("qrels-trec", "qrels", "qrels.txt", text(qrels), ref_qrels(False), True, True, True,
               lambda line: tok(line, (0, 2))),
        Source("qrels-beir", "qrels", "test.tsv", text(beir), ref_qrels(False), True, True, True,
               lambda line: tok(line, (0, 1)) if not line.startswith("query-id") else []),
        Source("qrels-cranfield", "qrels", "cran.qrels", text(cran_q), ref_qrels(True), True, True, True,
               lambda line: tok(line, (0, 1))),
        Source("queries-tsv", "queries", "queries.tsv", text(queries_tsv), ref_tsv("queries"), True, False, False,
               _first_field("\t")),
        Source("queries-jsonl", "queries", "queries.jsonl", text(queries_jsonl), ref_jsonl("queries"), True, False,
               False, _json_id_span),
        Source("docs-jsonl", "docs", "corpus.jsonl", text(corpus), ref_jsonl("docs"), True, False, False,
               _json_id_span),
        Source("docs-tsv", "docs", "collection.tsv", text(coll), ref_tsv("docs"), True, False, False,
               _first_field("\t")),
        Source("topics-trec", "queries", "topics.dl19.txt", text(topics), ref_topics, False, False, False,
               _docno_span),
        Source("docs-trec", "docs", "docs.trec", text(trec_docs), ref_trec_docs, False, False, False, _docno_span),
        Source("docs-smart", "docs", "cran.all.1400", text(cran_docs), ref_smart("docs"), False, False, False,
               _smart_id_span),
        Source("queries-smart", "queries", "cran.qry", text(cran_qry), ref_smart("queries"), False, False, False,
               _smart_id_span),
    ]


# ============================================================================ mutations


@dataclass
class Case:
    source: Source
    mutation: str
    expect: str        # same | error | ref (see the module docstring)
    data: bytes
    gz: bool           # written with a .gz suffix
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.source.key}{'.gz' if self.gz else ''}/{self.mutation}" + (f" ({self.note})" if self.note else "")

    @property
    def filename(self) -> str:
        return self.source.filename + (".gz" if self.gz else "")


def _lines_keep(text: str) -> list[str]:
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def _nonblank_idx(lines: list[str]) -> list[int]:
    return [i for i, ln in enumerate(lines) if ln.strip()]


def _record_starts(src: Source, lines: list[str]) -> list[int]:
    """Indexes of lines before which a blank line changes nothing (record boundaries)."""
    if src.key.endswith("smart"):
        return [i for i, ln in enumerate(lines) if ln.startswith(".I ")]
    if src.key == "docs-trec":
        return [i for i, ln in enumerate(lines) if ln.startswith("<DOC>")]
    if src.key == "topics-trec":
        return [i for i, ln in enumerate(lines) if ln.startswith("<top>")]
    return list(range(len(lines) + 1))


def _insert_at(rng: random.Random, text: str, s: str) -> tuple[str, str]:
    lines = _lines_keep(text)
    i = rng.choice(_nonblank_idx(lines))
    ln = lines[i]
    j = rng.randrange(len(ln) + 1)
    lines[i] = ln[:j] + s + ln[j:]
    return _join(lines), f"line {i + 1} col {j + 1}"


def _replace_id(rng: random.Random, src: Source, text: str, new: Callable[[str], str]) -> tuple[str, str] | None:
    lines = _lines_keep(text)
    spans = [(i, sp) for i, ln in enumerate(lines) for sp in src.id_spans(ln)]
    if not spans:
        return None
    i, (a, b) = rng.choice(spans)
    lines[i] = lines[i][:a] + new(lines[i][a:b]) + lines[i][b:]
    return _join(lines), f"line {i + 1}"


def _m_crlf(rng, src, text):
    return text.replace("\n", "\r\n"), "same", ""


def _m_bom(rng, src, text):
    return "\ufeff" + text, "same", ""


def _m_trailing_blank(rng, src, text):
    return text + rng.choice(["\n", "\n\n", "  \n", "\t\n\n", "\r\n"]), "same", ""


def _m_leading_blank(rng, src, text):
    return rng.choice(["\n", "\n\n", "   \n", "\r\n"]) + text, "same", ""


def _m_blank_between(rng, src, text):
    lines = _lines_keep(text)
    i = rng.choice(_record_starts(src, lines))
    lines.insert(i, rng.choice(["", " ", "\t"]))
    return _join(lines), "same", f"before line {i + 1}"


def _m_trailing_ws(rng, src, text):
    lines = _lines_keep(text)
    idx = rng.sample(range(len(lines)), k=min(len(lines), rng.randint(1, 5)))
    for i in idx:
        lines[i] += rng.choice([" ", "  ", "\t", " \t "])
    same = src.split_ws or src.key in ("queries-jsonl", "docs-jsonl", "topics-trec")
    return _join(lines), "same" if same else "ref", f"{len(idx)} lines"


def _m_swap(rng, src, text):
    lines = _lines_keep(text)
    if len(lines) < 2:
        return None
    i = rng.randrange(len(lines) - 1)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    # qrels: swapping the BEIR header out of the first line makes it a line of data: the reference says
    same = src.order_free and not (src.key == "qrels-beir" and i == 0)
    return _join(lines), "same" if same else "ref", f"lines {i + 1}-{i + 2}"


def _m_flip(rng, src, text):
    b = bytearray(text.encode("utf-8"))
    i = rng.randrange(len(b))
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b), "ref", f"byte {i}"


def _m_cut_line(rng, src, text):
    lines = _lines_keep(text)
    i = rng.randrange(len(lines))
    del lines[i]
    return _join(lines), "ref", f"line {i + 1}"


def _m_truncate(rng, src, text):
    b = text.encode("utf-8")
    i = rng.randrange(len(b))
    return b[:i], "ref", f"at byte {i}"


def _m_dup(rng, src, text):
    lines = _lines_keep(text)
    i = rng.choice(_nonblank_idx(lines))
    lines.insert(i + 1 if rng.random() < 0.5 else rng.randrange(len(lines)), lines[i])
    return _join(lines), "ref", f"line {i + 1}"


def _m_drop_column(rng, src, text):
    lines = _lines_keep(text)
    i = rng.choice(_nonblank_idx(lines))
    ln = lines[i]
    if src.key.endswith("jsonl"):
        pairs = list(re.finditer(r'(, )?"[^"]+": ("[^"]*"|[^,}]*)', ln))
        if not pairs:
            return None
        m = rng.choice(pairs)
        lines[i] = ln[:m.start()] + ln[m.end():]
    else:
        sep = "\t" if "\t" in ln else None
        parts = ln.split(sep) if sep else ln.split(" ")
        if len(parts) < 2:
            return None
        del parts[rng.randrange(len(parts))]
        lines[i] = (sep or " ").join(parts)
    return _join(lines), "ref", f"line {i + 1}"


def _m_add_column(rng, src, text):
    lines = _lines_keep(text)
    i = rng.choice(_nonblank_idx(lines))
    ln = lines[i]
    if src.key.endswith("jsonl"):
        extra = rng.choice(['"extra": 1', '"_id": "999"', '"text": "other"', '"title": null', '"id": "x y"',
                            '"metadata": {"_id": "2"}'])
        j = ln.rfind("}")
        if j < 0:
            return None
        lines[i] = ln[:j] + ", " + extra + ln[j:]
    else:
        sep = "\t" if "\t" in ln else " "
        parts = ln.split(sep)
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(["0", "x", "1.5", "Q0", "extra"]))
        lines[i] = sep.join(parts)
    return _join(lines), "ref", f"line {i + 1}"


def _m_split_line(rng, src, text):
    t, note = _insert_at(rng, text, "\n")
    return t, "ref", note


def _m_join(rng, src, text):
    idx = [i for i, c in enumerate(text[:-1]) if c == "\n"]
    if not idx:
        return None
    i = rng.choice(idx)
    return text[:i] + rng.choice(["", " "]) + text[i + 1:], "ref", f"at char {i}"


def _m_lone_cr(rng, src, text):
    idx = [i for i, c in enumerate(text[:-1]) if c == "\n"]
    if not idx:
        return None
    i = rng.choice(idx)
    return text[:i] + "\r" + text[i + 1:], "ref", f"at char {i}"


def _m_huge_token(rng, src, text):
    tok = rng.choice(["x", "9", "ab", "é"]) * rng.choice([100_000, 50_000])
    sep = rng.choice(["", " "])
    t, note = _insert_at(rng, text, sep + tok + sep)
    return t, "ref", note


def _m_huge_id(rng, src, text):
    n = rng.choice([MAX_ID + 1, 300, 2019, 5000])
    r = _replace_id(rng, src, text, lambda old: (old * (n // max(1, len(old)) + 1))[:n])
    return (r[0], "error", r[1] + f", {n} chars") if r else None


def _m_long_id(rng, src, text):
    r = _replace_id(rng, src, text, lambda old: (old + "-" + "z" * MAX_ID)[:MAX_ID])
    # a 256-character id is valid; it may still collide with nothing (the reference decides)
    return (r[0], "ref", r[1]) if r else None


def _m_space_in_id(rng, src, text):
    if src.split_ws:
        return None
    def spaced(old: str) -> str:
        return old[: len(old) // 2] + " " + old[len(old) // 2:] if len(old) > 1 else old + " x"

    r = _replace_id(rng, src, text, spaced)
    return (r[0], "error", r[1]) if r else None


def _m_nfd(rng, src, text):
    return unicodedata.normalize("NFD", text), "ref", ""


def _m_accent(rng, src, text):
    letters = [i for i, c in enumerate(text) if c in "aeiouAEIOU"]
    if not letters:
        return None
    i = rng.choice(letters)
    form = rng.choice(["NFC", "NFD"])
    acc = unicodedata.normalize(form, text[i] + "\u0301")
    return text[:i] + acc + text[i + 1:], "ref", f"{form} at char {i}"


def _m_insert_char(chars: str):
    def m(rng, src, text):
        c = rng.choice(chars)
        t, note = _insert_at(rng, text, c)
        return t, "ref", f"U+{ord(c):04X} {note}"
    return m


def _m_invalid_utf8(rng, src, text):
    lines = _lines_keep(text)
    i = rng.choice(_nonblank_idx(lines))
    raw = lines[i].encode("utf-8")
    j = rng.randrange(len(raw) + 1)
    bad = rng.choice([b"\xff", b"\xfe", b"\xc3", b"\xe2\x82", b"\x80", b"\xed\xa0\x80"])
    # keep the insertion off the middle of a multi-byte character of the line
    while 0 < j < len(raw) and (raw[j] & 0xC0) == 0x80:
        j -= 1
    enc = [ln.encode("utf-8") for ln in lines]
    enc[i] = raw[:j] + bad + raw[j:]
    if bad == b"\xc3" and raw[j:j + 1] and 0x80 <= raw[j] <= 0xBF:
        return None
    return b"\n".join(enc) + b"\n", "error", f"line {i + 1}"


def _m_bom_middle(rng, src, text):
    lines = _lines_keep(text)
    if len(lines) < 2:
        return None
    i = rng.randrange(1, len(lines))
    lines[i] = "\ufeff" + lines[i]
    return _join(lines), "ref", f"line {i + 1}"


def _m_case(rng, src, text):
    lines = _lines_keep(text)
    i = rng.choice(_nonblank_idx(lines))
    lines[i] = lines[i].upper() if rng.random() < 0.5 else lines[i].lower()
    return _join(lines), "ref", f"line {i + 1}"


def _m_empty(rng, src, text):
    return rng.choice(["", "\n", "\n\n  \n", "\ufeff", "\ufeff\n"]), "ref", ""


_NUMBERS = ["1_0", "\u0661", "\uff11", "inf", "-inf", "nan", "NaN", "1e400", "-1e400", "0x10", "+1", "1.", ".5",
            "-0", "1e-400", "2.0", "3.5", "-1", "99999999999999999999", "1" * 5000, "", "1,5", "Infinity"]


def _m_number(rng, src, text):
    """A numeric field (score, rank or grade) replaced by an unusual number."""
    if src.kind not in ("run", "qrels"):
        return None
    cols = (3, 4) if src.kind == "run" else (3,) if src.key == "qrels-trec" else (2,)
    lines = _lines_keep(text)
    i = rng.choice([k for k in _nonblank_idx(lines) if not lines[k].startswith("query-id")])
    spans = _tok_spans(lines[i], (rng.choice(cols),))
    if not spans:
        return None
    a, b = spans[0]
    new = rng.choice(_NUMBERS)
    lines[i] = lines[i][:a] + new + lines[i][b:]
    return _join(lines), "ref", f"line {i + 1}: {new[:12]!r}"


_JSON_VALUES = ['1e400', '-0', '1' * 5000, '[' * 50000 + ']' * 50000, '{"a": {"b": [1, 2]}}', 'true', 'null',
                '"\\ud800"', '"x\\udc00y"', '"\\ud83d\\ude00"', '"\\u0000"', '"\\u200b1"', 'NaN', '[]', '""', '12',
                '"a\\tb"', '"\\u00e9"', '"e\\u0301"', '"\\"quoted\\""', '"' + 'y' * 300 + '"']


def _m_json_value(rng, src, text):
    """The value of one key of a JSON line replaced (numbers, nesting, escapes, types)."""
    if not src.key.endswith("jsonl"):
        return None
    lines = _lines_keep(text)
    i = rng.choice(_nonblank_idx(lines))
    vals = list(re.finditer(r'"([^"]+)": ("(?:[^"\\]|\\.)*"|\{\}|[^,}]+)', lines[i]))
    if not vals:
        return None
    m = rng.choice(vals)
    new = rng.choice(_JSON_VALUES)
    lines[i] = lines[i][:m.start(2)] + new + lines[i][m.end(2):]
    return _join(lines), "ref", f"line {i + 1}: {m.group(1)} = {new[:12]}"


def _m_escape(rng, src, text):
    """A backslash escape written into the text (meaningful in JSON, literal elsewhere)."""
    t, note = _insert_at(rng, text, rng.choice(["\\ud800", "\\u0000", "\\u200b", "\\n", "\\t", "\\", "\\u00e9", '\\"']))
    return t, "ref", note


def _m_marker(rng, src, text):
    """SMART: a field marker's letter changed (another capital, lower case, text after it);
    SGML: a tag renamed, lower-cased or broken."""
    lines = _lines_keep(text)
    if src.key.endswith("smart"):
        idx = [i for i, ln in enumerate(lines) if re.match(r"\.[A-Z]( |$)", ln)]
        if not idx:
            return None
        i = rng.choice(idx)
        ln = lines[i]
        how = rng.randrange(4)
        if how == 0:
            ln = "." + rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + ln[2:]
        elif how == 1:
            ln = ln[0] + ln[1].lower() + ln[2:]
        elif how == 2:
            ln = ln + rng.choice([" extra", "\textra", "x", " "])
        else:
            ln = rng.choice([" ", "..", ""]) + ln
        lines[i] = ln
        return _join(lines), "ref", f"line {i + 1}: {ln[:10]!r}"
    if src.key in ("docs-trec", "topics-trec"):
        spans = [(i, m) for i, ln in enumerate(lines) for m in re.finditer(r"</?([A-Za-z]+)>", ln)]
        if not spans:
            return None
        i, m = rng.choice(spans)
        ln = lines[i]
        how = rng.randrange(4)
        if how == 0:
            new = m.group().replace(m.group(1), m.group(1).swapcase())
        elif how == 1:
            new = m.group().replace(m.group(1), m.group(1)[:-1] + "X")
        elif how == 2:
            new = m.group()[:-1]
        else:
            new = ""
        lines[i] = ln[:m.start()] + new + ln[m.end():]
        return _join(lines), "ref", f"line {i + 1}: {m.group()} -> {new}"
    return None


MUTATIONS: dict[str, Callable] = {
    "crlf": _m_crlf,
    "bom": _m_bom,
    "trailing_blank": _m_trailing_blank,
    "leading_blank": _m_leading_blank,
    "blank_between": _m_blank_between,
    "trailing_ws": _m_trailing_ws,
    "swap_lines": _m_swap,
    "flip_byte": _m_flip,
    "cut_line": _m_cut_line,
    "truncate": _m_truncate,
    "dup_line": _m_dup,
    "drop_column": _m_drop_column,
    "add_column": _m_add_column,
    "split_line": _m_split_line,
    "join_lines": _m_join,
    "lone_cr": _m_lone_cr,
    "huge_token": _m_huge_token,
    "huge_id": _m_huge_id,
    "long_id": _m_long_id,
    "space_in_id": _m_space_in_id,
    "unicode_nfd": _m_nfd,
    "unicode_accent": _m_accent,
    "zero_width": _m_insert_char("\u200b\u200c\u200d\u2060\ufeff"),
    "rtl": _m_insert_char("\u200f\u202e\u2067"),
    "nbsp": _m_insert_char("\u00a0\u2003\u3000"),
    "control": _m_insert_char("\x00\x1b\x0b\x0c\x7f\x85\x1c"),
    "invalid_utf8": _m_invalid_utf8,
    "bom_middle": _m_bom_middle,
    "case": _m_case,
    "empty": _m_empty,
    "number": _m_number,
    "json_value": _m_json_value,
    "escape": _m_escape,
    "marker": _m_marker,
}
GZIP_MUTATIONS = ("gzip", "gzip_truncate", "gzip_garbage", "gzip_damage")


def _gzip(b: bytes) -> bytes:
    return gzip.compress(b, mtime=0)


def make_case(rng: random.Random, sources: list[Source]) -> Case:
    """One random case (the same sequence of ``rng`` calls gives the same case)."""
    while True:
        src = rng.choice(sources)
        r = rng.random()
        if r < 0.12:  # gzip family
            name = rng.choice(GZIP_MUTATIONS)
            base = src.text
            if rng.random() < 0.3:  # the gzip of a text variant
                sub = rng.choice(["crlf", "bom", "trailing_blank", "flip_byte", "cut_line", "dup_line"])
                out = MUTATIONS[sub](rng, src, base)
                if out is None:
                    continue
                base_text, base_expect, note = out
                name_full = f"{name}+{sub}"
            else:
                base_text, base_expect, note, name_full = base, "same", "", name
            raw = base_text if isinstance(base_text, bytes) else base_text.encode("utf-8")
            gz = _gzip(raw)
            if name == "gzip":
                return Case(src, name_full, base_expect, gz, True, note)
            if name == "gzip_truncate":
                i = rng.randrange(2, len(gz) - 1)
                return Case(src, name_full, "error", gz[:i], True, f"{note} cut at {i}/{len(gz)}".strip())
            if name == "gzip_garbage":
                return Case(src, name_full, "error", gz + rng.choice([b"garbage", b"\x1f\x8bxx", b"\n"]), True, note)
            i = rng.choice([rng.randrange(10), rng.randrange(10, len(gz) - 8), rng.randrange(len(gz) - 8, len(gz))])
            b = bytearray(gz)
            b[i] = (b[i] + rng.randrange(1, 256)) % 256
            return Case(src, name_full, "ref", bytes(b), True, f"{note} byte {i}/{len(gz)}".strip())
        if r < 0.2:  # two mutations
            names = rng.sample([n for n in MUTATIONS if n not in ("empty", "unicode_nfd")], 2)
            text: Any = src.text
            notes = []
            ok = True
            for n in names:
                if isinstance(text, bytes):
                    ok = False
                    break
                out = MUTATIONS[n](rng, src, text)
                if out is None:
                    ok = False
                    break
                text, _, note = out
                notes.append(note)
            if not ok:
                continue
            data = text if isinstance(text, bytes) else text.encode("utf-8")
            return Case(src, "double:" + "+".join(names), "ref", data, False, "; ".join(notes))
        name = rng.choice(list(MUTATIONS))
        out = MUTATIONS[name](rng, src, src.text)
        if out is None:
            continue
        text, expect, note = out
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        return Case(src, name, expect, data, False, note)


def generate(n: int, seed: int, sources: list[Source] | None = None) -> list[Case]:
    sources = sources or build_sources()
    rng = random.Random(seed)
    return [make_case(rng, sources) for _ in range(n)]


# ============================================================================ running a case


def read_with_library(src: Source, path: Path) -> Any:
    """The records the readers give (same shape as the reference's meaning)."""
    from rankstack.data.formats import read_docs, read_qrels, read_queries, read_run

    if src.kind == "run":
        return read_run(path).to_dict()
    if src.kind == "qrels":
        return read_qrels(path).to_dict()
    if src.kind == "docs":
        return [(d.id, d.title, d.text) for d in read_docs(path)]
    return [(q.id, q.text) for q in read_queries(path)]


def reference(src: Source, data: bytes) -> tuple[Any, tuple[str, ...]]:
    """The reference's meaning of ``data`` and the warnings it expects; :class:`Invalid` if invalid."""
    return src.ref(data) if src.ref in _RAW_REFS else src.ref(ref_lines(data))


def _warned(caught, kind: str) -> bool:
    needle = {"repeated": "repeated with the same grade", "stray": "repeated after their .W text"}[kind]
    return any(needle in str(w.message) for w in caught)


@dataclass
class Outcome:
    verdict: str  # clean | error | wrong | unclear | refused | traceback | harness
    detail: str = ""


def run_case(case: Case, tmpdir: Path, original: dict[str, Any] | None = None) -> Outcome:
    """Write the case, read it with the library and judge the answer against the reference."""
    src = case.source
    path = tmpdir / case.filename
    path.write_bytes(case.data)
    try:
        meaning, want_warn = reference(src, case.data)
        ref_error: Invalid | None = None
    except Invalid as e:
        meaning, want_warn, ref_error = None, (), e
    # the expectation written down for the mutation must agree with the reference
    if case.expect == "same":
        base = original[src.key] if original else reference(src, src.text.encode("utf-8"))[0]
        if ref_error is not None or meaning != base:
            return Outcome("harness", f"mutation labelled 'same' but the reference says {ref_error or 'other records'}")
    elif case.expect == "error" and ref_error is None:
        return Outcome("harness", "mutation labelled 'error' but the reference reads it")
    from rankstack.errors import RankstackError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = read_with_library(src, path)
    except RankstackError as e:
        msg = str(e)
        if ref_error is None:
            return Outcome("refused", f"{type(e).__name__}: {msg[:300]}")
        if "\n" in msg or not msg.startswith(f"{path}:"):
            return Outcome("unclear", f"does not start with the path: {msg[:300]}")
        if src.line_format and ref_error.line is not None and not msg.startswith(f"{path}:{ref_error.line}:"):
            return Outcome("unclear", f"expected line {ref_error.line} ({ref_error.why}): {msg[:300]}")
        return Outcome("error", msg)
    except Exception as e:  # noqa: BLE001 - anything else is a traceback in the command line
        return Outcome("traceback", f"{type(e).__name__}: {str(e)[:300]}")
    if ref_error is not None:
        return Outcome("wrong", f"read clean, but the reference says invalid ({ref_error})")
    if got != meaning:
        return Outcome("wrong", _diff(got, meaning))
    for w in want_warn:
        if not _warned(caught, w):
            return Outcome("wrong", f"read right but without the {w!r} warning")
    return Outcome("clean")


def _diff(got: Any, want: Any) -> str:
    if isinstance(got, dict) and isinstance(want, dict):
        keys = sorted(set(got) | set(want))
        for k in keys:
            if got.get(k) != want.get(k):
                return f"query {k!r}: got {str(got.get(k))[:150]} want {str(want.get(k))[:150]}"
    if isinstance(got, list) and isinstance(want, list):
        if len(got) != len(want):
            return f"{len(got)} records, want {len(want)}"
        for a, b in zip(got, want):
            if a != b:
                return f"got {str(a)[:200]} want {str(b)[:200]}"
    return "different records"


VERDICTS = ("clean", "error", "wrong", "unclear", "refused", "traceback", "harness")


def originals(sources: list[Source]) -> dict[str, Any]:
    return {s.key: reference(s, s.text.encode("utf-8"))[0] for s in sources}


# ============================================================================ the command line


def cli_pairs(sources: list[Source]) -> list[tuple[Source, Source]]:
    """``(qrels source, run source)`` pairs for ``rankstack evaluate``: DL19 (its run), SciFact and
    Cranfield (runs written here from the qrels slices: judged and unjudged documents, scores
    from a fixed shuffle)."""
    by = {s.key: s for s in sources}
    out = [(by["qrels-trec"], by["run"])]
    for key, fname in (("qrels-beir", "scifact.run"), ("qrels-cranfield", "cran.run")):
        q, _ = reference(by[key], by[key].text.encode("utf-8"))
        rng = random.Random(key)
        docs = sorted({d for v in q.values() for d in v})
        lines = []
        for qid in q:
            cand = list(q[qid]) + rng.sample(docs, min(5, len(docs)))
            cand = list(dict.fromkeys(cand))
            rng.shuffle(cand)
            for r, d in enumerate(cand, 1):
                lines.append(f"{qid} Q0 {d} {r} {20.0 - r * 0.75:.4f} synth")
        text = "\n".join(lines) + "\n"
        out.append((by[key], Source(f"run-{key}", "run", fname, text, ref_run, True, True, True,
                                    lambda line: _tok_spans(line, (0, 2)))))
    return out


def expected_cli(qrels_data: bytes, qsrc: Source, run_data: bytes, rsrc: Source, qpath: Path, rpath: Path):
    """``(exit code, figure or the path the error line must name)`` that ``rankstack evaluate`` must give."""
    from rankstack.data.records import Qrels, Run
    from rankstack.measures import evaluate

    try:
        q, _ = reference(qsrc, qrels_data)
    except Invalid:
        return 2, str(qpath)
    try:
        r, _ = reference(rsrc, run_data)
    except Invalid:
        return 2, str(rpath)
    if not q:
        return 2, str(qpath)
    if not any(r.values()) or not set(r) & set(q):
        return 2, str(rpath)
    v = evaluate(Qrels(q), Run(r), ["nDCG@10"])["nDCG@10"]
    return 0, f"nDCG@10\tall\t{v:.4f}"


def judge_cli(code: int, out: str, err: str, want: tuple[int, str]) -> str | None:
    """``None`` when the command did what it must, else what went wrong."""
    if "Traceback" in err or code == 3 or "internal error" in err:
        return f"exit {code}, traceback or internal error: {err.strip()[-300:]}"
    if want[0] == 0:
        if code != 0 or want[1] not in out:
            return f"exit {code}, want 0 and {want[1]!r}; out {out.strip()[:200]!r} err {err.strip()[:200]!r}"
        return None
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    if code != 2 or len(errors) != 1 or want[1] not in errors[0]:
        return f"exit {code}, want 2 with one error line naming {want[1]}; err {err.strip()[:300]!r}; out {out[:100]!r}"
    return None


def run_cli_inprocess(args: list[str]) -> tuple[int, str, str]:
    """``rankstack.interfaces.cli.main(args)`` in this process: exit code, stdout, stderr."""
    import contextlib

    from rankstack.interfaces.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            main(args)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    # warnings go to stderr, as they do in a real process
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return code, out.getvalue(), shown + err.getvalue()


def cli_cases(n: int, seed: int, sources: list[Source]):
    """``n`` random ``(qrels source, qrels bytes, run source, run bytes, label)`` where one of the
    two files is mutated."""
    rng = random.Random(seed)
    pairs = cli_pairs(sources)
    out = []
    while len(out) < n:
        qsrc, rsrc = rng.choice(pairs)
        target = rsrc if rng.random() < 0.5 else qsrc
        case = make_case(rng, [target])
        qdata = case.data if target is qsrc else qsrc.text.encode("utf-8")
        rdata = case.data if target is rsrc else rsrc.text.encode("utf-8")
        out.append((qsrc, qdata, rsrc, rdata, case))
    return out


def write_cli_case(tmp: Path, k: int, qsrc, qdata: bytes, rsrc, rdata: bytes, case) -> tuple[Path, Path]:
    """Write one ``evaluate`` case (qrels and run, one of them mutated) under ``tmp/cli<k>``."""
    d = tmp / f"cli{k}"
    d.mkdir()
    mutated_qrels = case.source is qsrc
    qpath = d / (case.filename if mutated_qrels else qsrc.filename)
    rpath = d / (case.filename if not mutated_qrels else rsrc.filename)
    qpath.write_bytes(qdata)
    rpath.write_bytes(rdata)
    return qpath, rpath
