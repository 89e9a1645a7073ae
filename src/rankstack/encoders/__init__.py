"""Transformer encoders for ranking: bi-encoders (dense embeddings) and cross-encoders (pair scores).

The runtime (:mod:`rankstack.encoders.runtime`) loads sentence-transformers or plain Hugging Face
model directories, reads their pooling / normalisation / length settings, sorts inputs by length and
packs them into token-budget batches, and runs them with PyTorch (CPU, or bf16 on CUDA) or ONNX
Runtime (fp32 or dynamic int8; exported on first use to a cache directory, see
:mod:`rankstack.encoders.onnx`).

Heavy dependencies (torch, transformers, onnxruntime) are imported lazily, when a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BiEncoder", "CrossEncoderModel", "default_model_path", "load_encoder_config"]

if TYPE_CHECKING:  # pragma: no cover
    from rankstack.encoders.runtime import (
        BiEncoder,
        CrossEncoderModel,
        default_model_path,
        load_encoder_config,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rankstack.encoders import runtime

        return getattr(runtime, name)
    raise AttributeError(name)
