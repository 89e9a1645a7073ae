"""SMART classic-collection records (Cranfield, CISI, CACM, MED, ADI): :func:`read_smart_records`.

A record starts with ``.I <id>``; a field starts with a line ``.X`` (a dot and one capital letter,
optionally followed by text on the same line). Every field is kept by marker letter; a marker
repeated inside a record appends to that field. Field values are the lines joined by ``\\n``,
stripped. The document and query readers map these records to ``Document``/``Query``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from rankstack.data.formats._lines import PathLike, _err, _lines

_SMART_MARKER = re.compile(r"\.([A-Z])(?:[ \t]+(.*))?$")


@dataclass(slots=True)
class SmartRecord:
    """One ``.I`` record of a SMART file: its id, its first line and every field by marker letter."""

    id: str
    line: int
    fields: dict[str, str] = field(default_factory=dict)


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
        if letter == "I":
            if rec is not None:
                yield finish()
            rid = (rest or "").strip()
            if not rid or len(rid.split()) != 1:
                raise _err(path, lineno, f".I needs one record id, got {line!r}")
            rec, parts, cur = SmartRecord(rid, lineno), {}, None
            continue
        if rec is None:
            raise _err(path, lineno, f"field .{letter} before the first .I record")
        cur = parts.setdefault(letter, [])
        if rest and rest.strip():
            cur.append(rest)
    if rec is not None:
        yield finish()
