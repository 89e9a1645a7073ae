"""SMART classic-collection records (Cranfield, CISI, CACM, MED, ADI): :func:`read_smart_records`.

A record starts with ``.I <id>``; a field starts with a marker line: exactly ``.X``, or ``.X <text>``
(the text then starts the field), where ``X`` is one of the field letters of these collections
(:data:`SMART_FIELDS`: ``.T`` title, ``.A`` authors, ``.B`` bibliography, ``.W`` text, ``.K``
keywords, ``.N`` entry date, ``.X`` citations, ``.C`` categories, ``.I`` the record id). Every other
line is text of the current field. A marker line with another capital letter (``.V``, ``.Q``: a
damaged marker, or a collection with fields of its own) is an error naming the line rather than a
field no reader looks at, where the rest of the record's text would disappear; so is a line that
is only a marker in lower case (``.w``) or indented (`` .W``), which would silently move the text
after it into the previous field. Every field is kept
by marker letter; a marker repeated inside a record appends to that field (as ir_datasets does).
Field values are the lines joined by ``\\n``, stripped. The document and query readers map these
records to ``Document``/``Query``.

A field repeated *after* the text (``.W``) started, when it is not part of the text, is suspect:
Cranfield document 240 has a line ``.A`` in the middle of its abstract, which moves the rest of the
abstract to the authors (ir_datasets reads it the same way). The readers keep that reading (the
record is what its markers say) but warn once per file with the number of such records and the
first ids (:class:`_StrayFields`), so that text leaving the index is never silent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from rankstack.data.formats._lines import PathLike, _err, _lines, _warn
from rankstack.data.formats.ids import check_id

#: a marker line: ``.X`` or ``.X text`` (any capital; :data:`SMART_FIELDS` says which are fields)
_SMART_MARKER = re.compile(r"\.([A-Z])(?:[ \t]+(.*))?$")

#: a marker damaged into text: a lower-case letter (``.w``) or an indented marker (`` .W``), alone on its line
_LOOKALIKE = re.compile(r"\.[a-z][ \t]*|[ \t]+\.[A-Za-z][ \t]*")
_LOOKALIKE_START = frozenset(". \t")

#: the field letters of the SMART collections (Cranfield, CISI, CACM, MED, ADI)
SMART_FIELDS = frozenset("ITABWKNXC")


@dataclass(slots=True)
class SmartRecord:
    """One ``.I`` record of a SMART file: its id, its first line and every field by marker letter
    (``order``: the marker letters after ``.I`` in the order they appear, repeats included)."""

    id: str
    line: int
    fields: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


def read_smart_records(path: PathLike, *, encoding: str = "utf-8") -> Iterator[SmartRecord]:
    """Stream the ``.I`` records of a SMART file with all their fields (``{"T": ..., "W": ...}``)."""
    rec: SmartRecord | None = None
    parts: dict[str, list[str]] = {}
    cur: list[str] | None = None

    def finish() -> SmartRecord:
        assert rec is not None
        rec.fields = {k: "\n".join(v).strip() for k, v in parts.items()}
        return rec

    for lineno, line in _lines(path, encoding):
        m = _SMART_MARKER.match(line) if line[:1] == "." else None
        if m is None and line[:1] in _LOOKALIKE_START and _LOOKALIKE.fullmatch(line):
            raise _err(path, lineno, f"{line.strip()!r} looks like a field marker but is not one (a marker is a "
                                     "capital letter after a dot at the start of the line); its text would go to "
                                     "the previous field")
        if m is None:
            if rec is None:
                if line.strip():
                    raise _err(path, lineno, f"text before the first .I record: {line[:40]!r}")
                continue
            if cur is None:
                if line.strip():
                    raise _err(path, lineno, f"text before any field marker in record {rec.id!r}: {line[:40]!r}")
                continue
            cur.append(line)
            continue
        letter, rest = m.group(1), m.group(2)
        if letter not in SMART_FIELDS:
            raise _err(path, lineno, f"unknown SMART field marker {line[:40]!r} (known: "
                                     f"{' '.join('.' + f for f in sorted(SMART_FIELDS))})")
        if letter == "I":
            if rec is not None:
                yield finish()
            rid = (rest or "").strip()
            if not rid or len(rid.split()) != 1:
                raise _err(path, lineno, f".I needs one record id, got {line[:60]!r}")
            rec, parts, cur = SmartRecord(check_id(path, lineno, rid, "record"), lineno), {}, None
            continue
        if rec is None:
            raise _err(path, lineno, f"field .{letter} before the first .I record")
        rec.order.append(letter)
        cur = parts.setdefault(letter, [])
        if rest and rest.strip():
            cur.append(rest)
    if rec is not None:
        yield finish()


def _stray_letters(rec: SmartRecord, kept: frozenset[str]) -> list[str]:
    """Fields not in ``kept`` that appear before the ``.W`` text and again after it started."""
    before: set[str] = set()
    out: list[str] = []
    in_text = False
    for letter in rec.order:
        if letter == "W":
            in_text = True
        elif not in_text:
            before.add(letter)
        elif letter in before and letter not in kept and letter not in out:
            out.append(letter)
    return out


class _StrayFields:
    """Counts the records of one file with a field repeated after their text (:func:`_stray_letters`)
    and warns once, at the end of the file, naming the first of them."""

    def __init__(self, path: PathLike, what: str, kept: frozenset[str]):
        self.path, self.what, self.kept = path, what, kept
        self.records: list[tuple[str, int, list[str]]] = []

    def check(self, rec: SmartRecord) -> None:
        letters = _stray_letters(rec, self.kept)
        if letters:
            self.records.append((rec.id, rec.line, letters))

    def warn(self) -> None:
        if not self.records:
            return
        n = len(self.records)
        first = ", ".join(f"{rid} (line {ln}: {' '.join('.' + x for x in ls)})" for rid, ln, ls in self.records[:5])
        _warn(f"{self.path}: {n} {self.what} record(s) have a field marker repeated after their .W text, "
                      f"e.g. {first}{', ...' if n > 5 else ''}; the lines after such a marker are read as that field "
                      f"(as ir_datasets reads them), not as {self.what} text")
