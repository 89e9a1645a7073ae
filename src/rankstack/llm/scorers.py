"""LLM scorers: what one prompt asks about one query's passages.

Four kinds, each consumed by the strategies in :mod:`rankstack.llm.strategies`:

* ``point``: :meth:`score_docs` -> one score per passage (pointwise yes/no, query likelihood);
* ``pair``: :meth:`compare` -> p(a more relevant than b) per pair (PRP, both orders);
* ``set``: :meth:`select` -> a distribution over a small set: which passage is the most relevant
  (setwise by label likelihood or generation; Rank-R1-style reasoning);
* ``list``: :meth:`rank` -> a permutation of a window and optional per-passage evidence in [0, 1]
  (RankGPT generation through the parser; FIRST's first-token logits; iterative elimination).

All calls go through a :class:`QueryContext` that holds the per-query meter, the budget, the repair
log and the optional JSONL prompt/response log.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query
from rankstack.errors import ConfigError
from rankstack.llm import prompts as P
from rankstack.llm.backends.base import Backend, Meter
from rankstack.llm.parse import label_for, parse_permutation, strip_think


@dataclass
class Budget:
    """Per-query limits: ``max_calls`` LLM calls and/or ``max_tokens`` prompt+completion tokens."""

    max_calls: int | None = None
    max_tokens: int | None = None


@dataclass
class QueryContext:
    """Everything one query's reranking accumulates: cost meter, budget state, repairs, log."""

    query: Query
    budget: Budget = field(default_factory=Budget)
    meter: Meter = field(default_factory=Meter)
    repairs: dict[str, int] = field(default_factory=dict)
    budget_hit: bool = False
    truncated: int = 0
    logger: Callable[[dict[str, Any]], None] | None = None

    def allow(self, calls: int = 1) -> int:
        """How many of ``calls`` more LLM calls the budget allows (sets ``budget_hit`` if fewer)."""
        ok = calls
        if self.budget.max_calls is not None:
            ok = min(ok, self.budget.max_calls - self.meter.calls)
        if self.budget.max_tokens is not None and self.meter.tokens >= self.budget.max_tokens:
            ok = 0
        ok = max(0, ok)
        if ok < calls:
            self.budget_hit = True
        return ok

    def repair(self, names: Sequence[str]) -> None:
        for n in names:
            self.repairs[n] = self.repairs.get(n, 0) + 1

    def log(self, kind: str, prompt: str, response: Any) -> None:
        if self.logger is not None:
            self.logger({"qid": self.query.id, "kind": kind, "prompt": prompt, "response": response})


class JsonlLogger:
    """Appends prompt/response records to a JSONL file (thread-safe)."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def __call__(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, ensure_ascii=False, default=float)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class Scorer:
    """Base class; ``kind`` is ``point`` | ``pair`` | ``set`` | ``list``; ``natural_strategy`` is the
    strategy a reranker uses when none is given; ``help`` is its line in ``rankstack`` listings."""

    kind = "point"
    name = "scorer"
    natural_strategy = "single"
    help = ""

    def __init__(self, backend: Backend, max_words: int = 100):
        self.backend = backend
        self.max_words = int(max_words)

    def texts(self, ctx: QueryContext, docs: Sequence[Document]) -> list[str]:
        out = []
        for d in docs:
            t, cut = P.cut_words(d.contents, self.max_words)
            ctx.truncated += int(cut)
            out.append(t)
        return out

    def config(self) -> dict[str, Any]:
        return {"scorer": self.name, "max_words": self.max_words}


# ---- pointwise --------------------------------------------------------------------------------
class YesNoScorer(Scorer):
    """Pointwise relevance: ``log p("Yes") - log p("No")`` for the first answer token (case and
    leading-space variants summed). One call per passage, batched."""

    kind = "point"
    name = "pointwise"
    natural_strategy = "single"
    help = "LLM pointwise yes/no relevance (log p(Yes) - log p(No))"
    YES = ("Yes", " Yes", "yes", " yes", "YES")
    NO = ("No", " No", "no", " no", "NO")

    def score_docs(self, ctx: QueryContext, docs: Sequence[Document]) -> np.ndarray:
        prompts = [P.POINTWISE_YESNO.format(passage=t, query=ctx.query.text) for t in self.texts(ctx, docs)]
        lp = self.backend.next_token_logprobs(prompts, [self.YES, self.NO], meter=ctx.meter)
        for p, row in zip(prompts, lp):
            ctx.log("pointwise", p, {"yes": row[0], "no": row[1]})
        return lp[:, 0] - lp[:, 1]


class QueryLikelihoodScorer(Scorer):
    """Query likelihood (UPR): mean per-token ``log p(query | passage, instruction)``."""

    kind = "point"
    name = "qlm"
    natural_strategy = "single"
    help = "LLM query likelihood (UPR): log p(query | passage)"

    def score_docs(self, ctx: QueryContext, docs: Sequence[Document]) -> np.ndarray:
        prompts = [P.QLM_PREFIX.format(passage=t) for t in self.texts(ctx, docs)]
        cont = " " + ctx.query.text.strip()
        ll = self.backend.loglik(prompts, [cont] * len(prompts), meter=ctx.meter)
        n = max(1, self.backend.count_tokens(cont))
        for p, v in zip(prompts, ll):
            ctx.log("qlm", p, {"loglik": v})
        return ll / n


# ---- pairwise ---------------------------------------------------------------------------------
class PairwiseScorer(Scorer):
    """PRP: "Passage A or Passage B?" asked in both orders; p(a > b) = mean of p(A | a,b) and
    p(B | b,a), where p is the softmax of the "A"/"B" first-token log-probs (``method='logits'``) or 1/0.5/0
    from the generated answer (``method='generate'``)."""

    kind = "pair"
    name = "pairwise"
    natural_strategy = "heapsort"
    help = "LLM pairwise ranking prompting (PRP), both orders; heapsort/bubble/allpairs"

    def __init__(self, backend: Backend, max_words: int = 100, method: str = "logits"):
        super().__init__(backend, max_words)
        if method not in ("logits", "generate"):
            raise ConfigError(f"method must be 'logits' or 'generate', got {method!r}")
        self.method = method

    def _probs_first(self, ctx: QueryContext, prompts: list[str]) -> np.ndarray:
        """p(answer is the first passage, A) for each prompt."""
        if self.method == "logits":
            lp = self.backend.next_token_logprobs(prompts, [("A", " A"), ("B", " B")], meter=ctx.meter)
            out = 1.0 / (1.0 + np.exp(lp[:, 1] - lp[:, 0]))
            for p, v in zip(prompts, out):
                ctx.log("pairwise", p, {"pA": float(v)})
            return out
        gens = self.backend.generate(prompts, max_tokens=8, meter=ctx.meter)
        out = []
        for p, g in zip(prompts, gens):
            r = parse_permutation(g.text, 2, style="letter")
            if r.repairs:
                ctx.repair(r.repairs)
            out.append(0.5 if "empty" in r.repairs else (1.0 if r.order[0] == 0 else 0.0))
            ctx.log("pairwise", p, g.text)
        return np.asarray(out)

    def compare(self, ctx: QueryContext, pairs: Sequence[tuple[Document, Document]]) -> np.ndarray:
        if not pairs:
            return np.empty(0)
        texts = self.texts(ctx, [d for ab in pairs for d in ab])
        q = ctx.query.text
        fwd = [P.PAIRWISE.format(query=q, a=texts[2 * i], b=texts[2 * i + 1]) for i in range(len(pairs))]
        bwd = [P.PAIRWISE.format(query=q, a=texts[2 * i + 1], b=texts[2 * i]) for i in range(len(pairs))]
        p = self._probs_first(ctx, fwd + bwd)
        return 0.5 * (p[: len(pairs)] + (1.0 - p[len(pairs):]))

    def config(self):
        return {**super().config(), "method": self.method}


# ---- setwise ----------------------------------------------------------------------------------
class SetwiseScorer(Scorer):
    """Setwise: which of k passages (labels A, B, ...) is the most relevant. ``method='logits'``: the
    label likelihoods of the first answer token, softmaxed; ``'generate'``: a one-hot on the parsed label.

    ``debias`` (position debiasing; small models mostly answer "A", the first passage shown, which a
    heap sort turns into the incoming order with its tail reversed):

    * ``None``: one prompt per set;
    * ``"reverse"``: a second prompt with the set in reverse order; 2 calls per set;
    * ``"cyclic"``: k prompts, the set rotated by 0..k-1 positions, so that every passage is shown once
      under every label; k calls per set.

    Each prompt's label log-probabilities are renormalised over the k labels, mapped back to the
    passages and averaged per passage (``'generate'``: the one-hot votes are averaged); the result is
    softmaxed. Under a pure position preference (label log-prob = ``bias[position] + relevance[passage]``)
    ``"cyclic"`` removes the bias exactly (every passage gets ``mean(bias)``), ``"reverse"`` removes
    its antisymmetric part only (exact for a bias linear in the position; a first-label preference is
    split between the first and the last passage). This is the permutation debiasing of Zheng et al.
    ("Large Language Models Are Not Robust Multiple Choice Selectors", ICLR 2024) and of the
    setwise / PRP papers' both-orders prompting, applied per set.
    """

    kind = "set"
    name = "setwise"
    natural_strategy = "heapsort"
    help = "LLM setwise: most relevant of k passages"
    DEBIAS = (None, "reverse", "cyclic")

    def __init__(self, backend: Backend, max_words: int = 100, method: str = "logits", debias: str | None = None):
        super().__init__(backend, max_words)
        if method not in ("logits", "generate"):
            raise ConfigError(f"method must be 'logits' or 'generate', got {method!r}")
        if debias not in self.DEBIAS:
            raise ConfigError(f"debias must be None, 'reverse' or 'cyclic', got {debias!r}")
        self.method = method
        self.debias = debias

    def orders(self, k: int) -> list[list[int]]:
        """The presentation orders of a set of ``k`` passages (``order[j]`` = passage shown at label j)."""
        ident = list(range(k))
        if self.debias == "reverse" and k > 1:
            return [ident, ident[::-1]]
        if self.debias == "cyclic" and k > 1:
            return [[(j + s) % k for j in range(k)] for s in range(k)]
        return [ident]

    def calls_per_select(self, k: int) -> int:
        """LLM calls one :meth:`select` over ``k`` passages makes (for the budget)."""
        return len(self.orders(k))

    def prompt(self, ctx: QueryContext, docs: Sequence[Document]) -> tuple[str, list[str]]:
        labels = [label_for(i, "letter") for i in range(len(docs))]
        return P.SETWISE.format(query=ctx.query.text,
                                passages=P.passage_block(self.texts(ctx, docs), labels, "passage")), labels

    def select(self, ctx: QueryContext, docs: Sequence[Document]) -> np.ndarray:
        k = len(docs)
        orders = self.orders(k)
        prompts = []
        labels: list[str] = []
        for o in orders:
            pr, labels = self.prompt(ctx, [docs[i] for i in o])
            prompts.append(pr)
        acc = np.zeros(k)
        if self.method == "logits":
            lp = self.backend.next_token_logprobs(prompts, [(lab, " " + lab) for lab in labels], meter=ctx.meter)
            for pr, o, row in zip(prompts, orders, lp):
                ctx.log("setwise", pr, {lab: float(v) for lab, v in zip(labels, row)})
                m = row.max()
                row = row - (m + np.log(np.exp(row - m).sum()))  # log-softmax over the k labels
                acc[o] += row
            acc /= len(orders)
            e = np.exp(acc - acc.max())
            return e / e.sum()
        gens = self.backend.generate(prompts, max_tokens=8, meter=ctx.meter)
        for pr, o, g in zip(prompts, orders, gens):
            ctx.log("setwise", pr, g.text)
            acc[o] += _one_hot_from_text(ctx, g.text, k, "letter")
        return acc / len(orders)

    def config(self):
        return {**super().config(), "method": self.method, "debias": self.debias}


def _one_hot_from_text(ctx: QueryContext, text: str, k: int, style: str) -> np.ndarray:
    r = parse_permutation(text, k, style=style)
    names = [x for x in r.repairs if x != "missing"]  # naming one label is the expected answer
    if names:
        ctx.repair(names)
    if "empty" in r.repairs:
        return np.full(k, 1.0 / k)
    v = np.zeros(k)
    v[r.order[0]] = 1.0
    return v


class ReasoningScorer(Scorer):
    """Rank-R1-style reasoning setwise: the model thinks in ``<think>`` then answers ``<answer>[i]</answer>``.
    Thinking is capped at ``max_think_tokens`` generated tokens; the answer is parsed from what follows
    ``</think>`` (an unclosed ``<think>`` counts as a repair and yields a uniform choice)."""

    kind = "set"
    name = "reasoning"
    natural_strategy = "heapsort"
    help = "LLM reasoning setwise (Rank-R1 <think>/<answer> format)"

    def __init__(self, backend: Backend, max_words: int = 100, max_think_tokens: int = 128):
        super().__init__(backend, max_words)
        self.max_think_tokens = int(max_think_tokens)

    def select(self, ctx: QueryContext, docs: Sequence[Document]) -> np.ndarray:
        labels = [str(i + 1) for i in range(len(docs))]
        prompt = P.REASONING.format(query=ctx.query.text,
                                    passages=P.passage_block(self.texts(ctx, docs), labels, "bracket"))
        g = self.backend.generate([prompt], max_tokens=self.max_think_tokens + 16, stop=["</answer>"],
                                  meter=ctx.meter)[0]
        ctx.log("reasoning", prompt, g.text)
        body, _ = strip_think(g.text)
        if not body.strip():
            ctx.repair(["no-answer"])
        return _one_hot_from_text(ctx, g.text, len(docs), "number")

    def config(self):
        return {**super().config(), "max_think_tokens": self.max_think_tokens}


# ---- listwise ---------------------------------------------------------------------------------
class ListwiseScorer(Scorer):
    """RankGPT: generate ``[i] > [j] > ...`` for a window; parsed by :func:`parse_permutation` (repairs
    counted). ``constrained=True`` masks decoding to identifier/separator tokens."""

    kind = "list"
    name = "listwise"
    natural_strategy = "sliding"
    help = "LLM listwise (RankGPT) generated permutation; sliding window"

    def __init__(self, backend: Backend, max_words: int = 100, constrained: bool = False,
                 max_new_tokens: int | None = None):
        super().__init__(backend, max_words)
        self.constrained = bool(constrained)
        self.max_new_tokens = max_new_tokens

    def rank(self, ctx: QueryContext, docs: Sequence[Document]) -> tuple[list[int], np.ndarray | None]:
        n = len(docs)
        labels = [str(i + 1) for i in range(n)]
        ex = " > ".join(f"[{x}]" for x in labels[:2]) if n > 1 else "[1]"
        prompt = P.LISTWISE.format(num=n, query=ctx.query.text, example=ex,
                                   passages=P.passage_block(self.texts(ctx, docs), labels, "bracket"))
        allowed = ([*labels, "[", "]", " > ", ">", " ", "0123456789"] if self.constrained else None)
        max_new = self.max_new_tokens or 6 * n + 4
        g = self.backend.generate([prompt], max_tokens=max_new, allowed_tokens=allowed, meter=ctx.meter)[0]
        ctx.log("listwise", prompt, g.text)
        r = parse_permutation(g.text, n)
        ctx.repair(r.repairs)
        return r.order, None

    def config(self):
        return {**super().config(), "constrained": self.constrained}


def first_prompt(query: str, texts: Sequence[str], labels: str = "letter") -> tuple[str, list[str]]:
    """FIRST's user message for a window of (already cut) passage ``texts`` and the identifiers shown,
    in presentation order. Shared with training (:mod:`rankstack.train.llm_data`), so that a trained
    model sees the prompt it is scored with."""
    n = len(texts)
    ids = [label_for(i, labels) for i in range(n)]
    example = f"[{ids[0]}] > [{ids[1] if n > 1 else ids[0]}]"
    prompt = P.FIRST.format(num=n, query=query, example=example, passages=P.passage_block(texts, ids, "bracket"))
    return prompt, ids


class FirstScorer(Scorer):
    """FIRST: one forward pass; the logits of the first generated identifier over the window's letter
    identifiers rank the whole window. Evidence = the softmax over those identifiers.

    ``labels``: ``"letter"`` (A, B, ..., as in the FIRST papers) or ``"letter-nonword"`` (B, C, ...
    without A and I, for models whose first answer token is the word "I" or "A"). ``prime``: text that
    starts the model's answer (e.g. ``"["``), so that the next token is read as an identifier rather than
    the first word of a sentence; the default ``""`` reads the first answer token (labels with and
    without a leading space or ``[``)."""

    kind = "list"
    name = "first"
    natural_strategy = "sliding"
    help = "FIRST: listwise ranking from the first identifier token's logits"

    def __init__(self, backend: Backend, max_words: int = 100, labels: str = "letter", prime: str = ""):
        super().__init__(backend, max_words)
        label_for(0, labels)  # an unknown style fails here, not at the first query
        self.labels = labels
        self.prime = prime

    def config(self) -> dict[str, Any]:
        return {**super().config(), "labels": self.labels, "prime": self.prime}

    def rank(self, ctx: QueryContext, docs: Sequence[Document]) -> tuple[list[int], np.ndarray | None]:
        n = len(docs)
        prompt, labels = first_prompt(ctx.query.text, self.texts(ctx, docs), self.labels)
        if self.prime:
            # the answer is started for the model ("[" of "[B] > [C]"): the next token is an identifier,
            # not the first word of a sentence that happens to be a label
            prompt = self.backend.format_chat(prompt) + self.prime
            lp = self.backend.next_token_logprobs([prompt], labels, raw=True, meter=ctx.meter)[0]
        else:
            lp = self.backend.next_token_logprobs([prompt], [(lab, " " + lab, "[" + lab) for lab in labels],
                                                  meter=ctx.meter)[0]
        ctx.log("first", prompt, {lab: float(v) for lab, v in zip(labels, lp)})
        order = sorted(range(n), key=lambda i: (-lp[i], i))
        e = np.exp(lp - lp.max())
        return order, e / e.sum()


class EliminationScorer(Scorer):
    """Iterative elimination (IRanker): ask for the least relevant of the remaining passages (label
    logits), remove it, repeat; k-1 calls rank a window of k. Evidence: the order of elimination."""

    kind = "list"
    name = "eliminate"
    natural_strategy = "single"
    help = "LLM iterative elimination (IRanker): drop the least relevant step by step"

    def rank(self, ctx: QueryContext, docs: Sequence[Document]) -> tuple[list[int], np.ndarray | None]:
        n = len(docs)
        texts = self.texts(ctx, docs)
        remaining = list(range(n))
        removed: list[int] = []
        while len(remaining) > 1:
            if not ctx.allow(1):
                break
            labels = [label_for(i, "letter") for i in range(len(remaining))]
            prompt = P.ELIMINATE.format(query=ctx.query.text,
                                        passages=P.passage_block([texts[i] for i in remaining], labels, "passage"))
            lp = self.backend.next_token_logprobs([prompt], [(lab, " " + lab) for lab in labels], meter=ctx.meter)[0]
            ctx.log("eliminate", prompt, {lab: float(v) for lab, v in zip(labels, lp)})
            worst = int(np.argmax(lp))
            removed.append(remaining.pop(worst))
        order = remaining + removed[::-1]  # survivors (in input order if the budget stopped us) first
        return order, None


#: the one table of LLM scorers: each row becomes a registry entry (``rankstack.stages.llm.registry_entries``)
#: with the scorer's natural strategy; a new scorer is a class here plus one row
SCORERS: dict[str, type[Scorer]] = {
    "pointwise": YesNoScorer,
    "qlm": QueryLikelihoodScorer,
    "pairwise": PairwiseScorer,
    "setwise": SetwiseScorer,
    "listwise": ListwiseScorer,
    "first": FirstScorer,
    "eliminate": EliminationScorer,
    "reasoning": ReasoningScorer,
}
