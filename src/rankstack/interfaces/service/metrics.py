"""Prometheus metrics of one service instance, in a :class:`prometheus_client.CollectorRegistry` of
its own (two apps in one process never share counters; ``GET /metrics`` renders only this one).

Names (all prefixed ``rankstack_``):

* ``requests_total{route, status}`` -- requests answered, by route template and HTTP status;
* ``request_duration_seconds{route}`` -- latency histogram (from the first byte read to the answer);
* ``queue_depth`` -- requests waiting for (or in) the model worker, a gauge;
* ``queue_pairs`` -- (query, document) pairs waiting, a gauge;
* ``batch_pairs`` / ``batch_requests`` -- histograms of the pairs and requests per stage call;
* ``truncated_texts_total{route}`` -- texts truncated to the model's limit;
* ``rejected_total{reason}`` -- requests refused before scoring (``overloaded``, ``rate_limited``,
  ``unauthorized``, ``payload_too_large``, ``shutting_down``, ``timeout``);
* ``partial_results_total`` -- answers cut short by the request timeout;
* ``backend_errors_total{kind}`` -- stage calls that failed (``backend``, ``non_finite``, ``internal``);
* ``inflight_requests`` -- HTTP requests being handled, a gauge.
"""

from __future__ import annotations

from typing import Any

from rankstack.optional import require

__all__ = ["ServiceMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_PAIR_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
_REQ_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class ServiceMetrics:
    """The service's collectors; ``render()`` gives the Prometheus text exposition format."""

    def __init__(self) -> None:
        prom = require("prometheus_client", "serve")
        self._prom = prom
        self.registry = prom.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = prom.Counter("rankstack_requests", "HTTP requests answered, by route and status",
                                     ["route", "status"], registry=r)
        self.latency = prom.Histogram("rankstack_request_duration_seconds", "HTTP request latency",
                                      ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = prom.Gauge("rankstack_queue_depth", "requests queued for (or in) the model worker",
                                      registry=r)
        self.queue_pairs = prom.Gauge("rankstack_queue_pairs", "(query, document) pairs queued", registry=r)
        self.batch_pairs = prom.Histogram("rankstack_batch_pairs", "pairs scored per stage call",
                                          buckets=_PAIR_BUCKETS, registry=r)
        self.batch_requests = prom.Histogram("rankstack_batch_requests", "requests scored together per stage call",
                                             buckets=_REQ_BUCKETS, registry=r)
        self.truncated = prom.Counter("rankstack_truncated_texts", "texts truncated to the model's limit",
                                      ["route"], registry=r)
        self.rejected = prom.Counter("rankstack_rejected", "requests refused before scoring, by reason",
                                     ["reason"], registry=r)
        self.partial = prom.Counter("rankstack_partial_results", "answers cut short by the request timeout",
                                    registry=r)
        self.backend_errors = prom.Counter("rankstack_backend_errors", "failed stage calls, by kind", ["kind"],
                                           registry=r)
        self.inflight = prom.Gauge("rankstack_inflight_requests", "HTTP requests being handled", registry=r)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST

    def sample(self, name: str, labels: dict[str, str] | None = None) -> Any:
        """One sample's value (``None`` if absent): for tests and ``/health``."""
        return self.registry.get_sample_value(name, labels or {})
