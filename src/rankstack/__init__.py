"""rankstack: retrieve, rerank, evaluate, train -- one typed toolkit for neural ranking."""

from rankstack.data.records import Collection, Document, Qrel, Qrels, Query, Run, ScoredDoc

__version__ = "0.1.0"

__all__ = ["Collection", "Document", "Qrel", "Qrels", "Query", "Run", "ScoredDoc", "__version__"]
