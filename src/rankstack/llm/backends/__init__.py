"""LLM backends: transformers (in-process), llama.cpp (in-process), OpenAI-compatible HTTP, and a
deterministic ``scripted`` backend without a model (for tests and contract checks)."""

from __future__ import annotations

from typing import Any

from rankstack.errors import BackendError, ConfigError
from rankstack.llm.backends.base import Backend, Generation, Meter

__all__ = ["Backend", "BackendError", "Generation", "Meter", "make_backend"]


def make_backend(backend: str = "transformers", model: str = "smollm2", base_url: str | None = None,
                 **opts: Any) -> Backend:
    """Build a backend by name: ``transformers`` | ``llamacpp`` | ``http`` (needs ``base_url``) | ``scripted``."""
    if backend == "scripted":
        from rankstack.llm.backends.scripted import ScriptedBackend

        return ScriptedBackend(**opts)
    if backend in ("transformers", "hf"):
        from rankstack.llm.backends.hf import TransformersBackend

        return TransformersBackend(model, **opts)
    if backend in ("llamacpp", "llama.cpp", "llama_cpp"):
        from rankstack.llm.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(model, **opts)
    if backend in ("http", "openai"):
        if not base_url:
            raise ConfigError("the http backend needs base_url, e.g. http://127.0.0.1:8000/v1")
        from rankstack.llm.backends.http import HTTPBackend

        return HTTPBackend(base_url, model=model, **opts)
    raise ConfigError(f"unknown backend {backend!r}; use transformers, llamacpp, http or scripted")
