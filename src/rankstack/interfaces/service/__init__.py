"""``rankstack serve``: the HTTP ranking service (FastAPI + uvicorn; ``pip install 'rankstack[serve]'``).

* :func:`create_app` (:mod:`.app`) -- a :class:`ServiceConfig` becomes a FastAPI app: ``/rerank``
  and ``/v1/rerank`` (TEI's and Cohere's/Jina's shapes), ``/v1/embeddings`` (OpenAI's), ``/health``,
  ``/metrics``, ``/openapi.json``; with an index, the search router of :mod:`.search`;
* :mod:`.batching` -- micro-batching of concurrent requests into one stage call, a bounded queue;
* :mod:`.limits` -- the gate before the routes: API keys, rate limits, payload size, shutdown;
* :mod:`.metrics` -- Prometheus collectors in a registry of the app's own;
* :mod:`.schemas` -- the request and response bodies;
* :mod:`.command` -- ``serve_command``, the command line, and the uvicorn server with a graceful
  shutdown (in-flight requests finish, new ones get 503).

With an index directory the app mounts the router of :mod:`.search`:
``SearchService.from_pipeline_file(index_dir, pipeline, reranker=spec)`` (with ``--pipeline``) or
``SearchService.from_index(index_dir, reranker=spec)``, then ``.router()``; ``spec`` is the served
reranker's stage spec (``None`` without one), and ``.close()`` runs at shutdown.

Nothing here is imported until asked for: ``import rankstack.interfaces.service`` needs no FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServiceConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rankstack.interfaces.service import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
