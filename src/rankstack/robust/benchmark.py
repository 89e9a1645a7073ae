"""The five-task robustness benchmark of "Are Neural Ranking Models Robust?" (Wu et al., TOIS 2022),
for any rankstack rerankers (issue #19, item 5).

A benchmark file (TOML, :func:`load_benchmark`) names the rankers (one reranker stage spec each,
built with :func:`rankstack.stages.build.build_stage`), the collections with their candidates and
role (``iid`` or ``ood``), and the tasks:

1. ``iid``: the per-query distribution of the measure on each IID collection: mean, per-query
   standard deviation and variance, the 10 % and 25 % quantiles, the minimum, and a seeded
   bootstrap 95 % confidence interval of the mean (the same resamples for every ranker);
2. ``ood``: the measure on collections the ranker was not trained on (``trained_on`` marks the
   in-domain ones), its difference from the baseline (BM25) there, and its bootstrap interval;
3. ``variations``: the measure under each seeded rule-based query variation
   (:mod:`rankstack.robust.variations`: typos, word order, synonym swaps, dropped words) on the IID
   collections, and its drop from the unperturbed queries (paired bootstrap interval of the drop,
   the share of queries whose figure fell);
4. ``doc-attack``: document-side attacks of :mod:`rankstack.robust.attacks` (stuffing, keyword spam,
   PRADA) on each ranker as the victim, Easy-5/Hard-5 targets; ``query-attack``: the query-side
   perturbation, each query's *worst* figure over the variations of task 3, scored as the drop;
5. :func:`table`: every task's figure for every ranker against the baseline, with the drop, the
   best ranker and the most robust one (smallest drop), as JSON and as markdown (:func:`markdown`).

Every reranker scores each query's *fixed* candidates (the unperturbed query's first-stage top
``depth``), so a variation or attack measures the ranker, not the first stage's recall. All query
sets of one ranker (the unperturbed queries and every variation) go through its batched scoring
hook in one call, so a bi-encoder encodes each candidate document once. Figures are computed by
rankstack's evaluator (trec_eval semantics); nothing here re-implements a measure.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.data.records import Query, Run, ranked_items
from rankstack.errors import ConfigError, strict_table

__all__ = ["TASKS", "RankerSpec", "CollectionSpec", "AttackSpec", "BenchmarkSpec", "load_benchmark",
           "run_benchmark", "distribution", "table", "markdown"]

TASKS = ("iid", "ood", "variations", "query-attack", "doc-attack")
ATTACK_METHODS = ("stuffing", "stuffing-prepend", "spam", "prada")

KEYS: dict[str, tuple[str, ...]] = {
    "": ("benchmark", "attack", "collections", "rankers"),
    "benchmark": ("name", "tasks", "measure", "depth", "seed", "bootstrap", "baseline", "variations",
                  "variation_words", "cache", "output"),
    "attack": ("collection", "methods", "targets", "queries", "depth", "budget", "goal"),
    "collections": ("name", "role", "queries", "candidates"),
    "rankers": ("name", "stage", "trained_on"),
}


@dataclass
class RankerSpec:
    name: str
    stage: dict[str, Any]
    trained_on: list[str] = field(default_factory=list)


@dataclass
class CollectionSpec:
    name: str
    role: str  # iid | ood
    candidates: list[dict[str, Any]]
    queries: int | None = None  # a seeded sample of the judged queries; None: all


@dataclass
class AttackSpec:
    collection: str | None = None  # None: the first IID collection
    methods: list[str] = field(default_factory=lambda: ["stuffing"])
    targets: str = "easy5"
    queries: int = 2
    depth: int = 100
    budget: int = 2000
    goal: int = 10


@dataclass
class BenchmarkSpec:
    name: str
    path: Path | None
    rankers: list[RankerSpec]
    collections: list[CollectionSpec]
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    measure: str = "nDCG@10"
    depth: int = 100
    seed: int = 0
    bootstrap: int = 1000
    baseline: str | None = None  # None: the first ranker
    variations: list[str] = field(default_factory=lambda: ["typo", "order", "synonym", "drop"])
    variation_words: int = 1
    attack: AttackSpec = field(default_factory=AttackSpec)
    cache: Path | None = None
    output: Path | None = None
    text: str | None = None

    @property
    def baseline_name(self) -> str:
        return self.baseline or self.rankers[0].name


# -- the file ---------------------------------------------------------------------------------------
def _strict(table: Any, kind: str, where: str) -> dict[str, Any]:
    return strict_table(table, KEYS[kind], where)


def _get(table: dict[str, Any], key: str, where: str, typ: type | tuple[type, ...], default: Any = ...,
         minimum: int | None = None) -> Any:
    if key not in table:
        if default is ...:
            raise ConfigError(f"{where}: missing field '{key}'")
        return default
    val = table[key]
    types = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(val, bool) and bool not in types or not isinstance(val, types):
        names = " or ".join(t.__name__ for t in types)
        raise ConfigError(f"{where}: field '{key}' must be {names}, got {val!r}")
    if minimum is not None and val < minimum:
        raise ConfigError(f"{where}: field '{key}' must be >= {minimum}, got {val!r}")
    return val


def _names(val: list[Any], key: str, where: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    if not all(isinstance(v, str) for v in val):
        raise ConfigError(f"{where}: field '{key}' must be a list of strings")
    if allowed is not None:
        bad = [v for v in val if v not in allowed]
        if bad:
            raise ConfigError(f"{where}: field '{key}': unknown {bad[0]!r}; known: {', '.join(allowed)}")
    return list(val)


def parse_benchmark(raw: dict[str, Any], path: str | Path | None = None, base: Path | None = None,
                    text: str | None = None) -> BenchmarkSpec:
    """A :class:`BenchmarkSpec` from a parsed TOML table; every error names the file, table and field."""
    from rankstack import registry
    from rankstack.measures import parse_measure
    from rankstack.robust.variations import KINDS
    from rankstack.stages.build import check_spec

    src = str(path) if path is not None else "benchmark"
    base = base if base is not None else (Path(path).parent if path is not None else Path("."))
    _strict(raw, "", src)
    where = f"{src} [benchmark]"
    b = _strict(raw.get("benchmark", {}), "benchmark", where)
    measure = _get(b, "measure", where, str, "nDCG@10")
    try:
        parse_measure(measure)
    except ValueError as e:
        raise ConfigError(f"{where}: field 'measure' {measure!r}: {e}") from None
    tasks = _names(_get(b, "tasks", where, list, list(TASKS)), "tasks", where, TASKS)
    if not tasks:
        raise ConfigError(f"{where}: field 'tasks' is empty; tasks: {', '.join(TASKS)}")
    kinds = _names(_get(b, "variations", where, list, list(KINDS)), "variations", where, KINDS)
    if ("variations" in tasks or "query-attack" in tasks) and not kinds:
        raise ConfigError(f"{where}: field 'variations' is empty, but the tasks ask for query variations")
    colls: list[CollectionSpec] = []
    for i, c in enumerate(raw.get("collections", [])):
        w = f"{src} [[collections]] #{i + 1}"
        _strict(c, "collections", w)
        name = _get(c, "name", w, str)
        w = f"{src} collection {name!r}"
        role = _get(c, "role", w, str, "iid")
        if role not in ("iid", "ood"):
            raise ConfigError(f"{w}: field 'role' must be 'iid' or 'ood', got {role!r}")
        cands = _get(c, "candidates", w, list)
        if not cands:
            raise ConfigError(f"{w}: field 'candidates' is empty (a first stage, e.g. [{{ stage = \"bm25\", k = 100 }}])")
        for j, s in enumerate(cands):
            check_spec(s, f"{w} candidates stage #{j + 1}")
        if name in {x.name for x in colls}:
            raise ConfigError(f"{w}: collection listed twice")
        colls.append(CollectionSpec(name, role, list(cands), _get(c, "queries", w, int, None, minimum=1)))
    if not colls:
        raise ConfigError(f"{src}: no [[collections]]")
    rankers: list[RankerSpec] = []
    for i, r in enumerate(raw.get("rankers", [])):
        w = f"{src} [[rankers]] #{i + 1}"
        _strict(r, "rankers", w)
        name = _get(r, "name", w, str)
        w = f"{src} ranker {name!r}"
        stage = _get(r, "stage", w, dict)
        check_spec(stage, f"{w} stage")
        entry = registry.resolve_entry(stage["stage"])
        if entry.kind != "reranker" or entry.name == "cutoff":
            rr = ", ".join(e.name for e in registry.entries("reranker") if e.name != "cutoff")
            raise ConfigError(f"{w}: field 'stage': {stage['stage']!r} is not a reranker (each ranker reranks the "
                              f"fixed candidates; BM25 is 'bm25-rerank'); rerankers: {rr}")
        trained = _names(_get(r, "trained_on", w, list, []), "trained_on", w)
        if name in {x.name for x in rankers}:
            raise ConfigError(f"{w}: ranker listed twice")
        rankers.append(RankerSpec(name, dict(stage), trained))
    if not rankers:
        raise ConfigError(f"{src}: no [[rankers]]")
    baseline = _get(b, "baseline", where, str, None)
    if baseline is not None and baseline not in {r.name for r in rankers}:
        raise ConfigError(f"{where}: field 'baseline' {baseline!r} is not a ranker name")
    if "iid" in tasks and not any(c.role == "iid" for c in colls):
        raise ConfigError(f"{src}: task 'iid' needs a collection with role = \"iid\"")
    if "ood" in tasks and not any(c.role == "ood" for c in colls):
        raise ConfigError(f"{src}: task 'ood' needs a collection with role = \"ood\"")
    a = _strict(raw.get("attack", {}), "attack", f"{src} [attack]")
    aw = f"{src} [attack]"
    att = AttackSpec(
        collection=_get(a, "collection", aw, str, None),
        methods=_names(_get(a, "methods", aw, list, ["stuffing"]), "methods", aw, ATTACK_METHODS),
        targets=_get(a, "targets", aw, str, "easy5"), queries=_get(a, "queries", aw, int, 2, minimum=1),
        depth=_get(a, "depth", aw, int, 100, minimum=2), budget=_get(a, "budget", aw, int, 2000, minimum=2),
        goal=_get(a, "goal", aw, int, 10, minimum=1))
    if att.targets not in ("easy5", "hard5"):
        raise ConfigError(f"{aw}: field 'targets' must be 'easy5' or 'hard5', got {att.targets!r}")
    if "doc-attack" in tasks:
        if not att.methods:
            raise ConfigError(f"{aw}: field 'methods' is empty; methods: {', '.join(ATTACK_METHODS)}")
        if att.collection is not None and att.collection not in {c.name for c in colls}:
            raise ConfigError(f"{aw}: field 'collection' {att.collection!r} is not in [[collections]]")
        if att.collection is None and not any(c.role == "iid" for c in colls):
            raise ConfigError(f"{aw}: no IID collection to attack on: name one with 'collection'")
    cache, out = _get(b, "cache", where, str, None), _get(b, "output", where, str, None)
    return BenchmarkSpec(
        name=_get(b, "name", where, str, Path(src).stem), path=Path(path) if path is not None else None,
        rankers=rankers, collections=colls, tasks=tasks, measure=measure,
        depth=_get(b, "depth", where, int, 100, minimum=1), seed=_get(b, "seed", where, int, 0),
        bootstrap=_get(b, "bootstrap", where, int, 1000, minimum=1), baseline=baseline, variations=kinds,
        variation_words=_get(b, "variation_words", where, int, 1, minimum=1), attack=att,
        cache=_norm(base / cache) if cache else None, output=_norm(base / out) if out else None, text=text)


def _norm(p: Path) -> Path:
    import os

    return Path(os.path.normpath(p))


def load_benchmark(path: str | Path) -> BenchmarkSpec:
    """Read a benchmark TOML file (see ``experiments/robustness.toml``)."""
    import tomllib

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such robustness benchmark file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    return parse_benchmark(raw, path, path.parent, path.read_text(encoding="utf-8"))


# -- statistics -------------------------------------------------------------------------------------
def _boot(values: np.ndarray, b: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the mean, ``b`` resamples of the queries (seeded: the
    same resample indices for any array of the same length, so rankers are resampled alike)."""
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(b, len(values)))
    means = values[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def distribution(per_query: dict[str, float], bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Mean, per-query std (ddof 1) and variance, 10 %/25 % quantiles (linear), minimum, median and a
    seeded bootstrap 95 % interval of the mean, over the queries sorted by id."""
    v = np.array([per_query[q] for q in sorted(per_query)], dtype=np.float64)
    n = len(v)
    if n == 0:
        raise ConfigError("no query to summarise: the run and the qrels have no query in common")
    lo, hi = _boot(v, bootstrap, seed)
    std = float(v.std(ddof=1)) if n > 1 else 0.0
    return {"queries": n, "mean": float(v.mean()), "std": std, "variance": std ** 2,
            "q10": float(np.quantile(v, 0.10)), "q25": float(np.quantile(v, 0.25)),
            "median": float(np.median(v)), "min": float(v.min()), "ci95": [lo, hi],
            "zero_share": float(np.mean(v == 0.0))}


def _paired(orig: dict[str, float], varied: dict[str, float], bootstrap: int, seed: int) -> dict[str, Any]:
    qs = sorted(orig)
    a = np.array([orig[q] for q in qs])
    b = np.array([varied[q] for q in qs])
    d = b - a
    lo, hi = _boot(d, bootstrap, seed)
    return {"mean": float(b.mean()), "original": float(a.mean()), "drop": float(d.mean()), "drop_ci95": [lo, hi],
            "relative_drop": float(d.mean() / a.mean()) if a.mean() > 0 else None,
            "lowered_share": float(np.mean(d < 0)), "raised_share": float(np.mean(d > 0))}


# -- running ----------------------------------------------------------------------------------------
def _sample(queries: list[Query], n: int | None, seed: int) -> list[Query]:
    if n is None or n >= len(queries):
        return queries
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(len(queries), size=n, replace=False).tolist())
    return [q for i, q in enumerate(queries) if i in keep]


def _score_sets(stage: Any, sets: list[tuple[str, list[Query]]], cands: Run) -> dict[str, Run]:
    """Every query set scored by ``stage`` on the same fixed candidates in one batched call."""
    from rankstack.stages.base import Candidates

    qs: list[Query] = []
    ids: list[list[str]] = []
    docs: list[list[Any]] | None = [] if getattr(stage, "reads_docs", True) else None
    scores: list[np.ndarray] = []
    for _, queries in sets:
        for q in queries:
            r = cands.ranked(q.id)
            qs.append(q)
            ids.append([d for d, _ in r])
            scores.append(np.array([s for _, s in r], dtype=np.float64))
            if docs is not None:
                docs.append(stage.documents(q, ids[-1]) if ids[-1] else [])
    out_scores = stage.score_batch(Candidates(qs, ids, docs, scores))
    if len(out_scores) != len(qs):
        raise ConfigError(f"{getattr(stage, 'name', stage)}: score_batch gave {len(out_scores)} lists for {len(qs)}")
    runs: dict[str, Run] = {}
    i = 0
    for name, queries in sets:
        data: dict[str, dict[str, float]] = {}
        for q in queries:
            s = np.asarray(out_scores[i], dtype=np.float64)
            if s.shape != (len(ids[i]),) or np.isnan(s).any():
                raise ConfigError(f"{getattr(stage, 'name', stage)}: bad scores for query {q.id!r} ({name})")
            data[q.id] = dict(zip(ids[i], s.tolist()))
            i += 1
        runs[name] = Run(data, name=name)
    return runs


#: rerankers whose score of a (query, document) pair does not depend on the other candidates
POINTWISE = ("bm25-text", "dense-rerank", "cross-encoder", "pointwise", "qlm")


class MemoScorer:
    """A pointwise victim whose scores are memoised by (query text, document id, title, text): an
    attack scores the same candidate list again for every target and for every re-check, and only
    the edited text is new. The scores are the victim's own (computed by it the first time); the
    victim's query budget still counts every call (the :class:`Victim` counts before scoring)."""

    reads_docs = True

    def __init__(self, stage: Any):
        self.stage = stage
        self.name = getattr(stage, "name", type(stage).__name__)
        self._memo: dict[tuple[str, str, str, str], float] = {}
        self.computed = 0
        if hasattr(stage, "encoder"):
            self.encoder = stage.encoder  # white-box attacks read the victim's gradients

    def score_batch(self, batch: Any) -> list[np.ndarray]:
        from rankstack.stages.base import Candidates

        keys = [[(q.text, d.id, d.title, d.text) for d in docs] for q, docs in zip(batch.queries, batch.docs)]
        todo_q, todo_ids, todo_docs, todo_keys = [], [], [], []
        for q, docs, ks in zip(batch.queries, batch.docs, keys):
            miss = [(d, k) for d, k in zip(docs, ks) if k not in self._memo]
            seen: set[tuple[str, str, str, str]] = set()
            miss = [(d, k) for d, k in miss if not (k in seen or seen.add(k))]
            if miss:
                todo_q.append(q)
                todo_docs.append([d for d, _ in miss])
                todo_ids.append([d.id for d, _ in miss])
                todo_keys.append([k for _, k in miss])
        if todo_q:
            got = self.stage.score_batch(Candidates(todo_q, todo_ids, todo_docs))
            for ks, s in zip(todo_keys, got):
                self._memo.update(zip(ks, np.asarray(s, dtype=np.float64).tolist()))
                self.computed += len(ks)
        return [np.array([self._memo[k] for k in ks], dtype=np.float64) for ks in keys]


def _victim_stage(stage: Any, ctx: Any) -> Any:
    """The stage an attack scores edited texts with: BM25 through :class:`BM25TextScorer` (the
    ``bm25-rerank`` stage scores by document id), any other reranker as it is; a pointwise one
    (:data:`POINTWISE`) memoised (:class:`MemoScorer`)."""
    from rankstack.stages.bm25 import BM25Reranker

    if isinstance(stage, BM25Reranker):
        from rankstack.robust.victim import BM25TextScorer

        stage = BM25TextScorer(stage.index, k1=stage.k1, b=stage.b)
    name = str(getattr(stage, "name", ""))
    pointwise = name in POINTWISE or name.startswith(("llm-pointwise", "llm-qlm"))
    return MemoScorer(stage) if pointwise else stage


def _doc_attack(spec: BenchmarkSpec, stage: Any, ctx: Any, queries: list[Query], cands: Run) -> list[dict[str, Any]]:
    from rankstack.robust.attacks import TopK, keyword_spam, prada, sample_targets, stuffing
    from rankstack.robust.metrics import Spamicity, summarize
    from rankstack.robust.victim import QueryBudget, Victim

    a = spec.attack
    victim_stage = _victim_stage(stage, ctx)
    chosen = [q for q in queries if cands.get(q.id)][: a.queries]
    lists = []
    for q in chosen:
        docs = [ctx.docs[d] for d, _ in cands.ranked(q.id)[: a.depth]]
        s = Victim(victim_stage).scores(q, docs)
        pos = {d.id: i for i, d in enumerate(docs)}
        lists.append((q, docs, [pos[d] for d, _ in ranked_items(dict(zip(pos, s.tolist())))]))
    att = None
    if "prada" in a.methods:
        from rankstack.robust.wordnet import WordNet

        v0 = Victim(victim_stage)
        att = prada(v0, white_box=True if v0.white_box else False, wordnet=WordNet(), max_candidates=8)
    det = Spamicity(ctx.bm25_index())
    qtext = {q.id: q.text for q in chosen}
    rows = []
    for m in a.methods:
        results, t0 = [], time.perf_counter()
        for q, docs, order in lists:
            try:
                picked = sample_targets([docs[i].id for i in order], a.targets, 5, seed=spec.seed)
            except ConfigError as e:
                raise ConfigError(f"[attack]: query {q.id!r}: {e} (raise the candidates' k or lower [attack] depth)") \
                    from None
            for t in picked:
                v = Victim(victim_stage, QueryBudget(a.budget))
                if m in ("stuffing", "stuffing-prepend"):
                    pos = "prepend" if m == "stuffing-prepend" else "append"
                    results.append(stuffing(v, q, docs, order[t], TopK(a.goal), position=pos))
                elif m == "spam":
                    results.append(keyword_spam(v, q, docs, order[t], TopK(a.goal), repeat=5))
                else:
                    assert att is not None
                    results.append(att(v, q, docs, order[t], TopK(a.goal)))
        rows.append({"method": m, "protocol": a.targets, "queries": [q.id for q in chosen],
                     **summarize(results, qtext, det),
                     "seconds_per_attack": (time.perf_counter() - t0) / max(1, len(results))})
    return rows


def run_benchmark(spec: BenchmarkSpec, progress: bool = False, log: Any = None,
                  collections: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every task of ``spec``; the result is JSON-ready (``tasks``, ``table``, ``per_query``,
    ``seconds``). A collection is loaded by name (:func:`rankstack.data.datasets.load`) unless
    ``collections`` gives it (``{name: Collection}``, e.g. one built in memory)."""
    from rankstack.data import datasets
    from rankstack.measures import Evaluator
    from rankstack.robust.variations import vary_queries
    from rankstack.stages.build import BuildContext, build_pipeline, build_stage

    say = log or (lambda msg: None)
    cache_root = spec.cache or Path(".rankstack-cache")
    want_var = "variations" in spec.tasks or "query-attack" in spec.tasks
    attack_on = spec.attack.collection or next((c.name for c in spec.collections if c.role == "iid"), None)
    per_query: dict[str, dict[str, dict[str, dict[str, float]]]] = {}  # collection -> ranker -> set -> values
    seconds: dict[str, dict[str, float]] = {}
    info: dict[str, Any] = {}
    attacks: dict[str, list[dict[str, Any]]] = {}
    wordnet = None
    for cs in spec.collections:
        coll = (collections or {}).get(cs.name) or datasets.load(cs.name)
        if coll.qrels is None:
            raise ConfigError(f"collection {cs.name!r} has no qrels to evaluate with")
        ctx = BuildContext(coll, cache_root / cs.name.replace("/", "_"), progress=progress)  # the experiments' layout
        queries = _sample([q for q in coll.queries if q.id in coll.qrels], cs.queries, spec.seed)
        if not queries:
            raise ConfigError(f"collection {cs.name!r}: no judged query")
        first = build_pipeline(list(cs.candidates), ctx, f"collection {cs.name!r} candidates")
        full = first(queries)
        cands = full.cut(spec.depth)
        empty = [q.id for q in queries if not cands.get(q.id)]
        sets: list[tuple[str, list[Query]]] = [("original", queries)]
        changed: dict[str, int] = {}
        if want_var and cs.role == "iid":
            for kind in spec.variations:
                if kind == "synonym" and wordnet is None:
                    from rankstack.robust.wordnet import WordNet

                    wordnet = WordNet()
                v = vary_queries(queries, kind, spec.seed, spec.variation_words, wordnet)
                sets.append((kind, v.queries))
                changed[kind] = v.changed
        info[cs.name] = {"role": cs.role, "queries": len(queries), "sampled_from": cs.queries is not None,
                         "query_ids": [q.id for q in queries], "depth": spec.depth, "candidates": cs.candidates,
                         "queries_without_candidates": len(empty), "variations_changed": changed}
        ev = Evaluator(coll.qrels, [spec.measure])
        per_query[cs.name], seconds[cs.name] = {}, {}
        for r in spec.rankers:
            say(f"{cs.name}: {r.name} ({len(queries)} queries x {len(sets)} query sets, depth {spec.depth})")
            stage = build_stage(r.stage, ctx, f"ranker {r.name!r}")
            t0 = time.perf_counter()
            runs = _score_sets(stage, sets, cands)
            seconds[cs.name][r.name] = time.perf_counter() - t0
            per_query[cs.name][r.name] = {name: ev.evaluate(run).query_values(spec.measure) for name, run in runs.items()}
            if "doc-attack" in spec.tasks and cs.name == attack_on:
                say(f"{cs.name}: attacking {r.name} ({', '.join(spec.attack.methods)})")
                attacks[r.name] = _doc_attack(spec, stage, ctx, queries, full)
    tasks = _tasks(spec, per_query, attacks, attack_on)
    result = {"name": spec.name, "measure": spec.measure, "baseline": spec.baseline_name, "seed": spec.seed,
              "bootstrap": spec.bootstrap, "depth": spec.depth, "collections": info,
              "rankers": [{"name": r.name, "stage": r.stage, "trained_on": r.trained_on} for r in spec.rankers],
              "seconds": seconds, "tasks": tasks, "config_text": spec.text,
              "per_query": per_query}
    result["table"] = table(result)
    return result


def _tasks(spec: BenchmarkSpec, pq: dict[str, Any], attacks: dict[str, Any], attack_on: str | None) -> dict[str, Any]:
    base = spec.baseline_name
    names = [r.name for r in spec.rankers]
    trained = {r.name: set(r.trained_on) for r in spec.rankers}
    out: dict[str, Any] = {}
    roles = {c.name: c.role for c in spec.collections}
    if "iid" in spec.tasks:
        out["iid"] = {c: {r: distribution(pq[c][r]["original"], spec.bootstrap, spec.seed) for r in names}
                      for c in pq if roles[c] == "iid"}
    if "ood" in spec.tasks:
        ood: dict[str, Any] = {}
        for c in (c for c in pq if roles[c] == "ood"):
            ood[c] = {}
            for r in names:
                d = distribution(pq[c][r]["original"], spec.bootstrap, spec.seed)
                vs = _paired(pq[c][base]["original"], pq[c][r]["original"], spec.bootstrap, spec.seed)
                ood[c][r] = {**d, "vs_baseline": vs["drop"], "vs_baseline_ci95": vs["drop_ci95"],
                             "in_domain": c in trained[r]}
        out["ood"] = ood
    if "variations" in spec.tasks:
        out["variations"] = {c: {k: {r: _paired(pq[c][r]["original"], pq[c][r][k], spec.bootstrap, spec.seed)
                                     for r in names} for k in spec.variations}
                             for c in pq if roles[c] == "iid"}
    if "query-attack" in spec.tasks:
        qa: dict[str, Any] = {}
        for c in (c for c in pq if roles[c] == "iid"):
            qa[c] = {}
            for r in names:
                orig = pq[c][r]["original"]
                worst = {q: min(pq[c][r][k][q] for k in spec.variations) for q in orig}
                qa[c][r] = _paired(orig, worst, spec.bootstrap, spec.seed)
        out["query-attack"] = qa
    if "doc-attack" in spec.tasks:
        out["doc-attack"] = {"collection": attack_on, "goal": spec.attack.goal, "budget": spec.attack.budget,
                             "depth": spec.attack.depth, "rankers": attacks}
    return out


# -- the table --------------------------------------------------------------------------------------
def _winner(values: dict[str, float | None], higher: bool) -> str | None:
    """The ranker with the highest (lowest) value; equal values (within 1e-9) are all named, ``a = b``."""
    valid = {r: v for r, v in values.items() if v is not None}
    if not valid:
        return None
    top = (max if higher else min)(valid.values())
    return " = ".join(r for r, v in valid.items() if abs(v - top) <= 1e-9)


def _row(task: str, coll: str, figure: str, values: dict[str, float | None], delta: dict[str, float | None],
         delta_is: str, higher: bool = True, robust_by_delta: bool = False,
         extra: dict[str, str] | None = None) -> dict[str, Any]:
    best = _winner(values, higher)
    most_robust = _winner(delta, True) if robust_by_delta else None
    return {"task": task, "collection": coll, "figure": figure, "values": values, "delta": delta,
            "delta_is": delta_is, "higher_is_better": higher, "best": best, "most_robust": most_robust,
            "notes": extra or {}}


def table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task figure: each ranker's value and its delta (what the delta is: ``delta_is``),
    the best ranker and, for perturbation rows, the most robust one (the smallest drop)."""
    tasks, base, m = result["tasks"], result["baseline"], result["measure"]
    rows: list[dict[str, Any]] = []
    for c, per in tasks.get("iid", {}).items():
        rows.append(_row("1 IID", c, f"{m} mean", {r: d["mean"] for r, d in per.items()},
                         {r: d["mean"] - per[base]["mean"] for r, d in per.items()}, f"vs {base}",
                         extra={r: f"[{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]" for r, d in per.items()}))
        rows.append(_row("1 IID", c, "per-query std", {r: d["std"] for r, d in per.items()},
                         {r: None for r in per}, "", higher=False))
        for qn, ql in (("q10", "10 % quantile"), ("q25", "25 % quantile")):
            rows.append(_row("1 IID", c, ql, {r: d[qn] for r, d in per.items()},
                             {r: d[qn] - d["mean"] for r, d in per.items()}, "vs mean"))
    for c, per in tasks.get("ood", {}).items():
        rows.append(_row("2 OOD", c, f"{m} mean", {r: d["mean"] for r, d in per.items()},
                         {r: d["vs_baseline"] for r, d in per.items()}, f"vs {base}",
                         extra={r: "in-domain" for r, d in per.items() if d["in_domain"]}))
    for c, kinds in tasks.get("variations", {}).items():
        for k, per in kinds.items():
            changed = result["collections"][c]["variations_changed"].get(k)
            rows.append(_row("3 variation", c, f"{k} ({changed} queries changed)",
                             {r: d["mean"] for r, d in per.items()}, {r: d["drop"] for r, d in per.items()},
                             "vs unperturbed", robust_by_delta=True))
    for c, per in tasks.get("query-attack", {}).items():
        rows.append(_row("4b query perturbation", c, "worst of the variations",
                         {r: d["mean"] for r, d in per.items()}, {r: d["drop"] for r, d in per.items()},
                         "vs unperturbed", robust_by_delta=True))
    da = tasks.get("doc-attack")
    if da:
        methods: list[str] = []
        for rs in da["rankers"].values():
            methods += [x["method"] for x in rs if x["method"] not in methods]
        for meth in methods:
            vals: dict[str, float | None] = {}
            boost: dict[str, float | None] = {}
            proto = ""
            for r, rs in da["rankers"].items():
                row = next((x for x in rs if x["method"] == meth), None)
                vals[r] = None if row is None or row["success_rate"] is None else 100.0 * row["success_rate"]
                boost[r] = None if row is None else row["avg_boost"]
                proto = row["protocol"] if row else proto
            rows.append(_row("4a document attack", da["collection"], f"{meth} {proto} success % (top {da['goal']})",
                             vals, boost, "avg rank boost", higher=False))
    return rows


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if pct else f"{v:.3f}"


def markdown(result: dict[str, Any]) -> str:
    """The table as markdown: ``value (delta)`` per ranker, the best and the most robust ranker."""
    names = [r["name"] for r in result["rankers"]]
    head = ["task", "collection", "figure", *names, "delta", "best", "most robust"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in result["table"]:
        pct = "success %" in row["figure"]
        cells = []
        for r in names:
            v, d = row["values"].get(r), row["delta"].get(r)
            cell = _fmt(v, pct)
            if d is not None and row["delta_is"]:
                cell += f" ({d:+.1f})" if pct else f" ({d:+.3f})"
            note = row["notes"].get(r)
            if note:
                cell += f" {note}"
            cells.append(cell)
        lines.append("| " + " | ".join([row["task"], row["collection"], row["figure"], *cells, row["delta_is"] or "-",
                                         row["best"] or "-", row["most_robust"] or "-"]) + " |")
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, allow_nan=False, default=float))
