"""The one rule every reader of :mod:`rankstack.data.formats` applies to the ids it reads.

A query id or document id (in runs, qrels, document and query files of every format) is refused at
read time, with a :class:`~rankstack.errors.FormatError` naming ``path:line:``, when it

* is empty;
* is longer than :data:`MAX_ID_LENGTH` characters (256): real collections use ids of a few to a few
  dozen characters, while a damaged line can turn a whole passage into an id (one 2,019-character id
  once grew an index's id array from 0.65 MB to 88 MB);
* contains whitespace (any Unicode space, tab, line or paragraph separator) or a control or invisible
  character (Unicode categories ``Cc``, ``Cf`` -- zero-width spaces and joiners, bidirectional marks,
  a byte-order mark in the middle of a file --, ``Cs`` -- a lone surrogate from a JSON ``\\ud800``
  escape --, ``Zs``, ``Zl``, ``Zp``). Such an id cannot be written to a whitespace-separated run or
  qrels file, and an invisible character makes an id that looks like another one but never matches
  it. Formats that split lines on whitespace never produce one with a space; the check matters for
  the tab-separated, JSON, SGML and SMART formats.

Ids are not normalised (no case folding, no Unicode normalisation, no zero stripping unless a
reader's ``strip_zeros=`` asks for it): ``"café"`` in NFC and in NFD are two different ids, as they
are for trec_eval.

:data:`MAX_ID_LENGTH` is a module constant read at every call; a collection with longer ids can
raise it (``rankstack.data.formats.ids.MAX_ID_LENGTH = 1024``) before reading.
"""

from __future__ import annotations

import unicodedata

from rankstack.data.formats._lines import PathLike, _err

#: the longest id (in characters) any reader accepts; see the module docstring
MAX_ID_LENGTH = 256

#: Unicode categories refused in ids (``Co`` private use and ``Cn`` unassigned are allowed)
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


def max_id_length() -> int:
    """:data:`MAX_ID_LENGTH` as it is now (read at every call, so that changing it takes effect)."""
    return MAX_ID_LENGTH


def _bad_char(value: str) -> tuple[int, str] | None:
    """The position and character of the first character an id cannot contain, or ``None``."""
    if value.isprintable() and " " not in value:  # fast path: no Cc/Cf/Cs/Co/Cn/Z* character at all
        return None
    for i, c in enumerate(value):
        if c == " " or unicodedata.category(c) in _BAD_CATEGORIES:
            return i, c
    return None


def _describe(c: str) -> str:
    name = unicodedata.name(c, "") or {"\t": "TAB", "\n": "LINE FEED", "\r": "CARRIAGE RETURN"}.get(c, "")
    return f"U+{ord(c):04X}" + (f" {name}" if name else "") + f" ({unicodedata.category(c)})"


def id_problem(value: str, what: str = "") -> str | None:
    """Why ``value`` cannot be an id (a sentence), or ``None`` when it can."""
    label = f"{what} id" if what else "id"
    if not value:
        return f"empty {label}"
    limit = MAX_ID_LENGTH
    if len(value) > limit:
        return (f"{label} of {len(value):,} characters (starting {value[:40]!r}); ids are limited to {limit} "
                "characters (rankstack.data.formats.ids.MAX_ID_LENGTH)")
    bad = _bad_char(value)
    if bad is not None:
        i, c = bad
        return (f"{label} {value[:60]!r} contains {_describe(c)} at position {i + 1}; ids cannot contain "
                "whitespace or control or invisible characters")
    return None


def is_valid_id(value: str) -> bool:
    """Whether :func:`check_id` accepts ``value`` (fast: one C-level test for ordinary ids)."""
    return 0 < len(value) <= MAX_ID_LENGTH and _bad_char(value) is None


def check_id(path: PathLike, lineno: int, value: str, what: str) -> str:
    """``value`` when it is a valid id, else a :class:`FormatError` ``path:lineno: ...``."""
    if 0 < len(value) <= MAX_ID_LENGTH and value.isprintable() and " " not in value:  # common case: no loop
        return value
    problem = id_problem(value, what)
    if problem is not None:
        raise _err(path, lineno, problem)
    return value
