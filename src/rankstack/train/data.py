"""Training data for learning to rank: groups ``[positive, negative_1 .. negative_n]`` per query.

Three sources, one item layout (a dict with ``query`` text, ``docs`` texts, ``labels`` floats,
``teacher`` floats or ``None``, ``weights`` floats, ``idx``):

* :meth:`GroupedDataset.from_run`: qrels + corpus + queries + negatives mined from a candidate run
  (:class:`rankstack.train.negatives.NegativeMiner`). One item per (query, relevant document).
  Negatives are read at access time from ``dataset.negatives`` so re-mining (ADORE) takes effect.
* :meth:`GroupedDataset.from_triples`: ``query<TAB>positive<TAB>negative`` text lines (MS MARCO
  ``triples.train.small.tsv``).
* :meth:`GroupedDataset.from_jsonl`: lines ``{"query", "pos": [...], "neg": [...], "pos_scores",
  "neg_scores"}`` (hard negatives with teacher scores, sentence-transformers' msmarco-hard-negatives
  style); the teacher scores feed Margin-MSE / distillation losses.

Two builders make item lists (``GroupedDataset(items)``) from judgments within a candidate run:
:func:`graded_groups` (one group per judged document, against lower-graded judged documents; graded
labels) and :func:`list_groups` (whole candidate lists cut into shuffled groups, with graded labels and
optional teacher scores).

:class:`CrossEncoderCollator` tokenizes a batch of groups into ``Q*L`` (query, doc) pairs and returns
``labels [Q, L]``, ``mask [Q, L]`` (ragged groups are padded and masked) and ``teacher [Q, L]``.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

from rankstack.data.records import Document
from rankstack.errors import ConfigError, NotFoundError
from rankstack.train.negatives import Mined, query_rng

__all__ = [
    "GroupedDataset",
    "CrossEncoderCollator",
    "BiEncoderCollator",
    "read_triples",
    "read_hard_negatives_jsonl",
    "pin_positives",
    "graded_groups",
    "list_groups",
]


def _text(doc: Document | str) -> str:
    return doc.contents if isinstance(doc, Document) else str(doc)


def read_triples(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """``query<TAB>positive<TAB>negative`` lines; a line with another field count is an error naming
    the file and line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise ConfigError(f"{path}:{lineno}: expected 3 tab-separated fields (query, pos, neg), got {len(parts)}")
            out.append((parts[0], parts[1], parts[2]))
    if not out:
        raise ConfigError(f"{path}: no triples")
    return out


def read_hard_negatives_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Lines ``{"query": str, "pos": [str], "neg": [str], "pos_scores"?: [float], "neg_scores"?: [float]}``.
    Score lists, when present, must match their text lists in length."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{lineno}: invalid JSON: {e}") from None
            for key in ("query", "pos", "neg"):
                if key not in obj:
                    raise ConfigError(f"{path}:{lineno}: missing field {key!r}")
            if isinstance(obj["pos"], str):
                obj["pos"] = [obj["pos"]]
            if not obj["pos"]:
                raise ConfigError(f"{path}:{lineno}: field 'pos' is empty")
            for t, s in (("pos", "pos_scores"), ("neg", "neg_scores")):
                if s in obj and len(obj[s]) != len(obj[t]):
                    raise ConfigError(f"{path}:{lineno}: {s} has {len(obj[s])} values for {len(obj[t])} {t} texts")
            out.append(obj)
    if not out:
        raise ConfigError(f"{path}: no records")
    return out


def pin_positives(
    teacher: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    margin: float = 1.0,
    min_grade: int = 1,
) -> dict[str, dict[str, float]]:
    """A teacher that never ranks a judged document below a less relevant one.

    For each query, grades ``>= min_grade`` are visited from the lowest up; a document of grade ``g``
    whose teacher score is below ``margin`` + the best score of every document of a lower grade
    (unjudged documents count as grade 0) is lifted to exactly that. Scores that already respect the
    judgments are unchanged, so the teacher keeps its own order among the negatives (where an unjudged
    relevant document can still score high: a soft false-negative guard) and among documents of one
    grade. Judged documents the teacher did not score are added at their floor. Queries of ``teacher``
    without judgments are copied unchanged. This is the label correction of distillation setups whose
    teacher can be wrong on the training queries (e.g. a BM25 + dense fusion used as the teacher of a
    cross-encoder)."""
    if margin < 0:
        raise ConfigError(f"margin must be >= 0, got {margin}")
    out: dict[str, dict[str, float]] = {}
    for qid, scores in teacher.items():
        t = {d: float(s) for d, s in scores.items()}
        judged = qrels.get(qid, {})
        grades = sorted({g for g in judged.values() if g >= min_grade})
        for g in grades:
            lower = [s for d, s in t.items() if judged.get(d, 0) < g]
            if not lower:
                continue
            floor = max(lower) + margin
            for d, gd in judged.items():
                if gd == g and t.get(d, -math.inf) < floor:
                    t[d] = floor
        out[qid] = t
    return out


def graded_groups(qids: Sequence[str], queries: Mapping[str, str], corpus: Mapping[str, Document | str],
                  qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], n_neg: int,
                  min_grade: int = 1, seed: int = 42) -> list[dict[str, Any]]:
    """Items from judged candidates: for each query of ``qids`` and each of its documents that is judged,
    in ``run`` and in ``corpus``, with grade ``>= min_grade``, one group ``[that document, up to n_neg
    judged documents of a lower grade]`` (drawn with ``random.Random(f"{seed}-{qid}")``) with graded
    labels (negative grades count 0); documents with no lower-graded judged candidate make no group.
    A listwise loss such as ``softmax_ce`` then spreads its target over the grades."""
    items = []
    for q in sorted(qids):
        judged = {d: g for d, g in qrels.get(q, {}).items() if d in run.get(q, {}) and d in corpus}
        rng = random.Random(f"{seed}-{q}")
        for d, g in sorted(judged.items()):
            if g < min_grade:
                continue
            lower = sorted(x for x, gx in judged.items() if gx < g)
            if not lower:
                continue
            negs = rng.sample(lower, min(n_neg, len(lower)))
            items.append(_group(queries[q], corpus, [d, *negs], [float(g)] + [float(max(judged[x], 0)) for x in negs]))
    return items


def _group(query: str, corpus: Mapping[str, Document | str], ids: Sequence[str], labels: list[float],
           teacher: list[float] | None = None) -> dict[str, Any]:
    """One training group: the query, its documents' texts, labels, teacher scores and unit weights."""
    return {"query": query, "docs": [_text(corpus[d]) for d in ids], "labels": labels, "teacher": teacher,
            "weights": [1.0] * len(ids)}


def list_groups(
    qids: Sequence[str],
    queries: Mapping[str, str],
    corpus: Mapping[str, Document | str],
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    group_size: int,
    rounds: int = 1,
    seed: int = 42,
    teacher: Mapping[str, Mapping[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """Listwise items over whole candidate lists: for each query of ``qids`` and each of ``rounds``
    rounds, its ``run`` candidates found in ``corpus`` are shuffled
    (``random.Random(f"{seed}-{qid}-{round}")``) and cut into groups of ``group_size``; labels are the grades (unjudged and negative grades = 0) and,
    with ``teacher`` (``qid -> doc id -> score``, every candidate scored), the teacher scores. Groups
    of one document are dropped, and so are groups without a relevant document unless there is a
    teacher (their labels carry no signal)."""
    if group_size < 1 or rounds < 0:
        raise ConfigError(f"group_size must be >= 1 and rounds >= 0, got {group_size} and {rounds}")
    items = []
    for q in sorted(qids):
        cand = sorted(d for d in run.get(q, {}) if d in corpus)
        judged = qrels.get(q, {})
        for r in range(rounds):
            order = cand[:]
            random.Random(f"{seed}-{q}-{r}").shuffle(order)
            for i in range(0, len(order), group_size):
                g = order[i:i + group_size]
                labels = [float(max(judged.get(d, 0), 0)) for d in g]
                if len(g) < 2 or (teacher is None and max(labels) <= 0):
                    continue
                items.append(_group(queries[q], corpus, g, labels,
                                    [float(teacher[q][d]) for d in g] if teacher is not None else None))
    return items


class GroupedDataset:
    """A map-style dataset (``torch.utils.data.Dataset`` protocol) of ranking groups."""

    def __init__(self, items: list[dict[str, Any]], negatives: dict[str, Mined] | None = None,
                 resolver: Any = None):
        self._items = items
        self.negatives: dict[str, Mined] = negatives if negatives is not None else {}
        self._resolver = resolver  # callable(item) -> full item, for run-based data
        # run-based data: one negatives dict per round (``negatives`` is round 0, which re-mining replaces)
        self.negative_rounds: list[dict[str, Mined]] = [self.negatives]
        self.teacher_missing = 0

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        it = self._items[i]
        if self._resolver is not None:
            it = self._resolver(it)
        return {**it, "idx": i}

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_run(
        cls,
        queries: Mapping[str, str],
        corpus: Mapping[str, Document | str],
        qrels: Mapping[str, Mapping[str, int]],
        negatives: dict[str, Mined] | Sequence[dict[str, Mined]],
        min_grade: int = 1,
        teacher: Mapping[str, Mapping[str, float]] | None = None,
    ) -> GroupedDataset:
        """One item per (query, document with grade >= ``min_grade``), negatives from ``negatives``.
        Queries without text, and judged documents missing from the corpus, are errors.

        ``negatives`` may be a list of rounds (e.g. ``[miner.mine(..., round_=r) for r in range(R)]``):
        each round adds one item per (query, positive) with that round's negatives, so that several
        epochs see fresh negatives while the data stay a fixed, seeded list (a resumed run sees the same
        items). ``teacher`` (``qid -> doc id -> score``, e.g. a fused BM25 + dense run passed through
        :func:`pin_positives`) fills each group's ``teacher`` scores for distillation losses; a
        document the teacher did not score (a random negative) gets the query's lowest teacher score,
        counted in ``teacher_missing``; a query the teacher did not score at all is an error."""
        rounds = [negatives] if isinstance(negatives, dict) else list(negatives)
        if not rounds:
            raise ConfigError("negatives: no rounds given")
        items = []
        for r, negs in enumerate(rounds):
            for qid in sorted(negs):
                if qid not in queries:
                    raise NotFoundError(f"query {qid!r} has negatives but no text in queries")
                if teacher is not None and not teacher.get(qid):
                    raise NotFoundError(f"query {qid!r} has no teacher scores")
                for did, g in sorted(qrels.get(qid, {}).items()):
                    if g >= min_grade:
                        if did not in corpus:
                            raise NotFoundError(f"qrels document {did!r} (query {qid!r}) is not in the corpus")
                        items.append({"qid": qid, "pos": did, "grade": float(g), "round": r})
        floor = {q: min(t.values()) for q, t in teacher.items() if t} if teacher is not None else {}

        def resolve(it: dict[str, Any]) -> dict[str, Any]:
            qid = it["qid"]
            mined = ds.negative_rounds[it["round"]][qid]
            ids = [it["pos"], *mined.doc_ids]
            scores = None
            if teacher is not None:
                t = teacher[qid]
                scores = []
                for d in ids:
                    if d in t:
                        scores.append(float(t[d]))
                    else:
                        ds.teacher_missing += 1
                        scores.append(floor[qid])
            return {
                "query": queries[qid],
                "docs": [_text(corpus[d]) for d in ids],
                "labels": [1.0] + [0.0] * len(mined.doc_ids),
                "teacher": scores,
                "weights": [1.0] + list(mined.weights),
                "qid": qid,
            }

        ds = cls(items, rounds[0], resolve)
        ds.negative_rounds = rounds
        return ds

    @classmethod
    def from_triples(cls, path: str | os.PathLike, group_by_query: bool = False) -> GroupedDataset:
        """Items ``[pos, neg]`` from a triples TSV; ``group_by_query`` merges lines with the same query
        and positive into one group ``[pos, neg_1, ...]``."""
        triples = read_triples(path)
        if not group_by_query:
            items = [{"query": q, "docs": [p, n], "labels": [1.0, 0.0], "teacher": None, "weights": [1.0, 1.0]}
                     for q, p, n in triples]
            return cls(items)
        groups: dict[tuple[str, str], list[str]] = {}
        for q, p, n in triples:
            groups.setdefault((q, p), []).append(n)
        items = [{"query": q, "docs": [p, *ns], "labels": [1.0] + [0.0] * len(ns), "teacher": None,
                  "weights": [1.0] * (1 + len(ns))} for (q, p), ns in groups.items()]
        return cls(items)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, n_neg: int | None = None, seed: int = 0,
                   all_positives: bool = False) -> GroupedDataset:
        """Items ``[pos, neg_1..neg_n]`` from hard-negative JSONL; one item per positive (or only the
        first unless ``all_positives``). ``n_neg`` negatives are drawn deterministically (seeded per
        query) when fewer than available; teacher scores come along when present."""
        recs = read_hard_negatives_jsonl(path)
        items = []
        for r in recs:
            negs = list(range(len(r["neg"])))
            if n_neg is not None and n_neg < len(negs):
                negs = sorted(query_rng(seed, r["query"]).sample(negs, n_neg))
            has_t = "pos_scores" in r and "neg_scores" in r
            positives = range(len(r["pos"])) if all_positives else range(1)
            for pi in positives:
                items.append({
                    "query": r["query"],
                    "docs": [r["pos"][pi]] + [r["neg"][j] for j in negs],
                    "labels": [1.0] + [0.0] * len(negs),
                    "teacher": ([float(r["pos_scores"][pi])] + [float(r["neg_scores"][j]) for j in negs]) if has_t else None,
                    "weights": [1.0] * (1 + len(negs)),
                })
        return cls(items)


def _pad_groups(batch: Sequence[dict[str, Any]]) -> tuple[Any, Any, Any, Any, int]:
    import torch

    q = len(batch)
    width = max(len(b["docs"]) for b in batch)
    labels = torch.zeros(q, width)
    mask = torch.zeros(q, width, dtype=torch.bool)
    weights = torch.zeros(q, width)
    has_t = all(b.get("teacher") is not None for b in batch)
    teacher = torch.zeros(q, width) if has_t else None
    for i, b in enumerate(batch):
        n = len(b["docs"])
        labels[i, :n] = torch.tensor(b["labels"], dtype=torch.float32)
        mask[i, :n] = True
        weights[i, :n] = torch.tensor(b.get("weights") or [1.0] * n, dtype=torch.float32)
        if teacher is not None:
            teacher[i, :n] = torch.tensor(b["teacher"], dtype=torch.float32)
    return labels, mask, weights, teacher, width


class CrossEncoderCollator:
    """Tokenizes groups into (query, document) pairs for a cross-encoder, row-major ``[Q, L]``; padded
    slots of ragged groups get an empty document and ``mask=False``. Warns once when pairs are truncated
    to ``max_length`` (counted in ``n_truncated``). ``augment``: a ``str -> str`` applied to every
    document text before tokenisation (e.g. :class:`rankstack.robust.certify.NoiseAugmenter`, random
    word substitutions for certifiable models); the query is never changed."""

    def __init__(self, tokenizer: Any, max_length: int = 256, augment: Any = None):
        self.tokenizer, self.max_length, self.augment = tokenizer, max_length, augment
        self.n_truncated = 0
        self._warned = False

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        labels, mask, weights, teacher, width = _pad_groups(batch)
        qs, ds = [], []
        for b in batch:
            for j in range(width):
                qs.append(b["query"])
                ds.append(b["docs"][j] if j < len(b["docs"]) else "")
        if self.augment is not None:
            ds = [self.augment(d) if d else d for d in ds]
        enc = self.tokenizer(qs, ds, padding=True, truncation="longest_first", max_length=self.max_length,
                             return_tensors="pt", return_overflowing_tokens=False)
        if "overflow_to_sample_mapping" in enc:  # pragma: no cover - not requested
            enc.pop("overflow_to_sample_mapping")
        n_trunc = int((enc["attention_mask"].sum(1) >= self.max_length).sum())
        if n_trunc:
            self.n_truncated += n_trunc
            if not self._warned:
                import warnings

                warnings.warn(f"CrossEncoderCollator: pairs truncated to max_length={self.max_length} tokens "
                              "(documents are cut; counted in n_truncated)", stacklevel=2)
                self._warned = True
        out = dict(enc)
        out["labels"] = labels
        out["group_mask"] = mask
        out["group_weights"] = weights
        if teacher is not None:
            out["teacher"] = teacher
        out["group_idx"] = torch.tensor([b["idx"] for b in batch])
        return out


class BiEncoderCollator:
    """Tokenizes queries and group documents separately for a sentence-transformers bi-encoder."""

    def __init__(self, tokenize: Any, max_length: int | None = None):
        self.tokenize = tokenize

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        labels, mask, weights, teacher, width = _pad_groups(batch)
        qf = self.tokenize([b["query"] for b in batch])
        docs = [b["docs"][j] if j < len(b["docs"]) else "" for b in batch for j in range(width)]
        df = self.tokenize(docs)
        out: dict[str, Any] = {"query_features": dict(qf), "doc_features": dict(df), "labels": labels,
                               "group_mask": mask, "group_weights": weights,
                               "group_idx": torch.tensor([b["idx"] for b in batch])}
        if teacher is not None:
            out["teacher"] = teacher
        return out
