"""White-box parts for a torch bi-encoder or cross-encoder (a rankstack ``BiEncoder`` /
``CrossEncoderModel``, or a model directory): word importance from the gradient of the victim's
score with respect to the document's input token embeddings (PRADA's importance, here from the
victim itself when it is white-box, or from any surrogate), and nearest neighbours in the model's
own input-embedding matrix (cosine) as substitution candidates.

* bi-encoder: the score is the cosine of the mean-pooled query and document embeddings;
* cross-encoder: the score is the relevance logit (label ``-1``, as the reranker scores) of the
  pair ``[CLS] query [SEP] document [SEP]``. Only the document's token embeddings are leaves of the
  gradient; the query's tokens are constants (never modified, never differentiated). Over-long pairs
  lose document tokens only (``truncation="only_second"``), never query tokens.

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

__all__ = ["GradientImportance", "EmbeddingNeighbours", "kind_of"]


def _path(model: Any) -> str:
    p = getattr(model, "model_path", model)
    if isinstance(p, str) and not os.path.isdir(p):
        from rankstack import catalog

        if catalog.is_shipped_name(p):  # rankstack/ce-minilm-scifact, rankstack/bi-minilm-scifact
            p = str(catalog.path_of(p))
    if p is None or not os.path.isdir(str(p)):
        raise ConfigError(f"a white-box attack needs a torch model directory, got {model!r}")
    if getattr(model, "backend", "torch") != "torch":
        raise ConfigError(f"a white-box attack needs a torch model, got backend={model.backend!r} ({p}); "
                          "load it with backend='torch', or attack it black-box (white_box=False)")
    return str(p)


def kind_of(model: Any) -> str:
    """``"cross-encoder"`` when ``model`` (an encoder object or a directory) is a sequence classifier
    (a trained scoring head, as ``CrossEncoderModel`` requires), else ``"bi-encoder"``."""
    k = getattr(model, "kind", None)
    if k in {"cross-encoder", "bi-encoder"}:
        return str(k)
    cfg = os.path.join(_path(model), "config.json")
    archs: list[str] = []
    if os.path.isfile(cfg):
        import json

        with open(cfg) as f:
            archs = json.load(f).get("architectures") or []
    return "cross-encoder" if any(a.endswith("ForSequenceClassification") for a in archs) else "bi-encoder"


class _Model:
    _cache: dict[tuple[str, str], tuple[Any, Any]] = {}

    @classmethod
    def load(cls, path: str, kind: str = "bi-encoder") -> tuple[Any, Any]:
        if (path, kind) not in cls._cache:
            transformers = require("transformers", "dense")
            require("torch", "dense")
            tok = transformers.AutoTokenizer.from_pretrained(path)
            if kind == "cross-encoder":
                from rankstack.encoders.runtime import _register_own_models

                _register_own_models()
                model = transformers.AutoModelForSequenceClassification.from_pretrained(path).eval()
            else:
                model = transformers.AutoModel.from_pretrained(path).eval()
            cls._cache[(path, kind)] = (tok, model)
        return cls._cache[(path, kind)]


class GradientImportance:
    """``imp = GradientImportance(encoder); imp(query, text, words) -> np.ndarray`` (one value per
    word of ``words``: the summed L2 norm of the score's gradient over the word's tokens).
    A bi-encoder: mean pooling and cosine, as the sentence-transformers bi-encoders rankstack ships.
    A cross-encoder (``CrossEncoderModel``, ``rankstack/ce-minilm-scifact`` or a sequence-classifier
    directory; ``kind`` overrides the detection): the logit of ``label`` for the (query, document)
    pair, differentiated with respect to the document's token embeddings only."""

    def __init__(self, model: Any, max_length: int | None = None, kind: str | None = None, label: int = -1):
        self.path = _path(model)
        self.kind = kind or kind_of(model)
        if self.kind not in {"bi-encoder", "cross-encoder"}:
            raise ConfigError(f"white-box kind must be 'bi-encoder' or 'cross-encoder', got {self.kind!r}")
        self.tok, self.model = _Model.load(self.path, self.kind)
        self.max_length = int(max_length or getattr(model, "max_length", None) or 256)
        self.label = int(label)
        self.truncated_words = 0
        self.last_score: float | None = None  # cross-encoder: the logit the last gradient was taken of

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

    def _cross(self, qtext: str, words: list[str]) -> tuple[Any, list[int | None]]:
        import torch

        qwords = qtext.split()
        nq = len(self.tok(qwords, is_split_into_words=True, add_special_tokens=False)["input_ids"])
        if nq + 4 > self.max_length:  # [CLS] q [SEP] d [SEP] with at least one document token
            raise ConfigError(f"the query's {nq} tokens leave no room for the document within "
                              f"max_length={self.max_length}")
        enc = self.tok([qwords], [words], is_split_into_words=True, truncation="only_second",
                       max_length=self.max_length, return_tensors="pt")
        seq = enc.sequence_ids(0)
        doc = torch.tensor([s == 1 for s in seq])
        if not bool(doc.any()):
            raise ConfigError(f"the query leaves no room for the document within max_length={self.max_length}")
        const = self.model.get_input_embeddings()(enc["input_ids"]).detach()
        leaf = const[0, doc].clone().requires_grad_(True)  # the document's tokens: the only leaves
        emb = const.clone()
        emb[0, doc] = leaf
        kw = {"attention_mask": enc["attention_mask"]}
        if "token_type_ids" in enc:
            kw["token_type_ids"] = enc["token_type_ids"]
        logits = self.model(inputs_embeds=emb, **kw).logits
        score = logits[0, self.label] if logits.shape[-1] > 1 else logits[0, 0]
        self.last_score = float(score.detach())
        (grad,) = torch.autograd.grad(score, leaf)
        norms = np.zeros(len(seq), dtype=np.float64)
        norms[doc.numpy()] = grad.norm(dim=-1).numpy()
        wid = [w if s == 1 else None for w, s in zip(enc.word_ids(0), seq)]
        return norms, wid

    def __call__(self, query: Any, text: str, words: list[str]) -> np.ndarray:
        import torch

        qtext = getattr(query, "text", query)
        if self.kind == "cross-encoder":
            norms, wid = self._cross(qtext, words)
            out = np.zeros(len(words), dtype=np.float64)
            seen = set()
            for t, w in enumerate(wid):
                if w is not None:
                    out[w] += float(norms[t])
                    seen.add(w)
            self.truncated_words = len(words) - len(seen)
            return out
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
        tok, model = _Model.load(_path(model), kind_of(model))
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
