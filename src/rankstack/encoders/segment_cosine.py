"""A cross-encoder whose score starts as its bi-encoder's: ``scale * cos(mean(query tokens), mean(doc tokens))``.

The pair is encoded as one sequence, ``[CLS] query [SEP] ([CLS]) doc [SEP]``; the score is the cosine
of the mean-pooled output of each segment (told apart by ``token_type_ids``), times a learned scale,
plus a learned bias. Started from a sentence-transformers bi-encoder (mean pooling, cosine), it
inherits that model's notion of similarity instead of a random classification head.

``separate_layers`` = k makes the lowest k layers attend within their own segment only and the layers
above attend across the pair: PreTTR's split encoder (MacAvaney et al., SIGIR 2020, "Efficient
document re-ranking for transformers by precomputing term representations"), here with the
bi-encoder's pooled-cosine head instead of a ``[CLS]`` classifier. With the bi-encoder layout (the
document segment opened by its own ``[CLS]``, positions from 0, token type 0) and k equal to the layer
count the score *is* the bi-encoder's cosine; measured zero-shot on TREC DL 2019 (BM25 top-100,
nDCG@10, all-MiniLM-L6-v2): k = 6 0.6459, k = 5 0.5984, k = 4 0.5854, all layers joint 0.52, a new
``[CLS]`` head at chance. Training then teaches the joint layers the interactions.

BERT-family backbones only (they need ``token_type_ids``). The file depends only on ``torch`` and
``transformers``: a saved model directory carries a copy (``auto_map``), so
``sentence_transformers.CrossEncoder(path, trust_remote_code=True)`` and
``AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)`` load it without
rankstack; importing :mod:`rankstack.encoders.runtime` registers the classes so rankstack loads it
without the flag.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from rankstack.errors import ConfigError


class SegmentCosineConfig(BertConfig):
    """``cos_scale``: initial scale of the cosine (learned). ``separate_layers``: how many of the lowest
    layers attend within their own segment only (0: all joint; the layer count: a bi-encoder).
    ``segment_cls``: insert a ``[CLS]`` (``segment_cls_token_id``) at the start of the document segment,
    as the bi-encoder saw when it encoded documents alone. ``restart_positions``: number the document
    segment's positions from 0. ``segment_type_ids``: feed ``token_type_ids`` to the embeddings (a
    sentence-transformers bi-encoder was trained with type 0 only, so the default feeds zeros).
    ``cross_gate``: when set, the joint layers add a learned bias (one per layer and head, starting at
    this value) to every attention logit between a query and a document token; a start such as -8
    leaves the pair almost apart (the bi-encoder's scores, with the layout above) and training opens
    the gate as far as the judgments ask (``None``: no gate, plain joint attention)."""

    model_type = "rankstack-segment-cosine"

    def __init__(self, cos_scale: float = 20.0, separate_layers: int = 0, segment_cls: bool = False,
                 segment_cls_token_id: int | None = None, restart_positions: bool = False,
                 segment_type_ids: bool = True, cross_gate: float | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("num_labels", 1)
        super().__init__(**kwargs)
        self.cos_scale = float(cos_scale)
        self.separate_layers = int(separate_layers)
        self.segment_cls = bool(segment_cls)
        self.segment_cls_token_id = segment_cls_token_id
        self.restart_positions = bool(restart_positions)
        self.segment_type_ids = bool(segment_type_ids)
        self.cross_gate = None if cross_gate is None else float(cross_gate)


class CosineScoreHead(nn.Module):
    """``scale * cos + bias``: the two learned numbers (named ``score.*``, so a head learning rate
    applies to them)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, cos: torch.Tensor) -> torch.Tensor:
        return (self.scale * cos + self.bias).unsqueeze(-1)


class CrossGate(nn.Module):
    """The learned bias on query-document attention logits, one per joint layer and head (named
    ``cross_gate.bias``: a head learning rate applies to it, weight decay does not)."""

    def __init__(self, layers: int, heads: int, start: float) -> None:
        super().__init__()
        self.start = float(start)
        self.bias = nn.Parameter(torch.full((layers, heads), self.start))


class BertForSegmentCosine(BertPreTrainedModel):
    config_class = SegmentCosineConfig

    def __init__(self, config: SegmentCosineConfig) -> None:
        super().__init__(config)
        if int(getattr(config, "num_labels", 1)) != 1:
            raise ConfigError(f"BertForSegmentCosine gives one score per pair; config.num_labels={config.num_labels}")
        self.bert = BertModel(config, add_pooling_layer=False)
        self.score = CosineScoreHead(getattr(config, "cos_scale", 20.0))
        gate = getattr(config, "cross_gate", None)
        joint = config.num_hidden_layers - int(getattr(config, "separate_layers", 0))
        self.cross_gate = CrossGate(joint, config.num_attention_heads, gate) if gate is not None and joint > 0 else None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, CosineScoreHead):
            with torch.no_grad():
                module.scale.fill_(float(getattr(self.config, "cos_scale", 20.0)))
                module.bias.zero_()
            return
        if isinstance(module, CrossGate):
            with torch.no_grad():
                module.bias.fill_(module.start)
            return
        super()._init_weights(module)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **kwargs: Any) -> SequenceClassifierOutput:
        if token_type_ids is None or input_ids is None:
            raise ConfigError("BertForSegmentCosine needs input_ids and token_type_ids (0 = query segment, "
                             "1 = document segment), as a BERT tokenizer gives for text pairs")
        cfg = self.config
        seg = token_type_ids.long()
        am = torch.ones_like(seg) if attention_mask is None else attention_mask.long()
        ids = input_ids
        if cfg.segment_cls:
            if cfg.segment_cls_token_id is None:
                raise ConfigError("config.segment_cls needs config.segment_cls_token_id")
            ids, am, seg = _insert_at_segment_start(ids, am, seg, int(cfg.segment_cls_token_id))
        b, n = ids.shape
        pos = torch.arange(n, device=ids.device).unsqueeze(0).expand(b, n)
        if cfg.restart_positions:
            pos = torch.where(seg == 1, pos - _segment_start(seg).unsqueeze(1), pos)
        h = self.bert.embeddings(input_ids=ids, position_ids=pos,
                                 token_type_ids=seg if cfg.segment_type_ids else torch.zeros_like(seg))
        keys = (am > 0).unsqueeze(1).expand(b, n, n)
        neg = torch.finfo(h.dtype).min

        def additive(keep: torch.Tensor) -> torch.Tensor:
            return torch.zeros((b, 1, n, n), dtype=h.dtype, device=h.device).masked_fill(~keep.unsqueeze(1), neg)

        n_layers = len(self.bert.encoder.layer)
        same = seg.unsqueeze(2) == seg.unsqueeze(1) if cfg.separate_layers > 0 or self.cross_gate is not None else None
        split = additive(keys & same) if cfg.separate_layers > 0 else None
        joint = additive(keys) if cfg.separate_layers < n_layers else None
        cross = (keys & ~same).unsqueeze(1).to(h.dtype) if self.cross_gate is not None else None
        for i, layer in enumerate(self.bert.encoder.layer):
            if i < cfg.separate_layers:
                mask = split
            elif cross is not None:  # per-head bias on query-document logits: [b, heads, n, n]
                gate = self.cross_gate.bias[i - cfg.separate_layers].to(h.dtype).view(1, -1, 1, 1)
                mask = joint + cross * gate
            else:
                mask = joint
            out = layer(h, attention_mask=mask)
            h = out[0] if isinstance(out, tuple) else out
        on = am.to(h.dtype).unsqueeze(-1)
        doc = seg.to(h.dtype).unsqueeze(-1)
        qm, dm = on * (1 - doc), on * doc
        qv = (h * qm).sum(1) / qm.sum(1).clamp(min=1.0)
        dv = (h * dm).sum(1) / dm.sum(1).clamp(min=1.0)
        logits = self.score(nn.functional.cosine_similarity(qv.float(), dv.float(), dim=-1)).to(h.dtype)
        loss = None
        if labels is not None:
            loss = nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float())
        return SequenceClassifierOutput(loss=loss, logits=logits)


def _segment_start(seg: torch.Tensor) -> torch.Tensor:
    """Index of each row's first segment-1 token (the row length when it has none)."""
    has = (seg == 1).any(1)
    return torch.where(has, (seg == 1).int().argmax(1), torch.full_like(has, seg.shape[1], dtype=torch.long))


def _insert_at_segment_start(ids: torch.Tensor, am: torch.Tensor, seg: torch.Tensor,
                             token: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One column longer: ``token`` inserted before each row's first segment-1 token (rows without a
    second segment get a masked pad at the end)."""
    b, n = ids.shape
    start = _segment_start(seg).unsqueeze(1)
    j = torch.arange(n + 1, device=ids.device).unsqueeze(0).expand(b, n + 1)
    src = torch.where(j < start, j, j - 1).clamp(0, n - 1)
    here = j == start
    has = (start < n).expand(b, n + 1)
    ids2 = torch.where(here, torch.full_like(src, token), ids.gather(1, src))
    am2 = torch.where(here, has.long(), am.gather(1, src))
    seg2 = torch.where(here, has.long(), seg.gather(1, src))
    return ids2, am2, seg2


_REGISTERED = False


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModelForSequenceClassification`` know the classes (idempotent), and
    mark them so ``save_pretrained`` writes ``auto_map`` plus a copy of this file."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        AutoConfig.register(SegmentCosineConfig.model_type, SegmentCosineConfig)
        AutoModelForSequenceClassification.register(SegmentCosineConfig, BertForSegmentCosine)
    except ValueError:  # registered by another copy of this file (a model directory's)
        pass
    SegmentCosineConfig.register_for_auto_class()
    BertForSegmentCosine.register_for_auto_class("AutoModelForSequenceClassification")
    _REGISTERED = True


def from_bi_encoder(path: str, cos_scale: float = 20.0, separate_layers: int = 0,
                    bi_encoder_layout: bool = False, cross_gate: float | None = None) -> BertForSegmentCosine:
    """A segment-cosine cross-encoder started from a BERT-family (sentence-transformers) directory.

    ``bi_encoder_layout``: lay the pair out as the bi-encoder saw each text (a ``[CLS]`` opening the
    document segment, its positions from 0, token type 0 throughout); with ``separate_layers`` equal to
    the layer count the scores are then the bi-encoder's own cosine (times ``cos_scale``).
    ``cross_gate``: see :class:`SegmentCosineConfig`."""
    from transformers import AutoTokenizer

    register()
    base = BertConfig.from_pretrained(path)
    if base.model_type not in ("bert", SegmentCosineConfig.model_type):
        raise ConfigError(f"{path}/config.json: model_type {base.model_type!r}; the segment-cosine head "
                         "needs a BERT-family backbone (token_type_ids)")
    if not 0 <= separate_layers <= base.num_hidden_layers:
        raise ConfigError(f"separate_layers={separate_layers}: {path} has {base.num_hidden_layers} layers")
    skip = {"model_type", "architectures", "id2label", "label2id", "num_labels", "cos_scale", "separate_layers",
            "segment_cls", "segment_cls_token_id", "restart_positions", "segment_type_ids", "cross_gate"}
    if base.model_type == SegmentCosineConfig.model_type:  # continue training a segment-cosine model
        own = SegmentCosineConfig.from_pretrained(path)
        if (own.separate_layers != separate_layers or own.segment_cls != bi_encoder_layout
                or (own.cross_gate is None) != (cross_gate is None)):
            raise ConfigError(f"{path}/config.json: a segment-cosine model with separate_layers="
                             f"{own.separate_layers}, segment_cls={own.segment_cls}, cross_gate={own.cross_gate}; "
                             f"asked for separate_layers={separate_layers}, bi_encoder_layout={bi_encoder_layout}, "
                             f"cross_gate={cross_gate}")
        return BertForSegmentCosine.from_pretrained(path, config=own)
    layout: dict[str, Any] = {}
    if bi_encoder_layout:
        layout = dict(segment_cls=True, segment_cls_token_id=AutoTokenizer.from_pretrained(path).cls_token_id,
                      restart_positions=True, segment_type_ids=False)
    cfg = SegmentCosineConfig(cos_scale=cos_scale, separate_layers=separate_layers, cross_gate=cross_gate, **layout,
                              **{k: v for k, v in base.to_dict().items() if k not in skip})
    cfg.architectures = ["BertForSegmentCosine"]
    return BertForSegmentCosine.from_pretrained(path, config=cfg)
