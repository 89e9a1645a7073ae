"""schemathesis against the running service's ``/openapi.json``: every operation, valid and invalid
bodies, never a 5xx, every error in the JSON shape ``{"error", "error_type"}``."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

import httpx  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

pytestmark = pytest.mark.slow

OPERATIONS = {("POST", "/rerank"), ("POST", "/v1/rerank"), ("POST", "/v1/embeddings"), ("GET", "/health"),
              ("GET", "/metrics")}


@pytest.fixture(scope="module")
def schema(service):
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


def _operation(schema, method: str, path: str):
    for result in schema.get_all_operations():
        op = result.ok()
        if op.method.upper() == method and op.path == path:
            return op
    raise AssertionError(f"{method} {path} is not in /openapi.json")


def test_every_operation_is_fuzzed(schema):
    ops = {(r.ok().method.upper(), r.ok().path) for r in schema.get_all_operations()}
    assert ops == OPERATIONS  # a new route must be added to OPERATIONS (and so fuzzed below)


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("method,path", sorted(OPERATIONS))
def test_no_server_errors(schema, service, method, path, mode):
    from schemathesis import GenerationMode

    if mode == "negative" and method == "GET":
        pytest.skip("no parameters to make invalid")
    op = _operation(schema, method, path)
    seen: dict[int, int] = {}

    @given(case=op.as_strategy(generation_mode=GenerationMode(mode)))
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        r = case.call(base_url=service.url, timeout=60)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, f"{method} {path} -> {r.status_code}: {r.text[:500]}\nbody: {case.body!r}"[:2000]
        if r.status_code >= 400:
            body = r.json()
            assert isinstance(body.get("error"), str) and isinstance(body.get("error_type"), str), body

    run()
    assert seen, "no request was made"
    if mode == "positive":
        assert 200 in seen, seen  # valid bodies reach the model
    assert httpx.get(f"{service.url}/health", timeout=30).status_code == 200  # and the service is still up
