"""Score SciFact test's BM25 top-100 with a cross-encoder directory through sentence-transformers'
``CrossEncoder.predict`` (fp32) -- the peer library's own path -- and compare with rankstack's run.

This checks that a model trained by ``rankstack.train`` is a standard directory the peer loads, and that
the nDCG@10 rankstack reports (torch bf16 or ONNX int8 reranking) is not an artefact of its runtime::

    OMP_NUM_THREADS=1 python benchmarks/eval_scifact_st_crossencoder.py MODEL_DIR \\
        --bm25 /tmp/rs/ce/bm25.top100.trec --rankstack-run MODEL_DIR/../test.ce.top100.torch.trec

Prints one JSON line: nDCG@10 of the peer's run, of rankstack's run, their Pearson and Kendall
correlation over all pairs, and the peer's pairs/s. Writes the peer's run next to the model.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--bm25", required=True, help="BM25 run of the test queries (TREC), e.g. the training script's")
    ap.add_argument("--rankstack-run", default="", help="rankstack's run of the same model, to compare with")
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--max-length", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--data", default="data/scifact")
    a = ap.parse_args()

    import numpy as np
    import torch
    from scipy import stats
    from sentence_transformers import CrossEncoder

    from rankstack.data.formats import read_docs, read_qrels, read_queries, read_run, write_run
    from rankstack.data.records import Run, ranked_items
    from rankstack.measures import evaluate

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    corpus = {d.id: d for d in read_docs(f"{a.data}/corpus.jsonl")}
    queries = {q.id: q.text for q in read_queries(f"{a.data}/queries.jsonl")}
    qrels = read_qrels(f"{a.data}/qrels/test.tsv")
    bm25 = read_run(a.bm25)
    pairs = [(q, d) for q in sorted(qrels) for d, _ in ranked_items(bm25[q])[: a.depth]]
    model = CrossEncoder(a.model, max_length=a.max_length, device="cpu")
    t = time.time()
    scores = model.predict([(queries[q], corpus[d].contents) for q, d in pairs], batch_size=a.batch_size,
                           activation_fn=torch.nn.Identity(), show_progress_bar=True)
    secs = time.time() - t
    out: dict[str, dict[str, float]] = {}
    for (q, d), s in zip(pairs, scores):
        out.setdefault(q, {})[d] = float(s)
    run = Run._wrap(out, name="st", stats={})
    path = os.path.join(os.path.dirname(a.model.rstrip("/")), f"test.st-crossencoder.top{a.depth}.trec")
    write_run(run, path, tag="st")
    res = {"model": a.model, "pairs": len(pairs), "pairs_per_s": round(len(pairs) / secs, 1),
           "st_ndcg10": round(float(evaluate(qrels, run, ["nDCG@10"])["nDCG@10"]), 4), "st_run": path}
    if a.rankstack_run:
        ours = read_run(a.rankstack_run)
        x = np.array([out[q][d] for q, d in pairs])
        y = np.array([ours[q][d] for q, d in pairs])
        # rankstack's scores of exactly the pairs the peer scored (the same top-depth candidates)
        same = Run._wrap({q: {d: ours[q][d] for d in out[q]} for q in out}, name="rankstack", stats={})
        res.update(rankstack_ndcg10=round(float(evaluate(qrels, same, ["nDCG@10"])["nDCG@10"]), 4),
                   pearson=round(float(np.corrcoef(x, y)[0, 1]), 5),
                   mean_kendall_tau=round(float(np.nanmean([stats.kendalltau([out[q][d] for d in out[q]],
                                                                          [ours[q][d] for d in out[q]])[0]
                                                         for q in out])), 4))
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
