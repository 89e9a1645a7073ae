"""Request and response bodies of the service (pydantic models; they make ``/openapi.json``).

``POST /rerank`` takes one body that is either shape, told apart by its keys:

* TEI's (text-embeddings-inference ``RerankRequest``): ``query``, ``texts``, ``raw_scores``,
  ``truncate``, ``return_text``; answered with a JSON list ``[{"index", "score", "text"?}]``, best first;
* Cohere's / Jina's / Infinity's: ``query``, ``documents`` (strings or ``{"text": ...}``), ``top_n``,
  ``return_documents``, ``model``; answered with ``{"id", "results": [{"index", "relevance_score",
  "document"?: {"text"}}], "model", "usage", "meta"}``, best first.

``texts`` and ``documents`` together, or neither, is a 422. Errors are TEI's ``{"error", "error_type"}``.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rankstack.errors import ConfigError

__all__ = [
    "DocumentObject",
    "RerankRequest",
    "TeiRank",
    "RerankResult",
    "RerankResponse",
    "EmbeddingRequest",
    "EmbeddingObject",
    "EmbeddingResponse",
    "ErrorResponse",
    "Health",
]


class DocumentObject(BaseModel):
    """A document given as an object (Cohere v1 / Jina): its ``text``; other keys are ignored."""

    model_config = ConfigDict(extra="ignore")
    text: str


class RerankRequest(BaseModel):
    """Either TEI's shape (``texts``) or Cohere's/Jina's/Infinity's (``documents``); see the module docstring."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [
            {"query": "What is Deep Learning?", "texts": ["Deep Learning is ...", "Cheese is ..."]},
            {"query": "What is Deep Learning?", "documents": ["Deep Learning is ...", "Cheese is ..."],
             "top_n": 1, "return_documents": True},
        ]},
    )

    query: str = Field(description="the query")
    texts: Optional[list[str]] = Field(None, description="TEI shape: the texts to rank")
    documents: Optional[list[Union[str, DocumentObject]]] = Field(
        None, description="Cohere/Jina/Infinity shape: the documents to rank (strings or {\"text\": ...})")
    raw_scores: bool = Field(False, description="the model's logits instead of its activation (a cross-encoder's "
                                                "sigmoid inverted); other rerankers' scores are raw already")
    truncate: Optional[bool] = Field(None, description="truncate texts over the model's limit (default: the "
                                                       "server's --auto-truncate, on); false: a 422 naming the text")
    return_text: bool = Field(False, description="TEI shape: include each text in the answer")
    top_n: Optional[int] = Field(None, ge=1, description="Cohere shape: answer only the best top_n")
    return_documents: Optional[bool] = Field(
        None, description="Cohere shape: include each document (default: false, as Cohere v2 and Infinity)")
    model: Optional[str] = Field(None, description="Cohere shape: accepted and ignored; the answer names the "
                                                   "served model")

    @model_validator(mode="after")
    def _one_shape(self) -> RerankRequest:
        if (self.texts is None) == (self.documents is None):
            raise ConfigError("give either 'texts' (TEI's shape) or 'documents' (Cohere's/Jina's shape), not "
                             + ("both" if self.texts is not None else "neither"))
        return self

    @property
    def shape(self) -> Literal["tei", "cohere"]:
        return "tei" if self.texts is not None else "cohere"

    def doc_texts(self) -> list[str]:
        if self.texts is not None:
            return list(self.texts)
        return [d if isinstance(d, str) else d.text for d in (self.documents or [])]


class TeiRank(BaseModel):
    """One ranked text (TEI's ``Rank``)."""

    index: int
    score: float
    text: Optional[str] = None


class ResultDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    """One ranked document (Cohere v2's / Jina's result)."""

    index: int
    relevance_score: float
    document: Optional[ResultDocument] = None


class Usage(BaseModel):
    total_tokens: int
    prompt_tokens: Optional[int] = None


class BilledUnits(BaseModel):
    search_units: int = 1


class ApiVersion(BaseModel):
    version: str = "2"


class Meta(BaseModel):
    api_version: ApiVersion = Field(default_factory=ApiVersion)
    billed_units: BilledUnits = Field(default_factory=BilledUnits)


class RerankResponse(BaseModel):
    """Cohere v2's / Jina's answer (with ``partial`` and ``unscored`` when the request timed out)."""

    id: str
    results: list[RerankResult]
    model: str
    usage: Optional[Usage] = None
    meta: Meta = Field(default_factory=Meta)
    partial: Optional[bool] = Field(None, description="true: the request timed out; 'unscored' lists the "
                                                      "indices of the documents left out")
    unscored: Optional[list[int]] = None


class EmbeddingRequest(BaseModel):
    """OpenAI's ``/v1/embeddings`` body."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
        {"input": ["What is Deep Learning?"], "model": "all-MiniLM-L6-v2"}]})

    input: Union[str, list[str]]
    model: Optional[str] = None
    encoding_format: Literal["float", "base64"] = "float"
    user: Optional[str] = None


class EmbeddingObject(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: Union[list[float], str]


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingObject]
    model: str
    usage: EmbeddingUsage


class ErrorResponse(BaseModel):
    """Every error (TEI's shape); some add fields (``documents``: the indices at fault; ``detail``)."""

    model_config = ConfigDict(extra="allow")
    error: str
    error_type: str


class Health(BaseModel):
    status: str
    model: Optional[str] = None
    reranker: Optional[str] = None
    embeddings: Optional[str] = None
    queue_depth: int = 0
