"""The stage contract (tests/contract.py) applied to every registered retriever and reranker."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from contract import check_stage, small_collection, spec_for

from rankstack.stages import registry
from rankstack.stages.registry import MissingDependencyError

ENTRIES = [e for e in registry.entries() if e.kind in ("retriever", "reranker", "fusion")]


@pytest.fixture(scope="module")
def collection():
    return small_collection()


@pytest.mark.parametrize("name", [e.name for e in ENTRIES])
def test_stage_contract(name, collection):
    spec = spec_for(name)
    if spec.skip:
        pytest.skip(spec.skip)
    queries, run, docs = collection
    try:
        registry.resolve(name)
    except MissingDependencyError as e:
        pytest.skip(str(e))
    try:
        spec.factory(docs)
    except (TypeError, ValueError) as e:
        pytest.skip(
            f"{name}: no quick test factory (registry.create(name, docs=...) failed: {e}); add one to SPECS"
        )
    check_stage(spec.factory, queries, run, docs, warns_on_long=spec.warns_on_long)
