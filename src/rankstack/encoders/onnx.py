"""ONNX Runtime backend: export on first use into a cache directory, optional dynamic int8.

The exported graph includes the pooling / normalisation (bi-encoders) or the classification head
(cross-encoders), so a batch goes in as token ids and comes out as embeddings or logits. Export uses
``torch.onnx.export`` (TorchScript exporter, opset 17, dynamic batch and sequence axes) with eager
attention; ``quantize="int8"`` runs ``onnxruntime.quantization.quantize_dynamic`` (int8 weights,
activations quantised per batch at run time).

The cache key is a hash of the model directory (path, file sizes and modification times), the
runtime configuration and the library versions; files are written to a temporary name and renamed,
so concurrent or interrupted exports never leave a half-written model behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rankstack.optional import require


def default_cache_dir() -> Path:
    """``$RANKSTACK_CACHE/onnx`` or ``~/.cache/rankstack/onnx``."""
    base = os.environ.get("RANKSTACK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rankstack")
    return Path(base) / "onnx"


def _model_fingerprint(model_path: str) -> str:
    h = hashlib.sha256(model_path.encode())
    p = Path(model_path)
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file() and f.suffix in {".json", ".safetensors", ".bin", ".txt", ".model"}:
                st = f.stat()
                h.update(f"{f.relative_to(p)}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()


def cache_key(runtime: Any) -> str:
    torch = require("torch", "dense")
    ort = require("onnxruntime", "onnx")
    # the exported graph does not depend on the batch budget or the torch dtype
    skip = {"backend", "quantize", "max_length", "dtype", "max_tokens"}
    cfg = {k: v for k, v in runtime.config().items() if k not in skip}
    blob = json.dumps(
        {
            "fp": _model_fingerprint(runtime.model_path),
            "cfg": cfg,
            "torch": torch.__version__,
            "ort": ort.__version__,
            "tt": runtime._uses_token_types(),
            "v": 1,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def export(runtime: Any, build_module: Callable[[], Any], out: Path) -> Path:
    """Export the runtime's torch module to ``out`` (atomic)."""
    torch = require("torch", "dense")
    require("onnx", "onnx")
    module = build_module().float().eval()
    uses_tt = runtime._uses_token_types()
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    mask[1, 10:] = 0
    args: tuple[Any, ...] = (ids, mask, torch.zeros_like(ids)) if uses_tt else (ids, mask)
    names = ["input_ids", "attention_mask", "token_type_ids"][: len(args)]
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    axes["output"] = {0: "batch"}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                tmp,
                input_names=names,
                output_names=["output"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 quantisation of an ONNX model (``onnxruntime.quantization.quantize_dynamic``)."""
    q = require("onnxruntime.quantization", "onnx")
    fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        q.quantize_dynamic(str(src), tmp, weight_type=q.QuantType.QInt8, per_channel=True)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst


def model_file(
    runtime: Any, build_module: Callable[[], Any], quantize: str | None, cache_dir: str | os.PathLike | None
) -> Path:
    """The cached ONNX file for this runtime, exporting (and quantising) it if missing."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    d = root / cache_key(runtime)
    fp32 = d / "model.onnx"
    if not fp32.exists():
        export(runtime, build_module, fp32)
        (d / "source.json").write_text(json.dumps(runtime.config(), indent=1, default=str))
    if quantize == "int8":
        q8 = d / "model.int8.onnx"
        if not q8.exists():
            quantize_int8(fp32, q8)
        return q8
    return fp32


def onnx_runner(
    runtime: Any,
    build_module: Callable[[], Any],
    quantize: str | None,
    cache_dir: str | os.PathLike | None,
    threads: int,
) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """A function running one padded batch through an ONNX Runtime session (CPU)."""
    ort = require("onnxruntime", "onnx")
    path = model_file(runtime, build_module, quantize, cache_dir)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    runtime.device, runtime.dtype = "cpu", "int8" if quantize == "int8" else "float32"
    runtime.onnx_path = str(path)

    def run(batch: dict[str, np.ndarray]) -> np.ndarray:
        return sess.run(None, {n: batch[n] for n in names})[0]

    return run
