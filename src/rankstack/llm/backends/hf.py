"""Hugging Face transformers backend: local directories, hub ids and GGUF files (de-quantised to float32).

Batched forward passes with left padding; greedy decoding; constrained decoding by masking the logits
to the tokens of allowed strings. GGUF files load through ``AutoModelForCausalLM.from_pretrained(dir,
gguf_file=name)`` (transformers de-quantises them, so memory is float32-sized).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from rankstack.errors import BackendError
from rankstack.llm.backends.base import (
    Backend,
    Candidate,
    Generation,
    candidate_alternatives,
)
from rankstack.llm.backends.models import TEMPLATES, resolve_model


def _load_tokenizer(transformers: Any, path: str, gguf_file: str | None) -> Any:
    """Load a tokenizer; one converted from a GGUF file (slow: ~15 s for SmolLM2, ~50 s for Gemma's
    262k vocabulary) is saved once under ``~/.cache/rankstack/tokenizers`` keyed by file name, size and
    modification time, and loaded from there afterwards."""
    if not gguf_file:
        return transformers.AutoTokenizer.from_pretrained(path)
    full = os.path.join(path, gguf_file)
    st = os.stat(full)
    root = os.environ.get("RANKSTACK_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "rankstack"))
    cache = os.path.join(root, "tokenizers", f"{gguf_file}-{st.st_size}-{int(st.st_mtime)}")
    if os.path.isfile(os.path.join(cache, "tokenizer_config.json")):
        try:
            return transformers.AutoTokenizer.from_pretrained(cache)
        except Exception:  # noqa: BLE001 - a broken cache entry: rebuild it
            pass
    tok = transformers.AutoTokenizer.from_pretrained(path, gguf_file=gguf_file)
    try:
        tmp = f"{cache}.tmp{os.getpid()}"
        tok.save_pretrained(tmp)
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        os.replace(tmp, cache)
    except OSError:
        pass
    return tok


def _adapter_base(adapter: str) -> str:
    """The base model of a peft adapter directory (``base_model_name_or_path`` of its config)."""
    import json

    path = os.path.join(adapter, "adapter_config.json")
    try:
        with open(path, encoding="utf-8") as fh:
            base = json.load(fh).get("base_model_name_or_path")
    except (OSError, ValueError) as e:
        raise BackendError(f"{path}: cannot read the adapter config: {e}") from e
    if not base:
        raise BackendError(f"{path}: field base_model_name_or_path is empty; set it to the base model")
    return str(base)


class TransformersBackend(Backend):
    """A causal LM run in-process with transformers (CPU or GPU).

    ``model``: alias (``smollm2``, ``gemma3-270m``), ``.gguf`` path, local directory, hub id, or a peft
    adapter directory (``adapter_config.json``; its base model is loaded and the adapter merged into it).
    ``batch_size`` bounds the prompts per forward pass; ``max_length`` truncates prompts from the left
    *with a warning* (never silently).
    """

    name = "transformers"

    def __init__(
        self,
        model: str,
        device: str | None = None,
        dtype: str = "float32",
        batch_size: int = 8,
        max_length: int = 4096,
        template: str | None = None,
        threads: int | None = None,
    ):
        from rankstack.optional import require

        torch = require("torch", "llm")
        transformers = require("transformers", "llm")
        if threads:
            torch.set_num_threads(int(threads))
        self.model_name = model
        # a peft adapter directory (rankstack train llm): load its base model, then merge the adapter
        self.adapter = model if os.path.isfile(os.path.join(model, "adapter_config.json")) else None
        if self.adapter:
            base = _adapter_base(self.adapter)
            self.ref = resolve_model(base)
        else:
            self.ref = resolve_model(model)
        # a local model loads without asking a hub (the process-wide HF_HUB_OFFLINE is the user's to set)
        kw: dict[str, Any] = {"local_files_only": True} if os.path.exists(self.ref.path) else {}
        if self.ref.gguf_file:
            kw["gguf_file"] = self.ref.gguf_file
        try:
            self.tokenizer = _load_tokenizer(transformers, self.ref.path, self.ref.gguf_file)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                self.ref.path, dtype=getattr(torch, dtype), **kw
            )
        except Exception as e:  # re-raised with the path
            raise BackendError(f"cannot load model {model!r} from {self.ref.path} ({self.ref.gguf_file}): {e}") from e
        if self.adapter:
            peft = require("peft", "train")
            try:
                self.model = peft.PeftModel.from_pretrained(self.model, self.adapter).merge_and_unload()
            except Exception as e:  # re-raised with the path
                raise BackendError(f"cannot apply the adapter {self.adapter!r} to its base model: {e}") from e
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.torch = torch
        import inspect

        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.x
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        mt = getattr(self.model.config, "model_type", "")
        self.template = template or self.ref.template or (None if self.tokenizer.chat_template else
                                                           ("gemma" if mt.startswith("gemma") else "raw"))
        self._eos = {t for t in [self.tokenizer.eos_token_id] if t is not None}
        for s in ("<end_of_turn>", "<|im_end|>", "<|eot_id|>"):
            tid = self.tokenizer.convert_tokens_to_ids(s)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id and tid >= 0:
                self._eos.add(tid)

    # -- prompts -------------------------------------------------------------------------
    def format_chat(self, user: str, system: str | None = None) -> str:
        if self.template in TEMPLATES:
            return TEMPLATES[self.template](user, system)
        if self.template == "raw":
            return f"{system}\n\n{user}\n" if system else f"{user}\n"
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        out = []
        for t in texts:
            ids = self.tokenizer(t, add_special_tokens=False).input_ids
            if self.tokenizer.bos_token_id is not None and self.template == "gemma" and (not ids or ids[0] != self.tokenizer.bos_token_id):
                ids = [self.tokenizer.bos_token_id, *ids]
            if len(ids) > self.max_length:
                warnings.warn(
                    f"{self.name}: prompt of {len(ids)} tokens truncated from the left to max_length={self.max_length}",
                    stacklevel=3,
                )
                ids = ids[-self.max_length:]
            out.append(ids)
        return out

    def _batch(self, seqs: Sequence[Sequence[int]]):
        torch = self.torch
        L = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), L), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, L - len(s):] = torch.tensor(list(s), dtype=torch.long)
            mask[i, L - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _forward(self, seqs: Sequence[Sequence[int]], keep: int = 1):
        """Logits of the last ``keep`` positions (``logits_to_keep``: a 262k-token vocabulary times every
        position would not fit in memory for long prompts)."""
        ids, mask = self._batch(seqs)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with self.torch.inference_mode():
            return self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep,
                              use_cache=False).logits.float()

    def _first_token(self, s: str) -> int | None:
        ids = self.tokenizer(s, add_special_tokens=False).input_ids
        return ids[0] if ids else None

    # -- primitives ----------------------------------------------------------------------
    def generate(self, prompts, max_tokens, stop=None, temperature=0.0, allowed_tokens=None, raw=False, meter=None):
        torch = self.torch
        texts = [p if raw else self.format_chat(p) for p in prompts]
        allowed = None
        if allowed_tokens:
            ids: set[int] = set(self._eos)
            for s in allowed_tokens:
                ids.update(self.tokenizer(s, add_special_tokens=False).input_ids)
            allowed = torch.tensor(sorted(ids), device=self.device)
        out: list[Generation] = []
        enc = self._encode(texts)
        gen = torch.Generator(device="cpu").manual_seed(0)
        for b in range(0, len(enc), self.batch_size):
            chunk = enc[b: b + self.batch_size]
            t0 = time.perf_counter()
            ids, mask = self._batch(chunk)
            past = None
            cur_ids, cur_mask = ids, mask
            done = [False] * len(chunk)
            toks: list[list[int]] = [[] for _ in chunk]
            texts_out = [""] * len(chunk)
            with torch.inference_mode():
                for _ in range(int(max_tokens)):
                    pos = (cur_mask.cumsum(-1) - 1).clamp(min=0)[:, -cur_ids.shape[1]:]
                    o = self.model(input_ids=cur_ids, attention_mask=cur_mask, position_ids=pos,
                                   use_cache=True, logits_to_keep=1, **{self._cache_kw: past})
                    past = getattr(o, self._cache_kw if self._cache_kw == "cache" else "past_key_values")
                    logits = o.logits[:, -1, :].float()
                    if allowed is not None:
                        masked = torch.full_like(logits, float("-inf"))
                        masked[:, allowed] = logits[:, allowed]
                        logits = masked
                    if temperature and temperature > 0:
                        probs = torch.softmax(logits / temperature, -1).cpu()
                        nxt = torch.multinomial(probs, 1, generator=gen).squeeze(-1).to(self.device)
                    else:
                        nxt = logits.argmax(-1)
                    for i, t in enumerate(nxt.tolist()):
                        if done[i]:
                            continue
                        if t in self._eos:
                            done[i] = True
                            continue
                        toks[i].append(t)
                        if stop:
                            texts_out[i] = self.tokenizer.decode(toks[i], skip_special_tokens=True)
                            if any(s in texts_out[i] for s in stop):
                                done[i] = True
                    if all(done):
                        break
                    pad = torch.tensor([self.tokenizer.pad_token_id if d else t for d, t in zip(done, nxt.tolist())],
                                       device=self.device)
                    cur_ids = pad[:, None]
                    cur_mask = torch.cat([cur_mask, torch.ones_like(cur_ids)], dim=1)
            lat = time.perf_counter() - t0
            for i, s in enumerate(chunk):
                text = self.tokenizer.decode(toks[i], skip_special_tokens=True)
                if stop:
                    cut = [text.index(x) for x in stop if x in text]
                    if cut:
                        text = text[: min(cut)]
                out.append(Generation(text, len(s), len(toks[i]), lat / len(chunk)))
            if meter is not None:
                meter.add(len(chunk), sum(len(s) for s in chunk), sum(len(t) for t in toks), lat)
        return out

    def next_token_logprobs(self, prompts, candidates: Sequence[Candidate], raw=False, meter=None):
        torch = self.torch
        groups = []
        for c in candidates:
            ids = sorted({t for a in candidate_alternatives(c) if (t := self._first_token(a)) is not None})
            if not ids:
                raise BackendError(f"candidate {c!r} has no tokens")
            groups.append(ids)
        texts = [p if raw else self.format_chat(p) for p in prompts]
        enc = self._encode(texts)
        out = np.empty((len(enc), len(candidates)), dtype=np.float64)
        for b in range(0, len(enc), self.batch_size):
            chunk = enc[b: b + self.batch_size]
            t0 = time.perf_counter()
            lp = torch.log_softmax(self._forward(chunk)[:, -1, :], -1)
            for j, ids in enumerate(groups):
                out[b: b + len(chunk), j] = torch.logsumexp(lp[:, ids], -1).cpu().numpy()
            if meter is not None:
                meter.add(len(chunk), sum(len(s) for s in chunk), len(chunk), time.perf_counter() - t0)
        return out

    def loglik(self, prompts, continuations, meter=None):
        torch = self.torch
        pairs = []
        for p, c in zip(prompts, continuations, strict=True):
            pi = self._encode([p])[0]
            ci = self.tokenizer(c, add_special_tokens=False).input_ids
            if not ci:
                raise BackendError("loglik: empty continuation")
            pairs.append((pi, ci))
        out = np.empty(len(pairs), dtype=np.float64)
        for b in range(0, len(pairs), self.batch_size):
            chunk = pairs[b: b + self.batch_size]
            seqs = [p + c for p, c in chunk]
            t0 = time.perf_counter()
            keep = max(len(c) for _, c in chunk) + 1
            lp = torch.log_softmax(self._forward(seqs, keep=keep), -1)  # the last `keep` positions
            L = lp.shape[1]
            for i, (p, c) in enumerate(chunk):
                # left padding: every sequence ends at L; position j predicts token j+1
                tgt = torch.tensor(c, device=lp.device)
                out[b + i] = lp[i, L - len(c) - 1: L - 1, :].gather(-1, tgt[:, None]).sum().item()
            if meter is not None:
                meter.add(len(chunk), sum(len(s) for s in seqs), 0, time.perf_counter() - t0)
        return out

    def config(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name, "template": self.template}
