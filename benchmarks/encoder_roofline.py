"""GEMM roofline of this CPU, and the encoders' speed as a fraction of it (issue 18, "Show").

    HF_HUB_OFFLINE=1 python benchmarks/encoder_roofline.py                      # everything
    HF_HUB_OFFLINE=1 python benchmarks/encoder_roofline.py --parts gemm
    HF_HUB_OFFLINE=1 python benchmarks/encoder_roofline.py --parts cross --only rs-onnx-int8,st-bf16 --n 200

1. GEMM roofline, 1 thread (``--threads``) on one pinned core (``--cpu``), best of 5 timed loops of
   >= 1 s each: torch.matmul 2048 x 2048 x 2048 in fp32 and bf16, int8 through ``torch._int_mm``
   (s8 x s8 -> s32) and ONNX Runtime's ``MatMulInteger`` (u8 x s8 -> s32, what a dynamically
   quantised model runs); the same at the encoder's own shape (M=2048 tokens, K=384, N=1536: the
   feed-forward matmul of MiniLM-L6).
2. Cross-encoder: 2,000 pairs (100 SciFact test claims x their BM25 top-20, the request bodies of
   benchmarks/serve_load.py), the same model directory as that benchmark, max_length 192 (the
   shipped cross-encoder's recipe; ``--max-length``); pairs/s of
   rankstack's ``CrossEncoderModel.predict`` (torch fp32, torch ``dtype="bfloat16"``, ONNX fp32,
   ONNX int8) and sentence-transformers' ``CrossEncoder.predict`` (defaults fp32, inside
   ``torch.autocast("cpu", torch.bfloat16)``, ``backend="onnx"``).
3. Bi-encoder: the first 2,000 SciFact documents (title + text), all-MiniLM-L6-v2 (256 tokens);
   texts/s of rankstack's ``BiEncoder.encode`` (same four backends) and ``SentenceTransformer.encode``
   (same three configurations).

Every configuration runs in a fresh process pinned to ``--cpu`` with 1 thread (torch
``set_num_threads``, ONNX Runtime ``intra_op_num_threads``; OMP/MKL_NUM_THREADS=1), loads and warms
up (4 inputs; ONNX export / quantisation happens there, outside the timing), times 8 more, then
scores all inputs once, timed -- unless the 8 say that would take over ``--budget`` seconds (a slow
path: bf16 on a CPU without AVX512-BF16/AMX): then the 8 are the measurement, and the table says so. sentence-transformers' ONNX backend needs optimum-onnx, which needs
transformers 4.x: those rows run with ``--peer-site`` ahead on PYTHONPATH (see serve_peer.py).

FLOPs are counted on REAL tokens (no padding): 2 x (weights in the encoder's matmuls: per layer
Q, K, V, O 4 x d^2 and the feed-forward 2 x d x d_ff; embeddings, norms and the head are left out)
per token, plus attention's QK^T and AV, 4 x d x len per token per layer, each sequence on its own
length. That is the work that must be done; padded tokens (what each implementation actually ran,
shown too) are overhead. Fraction of roofline = achieved FLOP/s over the 2048^2 GEMM of the
matching precision (fp32 paths over fp32, bf16 over bf16, int8 over ONNX Runtime's MatMulInteger).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
WORK = Path(os.environ.get("RSBENCH_DIR", "/tmp/rsbench"))

CROSS = ("rs-torch-fp32", "rs-torch-bf16", "rs-onnx-fp32", "rs-onnx-int8", "st-fp32", "st-bf16", "st-onnx",
         "st-onnx-int8")
PRECISION = {"rs-torch-fp32": "fp32", "rs-torch-bf16": "bf16", "rs-onnx-fp32": "fp32", "rs-onnx-int8": "int8",
             "st-fp32": "fp32", "st-bf16": "bf16", "st-onnx": "fp32", "st-onnx-int8": "int8"}


def log(*a: Any) -> None:
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# GEMM
# ----------------------------------------------------------------------------------------------


def _best_rate(fn: Any, flops: float, min_s: float = 1.0, repeats: int = 5) -> float:
    fn()
    fn()
    t = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t, 1e-6)
    iters = max(1, int(min_s / one))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        best = min(best, (time.perf_counter() - t) / iters)
    return flops / best / 1e9


def _ort_matmul_integer(threads: int) -> Any:
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    A = helper.make_tensor_value_info("A", TensorProto.UINT8, ["m", "k"])
    B = helper.make_tensor_value_info("B", TensorProto.INT8, ["k", "n"])
    Y = helper.make_tensor_value_info("Y", TensorProto.INT32, ["m", "n"])
    g = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "mmi", [A, B], [Y])
    mdl = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    mdl.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(mdl.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def make(m: int, k: int, n: int) -> Any:
        au = np.random.randint(0, 255, (m, k), dtype=np.uint8)
        bs = np.random.randint(-128, 127, (k, n), dtype=np.int8)
        return lambda: sess.run(None, {"A": au, "B": bs})

    return make


def gemm(threads: int, slow_s: float = 20.0) -> dict[str, Any]:
    """GFLOP/s of each GEMM kind. A kind whose call at full size would take over ``slow_s`` (a slow,
    non-vectorised path) is measured once on fewer rows (a call of about 2 s) instead, and marked so."""
    import torch

    torch.set_num_threads(threads)

    def make_torch(dtype: Any) -> Any:
        def make(m: int, k: int, n: int) -> Any:
            if dtype == torch.int8:
                a = torch.randint(-128, 127, (m, k), dtype=torch.int8)
                b = torch.randint(-128, 127, (k, n), dtype=torch.int8)
                return lambda: torch._int_mm(a, b)
            a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
            return lambda: torch.matmul(a, b)

        return make

    kinds: dict[str, Any] = {"fp32": make_torch(torch.float32), "bf16": make_torch(torch.bfloat16),
                             "int8 torch._int_mm": make_torch(torch.int8)}
    try:
        kinds["int8 ORT MatMulInteger"] = _ort_matmul_integer(threads)
    except Exception as e:  # noqa: BLE001
        kinds["int8 ORT MatMulInteger"] = f"unavailable: {type(e).__name__}: {e}"
    out: dict[str, Any] = {"threads": threads, "notes": {}}
    for label, (m, k, n) in {"2048^3": (2048, 2048, 2048), "encoder-ffn 2048x384x1536": (2048, 384, 1536)}.items():
        row: dict[str, Any] = {}
        for kname, make in kinds.items():
            if isinstance(make, str):
                row[kname] = make
                continue
            try:
                mp = 16  # probe: a few rows first (a slow path takes minutes at full size)
                probe = make(mp, k, n)
                probe()
                t = time.perf_counter()
                probe()
                per_row = (time.perf_counter() - t) / mp
                if per_row * m > slow_s:
                    ms = max(mp, min(m, int(2.0 / per_row)))
                    small = make(ms, k, n)
                    small()
                    t = time.perf_counter()
                    small()
                    row[kname] = 2.0 * ms * k * n / (time.perf_counter() - t) / 1e9
                    out["notes"][f"{label} {kname}"] = (f"slow path: a full call would take ~{per_row * m:.0f} s; "
                                                        f"measured at M={ms}")
                else:
                    row[kname] = _best_rate(make(m, k, n), 2.0 * m * k * n)
            except Exception as e:  # noqa: BLE001
                row[kname] = f"unavailable: {type(e).__name__}: {e}"
            log(f"  gemm {label} {kname}: {row[kname]}")
        out[label] = {k2: (round(v, 2) if isinstance(v, float) else v) for k2, v in row.items()}
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
        out["cpu_flags"] = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c")))
    except (OSError, StopIteration):
        pass
    out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return out


# ----------------------------------------------------------------------------------------------
# inputs and FLOPs
# ----------------------------------------------------------------------------------------------


def cross_pairs(n: int) -> list[tuple[str, str]]:
    from serve_load import workload

    pairs = [(b["query"], t) for b in workload() for t in b["texts"]]
    return pairs[:n]


def bi_texts(n: int) -> list[str]:
    out = []
    with open(ROOT / "data" / "scifact" / "corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            out.append(f"{d['title']} {d['text']}".strip())
            if len(out) >= n:
                break
    return out


def model_shape(model: str) -> dict[str, int]:
    cfg = json.loads((Path(model) / "config.json").read_text())
    return {"d": int(cfg["hidden_size"]), "ff": int(cfg["intermediate_size"]), "layers": int(cfg["num_hidden_layers"])}


def real_lengths(kind: str, model: str, items: list[Any], max_length: int) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    tok.model_max_length = int(1e12)
    if kind == "cross":
        ids = tok([q for q, _ in items], [d for _, d in items], truncation=False)["input_ids"]
    else:
        ids = tok(list(items), truncation=False)["input_ids"]
    return [min(len(x), max_length) for x in ids]


def flops(lengths: list[int], shape: dict[str, int]) -> float:
    d, ff, L = shape["d"], shape["ff"], shape["layers"]
    per_token = 2.0 * L * (4 * d * d + 2 * d * ff)
    attn = sum(4.0 * d * n * n for n in lengths) * L
    return per_token * sum(lengths) + attn


def st_padded(kind: str, items: list[Any], lengths: list[int], batch: int = 32) -> int:
    """Tokens sentence-transformers runs: sorted by text length (characters, as it sorts), batches of 32
    padded to their longest."""
    key = [-(len(q) + len(d)) for q, d in items] if kind == "cross" else [-len(t) for t in items]
    order = sorted(range(len(items)), key=lambda i: key[i])
    return sum(len(order[i:i + batch]) * max(lengths[j] for j in order[i:i + batch]) for i in range(0, len(order), batch))


# ----------------------------------------------------------------------------------------------
# one configuration (in its own process)
# ----------------------------------------------------------------------------------------------


def one(kind: str, impl: str, model: str, n: int, threads: int, max_length: int | None,
        budget_s: float = 240.0, max_tokens: int | None = None) -> dict[str, Any]:
    """Load, warm up on 4 inputs, time 8 more; then all inputs, timed -- unless the 8 say that would take
    over ``budget_s`` (a slow path such as bf16 without AVX512-BF16): then the 8 are the measurement."""
    import torch

    torch.set_num_threads(threads)
    items: list[Any] = cross_pairs(n) if kind == "cross" else bi_texts(n)
    res: dict[str, Any] = {"kind": kind, "impl": impl, "n_requested": len(items)}
    t_load = time.perf_counter()
    m: Any = None
    if impl.startswith("rs-"):
        from rankstack.encoders.runtime import BiEncoder, CrossEncoderModel

        kw: dict[str, Any] = {"threads": threads, "cache_dir": str(WORK / "rs-onnx-cache")}
        if max_tokens:
            kw["max_tokens"] = max_tokens
        if impl == "rs-torch-bf16":
            kw["dtype"] = "bfloat16"
        if impl.startswith("rs-onnx"):
            kw["backend"] = "onnx"
        if impl == "rs-onnx-int8":
            kw["quantize"] = "int8"
        if max_length:
            kw["max_length"] = max_length
        if kind == "cross":
            m = CrossEncoderModel(model, **kw)
            call = lambda xs: m.predict(xs, warn=False)
            m._load()
            res["max_tokens"] = m.max_tokens
        else:
            m = BiEncoder(model, **kw)
            call = lambda xs: m.encode(xs, warn=False)
            m._load()
            res["max_tokens"] = m.max_tokens
    else:
        import sentence_transformers

        res["sentence_transformers"] = sentence_transformers.__version__
        kw = {"device": "cpu"}
        if impl == "st-onnx-int8" and kind != "cross":
            raise SystemExit("st-onnx-int8 is measured for the cross-encoder only")
        if impl == "st-onnx-int8":
            from serve_peer import load as peer_load

            st, info = peer_load(model, "onnx-int8", threads, max_length or None, WORK / "st-onnx-cache")
            res["peer"] = info
        elif impl == "st-onnx":
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            kw.update(backend="onnx", model_kwargs={"session_options": so})
            from serve_peer import _onnx_dir

            model = str(_onnx_dir(model, WORK / "st-onnx-cache"))
        if impl == "st-onnx-int8":
            plain = lambda xs: st.predict(xs, show_progress_bar=False)
        elif kind == "cross":
            from sentence_transformers import CrossEncoder

            if max_length:
                kw["max_length"] = max_length
            st = CrossEncoder(model, **kw)
            plain = lambda xs: st.predict(xs, show_progress_bar=False)
        else:
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(model, **kw)
            if max_length:
                st.max_seq_length = max_length
            plain = lambda xs: st.encode(xs, show_progress_bar=False)
        if impl == "st-bf16":
            def call(xs: Any) -> Any:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return plain(xs)
        else:
            call = plain
        res["max_length"] = int(getattr(st, "max_seq_length", None) or getattr(st, "max_length", 0))

    def reset() -> None:
        if m is not None:
            m.tokens = m.real_tokens = 0

    call(items[:4])  # load (ONNX export / quantisation) and warm up
    res["load_s"] = round(time.perf_counter() - t_load, 1)
    reset()
    t = time.perf_counter()
    call(items[4:12])
    probe_s = time.perf_counter() - t
    est = probe_s / 8 * len(items)
    res["estimated_full_s"] = round(est, 1)
    if est > budget_s:
        res.update(offset=4, n=8, seconds=probe_s, cut=True)
    else:
        reset()
        t = time.perf_counter()
        call(items)
        res.update(offset=0, n=len(items), seconds=time.perf_counter() - t)
    if m is not None:
        res["padded_tokens"], res["real_tokens_runtime"] = int(m.tokens), int(m.real_tokens)
        res["max_length"] = m.max_length
    res["per_s"] = res["n"] / res["seconds"]
    return res


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------


def run_one(kind: str, impl: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "RAYON_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    if impl in ("st-onnx", "st-onnx-int8"):
        if not (Path(args.peer_site) / "optimum").is_dir():
            return {"kind": kind, "impl": impl, "error": f"no optimum-onnx under --peer-site {args.peer_site}"}
        env["PYTHONPATH"] = args.peer_site
    cmd = ["taskset", "-c", str(args.cpu), sys.executable, __file__, "_one", "--kind", kind, "--impl", impl,
           "--model", model, "--n", str(args.n), "--threads", str(args.threads), "--budget", str(args.budget)]
    cmd += ["--max-length", str(args.max_length if kind == "cross" else 0)]  # bi: the model's own (256)
    if args.max_tokens:
        cmd += ["--max-tokens", str(args.max_tokens)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [x for x in p.stdout.splitlines() if x.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"kind": kind, "impl": impl, "error": (p.stderr or p.stdout)[-1500:]}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", nargs="?", default="all", choices=("all", "_one"))
    ap.add_argument("--parts", default="gemm,cross,bi")
    ap.add_argument("--only", default=None, help="comma-separated configurations (rs-onnx-int8, st-bf16, ...)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cpu", type=int, default=1)
    ap.add_argument("--model", default=None, help="cross-encoder directory (default: as benchmarks/serve_load.py)")
    ap.add_argument("--bi-model", default=None, help="bi-encoder directory (default: all-MiniLM-L6-v2)")
    ap.add_argument("--max-length", type=int, default=192,
                    help="cross-encoder max_length (192: the shipped model's recipe, as serve_load.py; 0: the model's own)")
    ap.add_argument("--peer-site", default="/tmp/peer-site")
    ap.add_argument("--budget", type=float, default=240.0,
                    help="seconds a configuration's timed run may take; slower ones score only the first inputs")
    ap.add_argument("--roofline-json", default=None, help="take the GEMM roofline from this earlier report")
    ap.add_argument("--max-tokens", type=int, default=None,
                    help="rankstack's token budget a batch (default: the runtime's default for the backend)")
    ap.add_argument("--kind", default="cross")
    ap.add_argument("--impl", default="rs-onnx-int8")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    if args.cmd == "_one":
        print(json.dumps(one(args.kind, args.impl, args.model, args.n, args.threads, args.max_length, args.budget,
                             args.max_tokens)))
        return

    from serve_load import default_model

    from rankstack.encoders.runtime import default_model_path

    parts = args.parts.split(",")
    only = set(args.only.split(",")) if args.only else None
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                              "load_before": os.getloadavg(), "cpu": args.cpu, "threads": args.threads, "n": args.n}
    if "gemm" in parts:
        os.sched_setaffinity(0, {args.cpu})
        report["gemm"] = gemm(args.threads)
        log("gemm", json.dumps(report["gemm"]))
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    if "gemm" not in report and args.roofline_json:  # a roofline measured by an earlier run
        report["gemm"] = json.loads(Path(args.roofline_json).read_text())["gemm"]
        report["gemm_from"] = str(args.roofline_json)
    peak = (report.get("gemm") or {}).get("2048^3") or {}
    roof = {"fp32": peak.get("fp32"), "bf16": peak.get("bf16"), "int8": peak.get("int8 ORT MatMulInteger")}
    for kind in ("cross", "bi"):
        if kind not in parts:
            continue
        model = (args.model or default_model()) if kind == "cross" else (args.bi_model or default_model_path())
        shape = model_shape(model)
        rows = []
        for impl in CROSS:
            if only and impl not in only:
                continue
            log(f"{kind} {impl} ...")
            r = run_one(kind, impl, model, args)
            if "error" not in r:
                items = (cross_pairs(args.n) if kind == "cross" else bi_texts(args.n))[r["offset"]:r["offset"] + r["n"]]
                lens = real_lengths(kind, model, items, int(r["max_length"]))
                fl = flops(lens, shape)
                r["real_tokens"] = sum(lens)
                if impl.startswith("st-"):
                    r["padded_tokens"] = st_padded(kind, items, lens)
                r["gflop"] = round(fl / 1e9, 1)
                r["gflops_per_s"] = round(fl / r["seconds"] / 1e9, 2)
                rf = roof.get(PRECISION[impl])
                if isinstance(rf, (int, float)) and rf:
                    r["roofline_fraction"] = round(fl / r["seconds"] / 1e9 / rf, 3)
                log(f"  {r['per_s']:.1f}/s, {r['gflops_per_s']} GFLOP/s, {r.get('roofline_fraction')} of "
                    f"{PRECISION[impl]} roofline; padded/real tokens {r['padded_tokens']}/{r['real_tokens']}")
            else:
                log(f"  error: {r['error'][-400:]}")
            rows.append(r)
        base = next((r["per_s"] for r in rows if r["impl"] == "st-fp32" and "per_s" in r), None)
        best_st = max((r["per_s"] for r in rows if r["impl"].startswith("st-") and "per_s" in r), default=None)
        for r in rows:
            if "per_s" in r:
                r["x_st_fp32"] = round(r["per_s"] / base, 2) if base else None
                r["x_st_best"] = round(r["per_s"] / best_st, 2) if best_st else None
        report[kind] = {"model": model, "shape": shape, "rows": rows}
    report["load_after"] = os.getloadavg()
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    out = args.out or WORK / f"roofline-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(markdown(report))
    print(f"\nreport: {out}")


def markdown(report: dict[str, Any]) -> str:
    lines = []
    if "gemm" in report:
        g = report["gemm"]
        lines += [f"GEMM roofline, {g['threads']} thread(s), GFLOP/s:", "",
                  "| shape | fp32 | bf16 | int8 torch._int_mm | int8 ORT MatMulInteger |", "| --- | ---: | ---: | ---: | ---: |"]
        for shape in ("2048^3", "encoder-ffn 2048x384x1536"):
            r = g[shape]
            lines.append(f"| {shape} | {r['fp32']} | {r['bf16']} | {r['int8 torch._int_mm']} | {r['int8 ORT MatMulInteger']} |")
        lines.append("")
    for kind, unit in (("cross", "pairs/s"), ("bi", "texts/s")):
        if kind not in report:
            continue
        lines += [f"{kind}: {report[kind]['model']}", "",
                  f"| configuration | {unit} | x ST fp32 | x best ST | GFLOP/s (real tokens) | fraction of roofline | "
                  "padded / real tokens | max_length |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in report[kind]["rows"]:
            if "per_s" not in r:
                lines.append(f"| {r['impl']} | error | | | | | | |")
                continue
            frac = r.get("roofline_fraction")
            prec = PRECISION[r["impl"]]
            name = r["impl"] + (f" (batches of {r['max_tokens']} tokens)" if r.get("max_tokens") else "")
            lines.append(f"| {name} | {r['per_s']:.1f} | {r['x_st_fp32']} | {r['x_st_best']} | {r['gflops_per_s']} | "
                         f"{'' if frac is None else f'{frac:.0%} of {prec}'} | "
                         f"{r['padded_tokens']} / {r['real_tokens']} | {r['max_length']} |"
                         + (f" (only {r['n']} inputs timed: all {r['n_requested']} would take ~{r['estimated_full_s']:.0f} s)"
                            if r.get("cut") else ""))
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
