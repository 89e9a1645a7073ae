"""Topic-oriented attack (TARA's goal): promote one target document across a *cluster* of related
queries, not one query.

* **clusters** (:func:`overlap_clusters`): a seed query and the ``size - 1`` other queries whose
  candidate lists (a BM25 run's top k) share the most documents with the seed's; ties go to the
  smaller query id. Queries sharing no candidate with the seed are never added, so a cluster can be
  smaller than ``size``.
* **goal**: the target reaches the top ``k`` of as many of the cluster's queries as possible;
  reported as the *share* of the cluster's queries where it does (re-checked per query).
* **candidate lists**: each cluster query's own candidates; where the target is not among them it is
  appended (the attacker's document is assumed retrieved: the attack is on the reranking).
* **transformations**: inserting a topic term (content words of the cluster's queries: the ones in
  most cluster queries first, then each query's in turn; :meth:`TopicAttack.topic_terms`) at the
  end of the document (``position="append"``) or at its start (``"prepend"``: the inserted terms,
  in insertion order, before the text; it survives a victim that truncates long documents), and
  word substitution
  (``candidates(word) -> list[str]``, e.g. WordNet synonyms or embedding neighbours) at the
  replaceable positions in document order; the query is never modified.
* **search**: greedy. Every step scores all proposals (each untried topic term, each candidate at
  the next position) on every cluster query, one batched victim call per (query, proposal), and keeps
  the proposal with the largest **sum over the cluster of the margins** ``score(target) -
  score(rank-k document)``, each capped at ``cap`` (default 0: a query already reached adds nothing
  more, so the search spreads over the cluster instead of lifting one query ever higher; ``None``:
  the plain sum) when it raises that sum; until every query is reached, the edit budget
  (:class:`~rankstack.robust.attacks.Constraints`: words inserted or changed) is spent, or the
  proposals run out.
* **re-check**: the final text is scored in each cluster query's whole candidate list on the real
  victim; only those ranks count. One call per cluster query is kept back for it, so the query
  budget never stops an attack before its re-check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query
from rankstack.errors import ConfigError
from rankstack.robust.attacks import Constraints, _query_terms, words_of
from rankstack.robust.victim import BudgetExhausted, Victim, rank_of

__all__ = ["overlap_clusters", "TopicResult", "TopicAttack", "summarize_topic"]


def overlap_clusters(lists: Mapping[str, Sequence[str]], seeds: Sequence[str], size: int = 5) -> dict[str, list[str]]:
    """``{seed: [seed, q2, ...]}``: each seed with the ``size - 1`` queries whose candidate lists
    (``lists[qid]``: document ids) share the most documents with the seed's (at least one)."""
    if size < 2:
        raise ConfigError(f"a topic cluster needs size >= 2 (a seed and one related query), got {size}")
    sets = {q: set(d) for q, d in lists.items()}
    out = {}
    for s in seeds:
        if s not in sets:
            raise ConfigError(f"seed query {s!r} has no candidate list")
        shared = sorted(((len(sets[s] & v), q) for q, v in sets.items() if q != s), key=lambda x: (-x[0], x[1]))
        out[s] = [s] + [q for n, q in shared[: size - 1] if n > 0]
    return out


@dataclass
class TopicResult:
    seed: str
    doc_id: str
    method: str
    cluster: list[str]
    start_ranks: dict[str, int]
    final_ranks: dict[str, int]
    reached: dict[str, bool]
    share: float  # re-checked share of the cluster's queries with the target in the top k
    start_share: float
    status: str  # succeeded (every query) | partial | failed | budget | skipped (already reached; no edit allowed)
    words_changed: int
    words: int
    victim_queries: int
    text: str = field(repr=False, default="")
    original: str = field(repr=False, default="")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Query:
    """One cluster query's candidate list, the other candidates' scores read once."""

    def __init__(self, victim: Victim, query: Query, docs: list[Document], target: Document, k: int, reserve: int):
        ids = [d.id for d in docs]
        if target.id not in ids:
            docs = docs + [target]
            ids.append(target.id)
        self.query, self.docs, self.ids, self.t = query, docs, ids, ids.index(target.id)
        self.scores = victim.scores(query, docs, reserve=reserve)
        self.k = k
        others = np.delete(self.scores, self.t)
        # the score the target must beat: the rank-k document among the others (none: always reached)
        self.bar = float(np.sort(others)[::-1][k - 1]) if len(others) >= k else -np.inf

    def rank(self, score: float) -> int:
        s = self.scores.copy()
        s[self.t] = score
        return rank_of(self.ids, s, self.t)

    def margin(self, score: float) -> float:
        return score - self.bar if np.isfinite(self.bar) else 0.0


class TopicAttack:
    """``TopicAttack(candidates=None, constraints=Constraints(), max_terms=20, max_candidates=8)``;
    ``attack(victim, cluster, docs_of, target, k=10) -> TopicResult`` where ``cluster`` is a list of
    :class:`Query` (the seed first), ``docs_of[qid]`` their candidate documents and ``target`` the
    promoted :class:`Document`. ``insert_terms=False`` keeps to substitution only; ``position``
    (``"append"`` or ``"prepend"``): where inserted terms go; ``cap``: see the module docstring."""

    def __init__(self, candidates: Callable[[str], list[str]] | None = None, constraints: Constraints = Constraints(),
                 max_terms: int = 20, max_candidates: int = 8, insert_terms: bool = True,
                 cap: float | None = 0.0, position: str = "append"):
        if max_terms < 0 or max_candidates < 1:
            raise ConfigError(f"topic attack needs max_terms >= 0 and max_candidates >= 1, got {max_terms}, "
                              f"{max_candidates}")
        if position not in {"append", "prepend"}:
            raise ConfigError(f"topic attack position must be 'append' or 'prepend', got {position!r}")
        if candidates is None and not insert_terms:
            raise ConfigError("topic attack with neither substitution candidates nor term insertion has no edits")
        self.candidates, self.constraints = candidates, constraints
        self.max_terms, self.max_candidates, self.insert_terms = int(max_terms), int(max_candidates), insert_terms
        self.cap, self.position = cap, position

    def _text(self, words: list[str], added: list[str]) -> str:
        """The document's (edited) words with the inserted terms at the attack's position."""
        return " ".join(added + words if self.position == "prepend" else words + added)

    def topic_terms(self, cluster: Sequence[Query]) -> list[str]:
        """Content words of the cluster's queries: those in most cluster queries first, then in turn
        from each query (its first term, the next query's first term, ..., then second terms), so that
        ``max_terms`` covers every query of the cluster."""
        first: dict[str, tuple[int, int]] = {}
        count: Counter[str] = Counter()
        for qi, q in enumerate(cluster):
            for ti, t in enumerate(_query_terms(q)):
                first.setdefault(t, (ti, qi))
                count[t] += 1
        return sorted(first, key=lambda t: (-count[t], first[t]))[: self.max_terms]

    def _subs(self, word: str) -> list[str]:
        from rankstack.robust.attacks import _ALPHA

        m = _ALPHA.match(word)
        if not m or self.candidates is None:
            return []
        pre, core, post = m.groups()
        out = []
        for c in self.candidates(core.lower()):
            if c.lower() != core.lower() and c.isalpha():
                out.append(pre + (c.capitalize() if core[0].isupper() else c) + post)
            if len(out) >= self.max_candidates:
                break
        return out

    def attack(self, victim: Victim, cluster: Sequence[Query], docs_of: Mapping[str, Sequence[Document]],
               target: Document, k: int = 10) -> TopicResult:
        if k < 1:
            raise ConfigError(f"topic goal needs k >= 1, got {k}")
        if not cluster:
            raise ConfigError("topic attack needs a cluster of at least one query")
        for q in cluster:
            if q.id not in docs_of:
                raise ConfigError(f"cluster query {q.id!r} has no candidate list")
        n = len(cluster)
        if victim.budget.left is not None and victim.budget.left < 2 * n:
            raise BudgetExhausted(f"a topic attack on {n} queries needs at least {2 * n} victim calls (the lists "
                                  f"read once and re-checked once), {victim.budget.left} left")
        start_used = victim.budget.used
        qs = [_Query(victim, q, list(docs_of[q.id]), target, k, reserve=n) for q in cluster]
        original = target.contents
        words = words_of(original)
        start = {c.query.id: c.rank(float(c.scores[c.t])) for c in qs}
        start_share = float(np.mean([r <= k for r in start.values()]))
        if all(r <= k for r in start.values()) or self.constraints.budget(len(words)) == 0:
            return TopicResult(cluster[0].id, target.id, "topic", [q.id for q in cluster], start, dict(start),
                               {q: r <= k for q, r in start.items()}, start_share, start_share, "skipped", 0,
                               len(words),
                               victim.budget.used - start_used, original, original)
        cur_scores = np.array([float(c.scores[c.t]) for c in qs])

        def objective(s: np.ndarray) -> float:
            m = [c.margin(x) for c, x in zip(qs, s)]
            return float(sum(m if self.cap is None else np.minimum(m, self.cap)))

        qterms = set().union(*(set(_query_terms(q)) for q in cluster))
        pos = [i for i, w in enumerate(words) if self.constraints.replaceable(w, qterms)]
        budget = self.constraints.budget(len(words))
        terms = self.topic_terms(cluster) if self.insert_terms else []
        cur, added, changed, p = list(words), [], 0, 0
        best = objective(cur_scores)
        status = None
        while changed < budget and not all(c.rank(x) <= k for c, x in zip(qs, cur_scores)):
            props: list[tuple[str, Any]] = [("insert", t) for t in terms if t not in added]
            while p < len(pos) and not (sub := self._subs(cur[pos[p]])):
                p += 1
            if p < len(pos):
                props += [("sub", (pos[p], c)) for c in sub]
            if not props:
                break
            texts = [self._text(cur[:a[0]] + [a[1]] + cur[a[0] + 1:], added) if kind == "sub"
                     else self._text(cur, added + [a]) for kind, a in props]
            left = victim.budget.left
            if left is not None and left - n < len(texts) * n:  # keep one call per query for the re-check
                status = "budget"
                break
            sc = np.stack([victim.score_texts(c.query, target.id, texts) for c in qs], axis=1)  # (props, n)
            vals = [objective(row) for row in sc]
            j = int(np.argmax(vals))
            if vals[j] <= best:
                if p < len(pos):  # nothing helps at this position: try the next one
                    p += 1
                    continue
                break
            best, cur_scores = vals[j], sc[j]
            kind, a = props[j]
            if kind == "sub":
                cur[a[0]] = a[1]
                p += 1
            else:
                added.append(a)
            changed += 1
        text = self._text(cur, added) if changed else original
        final = dict(start)
        if text != original:
            for c in qs:  # the re-check: the whole list, on the real victim
                s = victim.scores(c.query, c.docs, {c.t: text})
                final[c.query.id] = rank_of(c.ids, s, c.t)
        reached = {q: r <= k for q, r in final.items()}
        share = float(np.mean(list(reached.values())))
        if status is None:
            status = "succeeded" if all(reached.values()) else ("partial" if share > start_share else "failed")
        return TopicResult(cluster[0].id, target.id, "topic", [q.id for q in cluster], start, final, reached, share,
                           start_share, status, changed, len(words), victim.budget.used - start_used, text, original)


def summarize_topic(results: Sequence[TopicResult]) -> dict[str, Any]:
    """``share_reached`` (mean re-checked share of a cluster's queries with the target in the top k),
    ``share_reached_before``, ``cluster_success_rate`` (all of a cluster's queries reached),
    ``avg_boost`` (mean over cluster queries of start minus final rank), ``perturbation`` (%),
    ``victim_queries``; skipped attacks (already in every query's top k) are left out."""
    done = [r for r in results if r.status != "skipped"]
    out: dict[str, Any] = {"targets": len(results), "attacked": len(done), "skipped": len(results) - len(done),
                           "victim_queries": int(sum(r.victim_queries for r in results))}
    if not done:
        out.update(share_reached=None, share_reached_before=None, cluster_success_rate=None, avg_boost=None,
                   perturbation=None, success_rate=None, top10_rate=None, top50_rate=None)
        return out
    out["share_reached"] = float(np.mean([r.share for r in done]))
    out["share_reached_before"] = float(np.mean([r.start_share for r in done]))
    out["cluster_success_rate"] = float(np.mean([r.status == "succeeded" for r in done]))
    out["success_rate"] = out["cluster_success_rate"]
    out["avg_boost"] = float(np.mean([np.mean([r.start_ranks[q] - r.final_ranks[q] for q in r.cluster])
                                      for r in done]))
    out["top10_rate"] = float(np.mean([np.mean([r.final_ranks[q] <= 10 for q in r.cluster]) for r in done]))
    out["top50_rate"] = float(np.mean([np.mean([r.final_ranks[q] <= 50 for q in r.cluster]) for r in done]))
    out["perturbation"] = float(np.mean([100.0 * r.words_changed / max(1, r.words) for r in done]))
    out["budget_stops"] = sum(r.status == "budget" for r in done)
    out["cluster_size"] = float(np.mean([len(r.cluster) for r in done]))
    return out
