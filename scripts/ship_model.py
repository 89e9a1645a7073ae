"""Turn a trained model directory into a shipped one: ``src/rankstack/catalog/<short>/`` with fp16
safetensors, the tokenizer and sentence-transformers files, ``card.json`` and a ``README.md`` model card.

    python scripts/ship_model.py TRAINED_DIR ce-minilm-scifact --kind cross-encoder --meta meta.json
    python scripts/ship_model.py TRAINED_DIR ce-minilm-scifact --figures figures.json   # update figures only

``--meta`` is a JSON object with ``base``, ``data``, ``recipe``, ``retrain`` (the command that retrains
it), ``license``; ``--figures`` a JSON list of ``{collection, measure, value, setting, command}``
measured with the shipped (fp16) directory.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "src" / "rankstack" / "catalog"
KEEP = {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
        "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "rankstack_train.json"}


def convert(src: Path, dst: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name in KEEP:
            shutil.copy2(f, dst / f.name)
    for sub in ("1_Pooling", "2_Normalize"):
        if (src / sub).is_dir():
            shutil.copytree(src / sub, dst / sub, dirs_exist_ok=True)
    if (src / "model.safetensors").exists():
        sd = load_file(str(src / "model.safetensors"))
    else:
        sd = torch.load(src / "pytorch_model.bin", map_location="cpu")
    sd = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    save_file(sd, str(dst / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((dst / "config.json").read_text())
    cfg.pop("torch_dtype", None)
    cfg["dtype"] = "float32"  # stored in fp16 to halve the size; computed in fp32 (or bf16 / int8 on request)
    (dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def card_md(card: dict) -> str:
    rows = "\n".join(f"| {f['collection']} | {f['measure']} | **{f['value']:.4f}** | {f['setting']} | `{f['command']}` |"
                     for f in card.get("figures", []))
    return f"""---
library_name: sentence-transformers
license: {card.get('license', 'apache-2.0')}
base_model: {card.get('base')}
tags: [rankstack, {card['kind']}, information-retrieval]
---

# {card['name']}

A **{card['kind']}** trained by rankstack. Load it by name anywhere rankstack takes a model
(`--model {card['name']}`, `model = "{card['name']}"` in an experiment, `rankstack.rank(q, docs,
model="{card['name']}")`), or as a plain directory with sentence-transformers
(`{'CrossEncoder' if card['kind'] == 'cross-encoder' else 'SentenceTransformer'}("<this directory>")`).

- **Base model**: {card.get('base')}
- **Training data**: {card.get('data')}
- **Recipe**: {card.get('recipe')}
- **Weights**: fp16 safetensors ({card.get('dtype', 'float16')} storage, computed in fp32 unless asked otherwise)

## Measured figures (with this directory, fp16 weights)

| collection | measure | value | setting | command |
| --- | --- | --- | --- | --- |
{rows}

## Retrain it

```bash
{card.get('retrain')}
```

## Publish it to a hub

No model hub is reachable from the machines that built it, so the weights ship inside the rankstack
package. To publish: `huggingface-cli upload <org>/{card['name'].split('/')[-1]} {'{this directory}'}` (or
`SentenceTransformer(dir).push_to_hub(...)`); the directory is already a complete model repository with
this card as its `README.md`.
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src", type=Path)
    ap.add_argument("short")
    ap.add_argument("--kind", default=None)
    ap.add_argument("--meta", type=Path, default=None)
    ap.add_argument("--figures", type=Path, default=None)
    a = ap.parse_args()
    dst = CATALOG / a.short
    card_path = dst / "card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {"name": "rankstack/" + a.short}
    if a.kind:
        card["kind"] = a.kind
    if a.meta:
        card.update(json.loads(a.meta.read_text()))
    if a.figures:
        card["figures"] = json.loads(a.figures.read_text())
    if a.src.resolve() != dst.resolve():
        convert(a.src, dst)
    card.setdefault("dtype", "float16")
    card["files"] = {str(f.relative_to(dst)): f.stat().st_size for f in sorted(dst.rglob("*"))
                     if f.is_file() and f.name not in ("card.json", "README.md")}
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    (dst / "README.md").write_text(card_md(card))
    print(dst, sum(f.stat().st_size for f in dst.rglob("*") if f.is_file()) / 1e6, "MB")


if __name__ == "__main__":
    main()
