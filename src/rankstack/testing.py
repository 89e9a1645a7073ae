"""The stage contract, shipped: check any stage -- rankstack's or your own -- the way scikit-learn's
``check_estimator`` checks an estimator.

A *factory* builds the stage from a document mapping and optional parameter overrides,
``factory(docs, **overrides) -> Stage``. The checks run it on synthetic fixtures (no repository data,
no download: :func:`synthetic_collection`) and fail with an ``AssertionError`` that names the stage
and what is wrong; a factory that raises fails too (it is never skipped)::

    from rankstack.testing import check_stage, parametrize_with_checks

    check_stage(lambda docs, **kw: MyReranker(docs, **kw))          # every check, one call

    @parametrize_with_checks({"my-reranker": lambda docs, **kw: MyReranker(docs, **kw)})
    def test_my_stage(name, check, factory):                          # one pytest case per check
        check(name, factory)

The checks (:data:`CHECKS`):

* the output is a :class:`~rankstack.data.records.Run` with every asked query; a reranker scores
  exactly its candidates, gives a query without candidates an empty list and handles one candidate;
* ranks follow scores (trec_eval order), scores are finite, efficiency figures are in ``run.stats``;
* the same input gives the same output, from the same instance and from a fresh one;
* no queries give an empty run; a candidate without text raises
  :class:`~rankstack.errors.StageError` naming the document; a text far over any length limit gives a
  result (and, for stages that truncate, a warning), not a crash;
* the cache key (``config()``) is JSON, covers every constructor parameter
  (:meth:`~rankstack.stages.base.Stage.get_params`), has no unkeyed object, is the same for two
  identically built stages, and changes when any numeric or boolean parameter changes;
* a cache hit returns what the miss computed.

:func:`registered_factories` gives a quick factory for every stage of :mod:`rankstack.registry`
(LLM scorers on the deterministic :class:`~rankstack.llm.backends.scripted.ScriptedBackend`,
encoders on the packaged all-MiniLM-L6-v2), which is how rankstack's own test suite runs the
contract for every registered stage.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankstack.data.records import Document, Query, Run
from rankstack.errors import ConfigError, MissingDependencyError, StageError
from rankstack.stages.base import Cached, Reranker, Stage

__all__ = [
    "CHECKS",
    "Fixtures",
    "StageSpec",
    "check_stage",
    "checks_for",
    "parametrize_with_checks",
    "LlamaServer",
    "registered_factories",
    "synthetic_collection",
]

Factory = Callable[..., Stage]

_WORDS = (
    "protein cell gene cancer brain virus vaccine immune tumor receptor signal pathway dose trial "
    "patient therapy risk blood heart lung liver kidney bone muscle neuron memory sleep stress diet "
    "obesity insulin glucose lipid enzyme membrane mutation expression binding inhibitor antibody "
    "infection bacteria resistance growth factor hormone marker screening imaging model network "
    "learning ranking retrieval query passage relevance index search engine language water climate"
).split()


@dataclass
class Fixtures:
    """Queries, a candidate run and the documents it names, made up (seeded) for the checks: three
    queries with five candidates, one with a single candidate, one (``no-candidates``) with none."""

    queries: list[Query]
    run: Run
    docs: dict[str, Document]


def synthetic_collection(seed: int = 0, n_docs: int = 40) -> Fixtures:
    """Seeded synthetic fixtures: documents of 12-40 words from a small vocabulary (titles on half of
    them); candidates ranked by word overlap with the query (ties by id)."""
    rng = random.Random(seed)
    docs = {}
    for i in range(n_docs):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(12, 40))]
        title = " ".join(rng.choice(_WORDS) for _ in range(3)) if i % 2 else ""
        docs[f"d{i:03d}"] = Document(f"d{i:03d}", " ".join(words) + ".", title)
    queries = [Query(f"q{j}", " ".join(rng.sample(_WORDS, 3))) for j in range(4)]
    data: dict[str, dict[str, float]] = {}
    for j, q in enumerate(queries):
        terms = set(q.text.split())
        scored = sorted(((sum(w.strip(".") in terms for w in d.contents.split()), d.id) for d in docs.values()),
                        key=lambda t: (-t[0], t[1]))
        depth = 1 if j == 3 else 5
        data[q.id] = {did: float(s) + 0.01 * (depth - r) for r, (s, did) in enumerate(scored[:depth])}
    queries.append(Query("no-candidates", "what is the boiling point of water"))
    data["no-candidates"] = {}
    needed = {d for v in data.values() for d in v}
    return Fixtures(queries, Run(data, name="candidates"), {k: v for k, v in docs.items() if k in needed})


@dataclass
class StageSpec:
    """How to check one stage: its ``factory(docs, **overrides)``; ``warns_on_long``: the stage
    truncates long texts and must warn when it does; ``keeps_candidates``: a reranker scores every
    candidate (``False`` for a cutoff, which keeps a prefix)."""

    factory: Factory
    warns_on_long: bool = False
    keeps_candidates: bool = True


def _spec(factory: Factory | StageSpec) -> StageSpec:
    return factory if isinstance(factory, StageSpec) else StageSpec(factory)


def _build(name: str, spec: StageSpec, docs: dict[str, Document], **overrides: Any) -> Stage:
    stage = spec.factory(docs, **overrides)
    assert isinstance(stage, Stage), f"{name}: the factory returned {type(stage).__name__}, not a Stage"
    return stage


def _input(stage: Stage, fx: Fixtures) -> Run | None:
    return fx.run if stage.needs_candidates else None


def _as_lists(run: Run) -> dict[str, list[tuple[str, float]]]:
    return {q: run.ranked(q) for q in run}


# -- the checks: each takes (name, spec, fixtures) -----------------------------------------------
def check_output(name: str, spec: StageSpec, fx: Fixtures) -> None:
    """A Run with every asked query; a reranker scores its candidates (empty and single handled)."""
    stage = _build(name, spec, fx.docs)
    out = stage(fx.queries, _input(stage, fx))
    assert isinstance(out, Run), f"{name}: returned {type(out).__name__}, not a Run"
    if not stage.needs_candidates:
        return
    for q in fx.queries:
        assert q.id in out, f"{name}: query {q.id!r} missing from the output"
        got, cands = set(out[q.id]), set(fx.run.get(q.id, {}))
        if spec.keeps_candidates:
            assert got == cands, f"{name}: query {q.id!r}: scored {sorted(got)}, candidates were {sorted(cands)}"
        else:
            assert got <= cands, f"{name}: query {q.id!r}: returned documents that were not candidates"
    assert out["no-candidates"] == {}, f"{name}: a query without candidates must get an empty list"
    single = [q for q in fx.run if len(fx.run[q]) == 1]
    assert all(len(out[q]) == 1 for q in single), f"{name}: a query with one candidate was mishandled"


def check_ranks_follow_scores(name: str, spec: StageSpec, fx: Fixtures) -> None:
    """Ranks follow scores (trec_eval order), scores are finite, efficiency figures are recorded."""
    stage = _build(name, spec, fx.docs)
    out = stage(fx.queries, _input(stage, fx))
    for q in out:
        scores = [s for _, s in out.ranked(q)]
        assert all(math.isfinite(s) for s in scores), f"{name}: non-finite score for query {q!r}"
        assert all(a >= b for a, b in itertools.pairwise(scores)), f"{name}: ranks do not follow scores ({q!r})"
    assert out.stats.get("wall_s", 0) > 0 and "items" in out.stats, f"{name}: efficiency figures missing"


def check_deterministic(name: str, spec: StageSpec, fx: Fixtures) -> None:
    """The same input gives the same output, from the same instance and from a fresh one."""
    stage = _build(name, spec, fx.docs)
    inp = _input(stage, fx)
    out = stage(fx.queries, inp)
    assert _as_lists(stage(fx.queries, inp)) == _as_lists(out), f"{name}: two calls on the same input differ"
    fresh = _build(name, spec, fx.docs)(fx.queries, inp)
    assert [[d for d, _ in fresh.ranked(q)] for q in fresh] == [[d for d, _ in out.ranked(q)] for q in out], (
        f"{name}: a fresh instance ranks differently")
    for q in out:
        for (d1, s1), (_, s2) in zip(out.ranked(q), fresh.ranked(q)):
            assert abs(s1 - s2) <= 1e-6 * max(1.0, abs(s1)), f"{name}: scores differ across instances ({q}, {d1})"


def check_no_queries(name: str, spec: StageSpec, fx: Fixtures) -> None:
    """No queries give an empty run."""
    stage = _build(name, spec, fx.docs)
    empty = stage([], Run({}) if stage.needs_candidates else None)
    assert len(empty) == 0 or all(not v for v in empty.values()), f"{name}: no queries must give an empty run"


def check_missing_text(name: str, spec: StageSpec, fx: Fixtures) -> None:
    """A candidate without text raises StageError naming the document (rerankers that read texts)."""
    stage = _build(name, spec, fx.docs)
    if not (isinstance(stage, Reranker) and stage.reads_docs and getattr(stage, "docs", None) is not None):
        return
    victim = next(d for q in fx.run for d in fx.run[q])
    partial = {k: v for k, v in fx.docs.items() if k != victim}
    try:
        _build(name, spec, partial)(fx.queries, fx.run)
    except StageError as e:
        assert victim in str(e), f"{name}: the StageError does not name the missing document: {e}"
    else:
        raise AssertionError(f"{name}: a candidate without text ({victim}) did not raise StageError")


def check_long_text(name: str, spec: StageSpec, fx: Fixtures) -> None:
    """A text of 3,000 words gives a result (a warning if the stage truncates), not a crash."""
    victim = next(d for q in fx.run for d in fx.run[q])
    long_docs = dict(fx.docs)
    long_docs[victim] = Document(victim, " ".join(["relevance"] * 3000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stage = _build(name, spec, long_docs)  # a stage may encode its texts when it is built
        res = stage(fx.queries, _input(stage, fx))
    assert isinstance(res, Run), f"{name}: a long text broke the stage"
    if spec.warns_on_long:
        assert any("truncat" in str(w.message) for w in caught), f"{name}: truncated a long text without a warning"


def check_config(name: str, spec: StageSpec, fx: Fixtures) -> None:
    """The cache key is JSON, covers every constructor parameter, has no unkeyed object, and is the
    same for two identically built stages."""
    stage = _build(name, spec, fx.docs)
    params = stage.get_params()  # raises if a constructor parameter is not stored under its name
    cfg = stage.config()
    blob = json.dumps(cfg, sort_keys=True, default=str)
    assert "<unkeyed" not in blob, (f"{name}: a parameter is an object with neither a fingerprint nor a "
                                    f"config(), so it cannot key the cache: {blob[:300]}")
    missing = [p for p in params if p not in stage._not_in_key and p not in cfg]
    assert not missing, f"{name}: constructor parameters {missing} are not in config()"
    again = _build(name, spec, fx.docs).config()
    assert json.dumps(again, sort_keys=True, default=str) == blob, f"{name}: two identical builds have different keys"


def _variants(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1]
    if isinstance(value, float):
        return [value * 2 if value else 1.0]
    return []


def check_params_change_key(name: str, spec: StageSpec, fx: Fixtures) -> None:
    """Changing any numeric or boolean constructor parameter changes the cache key."""
    stage = _build(name, spec, fx.docs)
    base = json.dumps(stage.config(), sort_keys=True, default=str)
    for p, value in stage.get_params().items():
        if p in stage._not_in_key:
            continue
        for alt in _variants(value):
            try:
                other = _build(name, spec, fx.docs, **{p: alt})
            except (ConfigError, TypeError):  # not a valid value here, or the factory fixes it
                continue
            if other.get_params().get(p) == value:  # the factory ignored the override
                continue
            key = json.dumps(other.config(), sort_keys=True, default=str)
            assert key != base, f"{name}: changing {p}={value!r} to {alt!r} leaves the cache key unchanged"


def check_cache_hit_equals_miss(name: str, spec: StageSpec, fx: Fixtures) -> None:
    """Cached(stage): the second call is a hit and returns what the first (a miss) computed."""
    stage = _build(name, spec, fx.docs)
    inp = _input(stage, fx)
    with tempfile.TemporaryDirectory(prefix="rankstack-contract-") as d:
        cached = Cached(stage, d)
        miss = cached(fx.queries, inp)
        hit = cached(fx.queries, inp)
        assert (cached.misses, cached.hits) == (1, 1), f"{name}: expected one miss then one hit"
        assert hit.stats.get("cache") == "hit" and miss.stats.get("cache") == "miss"
        assert _as_lists(hit) == _as_lists(miss), f"{name}: a cache hit differs from the miss"


CHECKS: tuple[Callable[[str, StageSpec, Fixtures], None], ...] = (
    check_output, check_ranks_follow_scores, check_deterministic, check_no_queries, check_missing_text,
    check_long_text, check_config, check_params_change_key, check_cache_hit_equals_miss,
)


def checks_for(name: str, factory: Factory | StageSpec, fixtures: Fixtures | None = None
               ) -> Iterator[Callable[[], None]]:
    """Each check bound to this stage, as a no-argument callable named after the check."""
    spec, fx = _spec(factory), fixtures or synthetic_collection()
    for check in CHECKS:
        def run(check: Callable[..., None] = check) -> None:
            check(name, spec, fx)

        run.__name__ = check.__name__
        yield run


def check_stage(factory: Factory | StageSpec, name: str | None = None, fixtures: Fixtures | None = None) -> None:
    """Run every check on the stage ``factory`` builds (raises ``AssertionError``)."""
    spec = _spec(factory)
    name = name or getattr(spec.factory, "__name__", "stage")
    for run in checks_for(name, spec, fixtures):
        run()


def parametrize_with_checks(factories: dict[str, Factory | StageSpec]) -> Any:
    """A ``pytest.mark.parametrize`` over (stage, check) pairs; the test receives ``name``, ``check``
    (call it as ``check(name, factory)``) and ``factory``."""
    import pytest

    fx = synthetic_collection()
    cases = []
    for name, factory in factories.items():
        spec = _spec(factory)
        for check in CHECKS:
            def bound(n: str, f: Any, check: Callable[..., None] = check, spec: StageSpec = spec) -> None:
                check(n, spec, fx)

            cases.append(pytest.param(name, bound, factory, id=f"{name}-{check.__name__}"))
    return pytest.mark.parametrize(("name", "check", "factory"), cases)


# -- quick factories for every registered stage ---------------------------------------------------
_SHARED: dict[str, Any] = {}


def _bi_encoder() -> Any:
    if "bi" not in _SHARED:
        from rankstack.encoders.runtime import BiEncoder

        _SHARED["bi"] = BiEncoder(max_length=128)
    return _SHARED["bi"]


def random_head_cross_encoder() -> str:
    """all-MiniLM-L6-v2 with a seeded random one-label head, saved once per process: a cross-encoder
    to test plumbing with (its scores mean nothing; no trained cross-encoder needs to be installed)."""
    if "ce_dir" not in _SHARED:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from rankstack.encoders.runtime import default_model_path

        d = Path(tempfile.mkdtemp(prefix="rankstack-ce-")) / "minilm-ce"
        torch.manual_seed(13)
        AutoModelForSequenceClassification.from_pretrained(default_model_path(), num_labels=1).save_pretrained(d)
        AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(d)
        _SHARED["ce_dir"] = str(d)
    return _SHARED["ce_dir"]


def _cross_encoder_model() -> Any:
    if "ce" not in _SHARED:
        from rankstack.encoders.runtime import CrossEncoderModel

        _SHARED["ce"] = CrossEncoderModel(random_head_cross_encoder(), max_length=128)
    return _SHARED["ce"]


def registered_factories() -> dict[str, StageSpec]:
    """A quick :class:`StageSpec` for every built-in stage of :mod:`rankstack.registry` (those whose
    class lives in ``rankstack``) whose dependencies are installed. A built-in stage without one here
    is an error (add it), not a skip; a third-party stage brings its own factory."""
    from rankstack import registry

    def bm25(docs: dict[str, Document], **kw: Any) -> Stage:
        from rankstack.index.bm25 import BM25Index

        return BM25Index.build(list(docs.values()), progress=False).retriever(**{"k": 10, **kw})

    def bm25_rerank(docs: dict[str, Document], **kw: Any) -> Stage:
        from rankstack.index.bm25 import BM25Index

        return BM25Index.build(list(docs.values()), progress=False).reranker(**kw)

    def dense(docs: dict[str, Document], **kw: Any) -> Stage:
        return registry.create("dense", docs=docs, encoder=_bi_encoder(), **{"k": 10, **kw})

    def dense_rerank(docs: dict[str, Document], **kw: Any) -> Stage:
        return registry.create("dense-rerank", docs=docs, encoder=_bi_encoder(), **kw)

    def cross(docs: dict[str, Document], **kw: Any) -> Stage:
        return registry.create("cross-encoder", docs=docs, encoder=_cross_encoder_model(), **kw)

    def fuse(docs: dict[str, Document], **kw: Any) -> Stage:
        from rankstack.index.bm25 import BM25Index

        index = BM25Index.build(list(docs.values()), progress=False)
        return registry.create("fuse", stages=[index.reranker(), index.reranker(k1=1.2, b=0.75)],
                               **{"method": "rrf", **kw})

    def run(docs: dict[str, Document], **kw: Any) -> Stage:
        return registry.create("run", run=synthetic_collection().run, **kw)

    def cutoff(docs: dict[str, Document], **kw: Any) -> Stage:
        return registry.create("cutoff", **{"k": 2, **kw})

    from rankstack.llm.backends.scripted import ScriptedBackend

    def llm(name: str) -> Factory:
        def make(docs: dict[str, Document], **kw: Any) -> Stage:
            return registry.create(name, docs=docs, backend=ScriptedBackend(), max_words=30,
                                   **{"window": 4, "stride": 2, "k": 3, "set_size": 3, **kw})

        make.__name__ = name
        return make

    quick: dict[str, StageSpec] = {
        "bm25": StageSpec(bm25), "bm25-rerank": StageSpec(bm25_rerank),
        "dense": StageSpec(dense, warns_on_long=True), "dense-rerank": StageSpec(dense_rerank, warns_on_long=True),
        "cross-encoder": StageSpec(cross, warns_on_long=True), "fuse": StageSpec(fuse),
        "run": StageSpec(run), "cutoff": StageSpec(cutoff, keeps_candidates=False),
    }
    out: dict[str, StageSpec] = {}
    for e in registry.entries():
        if not e.target.startswith("rankstack."):
            continue
        try:
            registry.resolve(e.name)
        except MissingDependencyError:
            continue
        if e.name in quick:
            out[e.name] = quick[e.name]
        elif e.extra == "llm":
            out[e.name] = StageSpec(llm(e.name), warns_on_long=True)
        else:
            raise ConfigError(f"registered stage {e.name!r} has no quick factory in rankstack.testing")
    return out


class LlamaServer:
    """A real llama-cpp-python OpenAI-compatible server on a GGUF model (default: the packaged
    SmolLM2-135M-Instruct), for tests and benchmarks of the HTTP backend and its pool::

        with LlamaServer() as srv:                       # started, and answering /v1/models
            be = HTTPBackend(srv.url, model="smollm2")
            ...
            srv.stop()                                   # a server that dies mid-run (idempotent)

    ``threads`` is llama.cpp's ``--n_threads``; ``logits_all`` is on (query likelihood needs it). The
    server's output goes to ``log`` (a temporary file by default); a server that exits or does not
    answer within ``timeout`` seconds raises ``RuntimeError`` with the end of that log.
    """

    def __init__(self, model: str | None = None, *, threads: int = 1, n_ctx: int = 2048,
                 log: str | Path | None = None, timeout: float = 180.0):
        self.model, self.threads, self.n_ctx, self.timeout = model, int(threads), int(n_ctx), float(timeout)
        self.log = Path(log) if log is not None else Path(tempfile.mkdtemp(prefix="rankstack-llama-")) / "server.log"
        self.url = ""
        self._proc: Any = None
        self._fh: Any = None

    def start(self) -> LlamaServer:
        import os
        import socket
        import subprocess
        import sys
        import time

        from rankstack.optional import require

        httpx = require("httpx", "llm")
        require("llama_cpp", "llm")
        if self.model is None:
            from rankstack.llm.backends.models import smollm2_gguf

            self.model = smollm2_gguf()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self._fh = open(self.log, "w")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", str(self.n_ctx), "--logits_all", "true",
             "--n_threads", str(self.threads), "--verbose", "false"],
            stdout=self._fh, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"llama.cpp server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"llama.cpp server did not answer within {self.timeout:.0f} s: "
                           f"{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        import subprocess

        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
