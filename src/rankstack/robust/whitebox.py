"""White-box parts for a torch bi-encoder (a rankstack ``BiEncoder`` or its model directory):
word importance from the gradient of the query-document similarity with respect to the document's
input embeddings (PRADA's importance, here from the victim itself when it is white-box, or from any
surrogate), and nearest neighbours in the model's own input-embedding matrix (cosine) as
substitution candidates.

Only whole-word vocabulary entries are neighbours: no ``##`` subword pieces, no special tokens, no
entries that are not alphabetic. Words past the model's length limit get importance 0 (they cannot
change its score); the count is kept in ``truncated_words``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rankstack.errors import ConfigError
from rankstack.optional import require

__all__ = ["GradientImportance", "EmbeddingNeighbours"]


def _path(model: Any) -> str:
    p = getattr(model, "model_path", model)
    if p is None or not os.path.isdir(str(p)):
        raise ConfigError(f"a white-box attack needs a torch model directory, got {model!r}")
    return str(p)


class _Model:
    _cache: dict[str, tuple[Any, Any]] = {}

    @classmethod
    def load(cls, path: str) -> tuple[Any, Any]:
        if path not in cls._cache:
            transformers = require("transformers", "dense")
            require("torch", "dense")
            tok = transformers.AutoTokenizer.from_pretrained(path)
            model = transformers.AutoModel.from_pretrained(path).eval()
            cls._cache[path] = (tok, model)
        return cls._cache[path]


class GradientImportance:
    """``imp = GradientImportance(encoder); imp(query, text, words) -> np.ndarray`` (one value per
    word of ``words``: the summed L2 norm of the similarity's gradient over the word's tokens).
    Mean pooling and cosine, as the sentence-transformers bi-encoders rankstack ships."""

    def __init__(self, model: Any, max_length: int | None = None):
        self.path = _path(model)
        self.tok, self.model = _Model.load(self.path)
        self.max_length = int(max_length or getattr(model, "max_length", None) or 256)
        self.truncated_words = 0

    def _embed(self, enc: Any, inputs_embeds: Any = None) -> Any:
        import torch

        kw = {"attention_mask": enc["attention_mask"]}
        if "token_type_ids" in enc:
            kw["token_type_ids"] = enc["token_type_ids"]
        if inputs_embeds is None:
            h = self.model(input_ids=enc["input_ids"], **kw).last_hidden_state
        else:
            h = self.model(inputs_embeds=inputs_embeds, **kw).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(e, p=2, dim=1)

    def __call__(self, query: Any, text: str, words: list[str]) -> np.ndarray:
        import torch

        qtext = getattr(query, "text", query)
        with torch.no_grad():
            q = self._embed(self.tok([qtext], truncation=True, max_length=self.max_length, return_tensors="pt"))
        enc = self.tok([words], is_split_into_words=True, truncation=True, max_length=self.max_length,
                       return_tensors="pt")
        emb = self.model.get_input_embeddings()(enc["input_ids"]).detach().requires_grad_(True)
        sim = (self._embed(enc, emb) * q).sum()
        (grad,) = torch.autograd.grad(sim, emb)
        norms = grad[0].norm(dim=-1).numpy()
        out = np.zeros(len(words), dtype=np.float64)
        seen = set()
        for t, w in enumerate(enc.word_ids(0)):
            if w is not None:
                out[w] += float(norms[t])
                seen.add(w)
        self.truncated_words = len(words) - len(seen)
        return out


class EmbeddingNeighbours:
    """``nn = EmbeddingNeighbours(encoder, k=10); nn(word) -> list[str]``: the ``k`` whole-word
    vocabulary entries nearest to ``word``'s input embedding (cosine), nearest first; empty when
    ``word`` is not one vocabulary entry."""

    def __init__(self, model: Any, k: int = 10):
        if k < 1:
            raise ConfigError(f"embedding neighbours need k >= 1, got {k}")
        import torch

        self.k = int(k)
        tok, model = _Model.load(_path(model))
        vocab = tok.get_vocab()
        special = set(tok.all_special_tokens)
        keep = sorted((i, t) for t, i in vocab.items() if t.isalpha() and t.isascii() and len(t) >= 3
                      and t not in special and not t.startswith("##"))
        self.ids = np.array([i for i, _ in keep])
        self.words = [t for _, t in keep]
        self.row = {t: r for r, t in enumerate(self.words)}
        with torch.no_grad():
            w = model.get_input_embeddings().weight[torch.from_numpy(self.ids)].float()
            self.matrix = torch.nn.functional.normalize(w, dim=1).numpy()
        self._cache: dict[str, list[str]] = {}

    def __call__(self, word: str) -> list[str]:
        w = word.lower()
        if w in self._cache:
            return self._cache[w]
        r = self.row.get(w)
        if r is None:
            return []
        sims = self.matrix @ self.matrix[r]
        sims[r] = -np.inf
        top = np.argsort(-sims, kind="stable")[: self.k]
        out = [self.words[i] for i in top]
        self._cache[w] = out
        return out
