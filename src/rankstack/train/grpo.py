"""GRPO for the setwise reasoning reranker (Rank-R1: Zhuang et al., "Rank-R1: Enhancing Reasoning in
LLM-based Document Rerankers via Reinforcement Learning", 2025; code in ielab/llm-rankers, ``Rank-R1/``),
with TRL's ``GRPOTrainer``.

**Prompt.** The training prompt is the one :class:`rankstack.llm.scorers.ReasoningScorer` sends
(:data:`rankstack.llm.prompts.REASONING`, passages as ``[1] text`` lines, one user message through the
tokenizer's chat template), so a trained adapter is scored by ``--reranker reasoning`` unchanged.
Two differences from Rank-R1's ``prompts/prompt_setwise-R1.toml``, both inherited from the scorer: no
system message (Rank-R1 adds one that describes the ``<think>``/``<answer>`` format; SmolLM2's template
then puts its default system line in its place), and a blank line before and after the passages
(Rank-R1: one newline).

**Sets** (:func:`build_sets`): a query and ``k`` passages from its candidate list, shown as ``[1]..[k]``.
With a qrels teacher (Rank-R1's shape: one relevant passage and ``k - 1`` others, shuffled) a set holds
one relevant candidate and ``k - 1`` unjudged/non-relevant candidates; with a run teacher (scores) the
``k`` passages are sampled from the candidates and the correct answers are the teacher's top passage(s)
of the set. Seeded per ``(seed, query id, set index)``.

**Rewards** (TRL ``reward_funcs`` signature: ``f(completions, **columns) -> list[float]``):

* :func:`rank_r1_reward`, Rank-R1's published reward (``train_grpo.py``: 1 if the completion matches
  ``<think>.*?</think>\\s*<answer>(.*?)</answer>`` and the answer is the relevant label, else 0; format
  alone earns nothing). Here the format test is :func:`format_reward`'s, stricter than their
  ``re.search``: nothing before ``<think>`` or after ``</answer>``, one think block, one answer;
* :func:`format_reward`: 1 for exactly one ``<think>...</think>`` then one ``<answer>[i]</answer>`` with
  ``1 <= i <= k``, 0 otherwise;
* :func:`answer_reward`: 1 if the label the reasoning scorer reads from the completion (its lenient
  parse, no format needed) is relevant;
* :func:`tag_reward`: a graded format reward (0.25 per part of the format present), a shaping term
  for a model that never writes the format (not in Rank-R1).

:class:`GRPOReward` is the weighted sum given to TRL (default: ``rank_r1`` alone, Rank-R1's reward); it
computes every component on every call and records, per generation step, the mean and standard
deviation of the reward, each component's mean, and the **share of groups** (the ``num_generations``
completions of one set) **whose rewards are all equal** (:func:`zero_variance_share`): such a group has
zero advantage everywhere and teaches nothing.

:func:`train_grpo` trains LoRA adapters (peft; :func:`rankstack.train.llm.prepare_model`) and writes
them with :func:`rankstack.train.llm.save_trained` (an adapter directory
:class:`~rankstack.llm.backends.hf.TransformersBackend` loads), its ``rankstack_llm.json`` saying
``score_with: reasoning``. :func:`evaluate_sets` scores sets with the reasoning scorer itself.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rankstack.data.records import Document, Query, ranked_items
from rankstack.errors import ConfigError
from rankstack.llm import prompts as P
from rankstack.llm.parse import parse_permutation

__all__ = [
    "REWARDS",
    "GRPOReward",
    "GRPOTrainConfig",
    "SetwiseSet",
    "answer_reward",
    "build_sets",
    "check_labels",
    "check_set",
    "evaluate_sets",
    "format_reward",
    "parse_lenient",
    "parse_strict",
    "rank_r1_reward",
    "reasoning_prompt",
    "sets_dataset",
    "tag_reward",
    "train_grpo",
    "zero_variance_share",
]


# ---- prompts and sets ----------------------------------------------------------------------------------
def reasoning_prompt(query: str, texts: Sequence[str]) -> str:
    """The user message :class:`~rankstack.llm.scorers.ReasoningScorer` sends for these (already cut)
    passage texts, labelled ``[1]..[k]``."""
    labels = [str(i + 1) for i in range(len(texts))]
    return P.REASONING.format(query=query, passages=P.passage_block(list(texts), labels, "bracket"))


@dataclass(frozen=True)
class SetwiseSet:
    """One training/evaluation set: ``doc_ids`` in presentation order (label ``[i]`` is ``doc_ids[i-1]``),
    ``relevant``: the 1-based labels that are a correct answer, ``prompt``: the user message."""

    set_id: str
    qid: str
    query: str
    doc_ids: tuple[str, ...]
    relevant: tuple[int, ...]
    prompt: str
    truncated: int = 0

    @property
    def k(self) -> int:
        return len(self.doc_ids)


def check_set(s: SetwiseSet) -> None:
    """A :class:`ConfigError` naming the set if it cannot be trained on."""
    if s.k < 2:
        raise ConfigError(f"set {s.set_id!r}: k={s.k} passages; a setwise choice needs k >= 2")
    if not s.relevant:
        raise ConfigError(f"set {s.set_id!r} (query {s.qid!r}): no relevant passage among {list(s.doc_ids)}; "
                          "the correctness reward would be 0 for every answer")
    bad = [r for r in s.relevant if not 1 <= int(r) <= s.k]
    if bad:
        raise ConfigError(f"set {s.set_id!r}: relevant labels {bad} outside 1..{s.k}")


def build_sets(
    queries: Sequence[Query] | Mapping[str, str],
    docs: Mapping[str, Document],
    candidates: Mapping[str, Mapping[str, float]],
    teacher: Mapping[str, Mapping[str, float]],
    *,
    k: int = 4,
    sets_per_query: int = 1,
    depth: int | None = 20,
    teacher_kind: str = "qrels",
    min_grade: float = 1,
    seed: int = 0,
    max_words: int = 100,
    qids: Sequence[str] | None = None,
) -> list[SetwiseSet]:
    """Setwise sets for the queries of ``candidates`` (or ``qids``), ``sets_per_query`` each.

    ``teacher_kind='qrels'``: one candidate with grade >= ``min_grade`` and ``k - 1`` candidates below it,
    shuffled (Rank-R1's one relevant + negatives); a query without a relevant candidate, or with fewer
    than ``k - 1`` others, gives no set. ``'run'``: ``k`` candidates sampled; correct = the passages with
    the set's highest teacher score (a set the teacher cannot tell apart, or does not score, is dropped).
    ``depth`` cuts the candidate lists; passages are cut to ``max_words`` words as the scorer cuts them.
    Deterministic: ``random.Random(f"{seed}:{qid}:{j}")`` for set ``j`` of a query.
    """
    if k < 2:
        raise ConfigError(f"k must be >= 2 (a setwise choice), got {k}")
    if sets_per_query < 1:
        raise ConfigError(f"sets_per_query must be >= 1, got {sets_per_query}")
    if teacher_kind not in ("qrels", "run"):
        raise ConfigError(f"teacher_kind must be 'qrels' or 'run', got {teacher_kind!r}")
    texts = {q.id: q.text for q in queries} if not isinstance(queries, Mapping) else dict(queries)
    chosen = list(qids) if qids is not None else sorted(candidates)
    out: list[SetwiseSet] = []
    for qid in chosen:
        if qid not in candidates:
            raise ConfigError(f"query {qid!r} has no candidates")
        if qid not in texts:
            raise ConfigError(f"query {qid!r} of the candidates has no text in the queries")
        tq = teacher.get(qid) or {}
        ids = [d for d, _ in ranked_items(candidates[qid])][: depth if depth else None]
        for d in ids:
            if d not in docs:
                raise ConfigError(f"query {qid!r}: candidate document {d!r} is not in the collection")
        if teacher_kind == "qrels":
            pos = [d for d in ids if float(tq.get(d, 0)) >= min_grade]
            neg = [d for d in ids if float(tq.get(d, 0)) < min_grade]
            if not pos or len(neg) < k - 1:
                continue
        elif len(ids) < k or not tq:
            continue
        for j in range(sets_per_query):
            rng = random.Random(f"{seed}:{qid}:{j}")
            if teacher_kind == "qrels":
                shown = [rng.choice(pos), *rng.sample(neg, k - 1)]
                rng.shuffle(shown)
                rel = tuple(i + 1 for i, d in enumerate(shown) if float(tq.get(d, 0)) >= min_grade)
            else:
                shown = rng.sample(ids, k)
                vals = [float(tq.get(d, -math.inf)) for d in shown]
                top = max(vals)
                if top == -math.inf or len(set(vals)) < 2:
                    continue
                rel = tuple(i + 1 for i, v in enumerate(vals) if v == top)
            cut = [P.cut_words(docs[d].contents, max_words) for d in shown]
            out.append(SetwiseSet(f"{qid}:{j}", qid, texts[qid], tuple(shown), rel,
                                  reasoning_prompt(texts[qid], [t for t, _ in cut]), sum(int(c) for _, c in cut)))
    return out


def sets_dataset(sets: Sequence[SetwiseSet]) -> Any:
    """A ``datasets.Dataset`` for TRL: ``prompt`` (chat messages: the one user turn), ``set_id``, ``qid``,
    ``doc_ids``, ``relevant`` (1-based labels) and ``k``; every set checked (:func:`check_set`)."""
    from rankstack.optional import require

    datasets = require("datasets", "train")
    if not sets:
        raise ConfigError("no setwise sets (no query had a relevant candidate and enough others)")
    for s in sets:
        check_set(s)
    return datasets.Dataset.from_dict({
        "prompt": [[{"role": "user", "content": s.prompt}] for s in sets],
        "set_id": [s.set_id for s in sets], "qid": [s.qid for s in sets],
        "doc_ids": [list(s.doc_ids) for s in sets], "relevant": [list(s.relevant) for s in sets],
        "k": [s.k for s in sets]})


def check_labels(tokenizer: Any, k: int) -> list[int]:
    """The token ids of the answer labels ``1..k``; each must be one token for ``tokenizer`` (SmolLM2
    splits digits, so k <= 9), else a :class:`ConfigError`."""
    ids = []
    for i in range(1, k + 1):
        t = tokenizer(str(i), add_special_tokens=False).input_ids
        if len(t) != 1:
            raise ConfigError(f"answer label {str(i)!r} is {len(t)} tokens {t} for this tokenizer; the setwise "
                              f"answer needs one token per label: use k <= {i - 1}")
        ids.append(t[0])
    return ids


# ---- rewards -------------------------------------------------------------------------------------------
_STRICT = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>\s*\[\s*(?P<id>\d{1,6})\s*\]\s*</answer>\s*",
                     re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?(?:think|answer)>", re.IGNORECASE)


def _text(completion: Any) -> str:
    """A TRL completion as text: a string, or chat messages (the assistant turn's ``content``)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content", ""))
    if isinstance(completion, Sequence):
        return "".join(_text(m) for m in completion)
    return "" if completion is None else str(completion)


def _per_row(value: Any, n: int, name: str) -> list[Any]:
    if value is None:
        raise ConfigError(f"reward function needs the dataset column {name!r}")
    if isinstance(value, (int, np.integer)) and name == "k":
        return [int(value)] * n
    value = list(value)
    if len(value) != n:
        raise ConfigError(f"column {name!r} has {len(value)} rows for {n} completions")
    return value


def parse_strict(text: str, k: int) -> int | None:
    """The 1-based label of a completion in the exact format ``<think>...</think> <answer>[i]</answer>``
    (whitespace around the parts allowed, nothing else; no tag inside the think block), ``1 <= i <= k``;
    ``None`` otherwise."""
    m = _STRICT.fullmatch(text or "")
    if not m or _TAG.search(m.group("think")):
        return None
    i = int(m.group("id"))
    return i if 1 <= i <= k else None


def parse_lenient(text: str, k: int) -> int | None:
    """The 1-based label :class:`~rankstack.llm.scorers.ReasoningScorer` reads (its
    ``parse_permutation`` first id, after ``<think>`` stripping); ``None`` when it finds none (the scorer
    then returns a uniform choice)."""
    r = parse_permutation(text, k, style="number")
    return None if "empty" in r.repairs else r.order[0] + 1


def format_reward(completions: Sequence[Any], k: Any = None, **kw: Any) -> list[float]:
    """1.0 for exactly one ``<think>...</think>`` then one ``<answer>[i]</answer>``, ``i`` in ``1..k``."""
    ks = _per_row(k, len(completions), "k")
    return [float(parse_strict(_text(c), kk) is not None) for c, kk in zip(completions, ks)]


def rank_r1_reward(completions: Sequence[Any], relevant: Any = None, k: Any = None, **kw: Any) -> list[float]:
    """Rank-R1's reward: 1.0 if the format is right (:func:`format_reward`) and the answer is relevant,
    else 0.0 (a well-formed wrong answer earns nothing, as in their ``train_grpo.py``)."""
    n = len(completions)
    rel, ks = _per_row(relevant, n, "relevant"), _per_row(k, n, "k")
    out = []
    for c, r, kk in zip(completions, rel, ks):
        i = parse_strict(_text(c), kk)
        out.append(float(i is not None and i in set(r)))
    return out


def answer_reward(completions: Sequence[Any], relevant: Any = None, k: Any = None, **kw: Any) -> list[float]:
    """1.0 if the label the reasoning scorer reads (:func:`parse_lenient`, any format) is relevant."""
    n = len(completions)
    rel, ks = _per_row(relevant, n, "relevant"), _per_row(k, n, "k")
    return [float((i := parse_lenient(_text(c), kk)) is not None and i in set(r))
            for c, r, kk in zip(completions, rel, ks)]


def tag_reward(completions: Sequence[Any], k: Any = None, **kw: Any) -> list[float]:
    """A graded format reward, 0.25 for each of: the text starts with ``<think>``; exactly one
    ``<think>`` and one ``</think>``, in that order; exactly one ``<answer>...</answer>`` after
    ``</think>``; the answer is ``[i]`` with ``i`` in ``1..k`` and nothing follows ``</answer>``."""
    ks = _per_row(k, len(completions), "k")
    out = []
    for c, kk in zip(completions, ks):
        t = _text(c)
        low = t.lower()
        s = 0.25 * low.lstrip().startswith("<think>")
        one_think = low.count("<think>") == 1 and low.count("</think>") == 1 and low.index("<think>") < low.index(
            "</think>")
        s += 0.25 * one_think
        tail = low[low.index("</think>") + 8:] if one_think else ""
        one_ans = tail.count("<answer>") == 1 and tail.count("</answer>") == 1 and \
            tail.index("<answer>") < tail.index("</answer>")
        s += 0.25 * one_ans
        if one_ans:
            m = re.fullmatch(r"\s*\[\s*(\d{1,6})\s*\]\s*", tail[tail.index("<answer>") + 8: tail.index("</answer>")])
            s += 0.25 * bool(m and 1 <= int(m.group(1)) <= kk and not tail[tail.index("</answer>") + 9:].strip())
        out.append(float(s))
    return out


#: the reward components by name (all with TRL's reward-function signature)
REWARDS: dict[str, Callable[..., list[float]]] = {
    "rank_r1": rank_r1_reward, "format": format_reward, "answer": answer_reward, "tag": tag_reward,
}


def zero_variance_share(rewards: Sequence[float], groups: Sequence[Any], tol: float = 1e-9) -> float:
    """The share of groups (completions with the same group key, e.g. the set id) whose rewards are all
    equal (max - min <= ``tol``): GRPO's advantage is 0 for all of them, no learning signal."""
    if len(rewards) != len(groups):
        raise ConfigError(f"{len(rewards)} rewards for {len(groups)} group keys")
    by: dict[Any, list[float]] = {}
    for r, g in zip(rewards, groups):
        by.setdefault(g, []).append(float(r))
    if not by:
        return float("nan")
    return sum(max(v) - min(v) <= tol for v in by.values()) / len(by)


class GRPOReward:
    """The reward given to TRL: ``sum(weight * component)`` over ``weights`` (names of :data:`REWARDS`;
    default Rank-R1's reward alone). Every call (one per generation step) appends to :attr:`history`:
    ``step``, ``completions``, ``groups``, ``reward_mean``/``reward_std`` (over the completions),
    ``group_std_mean`` (mean within-group std), ``zero_variance_share`` (of the weighted reward), and per
    component ``{name}_mean`` and ``{name}_zero_variance_share``, plus ``completion_chars``."""

    __name__ = "rankstack_grpo"

    def __init__(self, weights: Mapping[str, float] | None = None):
        weights = dict(weights if weights is not None else {"rank_r1": 1.0})
        bad = [n for n in weights if n not in REWARDS]
        if bad or not weights:
            raise ConfigError(f"unknown reward component(s) {bad}; use names of {', '.join(REWARDS)}"
                              if bad else "reward weights are empty")
        self.weights = weights
        self.history: list[dict[str, Any]] = []

    def __call__(self, completions: Sequence[Any], set_id: Any = None, relevant: Any = None, k: Any = None,
                 trainer_state: Any = None, **kw: Any) -> list[float]:
        n = len(completions)
        groups = _per_row(set_id, n, "set_id")
        parts = {name: np.asarray(fn(completions=completions, relevant=relevant, k=k), dtype=float)
                 for name, fn in REWARDS.items()}
        total = sum(w * parts[name] for name, w in self.weights.items())
        total = np.asarray(total, dtype=float)
        by: dict[Any, list[float]] = {}
        for r, g in zip(total, groups):
            by.setdefault(g, []).append(float(r))
        step = (int(trainer_state.global_step) + 1) if trainer_state is not None else len(self.history) + 1
        rec: dict[str, Any] = {
            "step": step, "completions": n, "groups": len(by),
            "reward_mean": float(total.mean()), "reward_std": float(total.std()),
            "group_std_mean": float(np.mean([np.std(v) for v in by.values()])),
            "zero_variance_share": zero_variance_share(total, groups),
            "completion_chars": float(np.mean([len(_text(c)) for c in completions])),
        }
        for name, v in parts.items():
            rec[f"{name}_mean"] = float(v.mean())
            rec[f"{name}_zero_variance_share"] = zero_variance_share(v, groups)
        self.history.append(rec)
        return [float(x) for x in total]


# ---- training ------------------------------------------------------------------------------------------
@dataclass
class GRPOTrainConfig:
    """What :func:`train_grpo` trains (more ``GRPOConfig`` fields go in ``extra``).

    Rank-R1 trained Qwen2.5-3B/7B-Instruct with LoRA r=16, lr 1e-5, 8 generations, 2048 completion
    tokens (TRL GRPO defaults of early 2025, beta 0.04); the defaults here are sized for a CPU run of a
    135M model. ``beta=0`` (TRL's default) loads no reference model."""

    output_dir: str
    model: str = "smollm2"
    rewards: dict[str, float] = field(default_factory=lambda: {"rank_r1": 1.0})
    num_generations: int = 4
    sets_per_step: int = 1
    max_completion_length: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    beta: float = 0.0
    loss_type: str = "dapo"
    lora_r: int = 8  # 0: full fine-tuning
    lora_alpha: int | None = None
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    merge: bool = False
    max_steps: int = 50
    learning_rate: float = 1e-5
    warmup_steps: int = 0
    seed: int = 42
    save_steps: int | None = None
    logging_steps: int = 1
    max_think_tokens: int = 128  # recorded for scoring (ReasoningScorer's cap)
    max_words: int | None = None  # recorded for scoring: the words per passage the sets were cut to
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _llm_config(cfg: GRPOTrainConfig) -> Any:
    from rankstack.train.llm import LLMTrainConfig

    return LLMTrainConfig(output_dir=cfg.output_dir, model=cfg.model, objective="grpo", lora_r=cfg.lora_r,
                          lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          lora_targets=tuple(cfg.lora_targets), merge=cfg.merge, max_steps=cfg.max_steps,
                          learning_rate=cfg.learning_rate, seed=cfg.seed, device=cfg.device)


def train_grpo(cfg: GRPOTrainConfig, sets: Sequence[SetwiseSet], backend: Any = None,
               callbacks: Sequence[Any] = (), resume_from_checkpoint: str | bool | None = None,
               progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """GRPO on ``sets`` with TRL's ``GRPOTrainer``; writes the adapter (or model) to ``cfg.output_dir``.

    ``backend``: a :class:`~rankstack.llm.backends.hf.TransformersBackend` holding ``cfg.model`` (its
    weights are copied, never changed); built from ``cfg.model`` when ``None``. ``progress`` is called
    with each step's reward record. Returns ``output_dir``, ``steps``, ``seconds``, ``s_per_step``,
    ``history`` (:class:`GRPOReward` records, one per generation step), ``log_history`` (TRL's logs),
    ``sets``, ``weights`` and the trained ``model`` (unmerged).
    """
    from rankstack.optional import require

    require("trl", "train")
    from transformers import TrainerCallback, set_seed
    from trl import GRPOConfig, GRPOTrainer

    from rankstack.train.llm import META, prepare_model, save_trained

    if cfg.num_generations < 2:
        raise ConfigError(f"num_generations must be >= 2 (GRPO compares completions of one set), got "
                          f"{cfg.num_generations}")
    if cfg.sets_per_step < 1 or cfg.max_steps < 1:
        raise ConfigError(f"sets_per_step and max_steps must be >= 1, got {cfg.sets_per_step}, {cfg.max_steps}")
    reward = GRPOReward(cfg.rewards)
    data = sets_dataset(sets)
    if backend is None:
        from rankstack.llm.backends.hf import TransformersBackend

        backend = TransformersBackend(cfg.model, device=cfg.device)
    check_labels(backend.tokenizer, max(s.k for s in sets))
    set_seed(cfg.seed)
    lcfg = _llm_config(cfg)
    model = prepare_model(backend.model, lcfg)
    args = GRPOConfig(
        output_dir=cfg.output_dir, max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.sets_per_step * cfg.num_generations, gradient_accumulation_steps=1,
        num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, beta=cfg.beta, loss_type=cfg.loss_type,
        warmup_steps=cfg.warmup_steps, seed=cfg.seed, data_seed=cfg.seed, logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps or cfg.max_steps, save_strategy="steps", report_to=[],
        use_cpu=(backend.device == "cpu"), bf16=False, fp16=False, gradient_checkpointing=False,
        dataloader_num_workers=0, disable_tqdm=True, remove_unused_columns=False, **cfg.extra)

    class _Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if progress is not None and reward.history:
                progress(reward.history[-1])

    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=data,
                          processing_class=backend.tokenizer, callbacks=[_Progress(), *callbacks])
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    secs = time.perf_counter() - t0
    out = save_trained(trainer.model, backend, lcfg)
    meta = {k: v for k, v in asdict(cfg).items() if k != "extra"}
    meta.update(objective="grpo", lora_targets=list(cfg.lora_targets),
                score_with={"reranker": "reasoning", "max_think_tokens": cfg.max_think_tokens,
                            **({"max_words": cfg.max_words} if cfg.max_words else {})})
    with open(os.path.join(out, META), "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
    steps = trainer.state.global_step
    return {"output_dir": out, "steps": steps, "seconds": round(secs, 2),
            "s_per_step": round(secs / steps, 2) if steps else None, "history": reward.history,
            "log_history": list(trainer.state.log_history), "sets": len(sets), "weights": reward.weights,
            "model": trainer.model}


# ---- evaluation ----------------------------------------------------------------------------------------
def evaluate_sets(backend: Any, sets: Sequence[SetwiseSet], docs: Mapping[str, Document], *,
                  max_words: int = 100, max_think_tokens: int = 128) -> list[dict[str, Any]]:
    """Score each set with :class:`~rankstack.llm.scorers.ReasoningScorer` (greedy, the scorer
    unchanged) and report per set: ``pick`` (1-based label, ``None`` when the scorer fell back to a
    uniform choice), ``correct`` (the pick is relevant), ``strict_format`` (the generated text passes
    :func:`parse_strict`), ``text``. ``max_words`` should be the one the sets were built with."""
    from rankstack.llm.scorers import QueryContext, ReasoningScorer

    scorer = ReasoningScorer(backend, max_words=max_words, max_think_tokens=max_think_tokens)
    out = []
    for s in sets:
        logged: list[dict[str, Any]] = []
        ctx = QueryContext(Query(s.qid, s.query), logger=logged.append)
        dist = scorer.select(ctx, [docs[d] for d in s.doc_ids])
        if logged and logged[-1]["prompt"] != s.prompt:
            raise ConfigError(f"set {s.set_id!r}: the scorer's prompt differs from the set's (max_words "
                              f"{max_words} differs from the one the sets were built with?)")
        uniform = bool(np.allclose(dist, dist[0]))
        pick = None if uniform else int(np.argmax(dist)) + 1
        text = logged[-1]["response"] if logged else ""
        out.append({"set_id": s.set_id, "pick": pick, "correct": pick is not None and pick in s.relevant,
                    "strict_format": parse_strict(text + ("</answer>" if "<answer>" in text.lower()
                                                          and "</answer>" not in text.lower() else ""),
                                                  s.k) is not None,
                    "text": text})
    return out
