"""The shipped stage contract (rankstack.testing) applied to every registered stage: retrievers,
rerankers (all eight LLM scorers on the scripted backend), fusion, runs and cutoffs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from rankstack import registry
from rankstack.testing import (
    StageSpec,
    check_config,
    check_stage,
    parametrize_with_checks,
    registered_factories,
    synthetic_collection,
)

FACTORIES = registered_factories()


def test_every_registered_stage_has_a_factory():
    names = {e.name for e in registry.entries() if e.target.startswith("rankstack.")}
    assert names <= set(FACTORIES), f"stages without a contract factory: {sorted(names - set(FACTORIES))}"
    llm = [e.name for e in registry.entries() if e.extra == "llm"]
    assert len(llm) == 8 and set(llm) <= set(FACTORIES) and len(FACTORIES) == 16


@parametrize_with_checks(FACTORIES)
def test_stage_contract(name, check, factory):
    check(name, factory)


# -- the contract itself can fail: stages that break it are caught --------------------------------
from rankstack.stages.base import Reranker  # noqa: E402


class _Forgets(Reranker):
    """Stores ``boost`` under another name: its cache key cannot see it."""

    name = "forgets"

    def __init__(self, docs=None, boost: float = 1.0):
        super().__init__(docs)
        self._boost = boost

    def score(self, query, docs):
        import numpy as np

        return np.array([self._boost * len(d.text) for d in docs])


class _Hides(_Forgets):
    """Stores ``boost`` but leaves it out of a hand-written key (the stale-cache bug of old)."""

    name = "hides"

    def __init__(self, docs=None, boost: float = 1.0):
        super().__init__(docs, boost)
        self.boost = boost

    def config(self):
        return {k: v for k, v in super().config().items() if k != "boost"}


class _Random(_Hides):
    name = "random"

    def config(self):
        return Reranker.config(self)

    def score(self, query, docs):
        import numpy as np

        return np.random.default_rng().random(len(docs))


def test_contract_catches_a_parameter_missing_from_the_key():
    fx = synthetic_collection()
    with pytest.raises(Exception, match="stores no attribute 'boost'"):
        check_config("forgets", StageSpec(lambda docs, **kw: _Forgets(docs, **kw)), fx)


def test_contract_catches_a_parameter_left_out_by_hand():
    fx = synthetic_collection()
    with pytest.raises(AssertionError, match=r"\['boost'\] are not in config"):
        check_config("hides", StageSpec(lambda docs, **kw: _Hides(docs, **kw)), fx)


def test_params_change_key_perturbs_parameters():
    from rankstack.testing import check_params_change_key

    fx = synthetic_collection()
    seen = []

    def factory(docs, **kw):
        seen.append(kw)
        return FACTORIES["bm25"].factory(docs, **kw)

    check_params_change_key("bm25", StageSpec(factory), fx)
    assert {"k": 11} in seen and {"k1": 1.8} in seen and {"b": 0.8} in seen


def test_contract_catches_nondeterminism():
    with pytest.raises(AssertionError, match="differ"):
        check_stage(lambda docs, **kw: _Random(docs, **kw), name="random")


def test_synthetic_collection_is_seeded():
    a, b, c = synthetic_collection(0), synthetic_collection(0), synthetic_collection(1)
    assert a.run.to_dict() == b.run.to_dict() and a.docs == b.docs
    assert a.run.to_dict() != c.run.to_dict()
    assert len(a.queries) == 5 and a.run["no-candidates"] == {} and sorted(len(v) for v in a.run.values()) == [0, 1, 5, 5, 5]
