"""What an experiment produces: one :class:`Result` per (collection, pipeline) and the
:class:`Report` of them all (with the golden-figure checks). The runner fills them; the report
renders them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rankstack.experiments.config import ExperimentSpec


@dataclass
class Result:
    collection: str
    pipeline: str
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]  # measure -> qid -> value
    stats: dict[str, Any]
    significance: dict[str, dict[str, Any]] = field(default_factory=dict)  # measure -> row


@dataclass
class Report:
    spec: ExperimentSpec
    results: list[Result]
    checks: list[dict[str, Any]]
    #: provenance: versions, git commit, date, machine, config (:mod:`rankstack.experiments.provenance`)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["ok"]]

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.spec.name,
            "measures": self.spec.measures,
            "baseline": self.spec.baseline,
            "significance": self.spec.significance,
            "correction": getattr(self.spec, "correction", "holm"),
            "results": [r.__dict__ for r in self.results],
            "checks": self.checks,
            "meta": self.meta,
        }
