"""A third-party reranker, written only against rankstack's public faces: ``rankstack.stages``
(the batched reranker contract), ``rankstack.registry`` (its name) and ``rankstack.testing`` (the
contract it passes, see ``tests/test_examples.py``).

``TitleBoost`` keeps the incoming ranking and adds a bonus for the query's words that occur in a
candidate's title: ``score = incoming score + weight * (share of query words in the title)``.

Use it in an experiment by loading this file as a plugin (see ``examples/title_boost.toml``)::

    [experiment]
    plugins = ["title_boost.py"]      # paths relative to the TOML file, or importable module names

    [[pipelines]]
    name = "bm25 >> title-boost"
    stages = [{ stage = "bm25", k = 100 }, { stage = "title-boost", weight = 0.5 }]
"""

from __future__ import annotations

import re

import numpy as np

from rankstack import registry
from rankstack.stages import Candidates, Reranker

_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


class TitleBoost(Reranker):
    """Incoming score + ``weight`` x the share of query words found in the title."""

    name = "title-boost"

    def __init__(self, docs=None, weight: float = 1.0, min_length: int = 3):
        super().__init__(docs)
        self.weight = float(weight)  # every constructor parameter is stored under its own name:
        self.min_length = int(min_length)  # the cache key is derived from them

    def score_batch(self, batch: Candidates) -> list[np.ndarray]:
        out = []
        for query, docs, incoming in zip(batch.queries, batch.docs, batch.scores):
            terms = {w for w in _words(query.text) if len(w) >= self.min_length}
            share = np.array([len(terms & _words(d.title)) / max(1, len(terms)) for d in docs])
            out.append(incoming + self.weight * share)
        return out


registry.register("title-boost", f"{__name__}:TitleBoost", help="incoming score + a bonus for query words in titles")
