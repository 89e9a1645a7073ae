"""The permutation parser: exact cases, then >= 10,000 generated malformed answers."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.llm.parse import parse_permutation, strip_think


@pytest.mark.parametrize(
    "text,n,order,repairs",
    [
        ("[3] > [1] > [2]", 3, [2, 0, 1], []),
        ("3 > 1 > 2", 3, [2, 0, 1], []),
        ("3, 1, 2", 3, [2, 0, 1], []),
        ("[12] > [3] > [10]", 12, [11, 2, 9, 0, 1, 3, 4, 5, 6, 7, 8, 10], ["missing"]),
        ("[2] > [2] > [1]", 3, [1, 0, 2], ["duplicate", "missing"]),
        ("[4] > [9] > [1]", 4, [3, 0, 1, 2], ["out-of-range", "missing"]),
        ("", 3, [0, 1, 2], ["empty"]),
        ("I cannot rank these.", 2, [0, 1], ["empty"]),
        ("<think>maybe [1] > [2]</think>[2] > [1]", 2, [1, 0], ["think-stripped"]),
        ("<think>passage 1 looks good, [1] >", 3, [0, 1, 2], ["think-unclosed", "empty"]),
        ("reasoning about 1 and 2 </think> 2 > 1", 2, [1, 0], ["think-close-only"]),
        ("<answer>[2] > [3] > [1]</answer>", 3, [1, 2, 0], []),
        ("Ranking: [2] > [1] (passage [2] mentions 1990)", 3, [1, 0, 2], ["duplicate", "missing"]),
        ("99999999999999999999 > 1", 2, [0, 1], ["out-of-range", "missing"]),
        ("[0] > [1]", 2, [0, 1], ["out-of-range", "missing"]),
    ],
)
def test_parse_cases(text, n, order, repairs):
    r = parse_permutation(text, n)
    assert r.order == order
    assert r.repairs == repairs


def test_letters():
    r = parse_permutation("[C] > [A] > [B]", 3, style="letter")
    assert r.order == [2, 0, 1] and r.clean
    r = parse_permutation("The answer is C, then A", 3, style="letter")
    assert r.order == [2, 0, 1] and r.repairs == ["missing"]
    r = parse_permutation("[Z] > [A]", 3, style="letter")
    assert r.order == [0, 1, 2] and "out-of-range" in r.repairs


def test_strip_think_nested_and_case():
    body, rep = strip_think("<THINK>a</THINK> <think> b")
    assert body.strip() == "" and rep == ["think-stripped", "think-unclosed"]


def test_zero_passages_and_bad_n():
    assert parse_permutation("[1]", 0).order == []
    with pytest.raises(ValueError):
        parse_permutation("[1]", -1)


# ---- generated garbage --------------------------------------------------------------------------
_PROSE = [
    "Sure! Here is the ranking:", "Based on relevance,", "I think", "passage", "is the most relevant",
    "Note:", "\n", "...", "Ranking:", "The order is", "because it mentions", "none of these",
    "答案是", "🙂", "Ω≈ç√", "\u200b", "[[", "]]", "((", "))", ">>", ">", ",", "|", "->", "→", "#",
]


def _garbage(rng: random.Random) -> tuple[str, int]:
    n = rng.choice([0, 1, 2, 3, 5, 10, 20, 26, 100])
    parts: list[str] = []
    for _ in range(rng.randint(0, 3 * max(n, 1))):
        r = rng.random()
        if r < 0.45:
            i = rng.choice([rng.randint(1, max(n, 1)), rng.randint(0, 3 * max(n, 1)), rng.randint(-5, 0)])
            fmt = rng.choice(["[{}]", "{}", "[ {} ]", "[[{}]]", "({})", "Passage {}", "#{}", "{}."])
            parts.append(fmt.format(i))
        elif r < 0.6:
            parts.append(rng.choice([">", " > ", ",", ", ", " ", "\n", " >> ", "=", "<"]))
        elif r < 0.7:
            parts.append(rng.choice(_PROSE))
        elif r < 0.75:
            parts.append(str(rng.randint(10**6, 10**40)))  # huge numbers
        elif r < 0.8:
            parts.append(rng.choice(["<think>", "</think>", "<answer>", "</answer>", "<think></think>"]))
        elif r < 0.85:
            parts.append("[" + chr(rng.randint(65, 90)) + "]")
        elif r < 0.9:
            parts.append("".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(1, 8))))
        else:
            parts.append(rng.choice(["[", "]", "[[[", "]]]", "[]", "[ ]", "[-1]", "[1.5]", "[1e3]", "[0x1]"]))
    text = "".join(parts)
    if text and rng.random() < 0.3:  # truncation mid-answer
        text = text[: rng.randint(0, len(text))]
    return text, n


def _check(text: str, n: int, style: str = "number") -> None:
    r = parse_permutation(text, n, style=style)
    assert sorted(r.order) == list(range(n)), (text, n, r)
    assert isinstance(r.repairs, list) and all(isinstance(x, str) for x in r.repairs)


def test_fuzz_10000_generated():
    rng = random.Random(20240601)
    t0 = time.perf_counter()
    count = 0
    for _ in range(12_000):
        text, n = _garbage(rng)
        _check(text, n, "number")
        _check(text, min(n, 26), "letter")
        count += 1
    elapsed = time.perf_counter() - t0
    assert count >= 10_000
    print(f"fuzz: {count} generated answers x 2 styles in {elapsed:.2f}s")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=0, max_value=60))
def test_hypothesis_any_text(text, n):
    _check(text, n)
    _check(text, min(n, 26), "letter")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=-10, max_value=10**12), max_size=50), st.integers(0, 40),
       st.sampled_from([" > ", ", ", " ", ">"]), st.booleans())
def test_hypothesis_id_lists(ids, n, sep, brackets):
    fmt = "[{}]" if brackets else "{}"
    text = sep.join(fmt.format(i) for i in ids)
    r = parse_permutation(text, n)
    assert sorted(r.order) == list(range(n))
    # the valid ids keep their first-mention order at the front
    want: list[int] = []
    for i in ids:
        if 1 <= i <= n and i - 1 not in want:
            want.append(i - 1)
    assert r.order[: len(want)] == want


def test_think_stripping_is_linear_and_equals_the_regex_form():
    """Repeated unclosed <think> tags: the old regex rescanned the rest of the text from each one
    (105k characters took 8.4 s); the one-pass form gives the same output for every input."""
    import random
    import time

    from rankstack.llm import parse

    rng = random.Random(0)
    toks = ["<think>", "</think>", "<THINK>", "a", " b ", "[1]", "</Think>", "x>", "<thin", "\n"]
    for _ in range(5000):
        t = "".join(rng.choice(toks) for _ in range(rng.randint(0, 15)))
        assert parse._THINK_BLOCK.subn(" ", t) == parse._strip_think_blocks(t), t
    t0 = time.perf_counter()
    out, repairs = parse.strip_think("<think>" * 15000 + "[2] > [1]")
    assert time.perf_counter() - t0 < 1.0 and out == "" and repairs == ["think-unclosed"]
