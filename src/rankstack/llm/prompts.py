"""Prompt templates for LLM rerankers, each with its source.

Passages are cut to ``max_words`` words by the scorers (a documented parameter; the number of cut
passages is reported per query as ``truncated_passages``).
"""

from __future__ import annotations

from collections.abc import Sequence

# Pointwise relevance generation, "Yes"/"No" (Liang et al., HELM, 2022; Qin et al., PRP paper's
# pointwise baseline, NAACL 2024; the score is log p(Yes) - log p(No) of the first answer token).
POINTWISE_YESNO = (
    "Passage: {passage}\n\nQuery: {query}\n\n"
    "Does the passage answer the query? Answer 'Yes' or 'No'."
)

# Query likelihood (UPR: Sachan et al., "Improving Passage Retrieval with Zero-Shot Question
# Generation", EMNLP 2022): score = mean log p(query tokens | passage + instruction). Raw prompt.
QLM_PREFIX = "Passage: {passage}\nPlease write a question based on this passage.\nQuestion:"

# Pairwise ranking prompting (Qin et al., "Large Language Models are Effective Text Rankers with
# Pairwise Ranking Prompting", NAACL 2024), asked in both orders.
PAIRWISE = (
    'Given a query "{query}", which of the following two passages is more relevant to the query?\n\n'
    'Passage A: "{a}"\n\nPassage B: "{b}"\n\nOutput Passage A or Passage B:'
)

# Setwise (Zhuang et al., "A Setwise Approach for Effective and Highly Efficient Zero-shot Ranking
# with Large Language Models", SIGIR 2024).
SETWISE = (
    'Given a query "{query}", which of the following passages is the most relevant one to the query?\n\n'
    "{passages}\n\nOutput only the passage label of the most relevant passage:"
)

# Rank-R1 (Zhuang et al., "Rank-R1: Enhancing Reasoning in LLM-based Document Rerankers via
# Reinforcement Learning", 2025): setwise prompt with a reasoning-then-answer format.
REASONING = (
    'Given the query: "{query}", which of the following documents is most relevant?\n\n{passages}\n\n'
    "After completing the reasoning process, please provide only the label of the most relevant "
    "document to the query, enclosed in square brackets, within the answer tags. For example, if the "
    "third document is the most relevant, the answer should be: <think> reasoning process here "
    "</think> <answer>[3]</answer>."
)

# RankGPT (Sun et al., "Is ChatGPT Good at Search? Investigating Large Language Models as Re-Ranking
# Agents", EMNLP 2023), its single-turn form (as in RankLLM / RankZephyr, Pradeep et al. 2023).
LISTWISE_SYSTEM = (
    "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
)
LISTWISE = (
    "I will provide you with {num} passages, each indicated by a numerical identifier []. "
    "Rank the passages based on their relevance to the search query: {query}.\n\n{passages}\n\n"
    "Search Query: {query}.\nRank the {num} passages above based on their relevance to the search query. "
    "All the passages should be included and listed using identifiers, in descending order of relevance. "
    "The output format should be [] > [], e.g., {example}. Only respond with the ranking results, "
    "do not say any word or explain."
)

# FIRST (Reddy et al., "FIRST: Faster Improved Listwise Reranking with Single Token Decoding",
# EMNLP 2024): the listwise prompt with single-token letter identifiers; only the logits of the first
# generated identifier are read.
FIRST = (
    "I will provide you with {num} passages, each indicated by an alphabetical identifier []. "
    "Rank the passages based on their relevance to the search query: {query}.\n\n{passages}\n\n"
    "Search Query: {query}.\nRank the {num} passages above based on their relevance to the search query. "
    "The output format should be [] > [], e.g., {example}. Only respond with the ranking results."
)

# Iterative elimination (IRanker: Feng et al., "IRanker: Towards Ranking Foundation Model", 2025):
# repeatedly ask for the LEAST relevant candidate and remove it.
ELIMINATE = (
    'Given a query "{query}", which of the following passages is the LEAST relevant to the query?\n\n'
    "{passages}\n\nOutput only the label of the least relevant passage:"
)


def cut_words(text: str, max_words: int) -> tuple[str, bool]:
    """The first ``max_words`` words of ``text`` and whether it was cut."""
    words = text.split()
    if max_words and len(words) > max_words:
        return " ".join(words[:max_words]), True
    return " ".join(words), False


def passage_block(texts: Sequence[str], labels: Sequence[str], style: str) -> str:
    """``[1] text`` lines (listwise) or ``Passage A: "text"`` blocks (setwise)."""
    if style == "bracket":
        return "\n".join(f"[{lab}] {t}" for lab, t in zip(labels, texts))
    return "\n\n".join(f'Passage {lab}: "{t}"' for lab, t in zip(labels, texts))
