"""Listwise training windows for LLM rerankers (the RankZephyr / FIRST data shape).

A teacher ranking (any :class:`~rankstack.data.records.Run`, or qrels) orders the candidates of each
query; windows of ``window`` passages are cut from the candidate list at the positions a sliding window
(:func:`rankstack.llm.strategies.rerank`, ``sliding``: from the bottom, step ``stride``) sees them,
shuffled into a presentation order, and given FIRST's prompt (:func:`rankstack.llm.scorers.first_prompt`,
the one the FIRST scorer builds) and the gold permutation: the window's identifiers in teacher order.

Everything is deterministic per ``(seed, query id, window start)``: the presentation order comes from
``random.Random(f"{seed}:{qid}:{start}")``, never from a global generator.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rankstack.data.records import Document, Query, ranked_items
from rankstack.errors import ConfigError
from rankstack.llm import prompts as P
from rankstack.llm.scorers import first_prompt


@dataclass(frozen=True)
class LLMWindow:
    """One training window.

    ``doc_ids``/``labels``: the passages and their identifiers in presentation order; ``permutation``:
    presentation indices in teacher order (best first), so ``labels[permutation[0]]`` is the teacher's
    top passage; ``ranks[i]``: the teacher rank (1 = best) of the passage shown at position ``i``;
    ``target``: the permutation as the FIRST prompt asks for it (``"[B] > [A] > ..."``); ``start``:
    the window's first position in the candidate list.
    """

    qid: str
    query: str
    start: int
    doc_ids: tuple[str, ...]
    labels: tuple[str, ...]
    prompt: str
    permutation: tuple[int, ...]
    ranks: tuple[int, ...]
    truncated: int = 0

    @property
    def target(self) -> str:
        return " > ".join(f"[{self.labels[i]}]" for i in self.permutation)

    @property
    def top_label(self) -> str:
        return self.labels[self.permutation[0]]


def window_starts(n: int, window: int, stride: int) -> list[int]:
    """Start positions of the windows a sliding window of ``window`` with step ``stride`` visits over
    ``n`` candidates, bottom first (as :mod:`rankstack.llm.strategies` does)."""
    if window < 2:
        raise ConfigError(f"window must be >= 2, got {window}")
    if stride < 1:
        raise ConfigError(f"stride must be >= 1, got {stride}")
    out: list[int] = []
    end = n
    while True:
        start = max(0, end - window)
        if end - start > 1:
            out.append(start)
        if start == 0:
            break
        end -= stride
    return out


def teacher_order(doc_ids: Sequence[str], teacher: Mapping[str, float],
                  tie_rank: Mapping[str, int] | None = None) -> list[int]:
    """Indices of ``doc_ids`` in teacher order: teacher value descending; a passage the teacher does not
    score is below every scored one; ties by ``tie_rank`` (the candidate rank), then the given order."""
    neg_inf = float("-inf")
    tr = tie_rank or {}
    return sorted(range(len(doc_ids)),
                  key=lambda i: (-float(teacher.get(doc_ids[i], neg_inf)), tr.get(doc_ids[i], 0), i))


def build_windows(
    queries: Sequence[Query] | Mapping[str, str],
    docs: Mapping[str, Document],
    candidates: Mapping[str, Mapping[str, float]],
    teacher: Mapping[str, Mapping[str, float]],
    *,
    window: int = 20,
    stride: int | None = None,
    depth: int | None = None,
    seed: int = 0,
    max_words: int = 100,
    labels: str = "letter",
    shuffle: bool = True,
    min_levels: int = 2,
    qids: Sequence[str] | None = None,
) -> list[LLMWindow]:
    """Training windows for the queries of ``candidates`` (or ``qids``) that have a text and a teacher.

    ``candidates``: the first-stage run whose lists a sliding window sees (e.g. BM25 top-20), cut to
    ``depth``; ``teacher``: a run or qrels giving the gold order within each window (see
    :func:`teacher_order`; ties, e.g. the unjudged passages of qrels, keep the candidate order); ``stride`` defaults to ``window // 2`` (RankGPT's 20/10); ``min_levels``:
    windows whose passages get fewer distinct teacher values are dropped (with qrels, a window without a
    relevant passage teaches nothing but the candidate order); 1 keeps every window.
    """
    texts = {q.id: q.text for q in queries} if not isinstance(queries, Mapping) else dict(queries)
    stride = window // 2 if stride is None else stride
    chosen = list(qids) if qids is not None else sorted(candidates)
    out: list[LLMWindow] = []
    for qid in chosen:
        if qid not in candidates:
            raise ConfigError(f"query {qid!r} has no candidates")
        if qid not in texts:
            raise ConfigError(f"query {qid!r} of the candidates has no text in the queries")
        tq = teacher.get(qid)
        if not tq:
            continue  # the teacher knows nothing about this query
        ranked = ranked_items(candidates[qid])  # trec_eval order, as Run.ranked
        ids = [d for d, _ in ranked][: depth if depth else None]
        for d in ids:
            if d not in docs:
                raise ConfigError(f"query {qid!r}: candidate document {d!r} is not in the collection")
        cand_rank = {d: i for i, d in enumerate(ids)}
        for start in window_starts(len(ids), window, stride):
            wid = ids[start: start + window]
            if len({float(tq.get(d, float("-inf"))) for d in wid}) < min_levels:
                continue
            shown = list(wid)
            if shuffle:
                random.Random(f"{seed}:{qid}:{start}").shuffle(shown)
            cut = [P.cut_words(docs[d].contents, max_words) for d in shown]
            prompt, labs = first_prompt(texts[qid], [t for t, _ in cut], labels)
            perm = teacher_order(shown, tq, cand_rank)
            ranks = [0] * len(shown)
            for r, i in enumerate(perm, start=1):
                ranks[i] = r
            out.append(LLMWindow(qid, texts[qid], start, tuple(shown), tuple(labs), prompt, tuple(perm),
                                 tuple(ranks), sum(int(c) for _, c in cut)))
    return out


# ---- ranked lists of responses for LiPO ------------------------------------------------------------
def permutation_ndcg(perm: Sequence[int], ranks: Sequence[int]) -> float:
    """nDCG of the output order ``perm`` (presentation indices, best first) against the teacher: the
    passage shown at ``i`` has the linear gain ``W - ranks[i]`` (``W`` passages, teacher rank 1 = gain
    ``W - 1``, the last 0) and output position ``p`` (0-based) the discount ``1 / log2(p + 2)``; the
    teacher's own permutation scores 1."""
    n = len(ranks)
    if sorted(perm) != list(range(n)):
        raise ConfigError(f"{list(perm)} is not a permutation of 0..{n - 1}")
    dcg = sum((n - ranks[i]) / math.log2(p + 2) for p, i in enumerate(perm))
    ideal = sum((n - 1 - p) / math.log2(p + 2) for p in range(n))
    return dcg / ideal if ideal > 0 else 0.0


def lipo_candidates(w: LLMWindow, k: int = 4, seed: int = 0) -> list[tuple[tuple[int, ...], float]]:
    """The ranked list of ``k`` responses LiPO trains on for window ``w``: distinct permutations of the
    window with their labels ``psi`` (:func:`permutation_ndcg` against the teacher), in a seeded random
    order (so the lambda weights' ranks, computed from equal scores at the first step, favour no
    candidate by its place in the list).

    The candidates, in this order until ``k`` are found (duplicates skipped; a window of ``n`` passages
    has at most ``n!``):

    1. the teacher's permutation (``psi = 1``, the target);
    2. the presentation order ``A > B > C ...``: what the untrained SmolLM2 answers (it puts ``A`` first
       on every diagnostic window, docs/bench/llm_train.md) and what "keep the shown order" learns;
    3. then alternately the teacher's permutation with its top passage moved to a random lower
       position (a hard negative: it differs from the target in the passage FIRST reads first) and a
       uniformly shuffled permutation (an easy one, LiPO's sampled responses).

    Everything comes from ``random.Random(f"{seed}:{qid}:{start}:lipo")``.
    """
    if k < 2:
        raise ConfigError(f"LiPO needs at least 2 responses per window, got {k}")
    n = len(w.labels)
    rng = random.Random(f"{seed}:{w.qid}:{w.start}:lipo")
    teacher = tuple(w.permutation)
    cands: list[tuple[int, ...]] = [teacher]
    want = min(k, math.factorial(n))
    ident = tuple(range(n))
    if len(cands) < want and ident not in cands:
        cands.append(ident)
    tries = 0
    while len(cands) < want:
        tries += 1
        if tries % 2 and tries < 20 * k:  # the teacher with its top demoted
            p = list(teacher)
            top = p.pop(0)
            p.insert(rng.randrange(1, n), top)
        else:
            p = list(range(n))
            rng.shuffle(p)
        if tuple(p) not in cands:
            cands.append(tuple(p))
    rng.shuffle(cands)
    return [(c, permutation_ndcg(c, w.ranks)) for c in cands]
