"""The service over real HTTP: both rerank shapes, parity with the stage, micro-batching, the limits and
their status codes, long texts, malformed HTTP, embeddings, health, metrics, OpenAPI, partial answers
on timeout, overload, API keys and rate limits."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import math
import random
import socket
import time

import httpx
import numpy as np
import pytest

from rankstack.data.records import Document, Query, Run

pytestmark = pytest.mark.slow

post = functools.partial(httpx.post, timeout=120)
get = functools.partial(httpx.get, timeout=60)

_WORDS = ("protein cell gene cancer brain virus vaccine immune tumor receptor signal pathway dose trial patient "
          "therapy risk blood heart lung liver kidney bone muscle neuron memory sleep stress diet insulin glucose "
          "ranking retrieval query passage relevance index search engine language water climate").split()


def texts(n: int, words: int = 12, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(max(1, words // 2), words))) for _ in range(n)]


def stage_scores(stage, query: str, docs: list[str]) -> list[float]:
    """The stage's own scores of (query, doc) pairs: one query, the documents as its candidates."""
    stage.docs = {f"d{j}": Document(f"d{j}", t) for j, t in enumerate(docs)}
    out = stage([Query("q", query)], Run({"q": {f"d{j}": float(len(docs) - j) for j in range(len(docs))}}))
    return [out["q"][f"d{j}"] for j in range(len(docs))]


@pytest.fixture(scope="module")
def stage(ce_model):
    from rankstack.stages.build import build_stage

    return build_stage({"stage": "cross-encoder", "model": ce_model, "max_length": 128, "docs": {}}, None, "test")


def test_tei_shape(service):
    docs = texts(5, seed=1)
    r = post(f"{service.url}/rerank", json={"query": "cancer gene therapy", "texts": docs, "return_text": True})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert isinstance(body, list) and sorted(x["index"] for x in body) == list(range(5))
    assert [x["score"] for x in body] == sorted((x["score"] for x in body), reverse=True)
    assert all(x["text"] == docs[x["index"]] for x in body)
    assert "X-Rankstack-Truncated" not in r.headers
    plain = post(f"{service.url}/v1/rerank", json={"query": "cancer gene therapy", "texts": docs}).json()
    assert all("text" not in x for x in plain)
    assert {x["index"]: x["score"] for x in plain} == {x["index"]: x["score"] for x in body}
    raw = post(f"{service.url}/rerank", json={"query": "cancer gene therapy", "texts": docs,
                                                    "raw_scores": True}).json()
    s = {x["index"]: x["score"] for x in body}
    for x in raw:  # logits: the sigmoid inverted
        assert x["score"] == pytest.approx(math.log(s[x["index"]] / (1 - s[x["index"]])), abs=1e-9)


def test_cohere_jina_shape(service):
    docs = texts(6, seed=2)
    given = [docs[0], {"text": docs[1]}, *docs[2:]]
    r = post(f"{service.url}/v1/rerank", json={"query": "brain memory", "documents": given, "top_n": 3,
                                                     "return_documents": True, "model": "whatever"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"id", "results", "model", "usage", "meta"} and body["model"] == "minilm-ce"
    assert len(body["results"]) == 3 and body["usage"]["total_tokens"] > 0
    assert all(x["document"]["text"] == docs[x["index"]] for x in body["results"])
    scores = [x["relevance_score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True)
    full = post(f"{service.url}/rerank", json={"query": "brain memory", "documents": docs}).json()
    assert len(full["results"]) == 6 and all("document" not in x for x in full["results"])
    assert full["results"][:3] == [{k: v for k, v in x.items() if k != "document"} for x in body["results"]]
    tei = post(f"{service.url}/rerank", json={"query": "brain memory", "texts": docs}).json()
    assert [(x["index"], x["score"]) for x in tei] == [(x["index"], x["relevance_score"]) for x in full["results"]]


@pytest.mark.parametrize("body", [{"query": "q", "texts": ["a"], "documents": ["a"]}, {"query": "q"},
                                  {"texts": ["a"]}, {"query": "q", "texts": "a"}, {"query": "q", "texts": [1]},
                                  {"query": "q", "documents": [{"txt": "a"}]}, {"query": "q", "documents": ["a"],
                                                                                "top_n": 0}, [1, 2], "text"])
def test_wrong_bodies_are_422_json(service, body):
    r = post(f"{service.url}/rerank", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error_type"] == "validation" and r.json()["error"]


def test_parity_with_the_stage(service, stage):
    """Scores served equal the stage's own scores of the same pairs (short, long and over-limit texts)."""
    docs = texts(7, seed=3) + [" ".join(texts(40, 30, seed=4))]  # the last one is truncated
    q = "immune receptor signal"
    ref = stage_scores(stage, q, docs)
    tei = post(f"{service.url}/rerank", json={"query": q, "texts": docs}).json()
    coh = post(f"{service.url}/v1/rerank", json={"query": q, "documents": docs}).json()["results"]
    got_tei = {x["index"]: x["score"] for x in tei}
    got_coh = {x["index"]: x["relevance_score"] for x in coh}
    np.testing.assert_allclose([got_tei[j] for j in range(len(docs))], ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose([got_coh[j] for j in range(len(docs))], ref, atol=1e-6, rtol=0)


def test_concurrent_requests_are_batched_and_equal_one_by_one(service):
    reqs = [("query %d " % i + " ".join(texts(1, 4, seed=100 + i)), texts(4, seed=200 + i)) for i in range(32)]
    count0 = service.metric("rankstack_batch_requests_count")
    ones0 = service.metric("rankstack_batch_requests_bucket", le="1.0")

    async def fire():
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as c:
            return await asyncio.gather(*(c.post(f"{service.url}/rerank", json={"query": q, "texts": t})
                                          for q, t in reqs))

    together = asyncio.run(fire())
    batches = service.metric("rankstack_batch_requests_count") - count0
    multi = batches - (service.metric("rankstack_batch_requests_bucket", le="1.0") - ones0)
    assert all(r.status_code == 200 for r in together)
    assert 0 < batches < 32 and multi >= 1, (batches, multi)  # some stage call scored several requests
    with httpx.Client(timeout=60) as c:
        for (q, t), r in zip(reqs, together):
            alone = c.post(f"{service.url}/rerank", json={"query": q, "texts": t}).json()
            a = {x["index"]: x["score"] for x in alone}
            b = {x["index"]: x["score"] for x in r.json()}
            assert a.keys() == b.keys()
            np.testing.assert_allclose([b[k] for k in sorted(b)], [a[k] for k in sorted(a)], atol=1e-6, rtol=0)


def test_empty_and_too_many(service):
    for body, field in (({"query": "q", "texts": []}, "texts"), ({"query": "q", "documents": []}, "documents")):
        r = post(f"{service.url}/rerank", json=body)
        assert r.status_code == 400 and r.json() == {"error": f"`{field}` cannot be empty", "error_type": "empty"}
    r = post(f"{service.url}/rerank", json={"query": "q", "texts": ["x"] * 1001})
    assert r.status_code == 413 and r.json()["error_type"] == "validation" and "1001" in r.json()["error"]
    r = post(f"{service.url}/v1/embeddings", json={"input": []})
    assert r.status_code == 400 and r.json()["error_type"] == "empty"
    r = post(f"{service.url}/v1/embeddings", json={"input": ["x"] * 1001})
    assert r.status_code == 413


def test_payload_limit_by_header_and_by_body(service):
    big = json.dumps({"query": "q", "texts": ["word " * 1000] * 500}).encode()  # ~2.5 MB
    assert len(big) > 2_000_000
    r = post(f"{service.url}/rerank", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error_type"] == "payload_too_large"

    def chunks():  # no Content-Length: the size is found while reading
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    r = post(f"{service.url}/rerank", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error_type"] == "payload_too_large"
    assert get(f"{service.url}/health").status_code == 200


def test_40k_token_text_truncated_or_422(service, stage):
    long = " ".join(texts(5500, 10, seed=5))  # about 40k tokens
    n = len(stage.encoder.tokenizer(long, add_special_tokens=False)["input_ids"])
    assert n > 35_000
    docs = ["short passage about cancer", long, "another short one"]
    before = service.metric("rankstack_truncated_texts_total", route="/rerank")
    r = post(f"{service.url}/rerank", json={"query": "cancer", "texts": docs}, timeout=120)
    assert r.status_code == 200 and r.headers["X-Rankstack-Truncated"] == "1"
    assert service.metric("rankstack_truncated_texts_total", route="/rerank") == before + 1
    got = {x["index"]: x["score"] for x in r.json()}
    np.testing.assert_allclose([got[j] for j in range(3)], stage_scores(stage, "cancer", docs), atol=1e-6, rtol=0)
    for body in ({"query": "cancer", "texts": docs, "truncate": False},
                 {"query": "cancer", "documents": docs, "truncate": False}):
        r = post(f"{service.url}/rerank", json=body, timeout=120)
        assert r.status_code == 422, r.text
        e = r.json()
        assert e["error_type"] == "validation" and e["documents"] == [1] and e["error"].startswith("document 1 is ")
        assert "limit is 128 tokens" in e["error"]


def _raw(url: str, data: bytes, shut: bool = False) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (TimeoutError, ConnectionResetError):
            pass
    return out


def test_malformed_http_is_4xx_and_the_service_stays_up(service):
    url = service.url
    assert _raw(url, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert _raw(url, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64)).startswith(b"HTTP/1.1 400")
    assert _raw(url, b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}").startswith(b"HTTP/1.1 400")
    assert _raw(url, b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{}"
                ).startswith(b"HTTP/1.1 400")
    # a body shorter than its Content-Length, then the client goes away: no answer, no harm
    out = _raw(url, b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
                    b"\r\n{\"query\": \"q\", \"te", shut=True)
    assert out == b"" or out.startswith(b"HTTP/1.1 4")
    # an invalid JSON body, and one that is not UTF-8
    for body in (b"{\"query\": \"q\", \"texts\": [\"a\"", b"\xff\xfe\x00garbage"):
        out = _raw(url, b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert out.startswith(b"HTTP/1.1 422") and b'"error_type":"validation"' in out
    for _ in range(3):
        assert get(f"{url}/health").status_code == 200
    r = post(f"{url}/rerank", json={"query": "q", "texts": ["still serving"]})
    assert r.status_code == 200


def test_unknown_route_and_method_are_json(service):
    r = get(f"{service.url}/nope")
    assert r.status_code == 404 and r.json()["error_type"] == "not_found"
    r = get(f"{service.url}/rerank")
    assert r.status_code == 405 and r.json()["error_type"] == "method_not_allowed"


def test_embeddings_openai_shape_and_parity(service):
    from rankstack.encoders.runtime import BiEncoder

    inputs = texts(3, seed=6)
    r = post(f"{service.url}/v1/embeddings", json={"input": inputs, "model": "x"})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list" and body["model"] == "all-MiniLM-L6-v2" and body["usage"]["total_tokens"] > 0
    assert [d["index"] for d in body["data"]] == [0, 1, 2] and all(d["object"] == "embedding" for d in body["data"])
    got = np.array([d["embedding"] for d in body["data"]])
    ref = BiEncoder(None).encode(inputs)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    b64 = post(f"{service.url}/v1/embeddings", json={"input": inputs, "encoding_format": "base64"}).json()
    dec = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b64["data"]])
    np.testing.assert_array_equal(dec, got.astype(np.float32))
    one = post(f"{service.url}/v1/embeddings", json={"input": inputs[0]}).json()
    np.testing.assert_allclose(one["data"][0]["embedding"], got[0], atol=1e-6)
    long = post(f"{service.url}/v1/embeddings", json={"input": [" ".join(texts(200, 10))]})
    assert long.status_code == 200 and long.headers["X-Rankstack-Truncated"] == "1"


def test_health_metrics_openapi(service):
    h = get(f"{service.url}/health")
    assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["reranker"] == "cross-encoder"
    m = get(f"{service.url}/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    for name in ("rankstack_requests_total", "rankstack_request_duration_seconds_bucket", "rankstack_queue_depth",
                 "rankstack_batch_pairs_bucket", "rankstack_batch_requests_bucket", "rankstack_truncated_texts_total",
                 "rankstack_inflight_requests"):
        assert name in m.text, name
    assert 'rankstack_requests_total{route="/health",status="200"}' in m.text
    spec = get(f"{service.url}/openapi.json").json()
    assert {"/rerank", "/v1/rerank", "/v1/embeddings", "/health", "/metrics"} <= set(spec["paths"])
    assert {"200", "400", "413", "422", "429", "503"} <= set(spec["paths"]["/rerank"]["post"]["responses"])


def test_timeout_gives_partial_results_or_504(serve, ce_model):
    s = serve(model=ce_model, max_batch_pairs=4, max_wait_ms=0.0, request_timeout_s=30.0)
    docs = texts(400, 40, seed=7)
    with httpx.Client(timeout=120) as c:
        t = []
        for i in range(3):  # how long one chunk of 4 takes here, now
            t0 = time.perf_counter()
            assert c.post(f"{s.url}/rerank", json={"query": "q", "texts": docs[4 * i:4 * i + 4]}).status_code == 200
            t.append(time.perf_counter() - t0)
        s.state.config.request_timeout_s = max(0.3, 10 * max(t))  # 10 chunks' time, for 100 chunks
        r = c.post(f"{s.url}/v1/rerank", json={"query": "q", "documents": docs})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["partial"] is True and r.headers["X-Rankstack-Partial"] == "true"
        scored = {x["index"] for x in body["results"]}
        assert scored and body["unscored"] and scored.isdisjoint(body["unscored"])
        assert sorted(scored | set(body["unscored"])) == list(range(400))
        assert int(r.headers["X-Rankstack-Unscored"]) == len(body["unscored"])
        r = c.post(f"{s.url}/rerank", json={"query": "q", "texts": docs})
        assert r.status_code == 200 and r.headers["X-Rankstack-Partial"] == "true" and 0 < len(r.json()) < 400
        s.state.config.request_timeout_s = 0.001
        r = c.post(f"{s.url}/rerank", json={"query": "q", "texts": docs})
        assert r.status_code == 504 and r.json()["error_type"] == "timeout"
        s.state.config.request_timeout_s = 30.0
        assert s.metric("rankstack_partial_results_total") >= 2
        r = c.post(f"{s.url}/rerank", json={"query": "q", "texts": docs[:8]})  # the dropped chunks are gone
        assert r.status_code == 200 and len(r.json()) == 8 and "X-Rankstack-Partial" not in r.headers


def test_overload_is_429_then_recovers(serve, ce_model):
    s = serve(model=ce_model, max_queue=2, max_batch_pairs=16, max_wait_ms=1.0)
    docs = texts(64, 20, seed=8)

    async def burst():
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as c:
            return await asyncio.gather(*(c.post(f"{s.url}/rerank", json={"query": f"q{i}", "texts": docs})
                                          for i in range(40)))

    rs = asyncio.run(burst())
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 429} and codes.count(429) >= 1 and codes.count(200) >= 1, codes
    over = next(r for r in rs if r.status_code == 429)
    assert over.json()["error_type"] == "overloaded" and int(over.headers["Retry-After"]) >= 1
    assert s.metric("rankstack_rejected_total", reason="overloaded") >= codes.count(429)
    r = post(f"{s.url}/rerank", json={"query": "after", "texts": docs[:5]}, timeout=60)
    assert r.status_code == 200 and s.state.batcher.depth == 0


def test_overload_is_bounded_by_queued_work_not_answered_by_timeouts(serve, ce_model):
    """The request bound alone (64) is far away; the work bound (0.5 s of measured scoring) answers the
    burst with 429s at once, none times out in the queue (504), and the service recovers at once."""
    s = serve(model=ce_model, max_queue=1000, max_queue_s=0.5, max_batch_pairs=32, max_wait_ms=1.0,
              request_timeout_s=20.0)
    docs = texts(64, 20, seed=9)
    post(f"{s.url}/rerank", json={"query": "warm", "texts": docs}, timeout=60)  # a measured cost
    per_pair = s.state.batcher.seconds_per_pair
    assert per_pair is not None and per_pair > 0

    async def burst():
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as c:
            return await asyncio.gather(*(c.post(f"{s.url}/rerank", json={"query": f"q{i}", "texts": docs})
                                          for i in range(30)))

    t0 = time.monotonic()
    rs = asyncio.run(burst())
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 429} and codes.count(429) >= 10 and codes.count(200) >= 1, codes
    over = next(r for r in rs if r.status_code == 429)
    assert "s of scoring would be queued" in over.json()["error"], over.json()
    took = time.monotonic() - t0
    t1 = time.monotonic()
    r = post(f"{s.url}/rerank", json={"query": "after", "texts": docs[:5]}, timeout=60)
    assert r.status_code == 200 and s.state.batcher.depth == 0
    assert time.monotonic() - t1 < max(2.0, took / 2), "the service did not recover at once after the burst"


def test_api_keys_and_rate_limit(serve, ce_model):
    s = serve(model=ce_model, api_keys=("key-one", "key-two"), rate_limit=2.0)
    body = {"query": "q", "texts": ["a passage"]}
    r = post(f"{s.url}/rerank", json=body)
    assert r.status_code == 401 and r.json()["error_type"] == "unauthorized" and r.headers["WWW-Authenticate"]
    assert post(f"{s.url}/rerank", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert post(f"{s.url}/rerank", json=body, headers={"Authorization": "Basic key-one"}).status_code == 401
    assert get(f"{s.url}/health").status_code == 200  # probes stay open
    assert get(f"{s.url}/metrics").status_code == 200
    one = {"Authorization": "Bearer key-one"}
    codes = [post(f"{s.url}/rerank", json=body, headers=one).status_code for _ in range(6)]
    assert codes[:2] == [200, 200] and 429 in codes, codes  # a burst of 2, then 2 a second
    limited = post(f"{s.url}/rerank", json=body, headers=one)
    if limited.status_code == 429:
        assert limited.json()["error_type"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    two = post(f"{s.url}/rerank", json=body, headers={"Authorization": "Bearer key-two"})
    assert two.status_code == 200  # its own bucket
    time.sleep(1.1)
    assert post(f"{s.url}/rerank", json=body, headers=one).status_code == 200
