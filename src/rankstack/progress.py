"""The one progress helper: every long loop of rankstack (indexing, encoding, scoring, LLM
reranking, experiments) shows its progress through :func:`progress_bar`, on stderr, with tqdm.

Ground floor: imports nothing of rankstack. A disabled bar is a no-op object with the same methods,
so callers never branch on it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Bar", "progress_bar"]


class Bar:
    """A progress bar (``enabled=False``: does nothing). ``advance(n, **postfix)`` moves it by ``n``
    and shows ``key=value`` figures after it; ``describe(text)`` changes its label."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", enabled: bool = True, initial: int = 0,
                 leave: bool = True) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=sys.stderr,
                             dynamic_ncols=True)

    def advance(self, n: int = 1, **postfix: Any) -> None:
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(n)

    update = advance  # the name tqdm and HF callbacks use

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextmanager
def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True, initial: int = 0,
                 leave: bool = True) -> Iterator[Bar]:
    """``with progress_bar(n, "encoding", unit="doc", enabled=progress) as bar: ... bar.advance(k)``."""
    bar = Bar(total, desc, unit, enabled, initial, leave)
    try:
        yield bar
    finally:
        bar.close()
