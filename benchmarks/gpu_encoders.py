"""GPU encoder benchmark (ready to run on a CUDA machine; also runs on CPU for a smoke test).

    HF_HUB_OFFLINE=1 python benchmarks/gpu_encoders.py --device cuda            # bf16, full SciFact / DL19
    HF_HUB_OFFLINE=1 python benchmarks/gpu_encoders.py --device cpu --limit 200 # smoke test

Prints docs/s (bi-encoder over SciFact documents) and pairs/s (cross-encoder over the DL19 BM25 top-100
pairs) for sentence-transformers (its defaults, fp32, and fp16/bf16 via model_kwargs) and rankstack's
runtime (bf16 on CUDA, SDPA attention, length-sorted token-budget batches), in the same process, with
max |diff| / min cosine against sentence-transformers fp32.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _time(fn, device: str, repeat: int = 2):
    best, out = float("inf"), None
    for _ in range(repeat):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--limit", type=int, default=None, help="documents / pairs (default: all)")
    ap.add_argument("--max-tokens", type=int, default=65536, help="token budget per batch")
    a = ap.parse_args()
    import torch
    from bench_encoders import _dl19, _scifact_texts
    from sentence_transformers import CrossEncoder, SentenceTransformer

    from rankstack.encoders.runtime import BiEncoder, CrossEncoderModel, default_model_path
    from rankstack.testing import random_head_cross_encoder as random_cross_encoder

    dev = a.device
    dtype = "bfloat16" if dev.startswith("cuda") else "float32"
    print(
        f"device {dev} ({torch.cuda.get_device_name(0) if dev.startswith('cuda') else 'cpu'}), rankstack dtype {dtype}"
    )
    texts = _scifact_texts(a.limit)
    st = SentenceTransformer(default_model_path(), device=dev)
    st.encode(texts[:16])
    t_st, ref = _time(lambda: st.encode(texts, batch_size=32), dev)
    print(f"bi-encoder {len(texts)} docs: sentence-transformers fp32 {len(texts) / t_st:.1f} docs/s")
    if dev.startswith("cuda"):
        st16 = SentenceTransformer(
            default_model_path(), device=dev, model_kwargs={"torch_dtype": torch.bfloat16}
        )
        t16, _ = _time(lambda: st16.encode(texts, batch_size=128), dev)
        print(f"  sentence-transformers bf16 bs=128 {len(texts) / t16:.1f} docs/s")
    enc = BiEncoder(device=dev, dtype=dtype, max_tokens=a.max_tokens)
    enc.encode(texts[:16], warn=False)
    t, e = _time(lambda: enc.encode(texts, warn=False), dev)
    cos = (e * ref).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(ref, axis=1)
    print(
        f"  rankstack {dtype} {len(texts) / t:.1f} docs/s x{t_st / t:.2f} vs ST fp32, min cos {cos.min():.5f}"
    )

    qs, run, docs, _ = _dl19()
    pairs = [(q.text, docs[d].contents) for q in qs for d, _ in run.ranked(q.id)][: a.limit]
    path = random_cross_encoder()
    ce = CrossEncoder(path, device=dev)
    ce.predict(pairs[:16])
    t_st, ref = _time(lambda: ce.predict(pairs), dev)
    print(f"cross-encoder {len(pairs)} pairs: CrossEncoder.predict fp32 {len(pairs) / t_st:.1f} pairs/s")
    m = CrossEncoderModel(path, device=dev, dtype=dtype, max_tokens=a.max_tokens)
    m.predict(pairs[:16], warn=False)
    t, s = _time(lambda: m.predict(pairs, warn=False), dev)
    print(
        f"  rankstack {dtype} {len(pairs) / t:.1f} pairs/s x{t_st / t:.2f}, max|diff| {np.abs(s - ref).max():.2e}"
    )


if __name__ == "__main__":
    main()
