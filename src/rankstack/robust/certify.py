"""Certified top-K robustness to word substitution by randomized smoothing (CertDR, Wu et al., CIKM 2022).

The scheme, as CertDR (and SAFER before it) defines it:

* **Substitution sets** (:class:`SubstitutionSets`, one object shared by sampling and certification).
  Every eligible word ``x`` (alphabetic, at least 3 letters, not a stop word) has an *attack set*
  ``N(x)``: the substitutes an attacker may put in its place (here: the first ``max_neighbours``
  WordNet synonyms, or any neighbour function such as embedding neighbours, kept when both words
  list each other with ``mutual``, and restricted to a vocabulary). The words and their attack sets
  form a graph. A connected component of at most ``max_set`` words is the *smoothing set* ``S(x)``
  of each of its words. A larger component is divided: ``S(x)`` is then ``x`` and the nearest words
  in breadth-first order, ``max_set`` words in all (CertDR takes the nearest by embedding
  similarity). Words without a set stay as they are.
* **Random perturbation**: every word that has a smoothing set is replaced, independently, by a
  uniformly drawn member of ``S(x)`` (the word itself included). CertDR's scheme: each word is
  perturbed, with no probability and no fixed number of words.
* **Smoothed ranker** (:class:`SmoothedRanker`): the score of a document is the mean of the victim's
  score, mapped to [0, 1] (:class:`Sigmoid`, as CertDR; :class:`Affine` for cosines;
  :class:`BM25Max` for BM25), over ``samples`` random perturbations. All perturbations of one
  document are scored in one batched ``score_batch`` call (BM25 is scored in closed form from term
  counts, with the same figures as :class:`~rankstack.robust.victim.BM25TextScorer`).
* **Certificate** (:func:`certify`): for a query, rank its candidates by the smoothed score. The
  top K is certified robust when ``g_K - g_{K+1} - max_{d beyond K} o_d - mc_error > 0``, where
  ``g_K`` is the smoothed score at rank K, ``o_d = 1 - prod_i q(d_i)`` bounds the total variation
  between the smoothed input distributions of ``d`` and of any attacked ``d'``, and ``q(x) =
  min_{x' in N(x)} |S(x) & S(x')| / max(|S(x)|, |S(x')|)``. CertDR divides by ``|S(x)|``; the two
  agree when the sets have the same size, and the max is the sound form otherwise. The Monte Carlo
  error term is CertDR's: ``mc_error = 2 * sqrt(ln(2 / alpha) / (2 N))`` (0.0859 at N = 1000,
  alpha = 0.05; 0.0607 at N = 2000): two Hoeffding bounds, one for ``g_K`` and one for ``g_{K+1}``.

The certified robust query ratio is reported at K = 1..10 and 20..90 (:data:`CERTIFY_KS`). A query
with no more than K candidates is left out at that K (nothing is beyond rank K); a K that no query
reaches gets ``None``. The estimate uses one union of two bounds per query and K, as published; it
does not apply a union bound over the other documents beyond K.

Everything is seeded: the perturbations of a document depend only on ``seed`` and its id, so its
smoothed score does not depend on the batch or the order of the queries.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query
from rankstack.errors import ConfigError
from rankstack.robust.attacks import _ALPHA, STOPWORDS, words_of

__all__ = ["CERTIFY_KS", "mc_error", "SubstitutionSets", "NoiseAugmenter", "Sigmoid", "Affine", "BM25Max", "default_score_map",
           "SmoothedRanker", "QueryCertificate", "CertificationResult", "certify", "certify_list"]

#: the K at which CertDR reports the certified robust query ratio
CERTIFY_KS: tuple[int, ...] = (*range(1, 11), *range(20, 100, 10))


def mc_error(samples: int, alpha: float = 0.05) -> float:
    """CertDR's Monte Carlo error term: ``2 * sqrt(ln(2 / alpha) / (2 * samples))``."""
    if not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"the number of samples must be a positive integer, got {samples!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    return 2.0 * math.sqrt(math.log(2.0 / alpha) / (2.0 * samples))


def _split(word: str) -> tuple[str, str, str] | None:
    """``(prefix, core, suffix)`` of an eligible word (alphabetic core of 3+ letters, no stop word)."""
    m = _ALPHA.match(word)
    if not m or len(m.group(2)) < 3 or m.group(2).lower() in STOPWORDS:
        return None
    return m.group(1), m.group(2), m.group(3)


def _eligible(w: str) -> bool:
    return w.isalpha() and w.isascii() and len(w) >= 3 and w.lower() == w and w not in STOPWORDS


class SubstitutionSets:
    """Attack sets ``N(x)`` and smoothing sets ``S(x)`` over a vocabulary (see the module docstring).

    ``words``: the words the sets must cover (e.g. every word of the documents to certify); the
    vocabulary is these words and their substitutes. ``neighbours(word) -> list[str]``: candidate
    substitutes, best first (``WordNet().synonyms``, ``EmbeddingNeighbours(model, k)``); the first
    ``max_neighbours`` eligible ones are kept, and with ``mutual`` only those that list the word
    back among their own first ``max_neighbours``. ``max_set``: the largest smoothing set.
    """

    def __init__(self, words: Iterable[str], neighbours: Callable[[str], Sequence[str]], *,
                 max_neighbours: int = 2, mutual: bool = True, max_set: int = 8, name: str = "custom"):
        if not isinstance(max_neighbours, int) or max_neighbours < 1:
            raise ConfigError(f"max_neighbours must be a positive integer, got {max_neighbours!r}")
        if not isinstance(max_set, int) or max_set < 1:
            raise ConfigError(f"max_set must be a positive integer, got {max_set!r}")
        self.max_neighbours, self.mutual, self.max_set, self.name = max_neighbours, bool(mutual), max_set, name
        base = sorted({w.lower() for w in words if _eligible(w.lower())})
        cand: dict[str, list[str]] = {}

        def first(w: str) -> list[str]:
            if w not in cand:
                out: list[str] = []
                for c in neighbours(w):
                    c = c.lower()
                    if _eligible(c) and c != w and c not in out:
                        out.append(c)
                    if len(out) >= max_neighbours:
                        break
                cand[w] = out
            return cand[w]

        vocab = set(base)
        for w in base:
            vocab.update(first(w))
        adj: dict[str, set[str]] = {w: set() for w in vocab}
        for w in sorted(vocab):
            for c in first(w):
                if c in vocab and (not mutual or w in first(c)):
                    adj[w].add(c)
                    adj[c].add(w)
        self.vocab = frozenset(vocab)
        self._adj = {w: tuple(sorted(n)) for w, n in adj.items() if n}
        self._sets: dict[str, tuple[str, ...]] = {}
        seen: set[str] = set()
        self.components: list[int] = []
        for w in sorted(self._adj):
            if w in seen:
                continue
            comp = self._bfs(w, None)
            seen.update(comp)
            self.components.append(len(comp))
            if len(comp) <= max_set:
                for x in comp:
                    self._sets[x] = tuple(sorted(comp))
            else:
                for x in comp:
                    self._sets[x] = tuple(sorted(self._bfs(x, max_set)))
        self._q: dict[str, float] = {}
        for x, ns in self._adj.items():
            sx = set(self._sets[x])
            self._q[x] = min(len(sx.intersection(self._sets[y])) / max(len(sx), len(self._sets[y])) for y in ns)

    def _bfs(self, start: str, limit: int | None) -> list[str]:
        order, seen, i = [start], {start}, 0
        while i < len(order) and (limit is None or len(order) < limit):
            for n in self._adj.get(order[i], ()):
                if n not in seen:
                    seen.add(n)
                    order.append(n)
                    if limit is not None and len(order) >= limit:
                        break
            i += 1
        return order

    @classmethod
    def from_wordnet(cls, texts: Iterable[str], wordnet: Any = None, **kw: Any) -> SubstitutionSets:
        """Sets from WordNet synonyms (sense order) over the words of ``texts``."""
        if wordnet is None:
            from rankstack.robust.wordnet import WordNet

            wordnet = WordNet()
        words = {p[1].lower() for t in texts for w in words_of(t) if (p := _split(w))}
        return cls(words, wordnet.synonyms, name="wordnet", **kw)

    # -- the sets --------------------------------------------------------------------------------
    def substitutes(self, word: str) -> tuple[str, ...]:
        """``N(x)``: what an attacker may put in place of ``word`` (lower case)."""
        return self._adj.get(word.lower(), ())

    def smoothing_set(self, word: str) -> tuple[str, ...]:
        """``S(x)``: what the smoothing draws from (``(word,)`` when the word has no set)."""
        w = word.lower()
        return self._sets.get(w, (w,))

    def overlap(self, word: str) -> float:
        """``q(x)``: the least overlap of ``S(x)`` with the set of any substitute (1 without one)."""
        return self._q.get(word.lower(), 1.0)

    def tv_bound(self, text: str) -> float:
        """``o_d = 1 - prod_i q(d_i)``: a bound on the total variation between the smoothed input
        distributions of ``text`` and of any text made from it by substitutions from ``N``."""
        prod = 1.0
        for w in words_of(text):
            p = _split(w)
            if p is not None:
                prod *= self._q.get(p[1].lower(), 1.0)
        return 1.0 - prod

    def slots(self, text: str) -> tuple[list[str], list[int], list[list[str]]]:
        """The text's words, the positions that have a smoothing set, and each position's
        replacements (as they appear in the text: punctuation and capitalisation kept)."""
        words = words_of(text)
        pos: list[int] = []
        opts: list[list[str]] = []
        for i, w in enumerate(words):
            p = _split(w)
            if p is None:
                continue
            pre, core, post = p
            s = self._sets.get(core.lower())
            if s is None or len(s) < 2:
                continue
            cap = core[0].isupper()
            pos.append(i)
            opts.append([pre + (c.capitalize() if cap else c) + post for c in s])
        return words, pos, opts

    def attacks(self, text: str) -> tuple[list[str], list[int], list[list[str]]]:
        """The text's words, its attackable positions and each one's choices (the word itself
        first, then ``N(x)``), for an exhaustive attack."""
        words = words_of(text)
        pos: list[int] = []
        opts: list[list[str]] = []
        for i, w in enumerate(words):
            p = _split(w)
            if p is None or not self.substitutes(p[1]):
                continue
            pre, core, post = p
            cap = core[0].isupper()
            pos.append(i)
            opts.append([w] + [pre + (c.capitalize() if cap else c) + post for c in self.substitutes(core)])
        return words, pos, opts

    def config(self) -> dict[str, Any]:
        sizes = np.array(self.components or [0])
        return {"source": self.name, "max_neighbours": self.max_neighbours, "mutual": self.mutual,
                "max_set": self.max_set, "vocabulary": len(self.vocab), "words_with_substitutes": len(self._adj),
                "components": len(self.components), "largest_component": int(sizes.max()),
                "divided_components": int((sizes > self.max_set).sum())}


# -- score maps to [0, 1] --------------------------------------------------------------------------
@dataclass(frozen=True)
class Sigmoid:
    """``sigmoid((s - shift) / scale)``: CertDR's map of a ranker's logit."""

    scale: float = 1.0
    shift: float = 0.0

    def __call__(self, query: Query, s: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(np.asarray(s, np.float64) - self.shift) / self.scale))

    def config(self) -> dict[str, Any]:
        return {"map": "sigmoid", "scale": self.scale, "shift": self.shift}


@dataclass(frozen=True)
class Affine:
    """``clip((s - lo) / (hi - lo), 0, 1)``; ``Affine(-1, 1)`` for cosine similarities."""

    lo: float = -1.0
    hi: float = 1.0

    def __post_init__(self) -> None:
        if not self.hi > self.lo:
            raise ConfigError(f"an affine score map needs hi > lo, got lo={self.lo}, hi={self.hi}")

    def __call__(self, query: Query, s: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(s, np.float64) - self.lo) / (self.hi - self.lo), 0.0, 1.0)

    def config(self) -> dict[str, Any]:
        return {"map": "affine", "lo": self.lo, "hi": self.hi}


class BM25Max:
    """BM25 over the query's largest possible score, ``sum_t boost_t * idf_t`` (each Lucene clause
    is below its ``boost * idf``), so the map is in [0, 1) with no clipping."""

    def __init__(self, index: Any):
        self.index = index

    def bound(self, query: Query) -> float:
        tids, boosts = self.index.query_terms(query.text)
        return float((boosts * self.index._idf(tids)).astype(np.float64).sum()) if len(tids) else 0.0

    def __call__(self, query: Query, s: np.ndarray) -> np.ndarray:
        b = self.bound(query)
        s = np.asarray(s, np.float64)
        return np.zeros_like(s) if b <= 0 else np.clip(s / b, 0.0, 1.0)

    def config(self) -> dict[str, Any]:
        return {"map": "bm25-max"}


def default_score_map(stage: Any) -> Any:
    """:class:`BM25Max` for BM25 of texts, :class:`Affine` (-1, 1) for a cosine bi-encoder,
    :class:`Sigmoid` otherwise (a cross-encoder's or LLM's logit)."""
    from rankstack.robust.victim import BM25TextScorer

    stage = getattr(stage, "stage", stage)
    if isinstance(stage, BM25TextScorer):
        return BM25Max(stage.index)
    if getattr(stage, "metric", None) == "cosine" and getattr(stage, "encoder", None) is not None:
        return Affine(-1.0, 1.0)
    return Sigmoid()


# -- the smoothed ranker -----------------------------------------------------------------------------
class NoiseAugmenter:
    """Noise-augmented training for certification (issue #19): ``augmenter(text)`` replaces each word
    that has a smoothing set, with probability ``p``, by a uniform draw from ``S(x)`` (the word itself
    included), exactly the perturbation the smoothed ranker scores (``p=1``: the smoothing
    distribution itself). A model trained on such texts sees at training time what it is certified on,
    so its smoothed scores separate better (CertDR and SAFER train this way).

    Give it to the cross-encoder trainer as ``train_cross_encoder(cfg, augment=NoiseAugmenter(sets,
    p))`` (Python only, no CLI option yet), with ``sets`` built over the training documents
    (``SubstitutionSets.from_wordnet(texts)``, the same parameters as the certification). Draws come from one generator
    seeded by ``seed`` and advanced in the order of the calls (the trainer's seeded batch order), so
    the same seed gives the same training texts. :attr:`texts` and :attr:`words_changed` count what
    it did."""

    def __init__(self, sets: SubstitutionSets, p: float = 1.0, seed: int = 0):
        if not 0.0 < float(p) <= 1.0:
            raise ConfigError(f"noise substitution probability must be in (0, 1], got {p!r}")
        self.sets, self.p, self.seed = sets, float(p), int(seed)
        self._rng = np.random.default_rng(self.seed)
        self.texts = 0
        self.words_changed = 0

    def __call__(self, text: str) -> str:
        words, pos, opts = self.sets.slots(text)
        self.texts += 1
        if not pos:
            return text
        take = self._rng.random(len(pos)) < self.p
        idx = self._rng.integers(0, [len(o) for o in opts])
        changed = False
        for p_, o, j, t in zip(pos, opts, idx, take):
            if t and o[j] != words[p_]:
                words[p_] = o[j]
                self.words_changed += 1
                changed = True
        return " ".join(words) if changed else text


class SmoothedRanker:
    """``g(q, d)``: the mean mapped victim score over ``samples`` random perturbations of ``d``.

    ``stage``: a :class:`~rankstack.robust.victim.Victim` or any stage with ``score_batch``.
    ``score_map``: to [0, 1] (default :func:`default_score_map`). Victim texts scored are counted
    in ``texts_scored``."""

    def __init__(self, stage: Any, sets: SubstitutionSets, samples: int = 1000, seed: int = 0,
                 score_map: Any = None, chunk: int = 1000):
        from rankstack.robust.victim import BM25TextScorer

        mc_error(samples)  # checks samples
        if not hasattr(getattr(stage, "stage", stage), "score_batch"):
            raise ConfigError(f"{stage!r} has no score_batch hook: it cannot be smoothed")
        self.stage = getattr(stage, "stage", stage)
        self.sets, self.samples, self.seed = sets, samples, int(seed)
        self.score_map = score_map if score_map is not None else default_score_map(self.stage)
        self.chunk = max(1, int(chunk))
        self.texts_scored = 0
        self._bm25 = type(self.stage) is BM25TextScorer

    def choices(self, doc: Document, n: int | None = None) -> tuple[list[str], list[int], list[list[str]], np.ndarray]:
        """The document's words, perturbed positions, their options and the drawn option indices
        (``n x positions``), from a generator seeded by ``seed`` and the document id."""
        words, pos, opts = self.sets.slots(doc.contents)
        rng = np.random.default_rng([self.seed, zlib.crc32(doc.id.encode("utf-8"))])
        n = self.samples if n is None else n
        sizes = np.array([len(o) for o in opts], dtype=np.int64)
        idx = rng.integers(0, sizes, size=(n, len(opts))) if len(opts) else np.zeros((n, 0), np.int64)
        return words, pos, opts, idx

    def sample_texts(self, doc: Document, n: int | None = None) -> list[str]:
        return self._texts(*self.choices(doc, n))

    @staticmethod
    def _texts(words: list[str], pos: list[int], opts: list[list[str]], idx: np.ndarray) -> list[str]:
        out = []
        for row in idx:
            w = list(words)
            for p, o, j in zip(pos, opts, row):
                w[p] = o[j]
            out.append(" ".join(w))
        return out

    def _raw(self, query: Query, doc_id: str, texts: Sequence[str]) -> np.ndarray:
        from rankstack.stages.base import Candidates

        out = []
        for a in range(0, len(texts), self.chunk):
            part = texts[a:a + self.chunk]
            ids = [f"{doc_id}#smooth{a + i}" for i in range(len(part))]
            batch = Candidates([query], [ids], [[Document(i, t, "") for i, t in zip(ids, part)]])
            s = np.asarray(self.stage.score_batch(batch)[0], dtype=np.float64)
            if s.shape != (len(part),) or np.isnan(s).any():
                raise ConfigError(f"victim {getattr(self.stage, 'name', self.stage)!r} returned {s.shape} scores "
                                  f"(NaN or a wrong count) for {len(part)} texts")
            out.append(s)
            self.texts_scored += len(part)
        return np.concatenate(out) if out else np.empty(0)

    def sample_scores(self, query: Query, doc: Document) -> np.ndarray:
        """The mapped victim score of each of the ``samples`` perturbations of ``doc``."""
        if self._bm25:
            raw = self._bm25_scores(query, *self.choices(doc))
        else:
            raw = self._raw(query, doc.id, self.sample_texts(doc))
        return np.asarray(self.score_map(query, raw), dtype=np.float64)

    def score(self, query: Query, doc: Document) -> float:
        return float(self.sample_scores(query, doc).mean())

    def scores(self, query: Query, docs: Sequence[Document]) -> np.ndarray:
        return np.array([self.score(query, d) for d in docs], dtype=np.float64)

    def exact(self, query: Query, doc: Document, limit: int = 100_000) -> float:
        """The exact smoothed score: the mean over every perturbation (at most ``limit`` of them)."""
        words, pos, opts = self.sets.slots(doc.contents)
        total = math.prod(len(o) for o in opts)
        if total > limit:
            raise ConfigError(f"document {doc.id!r} has {total} perturbations, more than the limit of {limit}")
        idx = np.array(list(itertools.product(*[range(len(o)) for o in opts])), dtype=np.int64).reshape(total, len(opts))
        if self._bm25:
            raw = self._bm25_scores(query, words, pos, opts, idx)
        else:
            raw = self._raw(query, doc.id, self._texts(words, pos, opts, idx))
        return float(np.mean(self.score_map(query, raw)))

    def _bm25_scores(self, query: Query, words: list[str], pos: list[int], opts: list[list[str]],
                     idx: np.ndarray) -> np.ndarray:
        """BM25 of every perturbation from term counts: the analyzer's tokens never cross white
        space, so a text's terms are its words' terms in order. Same float32 arithmetic as
        :class:`~rankstack.robust.victim.BM25TextScorer` (tested equal on sampled texts)."""
        sc = self.stage
        index, an = sc.index, sc.index.analyzer
        tids, boosts = index.query_terms(query.text)
        n = idx.shape[0]
        self.texts_scored += n
        if not len(tids):
            return np.zeros(n)
        w = (boosts * index._idf(tids)).astype(np.float32)
        qpos = {int(t): i for i, t in enumerate(tids.tolist())}
        cache: dict[str, tuple[int, np.ndarray]] = {}

        def counts(word: str) -> tuple[int, np.ndarray]:
            if word not in cache:
                terms = an.analyze(word)
                tf = np.zeros(len(tids), np.int64)
                for t in terms:
                    i = qpos.get(index.vocab.get(t, -1))
                    if i is not None:
                        tf[i] += 1
                cache[word] = (len(terms), tf)
            return cache[word]

        fixed = set(pos)
        base_len, base_tf = 0, np.zeros(len(tids), np.int64)
        for i, wd in enumerate(words):
            if i not in fixed:
                ln, tf = counts(wd)
                base_len += ln
                base_tf += tf
        length = np.full(n, base_len, np.int64)
        tf = np.tile(base_tf, (n, 1))
        for j, o in enumerate(opts):
            lens = np.array([counts(c)[0] for c in o], np.int64)
            tfs = np.stack([counts(c)[1] for c in o])
            length += lens[idx[:, j]]
            tf += tfs[idx[:, j]]
        k1, b, avgdl = np.float32(sc.k1), np.float32(sc.b), np.float32(index.avgdl)
        norm = sc._table[sc._byte4(length)].astype(np.float32)
        ninv = np.float32(1) / (k1 * ((np.float32(1) - b) + b * norm / avgdl))
        tf32 = tf.astype(np.float32)
        clause = w[None, :] - w[None, :] / (np.float32(1) + tf32 * ninv[:, None])
        tot = np.where(tf > 0, clause, np.float32(0)).astype(np.float64)
        if len(tids) < 8:  # numpy sums fewer than 8 terms in order: the zeros change nothing
            sums = tot.sum(axis=1)
        else:  # pairwise summation: sum the present clauses only, as the text scorer does
            sums = np.array([row[m].sum() for row, m in zip(tot, tf > 0)])
        return sums.astype(np.float32).astype(np.float64)

    def config(self) -> dict[str, Any]:
        return {"samples": self.samples, "seed": self.seed, "score_map": self.score_map.config(),
                "sets": self.sets.config(), "victim": getattr(self.stage, "name", type(self.stage).__name__)}


# -- certification --------------------------------------------------------------------------------
@dataclass
class QueryCertificate:
    query_id: str
    doc_ids: list[str]  # in smoothed order (trec_eval: score desc, doc id desc)
    scores: list[float]  # smoothed scores g, in that order
    tv: list[float]  # o_d, in that order
    certified: dict[int, bool] = field(default_factory=dict)
    margin: dict[int, float] = field(default_factory=dict)  # g_K - g_K+1 - max o - mc_error

    def to_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "doc_ids": self.doc_ids, "scores": self.scores, "tv": self.tv,
                "certified": {str(k): v for k, v in self.certified.items()},
                "margin": {str(k): v for k, v in self.margin.items()}}


@dataclass
class CertificationResult:
    certified_ratio: dict[int, float | None]
    queries_at_k: dict[int, int]
    samples: int
    alpha: float
    mc_error: float
    consider_mc_error: bool
    config: dict[str, Any]
    per_query: list[QueryCertificate]
    texts_scored: int = 0
    seconds: float = 0.0

    def to_json(self, per_query: bool = True) -> dict[str, Any]:
        out = {"certified_ratio": {str(k): v for k, v in self.certified_ratio.items()},
               "queries_at_k": {str(k): v for k, v in self.queries_at_k.items()},
               "queries": len(self.per_query), "samples": self.samples, "alpha": self.alpha,
               "mc_error": self.mc_error, "consider_mc_error": self.consider_mc_error, "config": self.config,
               "texts_scored": self.texts_scored, "seconds": self.seconds}
        if per_query:
            out["per_query"] = [c.to_json() for c in self.per_query]
        return out


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = list(ks)
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise ConfigError(f"certify needs K values >= 1, got {ks!r}")
    return ks


def certify_list(query_id: str, doc_ids: Sequence[str], g: Sequence[float], tv: Sequence[float],
                 ks: Sequence[int] = CERTIFY_KS, mc: float = 0.0) -> QueryCertificate:
    """CertDR's criterion on one query's smoothed scores ``g`` and TV bounds ``tv`` (any order):
    top K certified when ``g_K - g_K+1 - max_{rank > K} o_d - mc > 0``; K with no document beyond
    rank K are left out."""
    from rankstack.data.records import ranked_items

    ks = _check_ks(ks)
    tv_of = dict(zip(doc_ids, tv))
    order = ranked_items(dict(zip(doc_ids, [float(x) for x in g])))
    ids = [d for d, _ in order]
    s = np.array([x for _, x in order])
    o = np.array([tv_of[d] for d in ids])
    tail = np.maximum.accumulate(o[::-1])[::-1]  # tail[i] = max o over ranks > i
    cert = QueryCertificate(query_id, ids, s.tolist(), o.tolist())
    for k in ks:
        if k >= len(ids):
            continue
        m = float(s[k - 1] - s[k] - tail[k] - mc)
        cert.margin[k], cert.certified[k] = m, m > 0
    return cert


def certify(smoothed: SmoothedRanker, queries: Sequence[Query], candidates: dict[str, Sequence[Document]],
            ks: Sequence[int] = CERTIFY_KS, alpha: float = 0.05, consider_mc_error: bool = True) -> CertificationResult:
    """The certified robust query ratio at each K of ``ks`` over ``queries``, each with its
    candidate documents ``candidates[query.id]`` (e.g. a run's top 100)."""
    import time

    ks = _check_ks(ks)
    mc = mc_error(smoothed.samples, alpha)
    t0, n0 = time.perf_counter(), smoothed.texts_scored
    per = []
    for q in queries:
        docs = list(candidates.get(q.id, ()))
        if not docs:
            raise ConfigError(f"query {q.id!r} has no candidate documents to certify")
        g = smoothed.scores(q, docs)
        tv = [smoothed.sets.tv_bound(d.contents) for d in docs]
        per.append(certify_list(q.id, [d.id for d in docs], g, tv, ks, mc if consider_mc_error else 0.0))
    ratio: dict[int, float | None] = {}
    count: dict[int, int] = {}
    for k in ks:
        got = [c.certified[k] for c in per if k in c.certified]
        count[k] = len(got)
        ratio[k] = sum(got) / len(got) if got else None
    return CertificationResult(ratio, count, smoothed.samples, alpha, mc, consider_mc_error, smoothed.config(),
                               per, smoothed.texts_scored - n0, time.perf_counter() - t0)
