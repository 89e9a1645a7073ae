"""Attacks on a ranker's document side, in TextAttack's four parts for ranking:

* **goal**: :class:`TopK` (the target into the top ``k``; its search score is the margin to the
  rank-``k`` document) or :class:`RankGain` (any rank gain; margin to the document just above);
* **transformation**: word substitution (WordNet synonyms, embedding neighbours), query-term
  stuffing, keyword spam;
* **constraints**: :class:`Constraints` (edit budget in words and share, stop words never replaced,
  query terms untouched);
* **search**: greedy by word importance (PRADA-style), one batched victim call per position.

Only the target's text changes, so the other candidates' scores are read once and the target's rank
follows from its score alone (:func:`rank_of`). The query is never modified. The victim's query
budget stops the attack exactly at its limit; the best text so far is kept. Every success is
re-checked by scoring the whole candidate list again on the real victim; a re-check that misses the
goal is reported as a failure (``status="recheck-failed"``). Everything is deterministic: ties in
candidate scores go to the earlier candidate, and ``seed`` only drives target sampling.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query
from rankstack.errors import ConfigError
from rankstack.robust.victim import BudgetExhausted, Victim, rank_of

__all__ = ["TopK", "RankGain", "Constraints", "AttackResult", "stuffing", "keyword_spam",
           "WordSubstitution", "sample_targets", "STOPWORDS", "words_of"]

STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with we our from has have had been were which who whom its than also can may more most other "
    "some any each all both only over under between after before during while about against through".split())
_WORD = re.compile(r"\S+")
_ALPHA = re.compile(r"^([^A-Za-z]*)([A-Za-z]+)([^A-Za-z]*)$")


def words_of(text: str) -> list[str]:
    return _WORD.findall(text)


@dataclass(frozen=True)
class TopK:
    k: int = 10

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"goal top-k needs k >= 1, got {self.k}")

    def threshold(self, others: np.ndarray, other_ids: list[str], start_rank: int) -> int:
        return self.k

    def reached(self, rank: int, start_rank: int) -> bool:
        return rank <= self.k


@dataclass(frozen=True)
class RankGain:
    def threshold(self, others: np.ndarray, other_ids: list[str], start_rank: int) -> int:
        return max(1, start_rank - 1)

    def reached(self, rank: int, start_rank: int) -> bool:
        return rank < start_rank


@dataclass(frozen=True)
class Constraints:
    """``max_words`` and ``max_share`` of the document's words may change (the smaller wins);
    stop words are never replaced; query terms are left alone when ``keep_query_terms``."""

    max_words: int | None = 20
    max_share: float | None = 0.2
    keep_query_terms: bool = True

    def __post_init__(self) -> None:
        if self.max_words is not None and self.max_words < 1:
            raise ConfigError(f"edit budget max_words must be >= 1, got {self.max_words}")
        if self.max_share is not None and not 0 < self.max_share <= 1:
            raise ConfigError(f"edit budget max_share must be in (0, 1], got {self.max_share}")

    def budget(self, n_words: int) -> int:
        b = n_words if self.max_words is None else min(self.max_words, n_words)
        if self.max_share is not None:
            b = min(b, int(self.max_share * n_words))
        return b

    def replaceable(self, word: str, query_terms: set[str]) -> bool:
        m = _ALPHA.match(word)
        if not m or len(m.group(2)) < 3:
            return False
        w = m.group(2).lower()
        return w not in STOPWORDS and not (self.keep_query_terms and w in query_terms)


@dataclass
class AttackResult:
    query_id: str
    doc_id: str
    method: str
    start_rank: int
    final_rank: int
    success: bool
    status: str  # succeeded | failed | recheck-failed | budget | skipped (already at rank 1; no edit allowed)
    words_changed: int
    words: int
    victim_queries: int
    text: str = field(repr=False, default="")
    original: str = field(repr=False, default="")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _query_terms(query: Query) -> list[str]:
    out: list[str] = []
    for w in words_of(query.text.lower()):
        w = w.strip(string.punctuation)  # edges only: "0-dimensional" stays one term
        if w and w not in STOPWORDS and w not in out:
            out.append(w)
    return out


class _Context:
    """One (query, target) attack: the other candidates' scores, read once."""

    def __init__(self, victim: Victim, query: Query, docs: Sequence[Document], target: int, goal: Any):
        self.victim, self.query, self.docs, self.target, self.goal = victim, query, list(docs), target, goal
        self.ids = [d.id for d in self.docs]
        self.scores = victim.scores(query, self.docs, reserve=1)
        self.start_rank = rank_of(self.ids, self.scores, target)
        self.start_queries = victim.budget.used - 1

    def rank(self, score: float) -> int:
        s = self.scores.copy()
        s[self.target] = score
        return rank_of(self.ids, s, self.target)

    def recheck(self, text: str) -> int:
        s = self.victim.scores(self.query, self.docs, {self.target: text})
        return rank_of(self.ids, s, self.target)


def _finish(ctx: _Context, method: str, text: str, changed: int, status: str | None = None) -> AttackResult:
    original = ctx.docs[ctx.target].contents
    final = ctx.start_rank
    if text != original:
        try:
            final = ctx.recheck(text)
        except BudgetExhausted:
            status = "budget"
            final = ctx.start_rank  # not re-checked: never counted as a success
    ok = status is None and ctx.goal.reached(final, ctx.start_rank)
    if status is None:
        status = "succeeded" if ok else ("recheck-failed" if _claimed(ctx, text) else "failed")
    return AttackResult(ctx.query.id, ctx.ids[ctx.target], method, ctx.start_rank, final, ok, status, changed,
                        len(words_of(original)), ctx.victim.budget.used - ctx.start_queries, text, original)


def _claimed(ctx: _Context, text: str) -> bool:
    return getattr(ctx, "claimed", False)


def _doc_text(d: Document) -> str:
    return d.contents


def _simple(victim: Victim, query: Query, docs: Sequence[Document], target: int, goal: Any, method: str,
            make: Any) -> AttackResult:
    ctx = _Context(victim, query, docs, target, goal)
    original = _doc_text(ctx.docs[target])
    if ctx.start_rank == 1:
        return AttackResult(query.id, ctx.ids[target], method, 1, 1, False, "skipped", 0,
                            len(words_of(original)), victim.budget.used - ctx.start_queries, original, original)
    terms = _query_terms(query)
    text = make(original, terms)
    try:
        score = float(victim.score_texts(query, ctx.ids[target], [text])[0])
        ctx.claimed = goal.reached(ctx.rank(score), ctx.start_rank)
    except BudgetExhausted:
        return _finish(ctx, method, original, 0, "budget")
    added = len(words_of(text)) - len(words_of(original))
    return _finish(ctx, method, text, added)


def stuffing(victim: Victim, query: Query, docs: Sequence[Document], target: int, goal: Any = TopK(10),
             position: str = "append") -> AttackResult:
    """Query-term stuffing: the query's content words once, appended or prepended to the document."""
    if position not in {"append", "prepend"}:
        raise ConfigError(f"stuffing position must be 'append' or 'prepend', got {position!r}")

    def make(text: str, terms: list[str]) -> str:
        return f"{text} {' '.join(terms)}" if position == "append" else f"{' '.join(terms)} {text}"

    return _simple(victim, query, docs, target, goal, f"stuffing-{position}", make)


def keyword_spam(victim: Victim, query: Query, docs: Sequence[Document], target: int, goal: Any = TopK(10),
                 repeat: int = 5) -> AttackResult:
    """Keyword spam: the query's content words repeated ``repeat`` times, appended."""
    if repeat < 1:
        raise ConfigError(f"keyword spam repeat must be >= 1, got {repeat}")
    return _simple(victim, query, docs, target, goal, f"spam-{repeat}",
                   lambda text, terms: f"{text} {' '.join(terms * repeat)}")


class WordSubstitution:
    """PRADA-style word substitution. Word importance comes from ``importance(query, text, words)``
    (a white-box surrogate's gradients, :class:`rankstack.robust.whitebox.GradientImportance`) or,
    when None, from the black-box victim itself (the score drop when a word is deleted: one victim
    call per replaceable word). Then, most important word first, every candidate replacement
    (``candidates(word) -> list[str]``: WordNet synonyms, embedding neighbours) is scored in one
    batched victim call and the best is kept when it raises the target's margin, until the goal is
    reached or the edit budget is spent."""

    def __init__(self, candidates: Any, importance: Any = None, constraints: Constraints = Constraints(),
                 max_candidates: int = 10):
        self.candidates, self.importance, self.constraints = candidates, importance, constraints
        self.max_candidates = int(max_candidates)

    def _cands(self, word: str) -> list[str]:
        m = _ALPHA.match(word)
        assert m is not None
        pre, core, post = m.groups()
        out = []
        for c in self.candidates(core.lower()):
            if c.lower() != core.lower() and c.isalpha():
                c = c.capitalize() if core[0].isupper() else c
                out.append(pre + c + post)
            if len(out) >= self.max_candidates:
                break
        return out

    def __call__(self, victim: Victim, query: Query, docs: Sequence[Document], target: int,
                 goal: Any = TopK(10)) -> AttackResult:
        method = "prada"
        ctx = _Context(victim, query, docs, target, goal)
        original = _doc_text(ctx.docs[target])
        words = words_of(original)
        if ctx.start_rank == 1:
            return AttackResult(query.id, ctx.ids[target], method, 1, 1, False, "skipped", 0, len(words),
                                victim.budget.used - ctx.start_queries, original, original)
        qterms = set(_query_terms(query))
        pos = [i for i, w in enumerate(words) if self.constraints.replaceable(w, qterms)]
        budget = self.constraints.budget(len(words))
        if budget == 0:  # e.g. max_share 0.1 of a 9-word text: no word may change, nothing to attack
            return AttackResult(query.id, ctx.ids[target], method, ctx.start_rank, ctx.start_rank, False, "skipped",
                                0, len(words), victim.budget.used - ctx.start_queries, original, original)
        cur = list(words)
        best = float(ctx.scores[target])
        changed = 0
        try:
            if self.importance is not None:
                imp = np.asarray(self.importance(query, original, words), dtype=np.float64)
            else:
                variants = [" ".join(words[:i] + words[i + 1:]) for i in pos]
                drops = best - victim.score_texts(query, ctx.ids[target], variants, partial=True)
                imp = np.full(len(words), -np.inf)
                imp[pos[:len(drops)]] = drops
            order = sorted(pos, key=lambda i: (-imp[i], i))
            for i in order:
                if changed >= budget or goal.reached(ctx.rank(best), ctx.start_rank):
                    break
                cands = self._cands(cur[i])
                if not cands:
                    continue
                texts = [" ".join(cur[:i] + [c] + cur[i + 1:]) for c in cands]
                s = victim.score_texts(query, ctx.ids[target], texts, partial=True)
                if len(s) == 0:
                    continue
                j = int(np.argmax(s))
                if s[j] > best:
                    best, cur[i], changed = float(s[j]), cands[j], changed + 1
        except BudgetExhausted:
            text = " ".join(cur) if changed else original
            ctx.claimed = goal.reached(ctx.rank(best), ctx.start_rank)
            res = _finish(ctx, method, text, changed)
            if not res.success:
                res.status = "budget"
            return res
        ctx.claimed = goal.reached(ctx.rank(best), ctx.start_rank)
        return _finish(ctx, method, " ".join(cur) if changed else original, changed)


def sample_targets(ranked_ids: Sequence[str], protocol: str, n: int = 5, seed: int = 0) -> list[int]:
    """Target positions (0-based) by the published protocol: ``easy5`` samples ``n`` of ranks 51-100,
    ``hard5`` takes the ``n`` lowest ranks. Seeded."""
    m = len(ranked_ids)
    if protocol == "easy5":
        pool = list(range(50, min(100, m)))
        if len(pool) < n:
            raise ConfigError(f"easy5 targets need at least {50 + n} candidates, got {m}")
        rng = np.random.default_rng(seed)
        return sorted(rng.choice(pool, size=n, replace=False).tolist())
    if protocol == "hard5":
        if m < n + 1:
            raise ConfigError(f"hard5 targets need at least {n + 1} candidates, got {m}")
        return list(range(m - n, m))
    raise ConfigError(f"unknown target protocol {protocol!r} (easy5, hard5)")


def prada(victim: Victim, surrogate: Any = None, *, white_box: bool | None = None, wordnet: Any = None,
          neighbours: int = 10, constraints: Constraints = Constraints(), max_candidates: int = 10) -> WordSubstitution:
    """A PRADA-style :class:`WordSubstitution` for ``victim``: importance from the gradients of
    ``surrogate`` (a torch bi-encoder or cross-encoder, or its model directory), or of the victim
    itself when it is white-box (a torch bi-encoder or cross-encoder stage) and no surrogate is given, or black-box deletion scores when ``white_box=False``;
    candidates: WordNet synonyms (``wordnet``, a :class:`~rankstack.robust.wordnet.WordNet` or
    None for none) then the surrogate's embedding neighbours, in that order, without duplicates.
    ``white_box=True`` on a victim without gradients and no surrogate is a :class:`ConfigError`."""
    from rankstack.robust.whitebox import EmbeddingNeighbours, GradientImportance

    model = surrogate
    if model is None and white_box is not False:
        if victim.white_box:
            model = victim.stage.encoder
        elif white_box:
            raise ConfigError(f"victim {getattr(victim.stage, 'name', victim.stage)!r} exposes no gradients: "
                              "give a surrogate model for a white-box attack, or white_box=False")
    importance = GradientImportance(model) if model is not None and white_box is not False else None
    nn = EmbeddingNeighbours(model, k=neighbours) if model is not None and neighbours else None

    def candidates(word: str) -> list[str]:
        out: list[str] = []
        for c in (wordnet.synonyms(word) if wordnet is not None else []) + (nn(word) if nn is not None else []):
            if c not in out:
                out.append(c)
        return out

    return WordSubstitution(candidates, importance, constraints, max_candidates)
