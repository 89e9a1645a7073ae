"""Registry entries of the LLM rerankers (imported by the registry; the modules load lazily)."""

from __future__ import annotations

from rankstack.stages.registry import register

_HELP = {
    "pointwise": "LLM pointwise yes/no relevance (log p(Yes) - log p(No))",
    "qlm": "LLM query likelihood (UPR): log p(query | passage)",
    "pairwise": "LLM pairwise ranking prompting (PRP), both orders; heapsort/bubble/allpairs",
    "setwise": "LLM setwise: most relevant of k passages; heapsort/bubble",
    "listwise": "LLM listwise (RankGPT) generated permutation; sliding window",
    "first": "FIRST: listwise ranking from the first identifier token's logits; sliding window",
    "eliminate": "LLM iterative elimination (IRanker): drop the least relevant step by step",
    "reasoning": "LLM reasoning setwise (Rank-R1 <think>/<answer> format)",
}

for _name, _help in _HELP.items():
    register(_name, f"rankstack.stages.llm:{_name}", "llm", "reranker", _help)
