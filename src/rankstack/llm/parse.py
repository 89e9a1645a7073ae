"""Turn an LLM's ranking answer into a valid permutation, whatever it wrote.

Listwise rerankers (RankGPT, Sun et al., EMNLP 2023; RankZephyr, Pradeep et al., 2023) ask the model
for an order such as ``[3] > [1] > [2]``. Small models answer with anything: plain numbers, commas,
prose, duplicates, ids that do not exist, a ``<think>`` block first, or nothing. :func:`parse_permutation`
always returns a permutation of ``range(n)`` and lists every repair it made, following RankGPT's own
``receive_permutation`` rules (keep the first mention of an id, drop out-of-range ids, append the
missing ids in their original order) -- but reporting them instead of silently fixing them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rankstack.errors import ConfigError

__all__ = ["ParseResult", "label_for", "labels", "parse_permutation", "strip_think"]

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_THINK_TAG = re.compile(r"<(/?)think>", re.IGNORECASE)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_INT = re.compile(r"(?<![\d])-?\d+")
_BR_INT = re.compile(r"\[\s*(-?\d+)\s*\]")
_BR_LETTER = re.compile(r"\[\s*([A-Z])\s*\]")
# a letter label: a single capital letter standing alone or in brackets, e.g. "[B] > [A]" or "B, A"
_LETTER = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")
# at most this many digits make a candidate id; longer digit runs are noise (and would be slow to int())
_MAX_DIGITS = 6


@dataclass
class ParseResult:
    """A permutation of ``range(n)`` (best first) and the repairs made to get it."""

    order: list[int]
    repairs: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """``True`` if the answer was a complete permutation needing no repair."""
        return not self.repairs


def labels(n: int, style: str = "number") -> list[str]:
    """The identifiers shown to the model for ``n`` passages: ``1..n`` or ``A, B, ...`` (``style='letter'``)."""
    return [label_for(i, style) for i in range(n)]


# capital letters that are not English words ("A" and "I" are): a model whose first answer token is the
# pronoun "I" or the article "A" would otherwise "choose" that passage (seen with Gemma-3-270M under FIRST)
_NONWORD_LETTERS = "BCDEFGHJKLMNOPQRSTUVWXYZ"


def label_for(i: int, style: str = "number") -> str:
    """The identifier of the ``i``-th (0-based) passage: ``"1"`` (``number``), ``"A"`` (``letter``), or
    ``"B"`` (``letter-nonword``: the 24 capitals without the English words ``A`` and ``I``; read from
    logits only, :func:`parse_permutation` does not parse it)."""
    if style == "number":
        return str(i + 1)
    if style == "letter":
        if i >= 26:
            raise ConfigError(f"letter labels allow at most 26 passages, got index {i}")
        return chr(ord("A") + i)
    if style == "letter-nonword":
        if i >= len(_NONWORD_LETTERS):
            raise ConfigError(f"letter-nonword labels allow at most {len(_NONWORD_LETTERS)} passages, got index {i}")
        return _NONWORD_LETTERS[i]
    raise ConfigError(f"unknown label style {style!r}; use 'number', 'letter' or 'letter-nonword'")


def _strip_think_blocks(text: str) -> tuple[str, int]:
    """``_THINK_BLOCK.subn(" ", text)`` in one pass over the tags: the regex form rescans to the end of
    the text from every unclosed ``<think>``, quadratic on a model that repeats the tag."""
    parts: list[str] = []
    pos, start, k = 0, -1, 0
    for m in _THINK_TAG.finditer(text):
        if start < 0:
            if m.group(1) == "":  # an opening tag outside a block starts one
                start = m.start()
        elif m.group(1) == "/":  # the first closing tag ends the block
            parts.append(text[pos:start])
            parts.append(" ")
            pos, start, k = m.end(), -1, k + 1
    parts.append(text[pos:])
    return "".join(parts), k


def strip_think(text: str) -> tuple[str, list[str]]:
    """Remove ``<think>...</think>`` blocks; an unclosed ``<think>`` drops everything after it.

    Returns the remaining text and the repairs made (``'think-unclosed'``, ``'think-stripped'``).
    If an ``<answer>...</answer>`` block is present (Rank-R1's format) only its content is kept.
    """
    repairs: list[str] = []
    out, k = _strip_think_blocks(text)
    if k:
        repairs.append("think-stripped")
    # a stray closing tag: a model that was prompted with "<think>" already open answers "...</think> ans"
    if _THINK_CLOSE.search(out):
        out = _THINK_CLOSE.split(out)[-1]
        repairs.append("think-close-only")
    m = _THINK_OPEN.search(out)
    if m:
        out = out[: m.start()]
        repairs.append("think-unclosed")
    ans = _ANSWER.findall(out)
    if ans:
        out = " ".join(ans)
    return out, repairs


def parse_permutation(text: str | None, n: int, style: str = "number") -> ParseResult:
    """Parse a ranking answer over ``n`` passages into a permutation of ``range(n)``.

    ``style='number'`` reads 1-based integers (``[3] > [1] > [2]``, ``3 > 1 > 2``, ``3, 1, 2``,
    ``Passage 3 ...``); ``style='letter'`` reads capital letters ``A..`` as labels. When the
    answer contains bracketed ids (``[3]``, ``[B]``) only those are read, so numbers in prose around
    them are ignored.
    Never raises for any string; ``n`` must be a non-negative int.

    Repairs reported (each once): ``think-stripped``, ``think-unclosed``, ``think-close-only``,
    ``empty`` (no id found), ``duplicate`` (later mentions dropped), ``out-of-range`` (dropped),
    ``missing`` (appended in original order).
    """
    if n < 0:
        raise ConfigError(f"n must be >= 0, got {n}")
    if text is None:
        text = ""
    if not isinstance(text, str):
        text = str(text)
    body, repairs = strip_think(text)
    if n == 0:
        return ParseResult([], repairs)
    ids: list[int] = []
    out_of_range = False
    if style == "number":
        # bracketed ids ("[3] > [1]") are unambiguous: when present, other numbers are prose
        matches = list(_BR_INT.finditer(body)) or list(_INT.finditer(body))
        for m in matches:
            tok = m.group(m.lastindex or 0)
            if len(tok) > _MAX_DIGITS or tok.startswith("-"):
                out_of_range = True
                continue
            i = int(tok) - 1
            if 0 <= i < n:
                ids.append(i)
            else:
                out_of_range = True
    elif style == "letter":
        matches = list(_BR_LETTER.finditer(body)) or list(_LETTER.finditer(body))
        for m in matches:
            i = ord(m.group(1)) - ord("A")
            if 0 <= i < n:
                ids.append(i)
            else:
                out_of_range = True
    else:
        raise ConfigError(f"unknown label style {style!r}; use 'number' or 'letter'")
    seen: set[int] = set()
    order: list[int] = []
    dup = False
    for i in ids:
        if i in seen:
            dup = True
            continue
        seen.add(i)
        order.append(i)
    if not ids:
        repairs.append("empty")
    if dup:
        repairs.append("duplicate")
    if out_of_range:
        repairs.append("out-of-range")
    if len(order) < n:
        if ids:
            repairs.append("missing")
        order.extend(i for i in range(n) if i not in seen)
    return ParseResult(order, repairs)
