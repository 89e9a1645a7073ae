"""Field-level parsing helpers shared by the document and query readers.

JSON lines: :func:`_json_obj` parses one line into an object, :func:`_json_id` / :func:`_json_str`
take the first present key of a list of aliases (``_id``/``id``/... ) and check its type; every error
names ``path:line:``. SGML: the tag patterns used by TREC documents (``<DOC>``) and TREC topics
(``<top>``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from rankstack.data.formats._lines import PathLike, _err

# ---------------------------------------------------------------------------------------- JSON

_MISSING = object()


def _pick(obj: dict, keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in obj:
            return obj[k]
    return _MISSING


def _json_obj(path: PathLike, lineno: int, line: str) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise _err(path, lineno, f"invalid JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(obj, dict):
        raise _err(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _json_id(path: PathLike, lineno: int, obj: dict, keys: tuple[str, ...], what: str) -> str:
    v = _pick(obj, keys)
    if v is _MISSING:
        raise _err(path, lineno, f"no {what} id field (expected one of {', '.join(keys)}; keys: {', '.join(obj)})")
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise _err(path, lineno, f"{what} id must be a string or integer, got {type(v).__name__}")
    v = str(v)
    if not v:
        raise _err(path, lineno, f"empty {what} id")
    return v


def _json_str(path: PathLike, lineno: int, obj: dict, keys: tuple[str, ...], name: str, required: bool) -> str:
    v = _pick(obj, keys)
    if v is _MISSING:
        if required:
            raise _err(path, lineno, f"no {name} field (expected one of {', '.join(keys)}; keys: {', '.join(obj)})")
        return ""
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _err(path, lineno, f"field {name!r} must be a string, got {type(v).__name__}")
    return v


# ---------------------------------------------------------------------------------------- SGML

#: an opening or closing tag; group 1 is ``"/"`` for a closing tag, group 2 the tag name
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9_]*)(?:\s[^>]*)?>")
#: any tag, to remove inner markup (``<P>``)
_ANY_TAG = re.compile(r"</?[A-Za-z][^>]*>")
