"""Cross-encoder re-ranking (monoBERT-style), with passage splitting and query-aware summaries.

:class:`CrossEncoderReranker` scores every (query, candidate) pair with a
:class:`rankstack.encoders.runtime.CrossEncoderModel` (torch or ONNX Runtime, token-budget batches
across all queries) and returns the model's own scores; ``run.stats`` gains ``pairs``,
``pairs_per_s``, ``tokens`` (padded tokens run through the model), ``real_tokens`` and ``truncated``.

Long documents (``passages=...``):

* ``"window"`` -- split each document into windows of ``window`` words (or tokens, ``unit="tokens"``)
  every ``stride``; each passage is scored with the title prepended, and the document score is
  ``aggregate``: ``"maxp"`` (the best passage), ``"firstp"`` (only the first passage is scored) or
  ``"sump"`` (the sum) -- Dai & Callan, "Deeper Text Understanding for IR with Contextual Neural
  Language Modeling", SIGIR 2019.
* ``"query-aware"`` -- a query-aware summary in the spirit of Pyramid-ERNIE (Liu et al., KDD 2021):
  a document longer than the budget is cut into sentences, each scored by BM25 against the query
  (idf from the sentences of that query's candidates), and the best sentences are kept, in their
  original order, while they fit in the model's length budget. Shorter documents are kept whole.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query
from rankstack.errors import ConfigError, StageError
from rankstack.stages.base import Candidates, Reranker

AGGREGATES = ("maxp", "firstp", "sump")
_SENT = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "were", "what", "when", "where", "which", "who", "why", "how", "with", "do", "does", "did", "can", "not", "no"]
)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after ``.!?`` before an upper-case letter or digit, and at newlines."""
    return [s.strip() for s in _SENT.split(text) if s and s.strip()]


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def word_windows(text: str, window: int, stride: int) -> list[str]:
    """Overlapping windows of ``window`` words every ``stride`` words (the last one may be shorter)."""
    words = text.split()
    if len(words) <= window:
        return [text]
    out = []
    for start in range(0, len(words), stride):
        out.append(" ".join(words[start : start + window]))
        if start + window >= len(words):
            break
    return out


def token_windows(text: str, tokenizer: Any, window: int, stride: int) -> list[str]:
    """Windows of ``window`` tokens every ``stride`` tokens, cut from the original text by offsets."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offs = enc["offset_mapping"]
    if len(offs) <= window:
        return [text]
    out = []
    for start in range(0, len(offs), stride):
        span = offs[start : start + window]
        out.append(text[span[0][0] : span[-1][1]])
        if start + window >= len(offs):
            break
    return out


def query_aware_summary(
    query: str,
    sentences: list[str],
    lengths: list[int],
    budget: int,
    idf: dict[str, float],
    k1: float = 1.2,
    b: float = 0.75,
) -> str:
    """The best sentences by BM25 against ``query`` that fit in ``budget`` tokens, in original order.

    ``lengths`` are the sentences' token counts. The best sentence is always kept (truncated later
    by the model if it alone exceeds the budget).
    """
    q = set(_terms(query))
    toks = [_terms(s) for s in sentences]
    avg = max(sum(len(t) for t in toks) / max(len(toks), 1), 1.0)
    scores = []
    for i, t in enumerate(toks):
        tf = Counter(t)
        s = sum(
            idf.get(w, 0.0) * tf[w] * (k1 + 1) / (tf[w] + k1 * (1 - b + b * len(t) / avg))
            for w in q
            if w in tf
        )
        scores.append((-s, i))
    keep: list[int] = []
    used = 0
    for _, i in sorted(scores):
        if not keep or used + lengths[i] <= budget:
            keep.append(i)
            used += lengths[i]
    return " ".join(sentences[i] for i in sorted(keep))


class CrossEncoderReranker(Reranker):
    """Re-ranks candidates with a cross-encoder; see the module docstring.

    ``model``: a cross-encoder directory or hub id (``AutoModelForSequenceClassification`` /
    sentence-transformers ``CrossEncoder``), or ``encoder=CrossEncoderModel(...)``. Other keyword
    arguments go to :class:`~rankstack.encoders.runtime.CrossEncoderModel` (``backend="onnx"``,
    ``quantize="int8"``, ``max_length``, ``max_tokens``, ``activation``). Multi-label models are
    scored by ``label`` (default: the last label, the "relevant" class of two-label models).
    """

    name = "cross-encoder"

    def __init__(
        self,
        docs: Any = None,
        *,
        model: Any = None,
        encoder: Any = None,
        passages: str | None = None,
        window: int = 150,
        stride: int = 75,
        unit: str = "words",
        aggregate: str = "maxp",
        label: int = -1,
        progress: bool = False,
        **runtime_kwargs: Any,
    ):
        super().__init__(docs)
        self.progress = bool(progress)
        self.model = model
        if encoder is None:
            if model is None:
                raise ConfigError(
                    "the cross-encoder reranker needs model= (a trained cross-encoder's directory or hub id: "
                    "--model on the command line, model = ... in an experiment stage)"
                )
            from rankstack.encoders.runtime import CrossEncoderModel

            encoder = CrossEncoderModel(model, **runtime_kwargs)
        self.encoder = encoder
        if passages not in {None, "window", "query-aware"}:
            raise ConfigError(f"passages must be None, 'window' or 'query-aware', got {passages!r}")
        if aggregate not in AGGREGATES:
            raise ConfigError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
        if unit not in {"words", "tokens"}:
            raise ConfigError(f"unit must be 'words' or 'tokens', got {unit!r}")
        if window < 1 or stride < 1:
            raise ConfigError("window and stride must be >= 1")
        self.passages, self.window, self.stride, self.unit, self.aggregate = (
            passages,
            window,
            stride,
            unit,
            aggregate,
        )
        self.label = label

    # -- pair construction ---------------------------------------------------------------
    def _doc_texts(self, query: Query, docs: list[Document]) -> list[list[str]]:
        """For each document, the texts to score (one, or several passages)."""
        if self.passages is None:
            return [[d.contents] for d in docs]
        if self.passages == "window":
            out = []
            for d in docs:
                if self.unit == "words":
                    parts = word_windows(d.text, self.window, self.stride)
                else:
                    parts = token_windows(d.text, self.encoder.tokenizer, self.window, self.stride)
                if self.aggregate == "firstp":
                    parts = parts[:1]
                out.append([f"{d.title} {p}" if d.title else p for p in parts])
            return out
        return [[s] for s in self._summaries(query, docs)]

    def _summaries(self, query: Query, docs: list[Document]) -> list[str]:
        tok = self.encoder.tokenizer
        q_len = len(tok(query.text, add_special_tokens=False)["input_ids"])
        budget = max(self.encoder.max_length - q_len - 3, 16)
        contents = [d.contents for d in docs]
        lens = [len(x) for x in tok(contents, add_special_tokens=False)["input_ids"]]
        long = [i for i, n in enumerate(lens) if n > budget]
        if not long:
            return contents
        sents = {i: split_sentences(contents[i]) for i in long}
        df: Counter[str] = Counter()
        n_sent = 0
        for ss in sents.values():
            for s in ss:
                df.update(set(_terms(s)))
                n_sent += 1
        idf = {w: math.log(1 + (n_sent - c + 0.5) / (c + 0.5)) for w, c in df.items()}
        out = list(contents)
        for i, ss in sents.items():
            sl = [len(x) for x in tok(ss, add_special_tokens=False)["input_ids"]] if ss else []
            out[i] = query_aware_summary(query.text, ss, sl, budget, idf) if ss else contents[i]
        return out

    def _scores(self, logits: np.ndarray) -> np.ndarray:
        """Logits -> scores (activation of the model), one column."""
        enc = self.encoder
        z = logits.astype(np.float64)
        z = z[:, self.label] if z.ndim == 2 and z.shape[1] > 1 else z.reshape(len(z))
        if enc.activation == "sigmoid":
            z = 1.0 / (1.0 + np.exp(-z))
        elif enc.activation == "tanh":
            z = np.tanh(z)
        return z

    def _aggregate(self, s: np.ndarray) -> float:
        if self.aggregate == "sump":
            return float(s.sum())
        if self.aggregate == "firstp":
            return float(s[0])
        return float(s.max())

    def score_batch(self, batch: Candidates) -> list[np.ndarray]:
        """Every query's (query, passage) pairs scored together, in token-budget batches."""
        import warnings

        assert batch.docs is not None
        pairs: list[tuple[str, str]] = []
        counts: list[list[int]] = []  # passages per document, per query
        for q, docs in zip(batch.queries, batch.docs):
            texts = self._doc_texts(q, docs) if docs else []
            counts.append([len(t) for t in texts])
            pairs.extend((q.text, t) for ts in texts for t in ts)
        t0 = time.perf_counter()
        tok0, real0 = self.encoder.tokens, self.encoder.real_tokens
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            logits = (self.encoder.logits(pairs, warn=True, progress=self.progress) if pairs
                      else np.zeros((0, 1), np.float32))
        truncated = 0
        for w in caught:
            msg = str(w.message)
            if "truncated to" in msg:
                truncated += int(msg.split(" ", 1)[0])
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        wall = time.perf_counter() - t0
        s = self._scores(logits)
        out: list[np.ndarray] = []
        j = 0
        for per_doc in counts:
            vals = []
            for c in per_doc:
                vals.append(self._aggregate(s[j : j + c]))
                j += c
            out.append(np.asarray(vals, dtype=np.float64))
        if j != len(s):  # pragma: no cover - internal consistency
            raise StageError(f"{self.name}: {len(s)} scores for {j} pairs")
        batch.stats.update({
            "pairs": len(pairs),
            "pairs_per_s": len(pairs) / max(wall, 1e-9),
            "model_s": wall,
            "tokens": self.encoder.tokens - tok0,
            "real_tokens": self.encoder.real_tokens - real0,
            "truncated": truncated,
        })
        return out
