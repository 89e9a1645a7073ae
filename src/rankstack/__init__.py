"""rankstack: retrieve, rerank, evaluate, train -- one typed toolkit for neural ranking."""

from rankstack.data.records import Collection, Document, Qrel, Qrels, Query, Run, ScoredDoc
from rankstack.version import __version__

__all__ = ["Collection", "Document", "Qrel", "Qrels", "Query", "Run", "ScoredDoc", "__version__", "rank",
           "rank_many", "Experiment"]


def __getattr__(name: str):
    """``rankstack.rank`` and ``rankstack.rank_many`` (:mod:`rankstack.interfaces.api`) and
    ``rankstack.Experiment`` (:mod:`rankstack.experiments.python`), imported on first use."""
    if name in ("rank", "rank_many"):
        from rankstack.interfaces import api

        return getattr(api, name)
    if name == "Experiment":
        from rankstack.experiments.python import Experiment

        return Experiment
    raise AttributeError(f"module 'rankstack' has no attribute {name!r}")
