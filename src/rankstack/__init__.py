"""rankstack: retrieve, rerank, evaluate, train -- one typed toolkit for neural ranking."""

from rankstack.data.records import Collection, Document, Qrel, Qrels, Query, Run, ScoredDoc

__version__ = "0.1.0"

__all__ = ["Collection", "Document", "Qrel", "Qrels", "Query", "Run", "ScoredDoc", "__version__", "rank",
           "rank_many"]


def __getattr__(name: str):
    """``rankstack.rank`` and ``rankstack.rank_many`` (:mod:`rankstack.interfaces.api`), imported on first use."""
    if name in ("rank", "rank_many"):
        from rankstack.interfaces import api

        return getattr(api, name)
    raise AttributeError(f"module 'rankstack' has no attribute {name!r}")
