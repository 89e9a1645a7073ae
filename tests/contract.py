"""The stage contract, in the spirit of scikit-learn's ``check_estimator``.

``check_stage(factory, queries, run, docs)`` runs every check on one stage; ``tests/test_contract.py``
applies it to every registered retriever and reranker. A new stage gets the checks for free when
``registry.create(name, docs=...)`` builds it cheaply; otherwise add a :class:`Spec` to
:data:`SPECS` (a tiny factory for tests). Checks:

* the output is a :class:`Run` with every asked query; a reranker scores exactly its candidates;
* ranks follow scores (trec_eval order), scores are finite;
* the same input gives the same output (a fresh instance too);
* an empty candidate list gives an empty list; a query with one candidate works; no queries -> empty run;
* a candidate without text raises :class:`StageError` naming the document;
* a text over the model's length limit gives a warning (when the stage truncates), not a crash.
"""

from __future__ import annotations

import itertools
import os
import math
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankstack.data.records import Document, Query, Run
from rankstack.stages.base import Reranker, Stage, StageError

ROOT = Path(__file__).resolve().parents[1]
Factory = Callable[[dict[str, Document]], Stage]


@dataclass
class Spec:
    factory: Factory
    #: the stage truncates long texts (and must warn when it does)
    warns_on_long: bool = False
    #: reason to skip the stage here (too slow for the test suite, needs a server, ...)
    skip: str | None = None


# -- tiny fixtures --------------------------------------------------------------------------------

_CACHE: dict[str, Any] = {}


def small_collection(n_queries: int = 3, depth: int = 5) -> tuple[list[Query], Run, dict[str, Document]]:
    """DL19: ``n_queries`` queries with their BM25 top ``depth``, one query with a single candidate and
    one without candidates; the documents are the candidates' passages."""
    from rankstack.data.formats import read_queries, read_run

    run_all = read_run(ROOT / "data/trec-dl-2019/bm25.top100.trec")
    qs = {q.id: q for q in read_queries(ROOT / "data/trec-dl-2019/queries.tsv")}
    qids = sorted(run_all)[: n_queries + 1]
    data = {q: dict(run_all.ranked(q)[:depth]) for q in qids[:n_queries]}
    data[qids[n_queries]] = dict(run_all.ranked(qids[n_queries])[:1])
    queries = [qs[q] for q in qids] + [Query("no-candidates", "what is the boiling point of water")]
    data["no-candidates"] = {}
    needed = {d for v in data.values() for d in v}
    docs: dict[str, Document] = {}
    with open(ROOT / "data/trec-dl-2019/collection.tsv", encoding="utf-8") as f:
        for line in f:
            pid, _, text = line.rstrip("\n").partition("\t")
            if pid in needed:
                docs[pid] = Document(pid, text)
    return queries, Run(data, name="bm25"), docs


def random_cross_encoder() -> str:
    """all-MiniLM-L6-v2 with a seeded random 1-label head, saved once per process (no trained
    cross-encoder ships with the test environment)."""
    if "ce" not in _CACHE:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from rankstack.encoders.runtime import default_model_path

        d = Path(tempfile.mkdtemp(prefix="rankstack-ce-")) / "minilm-ce"
        torch.manual_seed(13)
        AutoModelForSequenceClassification.from_pretrained(
            default_model_path(), num_labels=1
        ).save_pretrained(d)
        AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(d)
        _CACHE["ce"] = str(d)
    return _CACHE["ce"]


def _bi_encoder() -> Any:
    if "bi" not in _CACHE:
        from rankstack.encoders.runtime import BiEncoder

        _CACHE["bi"] = BiEncoder(max_length=128)
    return _CACHE["bi"]


def _dense(docs: dict[str, Document]) -> Stage:
    from rankstack.stages.dense import DenseRetriever

    return DenseRetriever(docs=docs, encoder=_bi_encoder(), k=10)


def _dense_rerank(docs: dict[str, Document]) -> Stage:
    from rankstack.stages.dense import DenseReranker

    return DenseReranker(docs, encoder=_bi_encoder())


def _cross(docs: dict[str, Document]) -> Stage:
    from rankstack.stages.crossencoder import CrossEncoderReranker

    if "ce_model" not in _CACHE:
        from rankstack.encoders.runtime import CrossEncoderModel

        _CACHE["ce_model"] = CrossEncoderModel(random_cross_encoder(), max_length=128)
    return CrossEncoderReranker(docs, encoder=_CACHE["ce_model"])


def _fuse(docs: dict[str, Document]) -> Stage:
    from rankstack.stages.dense import DenseReranker
    from rankstack.stages.fusion import Fuse

    return Fuse(
        [
            DenseReranker(docs, encoder=_bi_encoder()),
            DenseReranker(docs, encoder=_bi_encoder(), metric="dot"),
        ],
        method="rrf",
    )


def _bm25(docs: dict[str, Document]) -> Stage:
    from rankstack.stages.bm25 import BM25Index, BM25Retriever

    return BM25Retriever(BM25Index.build(list(docs.values()), progress=False), k=10)


def _bm25_rerank(docs: dict[str, Document]) -> Stage:
    from rankstack.stages.bm25 import BM25Index, BM25Reranker

    return BM25Reranker(BM25Index.build(list(docs.values()), progress=False))


SPECS: dict[str, Spec] = {
    "dense": Spec(_dense, warns_on_long=True),
    "dense-rerank": Spec(_dense_rerank, warns_on_long=True),
    "cross-encoder": Spec(_cross, warns_on_long=True),
    "fuse": Spec(_fuse, warns_on_long=True),
    "bm25": Spec(_bm25),
    "bm25-rerank": Spec(_bm25_rerank),
}


def spec_for(name: str) -> Spec:
    """The test spec of a registered stage: :data:`SPECS`, else ``registry.create(name, docs=docs)``."""
    if name in SPECS:
        return SPECS[name]
    from rankstack.stages import registry

    entry = next((e for e in registry.entries() if e.name == name), None)
    if entry is not None and entry.extra == "llm":
        # the packaged SmolLM2-135M, one thread, small windows: seconds per query on this CPU
        def llm(docs: dict[str, Document]) -> Stage:
            return registry.create(name, docs=docs, model="smollm2", window=4, stride=2, k=3, set_size=3,
                                   backend_opts={"threads": 1})

        # every LLM reranker shares the LLMReranker stage; CI runs the contract on two scorers, the
        # rest with RANKSTACK_FULL_CONTRACT=1 (each scorer also runs end to end in test_llm_models.py)
        full = os.environ.get("RANKSTACK_FULL_CONTRACT") == "1"
        skip = None if (full or name in ("first", "pointwise")) else (
            f"{name}: LLM scorer checked end to end in test_llm_models.py; RANKSTACK_FULL_CONTRACT=1 runs it here")
        return Spec(llm, warns_on_long=True, skip=skip)

    def default(docs: dict[str, Document]) -> Stage:
        return registry.create(name, docs=docs)

    return Spec(default)


# -- the checks -------------------------------------------------------------------------------


def _as_dict(run: Run) -> dict[str, list[tuple[str, float]]]:
    return {q: run.ranked(q) for q in run}


def check_stage(
    factory: Factory,
    queries: list[Query],
    run: Run,
    docs: dict[str, Document],
    *,
    warns_on_long: bool = False,
) -> None:
    """Run every contract check on the stage ``factory(docs)`` builds (raises AssertionError)."""
    stage = factory(docs)
    assert isinstance(stage, Stage), f"factory returned {type(stage).__name__}, not a Stage"
    is_reranker = stage.needs_candidates
    inp = run if is_reranker else None
    out = stage(queries, inp)
    assert isinstance(out, Run), f"{stage.name}: returned {type(out).__name__}, not a Run"

    # every asked query is present; a reranker scores exactly its candidates
    for q in queries:
        if is_reranker:
            assert q.id in out, f"{stage.name}: query {q.id!r} missing from the output"
            assert set(out[q.id]) == set(run.get(q.id, {})), (
                f"{stage.name}: query {q.id!r} candidates changed"
            )
    if is_reranker:
        assert out["no-candidates"] == {}, f"{stage.name}: a query without candidates must get an empty list"
        single = [q for q in run if len(run[q]) == 1]
        assert single and all(len(out[q]) == 1 for q in single), (
            f"{stage.name}: one-candidate query mishandled"
        )

    # ranks follow scores; scores are finite
    for q in out:
        ranked = out.ranked(q)
        scores = [s for _, s in ranked]
        assert all(math.isfinite(s) for s in scores), f"{stage.name}: non-finite score for query {q!r}"
        assert all(a >= b for a, b in itertools.pairwise(scores)), (
            f"{stage.name}: ranks do not follow scores ({q!r})"
        )
    assert out.stats.get("wall_s", 0) > 0 and "items" in out.stats, f"{stage.name}: efficiency stats missing"

    # deterministic: same instance and a fresh one
    again = stage(queries, inp)
    assert _as_dict(again) == _as_dict(out), f"{stage.name}: two calls on the same input differ"
    fresh = factory(docs)(queries, inp)
    assert [[d for d, _ in fresh.ranked(q)] for q in fresh] == [[d for d, _ in out.ranked(q)] for q in out], (
        f"{stage.name}: a fresh instance ranks differently"
    )
    for q in out:
        for (d1, s1), (d2, s2) in zip(out.ranked(q), fresh.ranked(q)):
            assert abs(s1 - s2) <= 1e-6 * max(1.0, abs(s1)), (
                f"{stage.name}: scores differ across instances ({q}, {d1})"
            )

    # no queries -> empty run
    empty = stage([], Run({}) if is_reranker else None)
    assert len(empty) == 0 or all(not v for v in empty.values()), (
        f"{stage.name}: no queries must give an empty run"
    )

    # a candidate without text -> StageError naming it
    if is_reranker and isinstance(stage, Reranker) and getattr(stage, "docs", None) is not None:
        victim = next(d for q in run for d in run[q])
        partial = {k: v for k, v in docs.items() if k != victim}
        try:
            factory(partial)(queries, run)
        except StageError as e:
            assert victim in str(e), f"{stage.name}: StageError does not name the missing document: {e}"
        else:
            raise AssertionError(
                f"{stage.name}: a candidate without text ({victim}) did not raise StageError"
            )

    # a text over the length limit: a warning, not a crash
    victim = next(d for q in run for d in run[q])
    long_docs = dict(docs)
    long_docs[victim] = Document(victim, " ".join(["relevance"] * 3000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = factory(long_docs)(queries, inp)
    assert isinstance(res, Run)
    if warns_on_long:
        assert any("truncated" in str(w.message) for w in caught), (
            f"{stage.name}: long text truncated silently"
        )
