"""Registry entries of the BM25 area (``bm25`` itself is a built-in entry of the registry)."""

from rankstack.stages.registry import register

register(
    "bm25-rerank",
    "rankstack.stages.bm25:BM25Reranker",
    None,
    "reranker",
    "re-score candidates with Lucene-equivalent BM25 from a BM25 index",
)
