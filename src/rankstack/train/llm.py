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
from rankstack.train.llm_data import LLMWindow
from rankstack.train.losses import RankingLoss, _pairs, get_loss

OBJECTIVES = ("first", "generation", "combined", "fullrank")
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
    sep = tok("] > " + prime, add_special_tokens=False).input_ids
    close = tok("]", add_special_tokens=False).input_ids
    target: list[int] = []
    target_ranks: list[int] = []  # per target token: the output rank of the identifier it is, 0 if none
    for k, i in enumerate(w.permutation):
        sp = [] if k == 0 else sep
        target += sp + [lab_ids[i]]
        target_ranks += [0] * len(sp) + [k + 1]
    target += close + [_eos_id(backend)]
    target_ranks += [0] * (len(close) + 1)
    if len(prefix) + len(target) > max_length:
        raise ConfigError(f"query {w.qid!r} window at {w.start}: {len(prefix) + len(target)} tokens > "
                          f"max_length={max_length} (cut passages with max_words or raise max_length)")
    n = len(w.labels)
    return {"prefix": prefix, "target": target, "target_ranks": target_ranks, "label_ids": lab_ids,
            "grades": [float(n - r) for r in w.ranks]}


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
                     rank_weight: float = 1.0, **kw: Any):
            super().__init__(*args, **kw)
            self.objective = objective
            self.rank_loss = rank_loss
            self.rank_weight = rank_weight
            self.parts: list[dict[str, float]] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
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
    micro-step; for ``fullrank`` ``"lm"`` is the weighted loss and ``"lm_plain"`` the unweighted one),
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
        data_collator=WindowCollator(backend.tokenizer.pad_token_id, with_target),
        objective=cfg.objective, rank_loss=make_rank_loss(cfg.rank_loss), rank_weight=rank_weight,
        callbacks=list(callbacks) or None)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    secs = time.perf_counter() - t0
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
