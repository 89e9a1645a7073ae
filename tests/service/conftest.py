"""The service under test: real uvicorn servers on 127.0.0.1 (free ports), talked to with httpx.

``serve(**config)`` starts one in a thread (the same :class:`GracefulServer` the command line runs)
and waits until ``/health`` answers 200; every server started is stopped at the end of the session.
``service`` is the main one (the random-head MiniLM cross-encoder and the packaged all-MiniLM-L6-v2
for embeddings), shared by the test modules.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
pytest.importorskip("httpx")
pytest.importorskip("torch")
pytest.importorskip("transformers")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 180.0, alive: Any = None) -> None:
    import httpx

    t_end = time.monotonic() + timeout
    last = ""
    while time.monotonic() < t_end:
        if alive is not None and not alive():
            raise RuntimeError(f"the service at {url} stopped before it was ready ({last})")
        try:
            r = httpx.get(f"{url}/health", timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.TransportError as e:
            last = type(e).__name__
        time.sleep(0.05)
    raise RuntimeError(f"the service at {url} was not ready in {timeout} s ({last})")


@dataclass
class Served:
    """A running service: its ``url``, ``app``, ``state`` (the live ServiceState) and uvicorn ``server``."""

    url: str
    app: Any
    state: Any
    server: Any
    thread: threading.Thread

    def metric(self, name: str, **labels: str) -> float:
        v = self.state.metrics.sample(name, labels)
        return 0.0 if v is None else float(v)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(60)


def start(config: Any, timeout: float = 180.0) -> Served:
    import uvicorn

    from rankstack.interfaces.service.app import create_app
    from rankstack.interfaces.service.command import GracefulServer

    config.host, config.port = "127.0.0.1", free_port()
    app = create_app(config)
    state = app.state.rankstack
    ucfg = uvicorn.Config(app, host=config.host, port=config.port, log_level="warning", lifespan="on")
    server = GracefulServer(ucfg, state)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{config.port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"
    wait_healthy(url, timeout, alive=thread.is_alive)
    return Served(url, app, state, server, thread)


@pytest.fixture(scope="session")
def ce_model() -> str:
    """A real MiniLM cross-encoder (seeded random head): plumbing, not relevance."""
    from rankstack.testing import random_head_cross_encoder

    return random_head_cross_encoder()


@pytest.fixture(scope="session")
def serve():
    """``serve(**ServiceConfig fields) -> Served`` (no embeddings unless asked); stopped at the end."""
    from rankstack.interfaces.service.app import ServiceConfig

    started: list[Served] = []

    def _serve(**kw: Any) -> Served:
        kw.setdefault("embed_model", None)
        if "model" in kw:
            kw.setdefault("reranker_options", {"max_length": 128})
        s = start(ServiceConfig(**kw))
        started.append(s)
        return s

    yield _serve
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def service(serve, ce_model) -> Served:
    """The main service: the cross-encoder on /rerank (128 tokens at most: quick on a loaded CPU),
    all-MiniLM-L6-v2 on /v1/embeddings."""
    return serve(model=ce_model, reranker_options={"max_length": 128}, embed_model="auto", max_wait_ms=20.0,
                 max_batch_pairs=128, max_queue=256)


@pytest.fixture(scope="session")
def helpers():
    """The helpers above, for the test modules (conftest is not importable under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(free_port=free_port, wait_healthy=wait_healthy, start=start)
