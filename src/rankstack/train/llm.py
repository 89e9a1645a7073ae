"""Training LLM rerankers with FIRST's objectives (Reddy et al., "FIRST: Faster Improved Listwise
Reranking with Single Token Decoding", EMNLP 2024), on a causal LM through the HF ``Trainer``.

Objectives, on the windows of :mod:`rankstack.train.llm_data`:

* ``"generation"``: language modelling on the gold permutation as the FIRST prompt asks for it,
  ``[B] > [A] > ...`` plus end of turn (RankZephyr's objective);
* ``"first"``: FIRST's ranking loss on the logits of the first generated identifier over the window's
  identifier tokens: RankNet weighted by ``1 / (r_i + r_j)`` on the teacher ranks (:class:`FirstRankNet`),
  or any loss of :func:`rankstack.train.losses.get_loss` (``rank_loss``) on the grades ``w - rank``;
* ``"combined"``: ``LM + lambda * ranking`` with FIRST's published weights (its repository's
  ``train_ranking.py``: lambda = 10 for the weighted RankNet, 0.1 for ListNet, 1 otherwise);
* ``"fullrank"``: the importance-aware LM loss of Liu et al., "Sliding Windows Are Not the End:
  Exploring Full Ranking with Long-Context Large Language Models" (arXiv, December 2024; code at
  github.com/8421BCD/fullrank, mirrored as RUC-NLPIR/fullrank):
  language modelling on the whole permutation where the identifier token of the passage at output rank
  ``r`` has weight ``1 / log2(r + 1) + 1`` and every other target token (separators, ``]``, end of turn)
  weight 1 (:func:`importance_weights`); normalised as their ``training/model.py`` does: the weighted
  token NLLs summed over the batch and divided by the number of target tokens (not by the sum of the
  weights), so the unweighted tokens keep the scale of the plain LM loss (:func:`weighted_lm_loss`).
  Their code gives every non-``>`` token of rank ``r`` (their ``[``, digits, ``]``) the weight; here
  only the identifier token carries it (an identifier is one token; the separator ``] > [`` and the
  closing ``]`` are weight 1).
* ``"lipo"``: LiPO-lambda (Liu et al., "LiPO: Listwise Preference Optimization through Learning-to-Rank",
  NAACL 2025 / arXiv 2402.01878) on a ranked list of ``lipo_responses`` responses per window. A response
  is a whole permutation (``[B] > [A] > ...<|im_end|>``); the list is the teacher's permutation, the
  presentation order and seeded perturbations, each labelled ``psi`` = its nDCG against the teacher
  (:func:`rankstack.train.llm_data.lipo_candidates` says which and why). The policy's score of response
  ``k`` is ``s_k = beta * (log pi(y_k|x) - log pi_ref(y_k|x))``, the log-probabilities summed over the
  response tokens; the loss is ``sum_{psi_i > psi_j} Delta_ij log(1 + exp(-(s_i - s_j)))`` with
  LambdaRank's weights ``Delta_ij = |G_i - G_j| |1/D(tau_i) - 1/D(tau_j)|`` (``G = 2^psi - 1``,
  ``D(tau) = log2(1 + tau)``, ``tau`` the rank under ``s``; :func:`rankstack.train.losses.lambda_weights`,
  the loss :class:`rankstack.train.losses.LiPOLambda`), summed over pairs, averaged over the windows of a
  batch. ``pi_ref`` is the base model: with LoRA the same model with the adapter disabled (peft
  ``disable_adapter()``, no second copy), with full fine-tuning the backend's untouched model (training
  works on a copy anyway). The prompt is run once per window and its key/value cache shared by the
  ``K`` responses (:func:`continuation_logprobs`). ``beta`` defaults to 0.05 (the task's proposal; LiPO's
  own experimental value could not be checked here, only its abstract was retrievable; DPO used 0.1, 0.5
  for TL;DR). With a small ``beta`` the scores stay small and the logistic loss far from saturation.

Ranking accuracy (Chen et al., "Preference Learning Algorithms Do Not Learn Preference Rankings", NeurIPS
2024): :func:`ranking_accuracy` (share of pairs whose chosen response the model gives the higher sequence
log-likelihood) and :func:`idealised_ranking_accuracy` (what a perfectly optimised DPO/RLHF policy with
reference ``pi_ref`` would reach, their Theorem 3.1), on :func:`preference_pairs`.

The model reads the window exactly as :class:`rankstack.llm.scorers.FirstScorer` with ``prime="["``
scores it: the user message through the backend's chat template, then ``"["``; the identifier logits
are those of each label's first token (``backend._first_token``, looked up per tokenizer; a label that
is not one token, or two labels sharing a token, is an error). Score a trained model with
``--reranker first --prime "["``.

LoRA adapters (peft) are the default; ``lora_r=0`` fine-tunes every weight. The output directory is
either a peft adapter (``adapter_config.json`` whose ``base_model_name_or_path`` is the base model as
given, e.g. ``smollm2``; :class:`~rankstack.llm.backends.hf.TransformersBackend` merges it on load) or,
with ``merge=True`` or full fine-tuning, a plain transformers model directory. Checkpoints
(``checkpoint-N``) resume through the Trainer; the seed fixes the run.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rankstack.errors import ConfigError
from rankstack.train.llm_data import LLMWindow, lipo_candidates
from rankstack.train.losses import LiPOLambda, RankingLoss, _pairs, get_loss

OBJECTIVES = ("first", "generation", "combined", "fullrank", "lipo")
#: FIRST's weight of the ranking loss in "combined" (gangiswag/llm-reranker, scripts/train_ranking.py)
COMBINED_WEIGHTS = {"ranknet-weighted": 10.0, "listnet": 0.1}
META = "rankstack_llm.json"


def importance_weights(target_ranks: Sequence[int]) -> list[float]:
    """Per target token, the importance-aware weight of the fullrank objective: ``1 / log2(r + 1) + 1``
    for the identifier of the passage at output rank ``r`` (``target_ranks[t] = r >= 1``), 1 for any
    other target token (``target_ranks[t] = 0``)."""
    return [1.0 / math.log2(r + 1) + 1.0 if r > 0 else 1.0 for r in target_ranks]


def weighted_lm_loss(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """``sum_t w_t * NLL_t / #targets`` over the batch (``labels`` -100 outside the targets): the
    normalisation of the fullrank code (``training/model.py``: ``nll_loss.sum() / num_active_elements``).
    With every weight 1 it is the mean token cross-entropy (the ``generation`` loss)."""
    active = labels != -100
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                          reduction="none").reshape(labels.shape)
    return (nll * weights * active).sum() / active.sum().clamp(min=1)


class FirstRankNet(RankingLoss):
    """FIRST's weighted RankNet: for every pair with ``y_i > y_j``, ``w_ij * log(1 + exp(-(s_i - s_j)))``
    with ``w_ij = 1 / (r_i + r_j)``, ``r`` the 1-based rank by ``labels`` among the valid entries; per
    query, the mean over pairs (``BCEWithLogitsLoss(weight=w)`` as FIRST computes it). The weight puts
    the loss on the top of the teacher's ranking."""

    def per_query(self, scores: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
        pairs = _pairs(labels, mask)
        above = ((labels[:, None, :] > labels[:, :, None]) & mask[:, None, :]).sum(-1)  # [Q, L]
        ranks = (above + 1).float()
        w = 1.0 / (ranks[:, :, None] + ranks[:, None, :])
        el = F.softplus(-(scores[:, :, None] - scores[:, None, :])) * w * pairs
        return el.sum((1, 2)) / pairs.sum((1, 2)).clamp(min=1)


@dataclass
class LLMTrainConfig:
    """What :func:`train_llm` trains (the rest of HF ``TrainingArguments`` goes in ``extra``)."""

    output_dir: str
    model: str = "smollm2"
    objective: str = "first"
    rank_loss: str = "ranknet-weighted"
    rank_weight: float | None = None  # "combined": None = FIRST's weight for rank_loss
    beta: float = 0.05  # "lipo": the scale of the log-ratios (LiPO/DPO's KL coefficient)
    lipo_responses: int = 4  # "lipo": responses (permutations) per window
    prime: str = "["
    lora_r: int = 8  # 0: full fine-tuning
    lora_alpha: int | None = None  # default 2 * lora_r
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    merge: bool = False
    max_steps: int = 50
    learning_rate: float = 2e-4
    batch_size: int = 1
    grad_accum: int = 1
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_length: int = 2048
    seed: int = 42
    save_steps: int | None = None
    logging_steps: int = 1
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def label_token_ids(backend: Any, labels: Sequence[str]) -> list[int]:
    """The token of each identifier as the FIRST scorer reads it after the prime (its first token), for
    this backend's tokenizer; every label must be one token, and the tokens distinct."""
    tok = backend.tokenizer
    ids = []
    for lab in labels:
        t = tok(lab, add_special_tokens=False).input_ids
        if len(t) != 1:
            raise ConfigError(f"identifier {lab!r} is {len(t)} tokens for this tokenizer; FIRST needs one token each")
        ids.append(t[0])
    if len(set(ids)) != len(ids):
        raise ConfigError(f"identifiers {list(labels)} share tokens {ids} for this tokenizer")
    return ids


def _eos_id(backend: Any) -> int:
    tok = backend.tokenizer
    for s in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>"):
        tid = tok.convert_tokens_to_ids(s)
        if isinstance(tid, int) and tid >= 0 and tid != tok.unk_token_id:
            return tid
    return tok.eos_token_id


def permutation_tokens(backend: Any, lab_ids: Sequence[int], perm: Sequence[int], prime: str = "[") \
        -> tuple[list[int], list[int]]:
    """The tokens of the answer ``perm`` after the prime (``B] > [A] > ... ]`` + end of turn, the
    identifiers as their label tokens ``lab_ids``) and, per token, the output rank of the identifier it
    is (0 for the other tokens)."""
    tok = backend.tokenizer
    sep = tok("] > " + prime, add_special_tokens=False).input_ids
    close = tok("]", add_special_tokens=False).input_ids
    target: list[int] = []
    target_ranks: list[int] = []
    for k, i in enumerate(perm):
        sp = [] if k == 0 else sep
        target += sp + [lab_ids[i]]
        target_ranks += [0] * len(sp) + [k + 1]
    target += close + [_eos_id(backend)]
    target_ranks += [0] * (len(close) + 1)
    return target, target_ranks


def encode_window(backend: Any, w: LLMWindow, prime: str = "[", max_length: int = 2048) -> dict[str, Any]:
    """Token ids of one window: ``prefix`` (chat-formatted prompt + prime, encoded as the backend encodes
    it for scoring), ``target`` (the rest of the permutation after the prime, identifiers as their
    label tokens, then end of turn), ``target_ranks`` (per target token, the output rank of the
    identifier it is, 0 for the other tokens), the label tokens in presentation order and the teacher
    grades ``w - rank``. A prompt over ``max_length`` tokens is an error (never cut)."""
    tok = backend.tokenizer
    prefix = tok(backend.format_chat(w.prompt) + prime, add_special_tokens=False).input_ids
    if backend.tokenizer.bos_token_id is not None and getattr(backend, "template", None) == "gemma" and \
            (not prefix or prefix[0] != tok.bos_token_id):
        prefix = [tok.bos_token_id, *prefix]
    lab_ids = label_token_ids(backend, w.labels)
    target, target_ranks = permutation_tokens(backend, lab_ids, w.permutation, prime)
    if len(prefix) + len(target) > max_length:
        raise ConfigError(f"query {w.qid!r} window at {w.start}: {len(prefix) + len(target)} tokens > "
                          f"max_length={max_length} (cut passages with max_words or raise max_length)")
    n = len(w.labels)
    return {"prefix": prefix, "target": target, "target_ranks": target_ranks, "label_ids": lab_ids,
            "grades": [float(n - r) for r in w.ranks]}


def encode_lipo(backend: Any, w: LLMWindow, k: int = 4, seed: int = 0, prime: str = "[",
                max_length: int = 2048) -> dict[str, Any]:
    """One LiPO example: ``prefix`` (as :func:`encode_window`), the ``k`` responses of
    :func:`~rankstack.train.llm_data.lipo_candidates` as token lists (``cands``, each the answer after the
    prime, :func:`permutation_tokens`), their permutations (``perms``) and labels (``psi``)."""
    base = encode_window(backend, w, prime, max_length)
    cl = lipo_candidates(w, k, seed)
    cands = [permutation_tokens(backend, base["label_ids"], perm, prime)[0] for perm, _ in cl]
    if len(base["prefix"]) + max(len(c) for c in cands) > max_length:
        raise ConfigError(f"query {w.qid!r} window at {w.start}: a response exceeds max_length={max_length}")
    return {"prefix": base["prefix"], "cands": cands, "perms": [list(p) for p, _ in cl],
            "psi": [float(v) for _, v in cl], "label_ids": base["label_ids"]}


class LipoCollator:
    """Batches of LiPO examples as lists (one prompt, ``K`` responses each): ``prefix`` ``[P]``,
    ``cands`` (``K`` tensors), ``psi`` ``[K]``."""

    def __call__(self, feats: list[dict[str, Any]]) -> dict[str, Any]:
        return {"prefix": [torch.tensor(f["prefix"], dtype=torch.long) for f in feats],
                "cands": [[torch.tensor(c, dtype=torch.long) for c in f["cands"]] for f in feats],
                "psi": [torch.tensor(f["psi"], dtype=torch.float32) for f in feats]}


def _cache_arg(model: Any) -> str:
    """The name of the key/value cache argument of ``model.forward`` (``cache`` in recent transformers,
    ``past_key_values`` before)."""
    import inspect

    m = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(m.forward).parameters else "past_key_values"


def continuation_logprobs(model: Any, prefix: Tensor, conts: Sequence[Tensor], normalise: bool = False) -> Tensor:
    """``log p(cont_k | prefix)`` summed over each continuation's tokens (``normalise``: the mean per
    token), ``[K]``, for a causal LM. The prefix runs once; its key/value cache is repeated for the ``K``
    continuations, which run as one right-padded batch (the same values as ``K`` full forwards, to float
    rounding; gradients flow through both parts when enabled)."""
    from transformers import DynamicCache

    dev = prefix.device
    P = prefix.shape[0]
    K = len(conts)
    cache = DynamicCache()
    kw = {_cache_arg(model): cache}  # the cache object is filled in place
    out = model(input_ids=prefix[None], attention_mask=torch.ones((1, P), dtype=torch.long, device=dev),
                position_ids=torch.arange(P, device=dev)[None], use_cache=True, logits_to_keep=1, **kw)
    first = torch.log_softmax(out.logits[0, -1].float(), -1)  # predicts every continuation's first token
    cache.batch_repeat_interleave(K)
    lens = torch.tensor([len(c) for c in conts], device=dev)
    T = int(lens.max())
    ids = torch.zeros((K, T), dtype=torch.long, device=dev)
    for j, c in enumerate(conts):
        ids[j, : len(c)] = c
    valid = torch.arange(T, device=dev)[None, :] < lens[:, None]  # [K, T]
    lp = first[ids[:, 0]]  # [K]
    if T > 1:
        mask = torch.cat([torch.ones((K, P), dtype=torch.long, device=dev), valid.long()], 1)
        pos = (P + torch.arange(T, device=dev))[None].expand(K, T)
        out2 = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **kw)
        # position t of the continuation predicts its token t + 1
        lps = torch.log_softmax(out2.logits[:, :-1].float(), -1).gather(2, ids[:, 1:, None])[..., 0]  # [K, T-1]
        lp = lp + (lps * valid[:, 1:]).sum(1)
    return lp / lens if normalise else lp


def reference_logprobs(model: Any, prefix: Tensor, conts: Sequence[Tensor], ref_model: Any = None) -> Tensor:
    """``log pi_ref`` of the responses (no gradient): ``ref_model`` when given (full fine-tuning: the
    frozen base), else ``model`` (a peft model) with its adapter disabled."""
    with torch.no_grad():
        if ref_model is not None:
            return continuation_logprobs(ref_model, prefix, conts)
        if not hasattr(model, "disable_adapter"):
            raise ConfigError("lipo: the reference is the model without its LoRA adapter, but the model has none "
                              "(pass ref_model for full fine-tuning)")
        with model.disable_adapter():
            return continuation_logprobs(model, prefix, conts)


class WindowDataset(torch.utils.data.Dataset):
    def __init__(self, features: list[dict[str, Any]]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.features[i]


class WindowCollator:
    """Left-padded batches (as the backend scores): ``input_ids``, ``attention_mask``, ``position_ids``;
    ``lm_labels`` over the last ``keep`` positions and their ``lm_weights`` (:func:`importance_weights`,
    0 where no target); ``rank_pos`` (the kept position whose logits give the first identifier),
    ``label_ids``/``grades``/``label_mask`` ``[B, W]``."""

    def __init__(self, pad_id: int, with_target: bool):
        self.pad_id = pad_id
        self.with_target = with_target

    def __call__(self, feats: list[dict[str, Any]]) -> dict[str, Tensor]:
        seqs = [f["prefix"] + (f["target"] if self.with_target else []) for f in feats]
        T = max(len(s) for s in seqs)
        keep = (max(len(f["target"]) for f in feats) if self.with_target else 0) + 1
        B = len(feats)
        ids = torch.full((B, T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, T), dtype=torch.long)
        lm = torch.full((B, keep), -100, dtype=torch.long)
        lmw = torch.zeros((B, keep))
        rank_pos = torch.zeros(B, dtype=torch.long)
        W = max(len(f["label_ids"]) for f in feats)
        lab = torch.zeros((B, W), dtype=torch.long)
        grades = torch.zeros((B, W))
        lmask = torch.zeros((B, W), dtype=torch.bool)
        for b, (f, s) in enumerate(zip(feats, seqs)):
            ids[b, T - len(s):] = torch.tensor(s)
            mask[b, T - len(s):] = 1
            g = len(f["target"]) if self.with_target else 0
            # kept position j (0..keep-1) is sequence position T-keep+j and predicts token T-keep+j+1
            if g:
                lm[b, keep - g - 1: keep - 1] = torch.tensor(f["target"])
                lmw[b, keep - g - 1: keep - 1] = torch.tensor(importance_weights(f["target_ranks"]))
            rank_pos[b] = keep - g - 1
            n = len(f["label_ids"])
            lab[b, :n] = torch.tensor(f["label_ids"])
            grades[b, :n] = torch.tensor(f["grades"])
            lmask[b, :n] = True
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "lm_labels": lm,
                "lm_weights": lmw, "rank_pos": rank_pos, "label_ids": lab, "grades": grades,
                "label_mask": lmask}


def _trainer_class():
    from transformers import Trainer

    class LLMRankTrainer(Trainer):
        """HF Trainer with FIRST's objectives and fullrank's in :meth:`compute_loss`; the parts are kept."""

        def __init__(self, *args: Any, objective: str = "first", rank_loss: RankingLoss | None = None,
                     rank_weight: float = 1.0, beta: float = 0.05, ref_model: Any = None, **kw: Any):
            super().__init__(*args, **kw)
            self.objective = objective
            self.rank_loss = rank_loss
            self.rank_weight = rank_weight
            self.beta = beta
            self.ref_model = ref_model  # "lipo" with full fine-tuning; None with LoRA (adapter disabled)
            self.lipo = LiPOLambda()
            self.parts: list[dict[str, float]] = []

        def lipo_loss(self, model, inputs):
            losses, ratios, teacher_ratio, acc = [], [], [], []
            for prefix, conts, psi in zip(inputs["prefix"], inputs["cands"], inputs["psi"]):
                ref = reference_logprobs(self.accelerator.unwrap_model(model), prefix, conts, self.ref_model)
                pol = continuation_logprobs(model, prefix, conts)
                s = self.beta * (pol - ref)
                losses.append(self.lipo(s[None], psi[None]))
                r = (pol - ref).detach()
                top = int(torch.argmax(psi))
                ratios.append(r)
                teacher_ratio.append(float(r[top]))
                acc.append(float(int(torch.argmax(s.detach())) == top))
            loss = torch.stack(losses).mean()
            self.parts.append({"lipo": float(loss.detach()), "teacher_logratio": sum(teacher_ratio) / len(acc),
                               "mean_logratio": float(torch.cat(ratios).mean()),
                               "teacher_top": sum(acc) / len(acc)})
            return loss

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.objective == "lipo":
                loss = self.lipo_loss(model, inputs)
                return (loss, None) if return_outputs else loss
            keep = inputs["lm_labels"].shape[1]
            out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                        position_ids=inputs["position_ids"], logits_to_keep=keep, use_cache=False)
            logits = out.logits.float()  # [B, keep, V]
            parts: dict[str, Tensor] = {}
            if self.objective in ("generation", "combined"):
                lab = inputs["lm_labels"]
                parts["lm"] = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), lab.reshape(-1),
                                              ignore_index=-100)
            if self.objective == "fullrank":  # "lm": the importance-weighted loss; "lm_plain": unweighted
                lab = inputs["lm_labels"]
                parts["lm"] = weighted_lm_loss(logits, lab, inputs["lm_weights"])
                with torch.no_grad():
                    parts["lm_plain"] = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), lab.reshape(-1),
                                                        ignore_index=-100)
            if self.objective in ("first", "combined"):
                B = logits.shape[0]
                first = logits[torch.arange(B, device=logits.device), inputs["rank_pos"]]  # [B, V]
                scores = first.gather(1, inputs["label_ids"])
                parts["rank"] = self.rank_loss(scores, inputs["grades"], inputs["label_mask"])
            if self.objective == "combined":
                loss = parts["lm"] + self.rank_weight * parts["rank"]
            else:
                loss = parts["rank"] if self.objective == "first" else parts["lm"]
            self.parts.append({k: float(v.detach()) for k, v in parts.items()})
            return (loss, out) if return_outputs else loss

    return LLMRankTrainer


def make_rank_loss(name: str) -> RankingLoss:
    return FirstRankNet() if name == "ranknet-weighted" else get_loss(name)


def prepare_model(base: Any, cfg: LLMTrainConfig) -> Any:
    """A trainable copy of ``base`` (a causal LM): LoRA adapters on ``lora_targets`` or every weight."""
    model = copy.deepcopy(base)
    model.train()
    # a GGUF file is de-quantised to float32 on load; what remains of its quantisation is a marker that
    # makes the Trainer refuse to train and save_pretrained write a GGUF quantization_config
    if getattr(model, "hf_quantizer", None) is not None and \
            str(getattr(model.hf_quantizer.quantization_config, "quant_method", "")).lower().endswith("gguf"):
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    if cfg.lora_r <= 0:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from rankstack.optional import require

    peft = require("peft", "train")
    lc = peft.LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha or 2 * cfg.lora_r, lora_dropout=cfg.lora_dropout,
                         target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM")
    return peft.get_peft_model(model, lc)


def train_llm(cfg: LLMTrainConfig, windows: Sequence[LLMWindow], backend: Any = None,
              resume_from_checkpoint: str | bool | None = None, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train on ``windows``; writes the adapter (or model) to ``cfg.output_dir`` with ``rankstack_llm.json``.

    ``backend``: a :class:`~rankstack.llm.backends.hf.TransformersBackend` already holding ``cfg.model``
    (its weights are copied, never changed); built from ``cfg.model`` when ``None``. Returns the output
    directory, the per-step loss parts (``parts``: ``{"lm": ..., "rank": ...}`` per optimisation
    micro-step; for ``fullrank`` ``"lm"`` is the weighted loss and ``"lm_plain"`` the unweighted one; for
    ``lipo`` ``"lipo"`` the loss, ``"teacher_logratio"`` the teacher permutation's ``log pi - log pi_ref``,
    ``"mean_logratio"`` that of every response and ``"teacher_top"`` the share of windows whose teacher
    permutation has the highest score, each before the step's update),
    steps, seconds, tokens per second and the trained ``model`` (unmerged).
    """
    import time

    from transformers import TrainingArguments, set_seed

    if cfg.objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {cfg.objective!r}")
    if not windows:
        raise ConfigError("no training windows (no query had candidates the teacher tells apart)")
    if backend is None:
        from rankstack.llm.backends.hf import TransformersBackend

        backend = TransformersBackend(cfg.model, device=cfg.device)
    set_seed(cfg.seed)
    lipo = cfg.objective == "lipo"
    if lipo and not cfg.beta > 0:
        raise ConfigError(f"beta must be > 0 for the lipo objective, got {cfg.beta}")
    if lipo:
        feats = [encode_lipo(backend, w, cfg.lipo_responses, cfg.seed, cfg.prime, cfg.max_length) for w in windows]
    else:
        feats = [encode_window(backend, w, cfg.prime, cfg.max_length) for w in windows]
    model = prepare_model(backend.model, cfg)
    with_target = cfg.objective != "first"
    rank_weight = cfg.rank_weight if cfg.rank_weight is not None else COMBINED_WEIGHTS.get(cfg.rank_loss, 1.0)
    args = TrainingArguments(
        output_dir=cfg.output_dir, max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay, seed=cfg.seed, data_seed=cfg.seed,
        logging_steps=cfg.logging_steps, save_steps=cfg.save_steps or cfg.max_steps, save_strategy="steps",
        report_to=[], remove_unused_columns=False, use_cpu=(backend.device == "cpu"),
        dataloader_num_workers=0, disable_tqdm=True, **cfg.extra)
    trainer = _trainer_class()(
        model=model, args=args, train_dataset=WindowDataset(feats),
        data_collator=LipoCollator() if lipo else WindowCollator(backend.tokenizer.pad_token_id, with_target),
        objective=cfg.objective, rank_loss=make_rank_loss(cfg.rank_loss), rank_weight=rank_weight,
        beta=cfg.beta, ref_model=backend.model if lipo and not hasattr(model, "peft_config") else None,
        callbacks=list(callbacks) or None)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    secs = time.perf_counter() - t0
    if lipo:  # the prompt once, every response
        tokens = sum(len(f["prefix"]) + sum(len(c) for c in f["cands"]) for f in feats)
    else:
        tokens = sum(len(f["prefix"]) + (len(f["target"]) if with_target else 0) for f in feats)
    steps_run = len(trainer.parts)
    tokens_seen = tokens / len(feats) * steps_run * cfg.batch_size
    out = save_trained(trainer.model, backend, cfg)
    meta = {"output_dir": out, "steps": trainer.state.global_step, "seconds": round(secs, 2),
            "tokens_per_s": round(tokens_seen / secs, 1) if secs > 0 else None, "parts": trainer.parts,
            "windows": len(feats), "rank_weight": rank_weight, "model": trainer.model}
    return meta


def save_trained(model: Any, backend: Any, cfg: LLMTrainConfig) -> str:
    """Write the adapter (peft, default) or the merged/full model, the tokenizer and ``rankstack_llm.json``."""
    os.makedirs(cfg.output_dir, exist_ok=True)
    is_peft = hasattr(model, "peft_config")
    if is_peft and not cfg.merge:
        for pc in model.peft_config.values():
            pc.base_model_name_or_path = cfg.model  # the base as given (an alias or path the backend resolves)
        model.save_pretrained(cfg.output_dir)
    else:
        m = model.merge_and_unload() if is_peft else model
        m.save_pretrained(cfg.output_dir)
        backend.tokenizer.save_pretrained(cfg.output_dir)
    meta = {k: v for k, v in asdict(cfg).items() if k not in ("extra",)}
    meta["lora_targets"] = list(cfg.lora_targets)
    meta["score_with"] = {"reranker": "first", "prime": cfg.prime}
    with open(os.path.join(cfg.output_dir, META), "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
    return cfg.output_dir


def first_logprobs(model: Any, backend: Any, windows: Sequence[LLMWindow], prime: str = "[",
                   max_length: int = 2048) -> list[list[float]]:
    """Per window, the log-softmax (over the vocabulary) of the first identifier's logits at each label,
    in presentation order, as the FIRST scorer with ``prime`` reads them, for ``model`` (e.g. the
    model being trained, before merging)."""
    feats = [encode_window(backend, w, prime, max_length) for w in windows]
    coll = WindowCollator(backend.tokenizer.pad_token_id, with_target=False)
    dev = next(model.parameters()).device
    out = []
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for f in feats:
            b = coll([f])
            lg = model(input_ids=b["input_ids"].to(dev), attention_mask=b["attention_mask"].to(dev),
                       position_ids=b["position_ids"].to(dev), logits_to_keep=1, use_cache=False).logits
            lp = torch.log_softmax(lg[0, -1].float(), -1)
            out.append(lp[torch.tensor(f["label_ids"], device=dev)].tolist())
    model.train(was_training)
    return out


# ---- ranking accuracy (Chen et al., NeurIPS 2024) ------------------------------------------------------
@dataclass(frozen=True)
class PreferencePair:
    """A preference ``(x, y_w, y_l)``: in window ``window`` (the prompt ``x``), the answer ``chosen`` (a
    permutation of presentation indices) is preferred to ``rejected``; ``psi_*`` their labels."""

    window: LLMWindow
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]
    psi_chosen: float
    psi_rejected: float


def preference_pairs(windows: Sequence[LLMWindow], k: int = 4, seed: int = 0) -> list[PreferencePair]:
    """Every pair ``psi_i > psi_j`` of each window's LiPO list (:func:`~rankstack.train.llm_data.lipo_candidates`
    with ``k`` and ``seed``): ``k (k - 1) / 2`` pairs a window when the labels differ."""
    out = []
    for w in windows:
        cl = lipo_candidates(w, k, seed)
        for pi, si in cl:
            for pj, sj in cl:
                if si > sj:
                    out.append(PreferencePair(w, pi, pj, si, sj))
    return out


def pair_logprobs(model: Any, backend: Any, pairs: Sequence[PreferencePair], prime: str = "[",
                  normalise: bool = False, max_length: int = 4096) -> tuple[list[float], list[float]]:
    """``log pi(y_w|x)`` and ``log pi(y_l|x)`` of every pair under ``model`` (a causal LM, e.g. the
    backend's or a trained peft model): the answer's token log-probabilities summed (``normalise``: their
    mean per token), the prompt as the FIRST scorer with ``prime`` reads it. Each window's prompt runs
    once for all its answers."""
    dev = next(model.parameters()).device
    groups: dict[tuple[str, int, tuple[str, ...]], list[int]] = {}
    for n, p in enumerate(pairs):
        groups.setdefault((p.window.qid, p.window.start, p.window.doc_ids), []).append(n)
    lw = [0.0] * len(pairs)
    ll = [0.0] * len(pairs)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for idx in groups.values():
            w = pairs[idx[0]].window
            base = encode_window(backend, w, prime, max_length)
            perms = sorted({pairs[n].chosen for n in idx} | {pairs[n].rejected for n in idx})
            conts = [torch.tensor(permutation_tokens(backend, base["label_ids"], perm, prime)[0], device=dev)
                     for perm in perms]
            lp = continuation_logprobs(model, torch.tensor(base["prefix"], device=dev), conts, normalise).tolist()
            by = dict(zip(perms, lp))
            for n in idx:
                lw[n], ll[n] = by[pairs[n].chosen], by[pairs[n].rejected]
    model.train(was_training)
    return lw, ll


def ranking_accuracy(model: Any, backend: Any, pairs: Sequence[PreferencePair], prime: str = "[",
                     normalise: bool = False) -> float:
    """Ranking accuracy (Chen et al., "Preference Learning Algorithms Do Not Learn Preference Rankings",
    NeurIPS 2024, their Definition of ``R(pi, D)``): the share of pairs with ``pi(y_w|x) > pi(y_l|x)``,
    strictly (a tie counts as wrong). The paper's definition compares the plain sequence likelihoods
    (``normalise=False``, the default); its code reports the length-normalised variant too (the mean
    token log-probability, ``normalise=True``)."""
    if not pairs:
        raise ConfigError("ranking accuracy of no pairs")
    lw, ll = pair_logprobs(model, backend, pairs, prime, normalise)
    return sum(a > b for a, b in zip(lw, ll)) / len(pairs)


def idealised_ranking_accuracy(ref_chosen: Sequence[float], ref_rejected: Sequence[float], beta: float,
                               alpha: float | Sequence[float] = 0.75) -> float:
    """Idealised ranking accuracy (Chen et al. 2024, Theorem 3.1): the policy that minimises the DPO (or
    the KL-regularised RLHF) objective perfectly under the Bradley-Terry model, with the ground-truth
    preference probability ``alpha = P(y_w > y_l | x)``, satisfies

        pi*(y_w|x) / pi*(y_l|x) = pi_ref(y_w|x) / pi_ref(y_l|x) * (alpha / (1 - alpha)) ** (1 / beta),

    so it ranks the pair correctly iff ``log pi_ref(y_w|x) - log pi_ref(y_l|x) + log(alpha / (1 - alpha))
    / beta > 0``; the idealised accuracy is the share of pairs where that holds (strictly).
    ``ref_chosen``/``ref_rejected``: ``log pi_ref`` of each pair's responses (:func:`pair_logprobs` of
    the reference model); ``alpha``: one probability for every pair or one per pair, in ``(0, 1]``
    (1 = certain: always right). The default 0.75 is the proportion their code
    (``rlhf_minimizer_client.py``, ``simulate_proportion``) assumes when a dataset has no annotator
    shares, as for a teacher's permutations here."""
    if not beta > 0:
        raise ConfigError(f"beta must be > 0, got {beta}")
    n = len(ref_chosen)
    if n == 0 or len(ref_rejected) != n:
        raise ConfigError(f"need as many chosen as rejected log-probs (> 0), got {n} and {len(ref_rejected)}")
    alphas = [float(alpha)] * n if isinstance(alpha, (int, float)) else [float(a) for a in alpha]
    if len(alphas) != n:
        raise ConfigError(f"alpha: {len(alphas)} values for {n} pairs")
    ok = 0
    for a, w, lo in zip(alphas, ref_chosen, ref_rejected):
        if not 0.0 < a <= 1.0:
            raise ConfigError(f"alpha must be in (0, 1], got {a}")
        ok += a == 1.0 or (w - lo + math.log(a / (1.0 - a)) / beta) > 0
    return ok / n
