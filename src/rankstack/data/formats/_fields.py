"""Field-level parsing helpers shared by the document and query readers.

JSON lines: :func:`_json_obj` parses one line into an object, :func:`_json_id` / :func:`_json_str`
take the first present key of a list of aliases (``_id``/``id``/... ) and check its type; every error
names ``path:line:``. Strict where ``json`` is lenient: a key we read that appears twice in the
object (``json`` silently keeps the last), a string with a lone surrogate (``"\\ud800"``, not text:
it cannot be written back as UTF-8), an integer of over 4,300 digits or nesting too deep for the
parser are errors naming the line; ids follow :mod:`~rankstack.data.formats.ids`.

SGML: the tag patterns used by TREC documents (``<DOC>``) and TREC topics (``<top>``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from rankstack.data.formats._lines import PathLike, _err
from rankstack.data.formats.ids import check_id

# ---------------------------------------------------------------------------------------- JSON

_MISSING = object()


class _Obj(dict):
    """A JSON object with something to say (see :func:`_json_obj`): a ``dict`` that also knows the
    keys that were repeated in it (``json`` keeps the last value of a repeated key without a word)
    and whether its line has a ``\\uD800``-style escape, which can decode to a lone surrogate."""

    repeated: frozenset = frozenset()
    escapes: bool = False


#: objects decode to their list of ``(key, value)`` pairs (a C-level hook: cheap), so that a
#: repeated key is seen; nested objects stay lists of pairs (the readers only read strings and ids)
_decode_pairs = json.JSONDecoder(object_pairs_hook=list).decode
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _kind(v: Any) -> str:
    return "an object or array" if isinstance(v, list) else type(v).__name__


def _json_obj(path: PathLike, lineno: int, line: str) -> dict:
    """One JSON object (its top level as a ``dict``), with the checks of the module docstring."""
    try:
        pairs = _decode_pairs(line)
    except json.JSONDecodeError as e:
        raise _err(path, lineno, f"invalid JSON: {e.msg} at column {e.colno}") from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        raise _err(path, lineno, f"invalid JSON: {str(e)[:80]}") from None
    except RecursionError:
        raise _err(path, lineno, "invalid JSON: nested too deeply") from None
    if type(pairs) is not list or not line.lstrip(" \t\r\n").startswith("{"):  # ([] is an array, not {})
        raise _err(path, lineno, f"expected a JSON object, got {'an array' if type(pairs) is list else _kind(pairs)}")
    obj: dict = dict(pairs)
    if len(obj) != len(pairs):
        obj = _Obj(obj)
        obj.repeated = frozenset(k for i, (k, _) in enumerate(pairs) if any(k == k2 for k2, _ in pairs[:i]))
    if "\\u" in line and _SURROGATE_ESCAPE.search(line) is not None:
        obj = obj if type(obj) is _Obj else _Obj(obj)
        obj.escapes = True
    return obj


def _pick(path: PathLike, lineno: int, obj: dict, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in obj:
            if type(obj) is _Obj and obj.repeated and k in obj.repeated:
                raise _err(path, lineno, f"key {k!r} appears more than once in the JSON object")
            return obj[k]
    return _MISSING


def _no_surrogate(path: PathLike, lineno: int, obj: dict, v: str, name: str) -> str:
    if type(obj) is _Obj and obj.escapes:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as e:
            raise _err(path, lineno, f"field {name!r} has a lone surrogate escape (\\u{ord(v[e.start]):04x}), "
                                     "which is not text") from None
    return v


def _keys(obj: dict) -> str:
    names = [repr(k)[1:-1][:40] for k in list(obj)[:12]]
    return ", ".join(names) + (", ..." if len(obj) > 12 else "")


def _json_id(path: PathLike, lineno: int, obj: dict, keys: tuple[str, ...], what: str) -> str:
    v = _pick(path, lineno, obj, keys)
    if v is _MISSING:
        raise _err(path, lineno, f"no {what} id field (expected one of {', '.join(keys)}; keys: {_keys(obj)})")
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise _err(path, lineno, f"{what} id must be a string or integer, got {_kind(v)}")
    v = str(v)
    return check_id(path, lineno, v, what)


def _json_str(path: PathLike, lineno: int, obj: dict, keys: tuple[str, ...], name: str, required: bool) -> str:
    v = _pick(path, lineno, obj, keys)
    if v is _MISSING:
        if required:
            raise _err(path, lineno, f"no {name} field (expected one of {', '.join(keys)}; keys: {_keys(obj)})")
        return ""
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _err(path, lineno, f"field {name!r} must be a string, got {_kind(v)}")
    return _no_surrogate(path, lineno, obj, v, name)


# ---------------------------------------------------------------------------------------- SGML

#: an opening or closing tag; group 1 is ``"/"`` for a closing tag, group 2 the tag name
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9_]*)(?:\s[^>]*)?>")
#: any tag, to remove inner markup (``<P>``)
_ANY_TAG = re.compile(r"</?[A-Za-z][^>]*>")
