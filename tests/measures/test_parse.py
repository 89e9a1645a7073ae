"""The measure language: parsing, canonical spelling, errors."""

from __future__ import annotations

import pytest

from rankstack.measures import AP, MEASURE_NAMES, RR, Measure, P, nDCG, parse_measure, parse_measures


@pytest.mark.parametrize(
    ("text", "name", "cutoff", "rel", "canonical"),
    [
        ("nDCG@10", "nDCG", 10, 1, "nDCG@10"),
        ("ndcg@10", "nDCG", 10, 1, "nDCG@10"),
        ("NDCG", "nDCG", None, 1, "nDCG"),
        ("AP", "AP", None, 1, "AP"),
        ("MAP@100", "AP", 100, 1, "AP@100"),
        ("AP@100", "AP", 100, 1, "AP@100"),
        ("RR", "RR", None, 1, "RR"),
        ("MRR@10", "RR", 10, 1, "RR@10"),
        ("P@5", "P", 5, 1, "P@5"),
        ("P(rel=2)@5", "P", 5, 2, "P(rel=2)@5"),
        ("P( rel = 2 ) @ 5", "P", 5, 2, "P(rel=2)@5"),
        ("R@100", "R", 100, 1, "R@100"),
        ("Recall@100", "R", 100, 1, "R@100"),
        ("Rprec", "Rprec", None, 1, "Rprec"),
        ("R-Prec", "Rprec", None, 1, "Rprec"),
        ("Rprec(rel=2)", "Rprec", None, 2, "Rprec(rel=2)"),
        ("Judged@10", "Judged", 10, 1, "Judged@10"),
        ("Success@5", "Success", 5, 1, "Success@5"),
        ("AP(rel=2)@100", "AP", 100, 2, "AP(rel=2)@100"),
        # trec_eval names
        ("ndcg_cut_10", "nDCG", 10, 1, "nDCG@10"),
        ("ndcg_cut.10", "nDCG", 10, 1, "nDCG@10"),
        ("ndcg", "nDCG", None, 1, "nDCG"),
        ("map", "AP", None, 1, "AP"),
        ("map_cut_100", "AP", 100, 1, "AP@100"),
        ("recip_rank", "RR", None, 1, "RR"),
        ("P_5", "P", 5, 1, "P@5"),
        ("recall_100", "R", 100, 1, "R@100"),
        ("success_10", "Success", 10, 1, "Success@10"),
    ],
)
def test_parse_and_round_trip(text: str, name: str, cutoff: int | None, rel: int, canonical: str) -> None:
    m = parse_measure(text)
    assert (m.name, m.cutoff, m.rel) == (name, cutoff, rel)
    assert str(m) == canonical
    assert parse_measure(str(m)) == m


def test_constants_build_measures() -> None:
    assert nDCG @ 10 == parse_measure("nDCG@10")
    assert P(rel=2) @ 5 == parse_measure("P(rel=2)@5")
    assert str(AP @ 100) == "AP@100"
    assert (RR @ 10).trec_eval_name is None  # trec_eval 9.0.x recip_rank has no cutoff
    assert (nDCG @ 10).trec_eval_name == "ndcg_cut_10"
    assert (AP @ 100).trec_eval_name == "map_cut_100"
    assert parse_measure(Measure("P", 5)) == P @ 5


def test_parse_measures_dedupes_in_order() -> None:
    ms = parse_measures(["nDCG@10", "ndcg_cut_10", "AP", "map"])
    assert [str(m) for m in ms] == ["nDCG@10", "AP"]
    assert [str(m) for m in parse_measures("RR@10")] == ["RR@10"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("nDGC@10", "unknown measure 'nDGC'"),
        ("foo", "unknown measure 'foo'"),
        ("P", "P needs a cutoff"),
        ("P@0", "cutoff must be >= 1"),
        ("P@-3", "cutoff must be >= 1"),
        ("nDCG@ten", "bad cutoff 'ten'"),
        ("nDCG@", "bad cutoff ''"),
        ("Rprec@10", "Rprec takes no cutoff"),
        ("nDCG(rel=2)@10", "nDCG takes no 'rel' parameter"),
        ("P(level=2)@5", "unknown parameter 'level'"),
        ("P(rel=x)@5", "bad rel 'x'"),
        ("P(rel)@5", "expected key=value"),
        ("P(rel=-1)@5", "rel must be >= 0"),
        ("@10", "cannot parse measure"),
        ("P@5@6", "cannot parse measure"),
    ],
)
def test_bad_measures_explain_and_list_names(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_measure(text)
    msg = str(err.value)
    assert fragment in msg
    if "unknown measure" in fragment or "cannot parse" in fragment:
        for name in MEASURE_NAMES:
            assert name in msg


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_measure(10)  # type: ignore[arg-type]
