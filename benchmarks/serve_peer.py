"""The peer of ``rankstack serve`` in the load benchmark (benchmarks/serve_load.py, docs/bench/serve.md).

A plain FastAPI endpoint that scores each request on its own with sentence-transformers'
``CrossEncoder.predict`` (its defaults: batch_size 32, the model's max_length), the way a user would
put a cross-encoder behind HTTP in a few lines. No micro-batching, no queue bound: that is the point of
the comparison.

    python benchmarks/serve_peer.py --model DIR --config default|bf16|onnx|onnx-int8 --port 8101

Configurations (the same model directory for all):

* ``default``   -- ``CrossEncoder(model)`` fp32, ``predict`` as it comes.
* ``bf16``      -- the same model, ``predict`` inside ``torch.autocast("cpu", dtype=torch.bfloat16)``
  (fast only where the CPU has AVX512-BF16 or AMX; without them torch's bf16 matmul takes a slow path).
* ``onnx``      -- ``CrossEncoder(model, backend="onnx")`` (sentence-transformers' ONNX backend, which
  exports through optimum-onnx on first load; ONNX Runtime CPU, ``intra_op_num_threads`` = --threads).
* ``onnx-int8`` -- the same, after ``sentence_transformers.export_dynamic_quantized_onnx_model(model,
  PRESET, ...)`` (dynamic int8 quantisation through optimum), loaded with its ``file_name``; PRESET
  (``--int8-config``) is by default the one for this CPU's flags: ``avx512_vnni``, ``avx512`` or ``avx2``.

The ONNX configurations need optimum-onnx, which does not support the transformers 5 this project
uses; they run with an older stack put ahead on ``PYTHONPATH`` (nothing in the project's venv changes):

    pip install --target /tmp/peer-site --no-deps optimum==2.1.0 optimum-onnx==0.1.0 transformers==4.57.3 \
        tokenizers==0.22.1 huggingface_hub==0.36.0 sentence-transformers==5.1.2 datasets==4.4.1
    PYTHONPATH=/tmp/peer-site python benchmarks/serve_peer.py --config onnx ...

The exported ONNX files are written to a copy of the model directory under ``--onnx-cache``
(the model directory itself is never written).

Routes: ``POST /rerank`` (TEI's request shape ``{query, texts, raw_scores, return_text, truncate}``,
answered ``[{index, score[, text]}]`` best first) and ``GET /health``.

``--dispatch threadpool`` (default) is the plain idiom: a ``def`` endpoint, which FastAPI runs on its
thread pool, so concurrent requests run ``predict`` concurrently (interleaved on the pinned core);
``--dispatch serial`` runs them one after another on one worker thread (FIFO), which keeps tail
latency lower under load. The benchmark measures both and keeps the better one for the peer.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pydantic import BaseModel


class TeiRequest(BaseModel):
    """TEI's rerank request."""

    query: str
    texts: list[str]
    truncate: bool | None = None  # CrossEncoder always truncates to max_length
    raw_scores: bool = False
    return_text: bool = False


CONFIGS = ("default", "bf16", "onnx", "onnx-int8")


def cpu_int8_config() -> str:
    """sentence-transformers' quantisation preset for this CPU: avx512_vnni, avx512 or avx2 by /proc/cpuinfo."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "avx2"
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def _fingerprint(model: Path) -> str:
    h = hashlib.sha256(str(model.resolve()).encode())
    for f in sorted(model.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(model)}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def _onnx_dir(model: str, cache: Path) -> Path:
    """A copy of the model directory (under ``cache``) that the ONNX exports are written into."""
    src = Path(model)
    if not src.is_dir():
        raise SystemExit(f"--model {model}: the ONNX configurations need a local model directory")
    dst = cache / f"{src.resolve().name}-{_fingerprint(src)}"
    if not (dst / "config.json").is_file():
        tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("onnx", "*.onnx"))
        os.replace(tmp, dst)
    return dst


def load(model: str, config: str, threads: int, max_length: int | None, cache: Path,
         int8_config: str = "auto") -> tuple[Any, dict]:
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(threads)
    info: dict[str, Any] = {"config": config, "threads": threads}
    kw: dict[str, Any] = {"device": "cpu"}
    if max_length is not None:
        kw["max_length"] = max_length
    if config in ("default", "bf16"):
        m = CrossEncoder(model, **kw)
    else:
        import onnxruntime as ort

        def session_options() -> Any:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            return so

        d = _onnx_dir(model, cache)
        if not (d / "onnx" / "model.onnx").is_file():
            t = time.time()
            m = CrossEncoder(str(d), backend="onnx", **kw)  # exports (optimum) into memory
            m.save_pretrained(str(d))  # writes onnx/model.onnx (and the rest) for the next start
            info["export_s"] = round(time.time() - t, 1)
        file_name = "onnx/model.onnx"
        if config == "onnx-int8":
            preset = cpu_int8_config() if int8_config == "auto" else int8_config
            info["int8_preset"] = preset
            found = sorted((d / "onnx").glob(f"model_*_{preset}.onnx"))
            if not found:
                from sentence_transformers import export_dynamic_quantized_onnx_model

                m = CrossEncoder(str(d), backend="onnx", model_kwargs={"file_name": file_name}, **kw)
                t = time.time()
                export_dynamic_quantized_onnx_model(m, preset, str(d))
                info["quantize_s"] = round(time.time() - t, 1)
                found = sorted((d / "onnx").glob(f"model_*_{preset}.onnx"))
            file_name = str(found[0].relative_to(d))
        m = CrossEncoder(str(d), backend="onnx", model_kwargs={"file_name": file_name,
                                                               "session_options": session_options()}, **kw)
        info["onnx_file"] = str(d / file_name)
    import sentence_transformers
    import transformers

    info.update(max_length=getattr(m, "max_seq_length", None) or m.max_length, sentence_transformers=sentence_transformers.__version__,
                transformers=transformers.__version__, torch=torch.__version__)
    return m, info


def create_app(model: Any, config: str, info: dict, dispatch: str = "threadpool") -> Any:
    import torch
    from fastapi import FastAPI

    identity = torch.nn.Identity()

    def score(req: TeiRequest) -> list[dict]:
        pairs = [(req.query, t) for t in req.texts]
        kw = {"activation_fn": identity} if req.raw_scores else {}
        if config == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                scores = model.predict(pairs, **kw)
        else:
            scores = model.predict(pairs, **kw)
        order = sorted(range(len(pairs)), key=lambda i: -float(scores[i]))
        return [{"index": i, "score": float(scores[i]), **({"text": req.texts[i]} if req.return_text else {})}
                for i in order]

    app = FastAPI(title=f"peer: sentence-transformers CrossEncoder ({config})")

    if dispatch == "serial":
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="peer-predict")

        @app.post("/rerank")
        async def rerank_serial(req: TeiRequest) -> list[dict]:
            return await asyncio.get_running_loop().run_in_executor(pool, score, req)
    else:
        @app.post("/rerank")
        def rerank(req: TeiRequest) -> list[dict]:
            return score(req)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", **info, "dispatch": dispatch}

    return app


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a cross-encoder directory (or hub id for default/bf16)")
    ap.add_argument("--config", choices=CONFIGS, default="default")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8101)
    ap.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime intra-op threads")
    ap.add_argument("--max-length", type=int, default=None, help="CrossEncoder max_length (default: the model's)")
    ap.add_argument("--dispatch", choices=("threadpool", "serial"), default="threadpool")
    ap.add_argument("--int8-config", default="auto", choices=("auto", "avx2", "avx512", "avx512_vnni", "arm64"))
    ap.add_argument("--onnx-cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "rsbench-peer-onnx")
    args = ap.parse_args(argv)

    import uvicorn

    t = time.time()
    model, info = load(args.model, args.config, args.threads, args.max_length, args.onnx_cache,
                       args.int8_config)
    model.predict([("warm up", "warm up")])  # first call outside any measurement
    info["load_s"] = round(time.time() - t, 1)
    print(f"peer ready: {info}", file=sys.stderr, flush=True)
    app = create_app(model, args.config, info, args.dispatch)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, workers=1)


if __name__ == "__main__":
    main()
