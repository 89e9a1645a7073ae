"""Runs: :func:`read_run` / :func:`write_run` in TREC format (``qid Q0 docid rank score tag``);
:func:`read_run` also reads MS MARCO's three columns (``qid<TAB>docid<TAB>rank``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from rankstack.data.formats._fast import _fast_run
from rankstack.data.formats._lines import PathLike, _err, _find_first, _lines
from rankstack.data.formats._write import _check_token, _Writer
from rankstack.data.formats.detect import _resolve
from rankstack.data.formats.ids import check_id, max_id_length
from rankstack.data.records import Run, ranked_items
from rankstack.errors import ConfigError


def read_run(path: PathLike, format: str = "auto", *, name: str | None = None, encoding: str = "utf-8") -> Run:
    """Read a TREC run (``qid Q0 docid rank score tag``) into a :class:`Run`, keeping the scores.

    ``format="auto"`` tells TREC's six columns from MS MARCO's three (``qid<TAB>docid<TAB>rank``,
    no score): an MS MARCO line gets the score ``1/rank``, as Pyserini's conversion to TREC gives
    it, so the order is the file's ranks; a rank repeated within a query is an error (the order
    would be undefined). ``path`` ``"-"`` reads standard input.

    The run's name is ``name`` or the tag of the first line. Ranks are checked to be integers but,
    as in trec_eval, the order comes from the scores. A repeated ``(qid, docid)`` raises
    :class:`FormatError` naming the file and both lines. Scores and ranks are plain ASCII numbers
    (``float()``'s ``"1_0"`` and other scripts' digits are refused); query and document ids follow
    the rule of :mod:`~rankstack.data.formats.ids` (no control or invisible character, at most
    :data:`~rankstack.data.formats.ids.MAX_ID_LENGTH` characters).
    """
    if _resolve(format, "run", path) == "msmarco":
        return _read_msmarco_run(path, name, encoding)
    limit = max_id_length()
    # a regular file in one pass (an ASCII file reads the same in any ASCII-compatible encoding);
    # anything irregular is read, or refused with its line, below
    fast = _fast_run(path, limit) if encoding.lower().replace("-", "") in ("utf8", "ascii") else None
    if fast is not None:
        return Run._wrap(fast[0], name=name or fast[1] or Path(path).name)
    data: dict[str, dict[str, float]] = {}
    tag: str | None = None
    for lineno, line in _lines(path, encoding):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise _err(path, lineno, f"expected 6 fields (qid Q0 docid rank score tag), got {len(parts)}")
        qid, _, did, rank, score, t = parts
        try:
            if not score.isascii() or "_" in score:  # (_plain_number, inlined: this loop is the hot one)
                raise ValueError
            s = float(score)
        except ValueError:
            raise _err(path, lineno, f"score {score[:40]!r} is not a number") from None
        if math.isnan(s):
            raise _err(path, lineno, "score is NaN")
        if not rank.isdigit() and not (rank[:1] == "-" and rank[1:].isdigit()) or not rank.isascii():
            raise _err(path, lineno, f"rank {rank[:40]!r} is not an integer")
        if len(qid) > limit or len(did) > limit or not (qid.isprintable() and did.isprintable()):
            check_id(path, lineno, qid, "query")
            check_id(path, lineno, did, "document")
        docs = data.get(qid)
        if docs is None:
            docs = data[qid] = {}
        elif did in docs:
            first = _find_first(path, encoding, lineno, qid, did, "run", False)
            raise _err(path, lineno, f"document {did!r} repeated for query {qid!r} (first at line {first})")
        docs[did] = s
        if tag is None:
            tag = t
    return Run._wrap(data, name=name or tag or Path(path).name)


def _read_msmarco_run(path: PathLike, name: str | None, encoding: str) -> Run:
    data: dict[str, dict[str, float]] = {}
    ranks: dict[str, dict[int, int]] = {}  # qid -> rank -> line
    for lineno, line in _lines(path, encoding):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise _err(path, lineno, f"expected 3 fields (qid docid rank: an MS MARCO run), got {len(parts)}")
        qid, did, rank = parts
        if not (rank.isascii() and rank.isdigit()) or int(rank) < 1:
            raise _err(path, lineno, f"rank {rank[:40]!r} is not a positive integer")
        check_id(path, lineno, qid, "query")
        check_id(path, lineno, did, "document")
        r = int(rank)
        docs = data.setdefault(qid, {})
        seen = ranks.setdefault(qid, {})
        if did in docs:
            first = _find_first(path, encoding, lineno, qid, did, "msmarco", False)
            raise _err(path, lineno, f"document {did!r} repeated for query {qid!r} (first at line {first})")
        if r in seen:
            raise _err(path, lineno, f"rank {r} repeated for query {qid!r} (first at line {seen[r]}): the order "
                       "of an MS MARCO run is its ranks")
        seen[r] = lineno
        docs[did] = 1.0 / r
    return Run._wrap(data, name=name or Path(path).stem)


def write_run(run: Mapping[str, Mapping[str, float]], path: PathLike, tag: str | None = None) -> Path:
    """Write a run in TREC format: queries in string order, documents in trec_eval order (score
    desc, doc id desc), ranks 1..n, scores as ``repr`` of the float so that reading the file back
    gives exactly the same run. ``tag`` defaults to the run's name. Returns the path."""
    tag = tag or getattr(run, "name", None) or "rankstack"
    _check_token(tag, "run tag")
    with _Writer(path) as f:
        for qid in sorted(run):
            _check_token(qid, "query id")
            scores = run[qid]
            lines = []
            for i, (did, s) in enumerate(ranked_items(scores), 1):
                s = float(s)
                if math.isnan(s):
                    raise ConfigError(f"score of ({qid}, {did}) is NaN")
                _check_token(did, "document id")
                lines.append(f"{qid} Q0 {did} {i} {float.__repr__(s)} {tag}\n")
            f.writelines(lines)
    return Path(path)
