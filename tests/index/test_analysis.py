"""The Anserini-equivalent English analyzer (rankstack.index.analysis).

Expected outputs marked "Lucene" were produced by Anserini 0.22.1's DefaultEnglishAnalyzer
(Lucene 9) on the same strings; see docs/bench/bm25.md for how.
"""

from __future__ import annotations

import pytest

from rankstack.index.analysis import LUCENE_ENGLISH_STOP_WORDS, EnglishAnalyzer, lucene_porter_fix


@pytest.fixture(scope="module")
def an() -> EnglishAnalyzer:
    return EnglishAnalyzer()


def test_stop_set_is_lucenes_33_words():
    assert len(LUCENE_ENGLISH_STOP_WORDS) == 33
    assert {"the", "such", "will", "into", "their"} <= LUCENE_ENGLISH_STOP_WORDS
    # words Lucene's set does NOT contain (other stop lists do)
    assert not {"have", "than", "can", "were", "from"} & LUCENE_ENGLISH_STOP_WORDS


@pytest.mark.parametrize(
    "text, expected",
    [
        # stop words removed, Porter stems
        ("The cats are in the hats", ["cat", "hat"]),
        ("Such is the nature of things", ["natur", "thing"]),
        # possessive 's removed before lower-casing, also with a typographic apostrophe
        ("The patient's and the PATIENT'S and the patient’s", ["patient", "patient", "patient"]),
        # acronyms and abbreviations keep inner dots, drop the final one
        ("e.g. the U.S. data", ["e.g", "u.", "data"]),
        # numbers keep decimal points and thousands separators; hyphens split
        ("3.5-fold, 1,000 cells, p<0.05", ["3.5", "fold", "1,000", "cell", "p", "0.05"]),
        # letters and digits join; underscores join; colon joins letters
        ("HbA1c foo_bar IL-6 ratio:value", ["hba1c", "foo_bar", "il", "6", "ratio:valu"]),
        # a dot between a letter and a digit splits
        ("a.1 v2.0", ["1", "v2.0"]),
        # words of at most two letters are not stemmed (Snowball would give "u")
        ("us is", ["us"]),
        # Porter reference code (Lucene): -bli -> -ble, -logi -> -log
        ("possibly reversibly cardiology epidemiology biology", ["possibl", "revers", "cardiolog", "epidemiolog", "biologi"]),
        ("", []),
        ("the of and", []),
    ],
)
def test_handcrafted(an, text, expected):
    assert an(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        # superscripts, subscripts and fractions split (Lucene: "km", "aβ", "20")
        ("12 km² area", ["12", "km", "area"]),
        ("Aβ₁₋₄₂ and ¼20", ["aβ", "20"]),
        # pictographs are tokens of their own (Lucene 9 emoji rules)
        ("CellSearch® mouse↔rat", ["cellsearch", "®", "mous", "↔", "rat"]),
        # a soft hyphen stays inside the word; the middle dot joins letters
        ("co\u00adoperation exercise·induced", ["co\u00adoper", "exercise·induc"]),
        # Java lower-cases Σ to σ everywhere (Python would give a final ς)
        ("ΣΑΣ", ["σασ"]),
        # each Han ideograph is a token
        ("中文 text", ["中", "文", "text"]),
    ],
)
def test_unicode(an, text, expected):
    assert an(text) == expected


@pytest.mark.parametrize(
    "query, lucene",
    [
        ("0-dimensional biomaterials show inductive properties.", "0 dimension biomateri show induct properti"),
        (
            "1,000 genomes project enables mapping of genetic sequence variation consisting of rare variants "
            "with larger penetrance effects than common variants.",
            "1,000 genom project enabl map genet sequenc variat consist rare variant larger penetr effect than "
            "common variant",
        ),
        ("All hematopoietic stem cells segregate their chromosomes randomly.", "all hematopoiet stem cell segreg chromosom randomli"),
    ],
)
def test_scifact_queries_match_lucene(an, query, lucene):
    assert an(query) == lucene.split()


def test_porter_fix_only_touches_the_two_rules():
    assert lucene_porter_fix("assembli") == "assembl"
    assert lucene_porter_fix("incredibli") == "incred"
    assert lucene_porter_fix("ecologi") == "ecolog"
    assert lucene_porter_fix("logi") == "logi"  # measure 0: no change
    assert lucene_porter_fix("biologi") == "biologi"  # "bio" has measure 0
    assert lucene_porter_fix("cancer") == "cancer"


def test_other_stemmers_and_options():
    assert EnglishAnalyzer(stemmer=None)("The running dogs") == ["running", "dogs"]
    assert EnglishAnalyzer(stemmer="english")("generously possibly") == ["generous", "possibl"]
    assert EnglishAnalyzer(stemmer="snowball-porter")("possibly cardiology") == ["possibli", "cardiologi"]
    assert EnglishAnalyzer(stopwords=None)("the cat") == ["the", "cat"]
    assert EnglishAnalyzer(stopwords=["cat"])("the cat") == ["the"]
    assert EnglishAnalyzer(possessive=False, stemmer=None)("John's") == ["john's"]
    with pytest.raises(ValueError, match="unknown stemmer"):
        EnglishAnalyzer(stemmer="klingon")


def test_config_round_trip():
    a = EnglishAnalyzer(stemmer="english", stopwords=["x", "y"])
    b = EnglishAnalyzer.from_config(a.config())
    assert b.config() == a.config() and b.fingerprint() == a.fingerprint()
    assert b("x y generously") == ["generous"]


def test_batch_equals_single_and_ids(an):
    texts = ["Cats and dogs", "", "the the", "Dogs’ bones, the dog's bone"]
    assert an.analyze_many(texts) == [an(t) for t in texts]
    vocab: dict[str, int] = {}
    ids, lengths = an.encode_many(texts, vocab, grow=True)
    assert lengths.tolist() == [2, 0, 0, 4]
    inv = {i: t for t, i in vocab.items()}
    assert [inv[i] for i in ids.tolist()] == [t for ts in an.analyze_many(texts) for t in ts]
    # unknown terms are dropped when not growing
    ids2, lengths2 = an.encode_many(["cats zebras"], vocab, grow=False)
    assert [inv[i] for i in ids2.tolist()] == ["cat"] and lengths2.tolist() == [1]
