"""trec_eval-exact evaluation in numpy: nDCG, AP, RR, P, R, Rprec, Success, Judged; every other
ir_measures measure is handed to ir_measures (see the end of this docstring).

Our own implementation (no trec_eval/pytrec_eval at run time); tests check it against pytrec_eval-terrier
(trec_eval 9.0.x) to 1e-9 on randomised inputs. The semantics, exactly as trec_eval's:

* **Ranking**: documents sorted by score descending, ties broken by document id *descending*
  (``strcmp(docno2, docno1)`` in trec_eval's ``comp_sim_docno``; Python string order = UTF-8 byte
  order). A run is a mapping, so a document cannot appear twice.
* **Grades**: a retrieved document absent from the qrels of its query is non-relevant (gain 0). A
  negative grade means "in the pool but unjudged" (trec_eval's ``RELVALUE_UNJUDGED``): never relevant,
  gain 0, not counted in R. For the binary measures a document is relevant iff ``grade >= rel``
  (default 1, trec_eval's ``-l``). R, the number of relevant documents, comes from the qrels.
* **nDCG**: gain = grade (trec_eval's default gains), discount ``log2(rank + 1)``; the ideal ranking
  uses every positive grade of the query's qrels; ``nDCG@k`` cuts both at k (``ndcg_cut_k``); 0 when
  the query has no positive grade. The relevance level does not apply (as in trec_eval).
* **AP@k** = trec_eval's ``map_cut_k``: the sum of precision at each relevant rank <= k, divided by R
  (not by min(R, k)). ``AP`` = ``map``.
* **RR** = ``recip_rank``: 1 / rank of the first relevant document, 0 if none. trec_eval 9.0.x has no
  cutoff for recip_rank; **RR@k** is recip_rank of the run cut at k, i.e. RR if the first relevant
  document is within the top k, else 0 (the MS MARCO MRR@10).
* **P@k** = ``P_k``: relevant in the top k divided by k (also when fewer than k are retrieved).
  **R@k** = ``recall_k``: relevant in the top k / R (0 if R = 0); ``R`` without a cutoff uses the whole
  ranking. **Rprec**: relevant in the top R / R. **Success@k** = ``success_k``.
* **Judged@k** (ir_measures): the fraction of the top min(k, retrieved) documents that appear in the
  qrels with any grade; 0 for an empty ranking. (ir_measures breaks score ties by ascending doc id;
  we keep trec_eval's order everywhere.)
* **Queries**: by default every query of the run that has qrels (trec_eval without ``-c``; a run
  query with an empty ranking still counts, with 0 everywhere, as in pytrec_eval). Queries of the run
  without qrels are ignored. ``all_judged=True`` is trec_eval's ``-c``: average over every qrels query,
  a query missing from the run scoring 0 on every measure. Queries whose qrels hold no relevant
  document are evaluated (they score 0), exactly like trec_eval. The aggregate is the arithmetic mean
  over those queries.
* ``remove_query_doc=True`` drops a retrieved document whose id equals the query id before ranking
  (BEIR does this for ArguAna and Quora).

trec_eval's behaviour is undefined on a query whose judgments are all negative (its ``rel_levels`` array
is sized ``max_rel + 1``; pytrec_eval segfaults or hangs, depending on the queries evaluated before);
here such a query simply has no relevant document and scores 0.

**Measures handed to ir_measures** (:class:`~rankstack.measures.external.ExternalMeasure`: ``Bpref``,
``infAP``, ``ERR@10``, ``RBP(rel=1)``, ``SetP``, ``nDCG(judged_only=True)@10``...) are computed by their
ir_measures provider on the same qrels and on the run as rankstack sees it (``remove_query_doc``
applied, run queries without qrels and empty rankings left out: ir_measures gives those its default
value, 0). Their per-query values are ir_measures' own, and they are averaged over the same queries as
every other measure of the evaluation (by the measure's ir_measures aggregator: a mean, a sum for NumQ,
NumRet, NumRel). ir_measures itself averages over *every qrels query*, a query missing from the run
scoring its default: that is ``all_judged=True`` (trec_eval's ``-c``), where the aggregates equal
``ir_measures.calc_aggregate``; without it they differ only when the run lacks a judged query.
:meth:`Evaluation.provider` says who computed each measure.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from rankstack.data.coerce import as_qrels, as_run
from rankstack.errors import ConfigError
from rankstack.measures.external import CORE_PROVIDER, ExternalEvaluator, ExternalMeasure
from rankstack.measures.parse import AnyMeasure, Measure, parse_measure, parse_measures

__all__ = ["Evaluation", "Evaluator", "evaluate"]

_NONPOOL = -1  # retrieved, not in the qrels (trec_eval RELVALUE_NONPOOL)
_UNJUDGED = -2  # in the qrels with a negative grade (trec_eval RELVALUE_UNJUDGED)


def _raw(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """The plain dict behind a ``Run``/``Qrels`` (avoids the Mapping protocol's Python-level calls)."""
    to_dict = getattr(mapping, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, dict):
            return data
    if not isinstance(mapping, Mapping):
        raise TypeError(f"expected a mapping qid -> {{docid: value}}, got {type(mapping).__name__}")
    return mapping


@dataclass(slots=True)
class _QrelsQuery:
    lookup: Mapping[str, int]  # doc id -> grade, negative grades mapped to _UNJUDGED
    judged: np.ndarray  # the non-negative grades (for R at any level)
    ideal: np.ndarray  # the positive grades, descending (float)


def _prepare_qrels(qrels: Mapping[str, Mapping[str, int]]) -> dict[str, _QrelsQuery]:
    out: dict[str, _QrelsQuery] = {}
    for qid, docs in _raw(qrels).items():
        n = len(docs)
        try:
            gf = np.fromiter(docs.values(), dtype=np.float64, count=n)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"qrels query {qid!r}: grades must be integers ({e})") from None
        if n and np.abs(gf).max() >= 2**53:  # beyond float64's exact integers (and int64's range)
            bad = next(d for d, v in docs.items() if abs(float(v)) >= 2**53)
            raise ConfigError(f"qrels query {qid!r}, document {bad!r}: grade {docs[bad]!r} is out of range")
        g = gf.astype(np.int64)
        if n and not np.array_equal(g, gf):
            bad = next(d for d, v in docs.items() if float(v) != int(v))
            raise ConfigError(f"qrels query {qid!r}, document {bad!r}: grade {docs[bad]!r} is not an integer")
        if n and g.min() < 0:
            lookup: Mapping[str, int] = {d: (int(v) if v >= 0 else _UNJUDGED) for d, v in docs.items()}
            judged = g[g >= 0]
        else:
            lookup = docs
            judged = g
        pos = judged[judged > 0]
        ideal = np.sort(pos)[::-1].astype(np.float64)
        out[str(qid)] = _QrelsQuery(lookup, judged, ideal)
    return out


def _rank_grades(qid: str, docs: Mapping[str, float], lookup: Mapping[str, int]) -> np.ndarray:
    """Grades of ``docs`` in trec_eval order (score desc, doc id desc); unjudged docs get _NONPOOL."""
    n = len(docs)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    try:
        s = np.fromiter(docs.values(), dtype=np.float64, count=n)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"run query {qid!r}: scores must be numbers ({e})") from None
    if np.isnan(s).any():
        bad = next(d for d, v in docs.items() if v != v)
        raise ConfigError(f"run query {qid!r}, document {bad!r}: score is NaN")
    g = np.fromiter(map(lookup.get, docs, repeat(_NONPOOL)), dtype=np.int64, count=n)
    order = np.argsort(-s, kind="stable")
    ss = s[order]
    if n > 1 and (ss[1:] == ss[:-1]).any():
        # ties: sort ascending on (score, doc id) and reverse -- (score, id) pairs are unique, so the
        # reversal is exactly score descending, doc id descending (numpy's str order = code points =
        # UTF-8 byte order = strcmp)
        order = np.lexsort((np.array(list(docs)), s))[::-1]
    return g[order]


class _Flat:
    """All queries' ranked grades concatenated, with per-query segment bookkeeping."""

    def __init__(self, ranked: list[np.ndarray], judged: list[np.ndarray], ideal: list[np.ndarray]):
        nq = len(ranked)
        self._setup(
            np.concatenate(ranked) if nq else np.empty(0, dtype=np.int64),
            np.fromiter(map(len, ranked), dtype=np.int64, count=nq),
            np.concatenate(judged) if nq else np.empty(0, dtype=np.int64),
            np.fromiter(map(len, judged), dtype=np.int64, count=nq),
            np.concatenate(ideal) if nq else np.empty(0, dtype=np.float64),
            np.fromiter(map(len, ideal), dtype=np.int64, count=nq),
        )

    @classmethod
    def from_arrays(cls, G: np.ndarray, nret: np.ndarray, J: np.ndarray, nj: np.ndarray, I: np.ndarray,
                    ni: np.ndarray) -> _Flat:
        """The same object from the concatenated arrays (``G``: ranked grades, int64, query after
        query; ``J``: judged grades, int64; ``I``: ideal gains, float64, descending per query) and
        the per-query lengths ``nret``, ``nj``, ``ni`` (int64) -- the columnar path of issue #22."""
        self = cls.__new__(cls)
        self._setup(G, nret, J, nj, I, ni)
        return self

    def _setup(self, G: np.ndarray, nret: np.ndarray, J: np.ndarray, nj: np.ndarray, I: np.ndarray,
               ni: np.ndarray) -> None:
        nq = nret.size
        self.nq = nq
        self.nret = nret
        self.start = np.zeros(nq, dtype=np.int64)
        if nq > 1:
            np.cumsum(self.nret[:-1], out=self.start[1:])
        self.G = G
        self.qidx = np.repeat(np.arange(nq), self.nret)
        self.pos = np.arange(self.G.size, dtype=np.int64) - np.repeat(self.start, self.nret)
        self.J = J
        self.jq = np.repeat(np.arange(nq), nj)
        self.I = I
        self.iq = np.repeat(np.arange(nq), ni)
        istart = np.zeros(nq, dtype=np.int64)
        if nq > 1:
            np.cumsum(ni[:-1], out=istart[1:])
        self.ipos = np.arange(self.I.size, dtype=np.int64) - np.repeat(istart, ni)
        maxlen = int(max(self.nret.max(initial=0), ni.max(initial=0)))
        self.log2 = np.log2(np.arange(2, maxlen + 2, dtype=np.float64))  # log2(rank + 1)
        self._cache: dict[Any, Any] = {}

    # --- helpers -------------------------------------------------------------------------------
    def seg_cumsum(self, mask: np.ndarray) -> np.ndarray:
        """Per-query running count of ``mask`` (exact integers)."""
        c = np.cumsum(mask, dtype=np.int64)
        before = np.zeros(self.nq, dtype=np.int64)
        nz = self.start > 0
        before[nz] = c[self.start[nz] - 1]
        return c - np.repeat(before, self.nret)

    def at(self, cum: np.ndarray, k: np.ndarray | int | None) -> np.ndarray:
        """``cum`` at rank min(k, nret) of each query (0 where that is 0)."""
        idx = self.nret if k is None else np.minimum(self.nret, k)
        out = np.zeros(self.nq, dtype=np.float64)
        ok = idx > 0
        out[ok] = cum[self.start[ok] + idx[ok] - 1]
        return out

    def sum_by_query(self, weights: np.ndarray, mask: np.ndarray, which: str = "run") -> np.ndarray:
        q = self.qidx if which == "run" else self.iq
        return np.bincount(q[mask], weights=weights[mask], minlength=self.nq).astype(np.float64)

    # --- per relevance level -----------------------------------------------------------------
    def rel(self, level: int) -> dict[str, np.ndarray]:
        key = ("rel", level)
        if key not in self._cache:
            relmask = self.G >= level
            cum = self.seg_cumsum(relmask)
            num_rel = np.bincount(self.jq[self.J >= level], minlength=self.nq).astype(np.float64)
            rq = self.qidx[relmask]
            first = np.full(self.nq, -1, dtype=np.int64)
            if rq.size:
                uq, ui = np.unique(rq, return_index=True)
                first[uq] = self.pos[relmask][ui]
            # precision at each relevant rank, in rank order (summed sequentially like trec_eval)
            prec = np.zeros(self.G.size, dtype=np.float64)
            prec[relmask] = cum[relmask] / (self.pos[relmask] + 1.0)
            self._cache[key] = {"mask": relmask, "cum": cum, "num_rel": num_rel, "first": first, "prec": prec}
        return self._cache[key]

    def dcg_weights(self) -> tuple[np.ndarray, np.ndarray]:
        if "dcg" not in self._cache:
            gain = np.where(self.G > 0, self.G, 0).astype(np.float64)
            w = gain / self.log2[self.pos] if self.G.size else gain
            iw = self.I / self.log2[self.ipos] if self.I.size else self.I.copy()
            self._cache["dcg"] = (w, iw)
        return self._cache["dcg"]

    # --- measures ------------------------------------------------------------------------------
    def compute(self, m: Measure) -> np.ndarray:
        k = m.cutoff
        nq = self.nq
        if m.name == "nDCG":
            w, iw = self.dcg_weights()
            rmask = self.G > 0
            imask = np.ones(self.I.size, dtype=bool)
            if k is not None:
                rmask = rmask & (self.pos < k)
                imask = self.ipos < k
            dcg = self.sum_by_query(w, rmask)
            idcg = self.sum_by_query(iw, imask, which="ideal")
            out = np.zeros(nq)
            ok = idcg > 0
            out[ok] = dcg[ok] / idcg[ok]
            return out
        if m.name == "Judged":
            cum = self.seg_cumsum(self.G != _NONPOOL)
            n = self.nret if k is None else np.minimum(self.nret, k)
            out = np.zeros(nq)
            ok = n > 0
            out[ok] = self.at(cum, k)[ok] / n[ok]
            return out
        r = self.rel(m.rel)
        num_rel = r["num_rel"]
        has = num_rel > 0
        out = np.zeros(nq)
        if m.name == "P":
            assert k is not None
            return self.at(r["cum"], k) / k
        if m.name == "R":
            out[has] = self.at(r["cum"], k)[has] / num_rel[has]
            return out
        if m.name == "Success":
            return (self.at(r["cum"], k) > 0).astype(np.float64)
        if m.name == "Rprec":
            out[has] = self.at(r["cum"], num_rel.astype(np.int64))[has] / num_rel[has]
            return out
        if m.name == "RR":
            first = r["first"]
            ok = first >= 0
            if k is not None:
                ok &= first < k
            out[ok] = 1.0 / (first[ok] + 1.0)
            return out
        if m.name == "AP":
            mask = r["mask"] if k is None else r["mask"] & (self.pos < k)
            s = self.sum_by_query(r["prec"], mask)
            out[has] = s[has] / num_rel[has]
            return out
        raise ConfigError(f"no implementation for measure {m}")  # pragma: no cover


@dataclass(eq=False)
class Evaluation(Mapping[str, float]):
    """The result of :func:`evaluate`: a mapping ``str(measure) -> mean over queries``.

    ``aggregate`` is that dict; ``per_query[measure][qid]`` the per-query values; ``queries`` the
    evaluated query ids (the averaging set); ``arrays[measure]`` the per-query numpy array in that
    order. Keys may be given in any spelling :func:`parse_measure` reads (``ev["ndcg_cut_10"]``).
    ``providers[measure]`` (and :meth:`provider`) says who computed it: ``"rankstack"`` or
    ``"ir_measures (<provider>)"``.
    """

    measures: tuple[AnyMeasure, ...]
    queries: tuple[str, ...]
    arrays: dict[str, np.ndarray]
    aggregate: dict[str, float]
    all_judged: bool = False
    ignored_run_queries: int = 0  # run queries without qrels (not evaluated)
    missing_run_queries: int = 0  # qrels queries absent from the run (0-filled only if all_judged)
    _per_query: dict[str, dict[str, float]] | None = field(default=None, repr=False)
    providers: dict[str, str] = field(default_factory=dict)

    @property
    def per_query(self) -> dict[str, dict[str, float]]:
        """``{str(measure): {qid: value}}``."""
        if self._per_query is None:
            self._per_query = {name: dict(zip(self.queries, arr.tolist())) for name, arr in self.arrays.items()}
        return self._per_query

    def _key(self, key: str | Measure) -> str:
        if isinstance(key, str) and key in self.aggregate:
            return key
        try:
            name = str(parse_measure(key))
        except (ValueError, TypeError) as e:
            raise KeyError(f"{key!r}: {e}") from None
        if name not in self.aggregate:
            raise KeyError(f"{key!r} was not evaluated; measures: {', '.join(self.aggregate)}")
        return name

    def __getitem__(self, key: str | Measure) -> float:  # type: ignore[override]
        return self.aggregate[self._key(key)]

    def provider(self, measure: str | AnyMeasure) -> str:
        """Who computed ``measure``: ``"rankstack"`` (its own kernels) or ``"ir_measures (<provider>)"``,
        e.g. ``"ir_measures (pytrec_eval)"``."""
        return self.providers.get(self._key(measure), CORE_PROVIDER)

    def query_values(self, measure: str | Measure) -> dict[str, float]:
        """``{qid: value}`` for one measure."""
        return self.per_query[self._key(measure)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.aggregate)

    def __len__(self) -> int:
        return len(self.aggregate)

    def to_dict(self) -> dict[str, float]:
        return dict(self.aggregate)

    def __repr__(self) -> str:
        vals = ", ".join(f"{k}={v:.4f}" for k, v in self.aggregate.items())
        return f"Evaluation(queries={len(self.queries)}, {vals})"


class Evaluator:
    """Evaluate many runs against one set of qrels (the qrels are prepared once), like pytrec_eval's
    ``RelevanceEvaluator``. See the module docstring for the exact semantics."""

    def __init__(
        self,
        qrels: Mapping[str, Mapping[str, int]],
        measures: str | AnyMeasure | Iterable[str | AnyMeasure] | Any,
        *,
        all_judged: bool = False,
        remove_query_doc: bool = False,
    ):
        if not isinstance(qrels, Mapping):  # judgment records, an ir_datasets dataset (qrels_iter)
            qrels = as_qrels(qrels)
        self.measures = tuple(parse_measures(measures))
        self.all_judged = all_judged
        self.remove_query_doc = remove_query_doc
        self._qrels = _prepare_qrels(qrels)
        external = [m for m in self.measures if isinstance(m, ExternalMeasure)]
        self._external = ExternalEvaluator(_raw(qrels), external) if external else None
        top = max((g for docs in qrels.values() for g in docs.values()), default=None)
        unreachable = [str(m) for m in self.measures if top is not None and isinstance(m.rel, int)
                       and m.rel > max(top, 1)]
        if unreachable:
            warnings.warn(f"{', '.join(unreachable)}: no judgment reaches that relevance level (the highest grade "
                          f"in the qrels is {top}); the measure is 0 for every query", UserWarning, stacklevel=2)

    def evaluate(self, run: Mapping[str, Mapping[str, float]], per_query: bool = False) -> Evaluation:
        """Evaluate ``run``; ``per_query=True`` builds ``Evaluation.per_query`` eagerly (it is always
        available, built on first access otherwise)."""
        if not isinstance(run, Mapping):  # scored-document records, an ir_datasets dataset (scoreddocs_iter)
            run = as_run(run)
        rd = _raw(run)
        qd = self._qrels
        if self.all_judged:
            qids = list(qd)
        else:
            qids = [q for q in rd if q in qd]
        ignored = sum(1 for q in rd if q not in qd)
        missing = sum(1 for q in qd if q not in rd)
        empty: dict[str, float] = {}
        handed: dict[str, Mapping[str, float]] = {}  # the run as ir_measures gets it
        ranked: list[np.ndarray] = []
        judged: list[np.ndarray] = []
        ideal: list[np.ndarray] = []
        for q in qids:
            qq = qd[q]
            docs = rd.get(q, empty)
            if self.remove_query_doc and q in docs:
                docs = {d: s for d, s in docs.items() if d != q}
            if self._external is not None and docs:
                handed[q] = {str(d): float(s) for d, s in docs.items()}
            ranked.append(_rank_grades(q, docs, qq.lookup))
            judged.append(qq.judged)
            ideal.append(qq.ideal)
        flat = _Flat(ranked, judged, ideal)
        outside = self._external.evaluate(handed, qids) if self._external is not None else {}
        values = {str(m): outside[str(m)] if isinstance(m, ExternalMeasure) else flat.compute(m)
                  for m in self.measures}
        providers = {str(m): m.provider_label if isinstance(m, ExternalMeasure) else CORE_PROVIDER
                     for m in self.measures}
        if qids:
            aggregate = {str(m): m.aggregate(values[str(m)]) if isinstance(m, ExternalMeasure)
                         else float(values[str(m)].mean()) for m in self.measures}
        else:
            warnings.warn(
                f"no query to evaluate: the run has {len(rd)} queries, the qrels {len(qd)}, none in common"
                if not self.all_judged
                else "no query to evaluate: the qrels are empty",
                RuntimeWarning,
                stacklevel=2,
            )
            aggregate = {k: math.nan for k in values}
        ev = Evaluation(
            measures=self.measures,
            queries=tuple(qids),
            arrays=values,
            aggregate=aggregate,
            all_judged=self.all_judged,
            ignored_run_queries=ignored,
            missing_run_queries=missing,
            providers=providers,
        )
        if per_query:
            ev.per_query  # noqa: B018 - build eagerly
        return ev


def evaluate(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    measures: str | AnyMeasure | Iterable[str | AnyMeasure] | Any,
    *,
    per_query: bool = False,
    all_judged: bool = False,
    remove_query_doc: bool = False,
) -> Evaluation:
    """Evaluate ``run`` against ``qrels`` with trec_eval's semantics (see the module docstring).

    ``qrels``: ``{qid: {docid: grade}}`` (a :class:`~rankstack.data.records.Qrels` or a plain dict);
    ``run``: ``{qid: {docid: score}}`` (a :class:`~rankstack.data.records.Run` or a plain dict);
    ``measures``: strings such as ``"nDCG@10"``, ``"AP"``, ``"RR@10"``, ``"P(rel=2)@5"``, ``"ERR@10"``,
    ``"Bpref"``, :class:`Measure` objects or ir_measures measure objects (those rankstack has no kernel
    for are computed by ir_measures). ``all_judged=True`` is trec_eval's ``-c`` (average over all qrels
    queries, missing ones score 0); ``remove_query_doc=True`` drops a document whose id equals the
    query id (BEIR's ArguAna/Quora convention).

    Returns an :class:`Evaluation`: ``ev["nDCG@10"]`` is the mean, ``ev.per_query["nDCG@10"][qid]``
    the per-query value.
    """
    ev = Evaluator(qrels, measures, all_judged=all_judged, remove_query_doc=remove_query_doc)
    return ev.evaluate(run, per_query=per_query)
