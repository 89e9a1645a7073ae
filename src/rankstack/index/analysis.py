"""Text analysis for BM25: a Python reproduction of Anserini's default English analyzer.

Anserini (and therefore Pyserini's BM25 baselines) index and search with
``io.anserini.analysis.DefaultEnglishAnalyzer.newDefaultInstance()``, which is the Lucene chain

    StandardTokenizer -> EnglishPossessiveFilter -> LowerCaseFilter
        -> StopFilter(EnglishAnalyzer.ENGLISH_STOP_WORDS_SET) -> PorterStemFilter

:class:`EnglishAnalyzer` reproduces each step:

* **Tokenisation** -- Lucene's ``StandardTokenizer`` implements the word-break rules of Unicode
  UAX #29. One compiled regular expression approximates its grammar: a token is a run of letters
  and digits (letters and digits join directly, ``microm2``, ``1.5fold``); a *MidLetter* or
  *MidNumLet* character (``. : ' ’ ·``) joins two letters (``e.g.`` -> ``e.g``, ``U.S.`` -> ``u.s``,
  ``don't``); a *MidNum* or *MidNumLet* character (``. , ;``) joins two digits (``3.5``, ``1,000``,
  ``1;2``); underscores (*ExtendNumLet*) join anything (``foo_bar``); hyphens, slashes and all other
  punctuation split (``IL-6`` -> ``il``, ``6``); combining marks and format characters (soft hyphen)
  stay attached to the preceding character; superscripts and fractions split (``km²`` -> ``km``);
  each Han ideograph or Hiragana character is its own token; Katakana runs and South-East Asian
  (Thai, Lao, Khmer, Myanmar) runs are tokens of their own; each emoji / pictographic symbol
  (``®``, ``©``, ``™``, ``↔``) is its own token, as in Lucene 9.
* **Possessives** -- a trailing ``'s`` / ``’s`` / ``＇s`` is removed (``EnglishPossessiveFilter``).
* **Lower-casing** -- per character, like Java's ``Character.toLowerCase`` (``Σ`` -> ``σ`` even at the
  end of a word, ``İ`` -> ``i``), which differs from Python's context-sensitive ``str.lower``.
* **Stop words** -- the 33 words of Lucene's ``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``.
* **Stemming** -- Lucene's ``PorterStemFilter`` is Martin Porter's *reference implementation* of the
  Porter (1980) algorithm. The Snowball ``porter`` algorithm (PyStemmer) follows the published paper,
  which differs in two step-2 rules: the reference code maps ``-bli`` -> ``-ble`` (the paper:
  ``-abli`` -> ``-able``) and has an extra rule ``-logi`` -> ``-log``. They are patched here, so
  ``possibly`` -> ``possibl`` and ``cardiology`` -> ``cardiolog`` as in Lucene. Lucene leaves words of at most
  two characters unstemmed (``us`` stays ``us``); so does this analyzer. On SciFact's 38,483 distinct
  unstemmed words the stems are identical to Lucene's.

Agreement with Lucene, measured against Anserini 0.22.1's analyzer (``docs/bench/bm25.md``): the
analysed terms of all 5,183 SciFact documents and 300 test queries are identical; on 20,000 random
strings over an adversarial alphabet (ASCII punctuation, combining marks, soft hyphen, ZWJ,
superscripts, Greek, Han, Hiragana, Katakana, Hangul, Thai, emoji) 11 differ. Known differences:

* Character classes come from Python's Unicode database, not from the UAX #29 ``Word_Break`` table of
  Lucene's JFlex grammar; only Basic-Multilingual-Plane combining marks attach to words.
* Emoji sequences are approximated (the 11 random strings above: a pictograph followed by a
  zero-width joiner and then a combining mark or variation selector).
* Hebrew-specific quote rules (WB7a-c) are not implemented; tokens longer than Lucene's
  ``maxTokenLength`` (255) are not split.

Speed: tokenisation is one ``re.findall`` per text (a simpler, equivalent expression for pure-ASCII
texts); stop-word filtering and stemming go through a cache keyed by the raw token, so each distinct
word is stemmed once (PyStemmer, its own cache off). Analysing SciFact's 5,183 documents to term ids
takes about 0.7 s of CPU on one core.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

import numpy as np

from rankstack.errors import ConfigError

__all__ = [
    "LUCENE_ENGLISH_STOP_WORDS",
    "EnglishAnalyzer",
    "default_analyzer",
    "lucene_porter_fix",
]

#: Lucene's ``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`` (33 words), used by Anserini by default.
LUCENE_ENGLISH_STOP_WORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)

# -- character classes (UAX #29 Word_Break properties, approximated) --------------------------------

# MidLetter | MidNumLet | Single_Quote: joins two letters
_MID_LETTER = ":\u00b7\u0387\u05f4\u2027\ufe13\ufe55\uff1a" + ".\u2018\u2019\u2024\ufe52\uff07\uff0e" + "'"
# MidNum | MidNumLet | Single_Quote: joins two digits
_MID_NUM = (
    ",;\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b"
    + ".\u2018\u2019\u2024\ufe52\uff07\uff0e"
    + "'"
)
# ExtendNumLet: connector punctuation
_EXTEND_NUM_LET = "_\u203f\u2040\u2054\ufe33\ufe34\ufe4d-\ufe4f\uff3f"
# ideographic / hiragana: one token per character
_IDEOGRAPHIC = "\u3005\u3007\u3021-\u3029\u3038-\u303b\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# Katakana (WB: Katakana): joins only Katakana and ExtendNumLet
_KATAKANA = "\u3031-\u3035\u309b\u309c\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff\u32d0-\u32fe\u3300-\u3357\uff66-\uff9d"
# South-East Asian scripts (Line_Break=SA: Thai, Lao, Myanmar, Khmer, Tai ...): a run is one token
_SOUTHEAST_ASIAN = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u1950-\u19df\u1a20-\u1aaf\ua9e0-\ua9ff\uaa60-\uaadf"
# Extended_Pictographic (Unicode emoji-data), each a token in Lucene >= 8
_PICTOGRAPHIC = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u2388\u23cf"
    "\u23e9-\u23f3\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u2605\u2607-\u2612"
    "\u2614-\u2685\u2690-\u2705\u2708-\u2712\u2714\u2716\u271d\u2721\u2728\u2733\u2734\u2744\u2747"
    "\u274c\u274e\u2753-\u2755\u2757\u2763-\u2767\u2795-\u2797\u27a1\u27b0\u27bf\u2934\u2935"
    "\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299"
    "\U0001f000-\U0001f0ff\U0001f10d-\U0001f10f\U0001f12f\U0001f16c-\U0001f171\U0001f17e\U0001f17f"
    "\U0001f18e\U0001f191-\U0001f19a\U0001f1ad-\U0001f1e5\U0001f201-\U0001f20f\U0001f21a\U0001f22f"
    "\U0001f232-\U0001f23a\U0001f23c-\U0001f23f\U0001f249-\U0001f3fa\U0001f400-\U0001f53d"
    "\U0001f546-\U0001f64f\U0001f680-\U0001f6ff\U0001f774-\U0001f77f\U0001f7d5-\U0001f7ff"
    "\U0001f80c-\U0001f80f\U0001f848-\U0001f84f\U0001f85a-\U0001f85f\U0001f888-\U0001f88f"
    "\U0001f8ae-\U0001f8ff\U0001f90c-\U0001f93a\U0001f93c-\U0001f945\U0001f947-\U0001faff"
)
_EMOJI_MOD = "\ufe0e\ufe0f\U0001f3fb-\U0001f3ff"
_REGIONAL = "\U0001f1e6-\U0001f1ff"


#: the longest token indexed (Lucene's StandardTokenizer default ``maxTokenLength``); a longer one
#: is cut to this length, counted, and reported by the index build
MAX_TOKEN_LENGTH = 255


def _class_of(categories: tuple[str, ...], exclude: tuple[int, ...] = ()) -> str:
    """A regex class body of the BMP characters in the given Unicode general categories.

    Only the Basic Multilingual Plane is scanned: ``re`` matches a BMP-only class with a bitmap,
    a class with astral ranges with a linear scan (several times slower on every token).
    """
    ranges: list[tuple[int, int]] = []
    for cp in range(0x10000):
        if 0xD800 <= cp < 0xE000 or cp in exclude:
            continue
        if unicodedata.category(chr(cp)) in categories:
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


_TOKEN_RE: re.Pattern[str] | None = None
#: the same grammar restricted to ASCII (most of an English corpus; about 3x faster)
_ASCII_TOKEN_RE = re.compile(
    r"_*+(?:[a-z]++(?:(?:_++|[:.'])[a-z]++)*+|[0-9]++(?:(?:_++|[,;.'])[0-9]++)*+)++"
    r"(?:_++(?:[a-z]++(?:(?:_++|[:.'])[a-z]++)*+|[0-9]++(?:(?:_++|[,;.'])[0-9]++)*+)++)*+_*+"
)


def _token_regex() -> re.Pattern[str]:
    """The StandardTokenizer approximation for lower-cased text (built once, ~0.1 s)."""
    global _TOKEN_RE
    if _TOKEN_RE is None:
        # Extend | Format | ZWJ: combining marks and format controls (soft hyphen), not U+200B
        ex = _class_of(("Mn", "Mc", "Me", "Cf"), exclude=(0x200B,))
        # Python counts superscripts, subscripts and fractions (category No) as word characters;
        # UAX #29 does not
        other_num = _class_of(("No",))
        # letters: word characters that are not digits, underscore, ideographs or No
        let = rf"[^\W\d_{_IDEOGRAPHIC}{_KATAKANA}{_SOUTHEAST_ASIAN}{other_num}]"
        dig = r"\d"
        enl = rf"[{_EXTEND_NUM_LET}][{ex}]*+"
        mid_l = rf"[{re.escape(_MID_LETTER)}][{ex}]*+"
        mid_n = rf"[{re.escape(_MID_NUM)}][{ex}]*+"
        def joined(unit: str, mid: str) -> str:
            """Runs of ``unit`` with attached marks, joined by ExtendNumLet or one ``mid`` character."""
            run = rf"{unit}++(?:[{ex}]++{unit}*+)*+"
            return rf"{run}(?:(?:(?:{enl})++|{mid}){run})*+"

        letters = joined(let, mid_l)  # a letter run joined by ExtendNumLet or one MidLetter
        numbers = joined(dig, mid_n)
        kata = rf"[{_KATAKANA}][{ex}]*+"
        # a segment: letters and digits directly adjacent, or a Katakana run
        seg = rf"(?:(?:{letters}|{numbers})++|{kata}(?:(?:{enl})*+{kata})*+)"
        word = rf"(?:{enl})*+{seg}(?:(?:{enl})++{seg})*+(?:{enl})*+"
        ideo = rf"[{_IDEOGRAPHIC}][{ex}]*+|[{_SOUTHEAST_ASIAN}]++(?:[{ex}]++[{_SOUTHEAST_ASIAN}]*+)*+"
        ex_nozwj = _class_of(("Mn", "Mc", "Me", "Cf"), exclude=(0x200B, 0x200D))
        # zero-width joiners glue pictographs (WB3c); a leading/trailing one stays attached
        # after a variation selector or skin-tone modifier nothing more attaches
        tail = rf"(?:[\ufe0e\ufe0f][\U0001f3fb-\U0001f3ff]?+|[\U0001f3fb-\U0001f3ff]|[{ex_nozwj}]*+)"
        emoji = (
            rf"\u200d*+[{_PICTOGRAPHIC}]{tail}(?:\u200d++[{_PICTOGRAPHIC}]{tail})*+\u200d*+"
            rf"|[{_REGIONAL}]{{1,2}}"
        )
        _TOKEN_RE = re.compile(rf"{word}|{ideo}|{emoji}")
    return _TOKEN_RE


_POSSESSIVE = ("'s", "\u2019s", "\uff07s")


# -- Porter: the reference implementation's departures from the paper -----------------------------


def _is_cons(w: str, i: int) -> bool:
    c = w[i]
    if c in "aeiou":
        return False
    if c == "y":
        return i == 0 or not _is_cons(w, i - 1)
    return True


def _measure(w: str) -> int:
    """Porter's m: the number of VC sequences in ``w``."""
    n = 0
    prev_vowel = False
    for i in range(len(w)):
        cons = _is_cons(w, i)
        if cons and prev_vowel:
            n += 1
        prev_vowel = not cons
    return n


def _cvc(w: str) -> bool:
    if len(w) < 3:
        return False
    if not (_is_cons(w, len(w) - 1) and not _is_cons(w, len(w) - 2) and _is_cons(w, len(w) - 3)):
        return False
    return w[-1] not in "wxy"


def lucene_porter_fix(stem: str) -> str:
    """Turn a Snowball ``porter`` stem into the stem of Lucene's ``PorterStemmer``.

    Lucene's stemmer is Porter's reference code, whose step 2 maps ``-bli`` to ``-ble`` and
    ``-logi`` to ``-log`` (when the measure of the remaining stem is > 0); the published algorithm
    (implemented by Snowball) has neither rule. A Snowball stem ending in ``bli``/``logi`` is exactly
    a word where the rules differ; the ``-ble`` form then goes through steps 4 and 5 as in Lucene.
    """
    if stem.endswith("logi"):
        if _measure(stem[:-4]) > 0:
            return stem[:-1]
        return stem
    if stem.endswith("bli") and not stem.endswith("abli"):
        prefix = stem[:-3]
        if _measure(prefix) <= 0:
            return stem
        w = prefix + "ble"
        # step 4: -able / -ible removed when m > 1
        if (w.endswith("able") or w.endswith("ible")) and _measure(w[:-4]) > 1:
            return w[:-4]
        # step 5a: final e removed when m > 1, or m == 1 and not *o
        base = w[:-1]
        m = _measure(base)
        if m > 1 or (m == 1 and not _cvc(base)):
            w = base
        return w
    return stem


class EnglishAnalyzer:
    """Anserini's ``DefaultEnglishAnalyzer`` (Lucene StandardTokenizer, possessive filter, lower case,
    Lucene's 33 English stop words, Porter stemming) in Python.

    Parameters:
        stemmer: ``"porter"`` (Lucene's PorterStemFilter, the Anserini default),
            ``"snowball-porter"`` (Snowball's Porter, i.e. the published algorithm without the two
            reference-code rules), any other PyStemmer algorithm name (e.g. ``"english"`` for
            Snowball English, what bm25s examples use), or ``None`` for no stemming.
        stopwords: ``"lucene"`` (the 33 words), ``None``/``()`` to keep every word, or an iterable
            of words (matched after lower-casing).
        possessive: remove trailing ``'s`` (``EnglishPossessiveFilter``).
        min_stem_length: words shorter than this are not stemmed (Lucene: 3).

    Call it on a string (``analyzer(text) -> list[str]``) or use :meth:`analyze_many` for a batch;
    both share a token cache, so repeated words are stemmed once.
    """

    def __init__(
        self,
        stemmer: str | None = "porter",
        stopwords: str | Iterable[str] | None = "lucene",
        possessive: bool = True,
        min_stem_length: int = 3,
    ) -> None:
        if stopwords == "lucene":
            self.stopwords: frozenset[str] = LUCENE_ENGLISH_STOP_WORDS
            self._stop_name = "lucene"
        elif stopwords is None:
            self.stopwords = frozenset()
            self._stop_name = "none"
        elif isinstance(stopwords, str):
            raise ConfigError(f"stopwords must be 'lucene', None or a list of words, got {stopwords!r}")
        else:
            self.stopwords = frozenset(w.lower() for w in stopwords)
            self._stop_name = "custom"
        self.stemmer_name = stemmer
        self.possessive = bool(possessive)
        self.min_stem_length = int(min_stem_length)
        self._stemmer: Any = None
        if stemmer is not None:
            import Stemmer  # PyStemmer, a core dependency

            algo = "porter" if stemmer == "snowball-porter" else stemmer
            if algo not in Stemmer.algorithms():
                raise ConfigError(
                    f"unknown stemmer {stemmer!r}; use 'porter', 'snowball-porter' or one of {Stemmer.algorithms()}"
                )
            self._stemmer = Stemmer.Stemmer(algo, 0)  # no internal cache: ours is unbounded and faster
        self._regex = _token_regex()
        #: raw (lower-cased, possessive-stripped) token -> analysed term, or None for a stop word
        self._cache: dict[str, str | None] = {}
        #: distinct raw tokens longer than MAX_TOKEN_LENGTH seen so far (each cut to that length)
        self.truncated_tokens = 0
        self._mappers: dict[bool, _IdMapper] = {}

    # -- configuration ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Everything that changes this analyzer's output (stored with an index)."""
        cfg: dict[str, Any] = {
            "class": "EnglishAnalyzer",
            "stemmer": self.stemmer_name,
            "stopwords": self._stop_name,
            "possessive": self.possessive,
            "min_stem_length": self.min_stem_length,
        }
        if self._stop_name == "custom":
            cfg["stopword_list"] = sorted(self.stopwords)
        return cfg

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> EnglishAnalyzer:
        """Rebuild an analyzer from :meth:`config` output."""
        if cfg.get("class") != "EnglishAnalyzer":
            raise ConfigError(f"not an EnglishAnalyzer config: {cfg!r}")
        stop: Any = {"lucene": "lucene", "none": None}.get(cfg["stopwords"], cfg.get("stopword_list"))
        return cls(cfg["stemmer"], stop, cfg["possessive"], cfg["min_stem_length"])

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"EnglishAnalyzer(stemmer={self.stemmer_name!r}, stopwords={self._stop_name!r})"

    # -- analysis --------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """StandardTokenizer + possessive filter + lower case (no stop words, no stemming)."""
        if text.isascii():
            low = text.lower()
            toks = _ASCII_TOKEN_RE.findall(low)
        else:
            if "\u03a3" in text or "\u0130" in text:
                text = text.replace("\u03a3", "\u03c3").replace("\u0130", "i")
            low = text.lower()
            toks = self._regex.findall(low)
        if self.possessive and ("'s" in low or "\u2019s" in low or "\uff07s" in low):
            toks = [t[:-2] if t.endswith(_POSSESSIVE) else t for t in toks]
        return toks

    def _fill_cache(self, raw: set[str]) -> None:
        cache = self._cache
        new = [t for t in raw if t not in cache]
        if not new:
            return
        new.sort()  # PyStemmer is deterministic; sorting only makes the call order reproducible
        stop = self.stopwords
        keep: list[str] = []
        keep_src: list[str] = []
        for t in new:
            src = self._bounded(t)
            if src in stop:
                cache[t] = None
            elif self._stemmer is None or len(src) < self.min_stem_length:
                cache[t] = src
            else:
                keep.append(t)
                keep_src.append(src)
        if keep:
            stems = self._stemmer.stemWords(keep_src)
            if self.stemmer_name == "porter":
                stems = [lucene_porter_fix(s) if s.endswith(("bli", "logi")) else s for s in stems]
            cache.update(zip(keep, stems))

    def _bounded(self, raw: str) -> str:
        """``raw`` cut to :data:`MAX_TOKEN_LENGTH` characters (counted in ``truncated_tokens``): one
        absurd token must not make every term of the vocabulary megabytes wide."""
        if len(raw) <= MAX_TOKEN_LENGTH:
            return raw
        self.truncated_tokens += 1
        return raw[:MAX_TOKEN_LENGTH]

    def analyze(self, text: str) -> list[str]:
        """The terms Lucene would index for ``text``, in order."""
        return self.analyze_many([text])[0]

    __call__ = analyze

    def analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        """:meth:`analyze` over a batch; uncached words are stemmed in one call."""
        toks = [self.tokenize(t) for t in texts]
        uniq: set[str] = set()
        for ts in toks:
            uniq.update(ts)
        self._fill_cache(uniq)
        get = self._cache.__getitem__
        out: list[list[str]] = []
        for ts in toks:
            terms = list(map(get, ts))
            if None in terms:
                terms = [t for t in terms if t is not None]
            out.append(terms)  # type: ignore[arg-type]
        return out

    def term(self, raw: str) -> str | None:
        """The indexed term of one raw token (``None`` for a stop word); cached."""
        try:
            return self._cache[raw]
        except KeyError:
            pass
        src = self._bounded(raw)
        if src in self.stopwords:
            out = None
        elif self._stemmer is None or len(src) < self.min_stem_length:
            out = src
        else:
            out = self._stemmer.stemWord(src)
            if self.stemmer_name == "porter" and out.endswith(("bli", "logi")):
                out = lucene_porter_fix(out)
        self._cache[raw] = out
        return out

    def encode_many(
        self, texts: Sequence[str], vocab: dict[str, int], grow: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Analyse a batch straight to term ids: ``(ids, lengths)``.

        ``ids`` (int64) holds the term ids of all texts one after the other, ``lengths[i]`` how many
        belong to text ``i`` (its Lucene field length: stop words are not counted). Terms missing
        from ``vocab`` are added with the next free ids (in order of first occurrence) when ``grow``
        is true and dropped otherwise. This is the indexing fast path: raw tokens are mapped to ids
        through a dictionary kept across calls for the same ``vocab`` object, so each distinct word
        is analysed once.
        """
        mapper = self._mappers.get(grow)
        if mapper is None or mapper.vocab is not vocab:
            mapper = _IdMapper(self, vocab, grow)
            self._mappers[grow] = mapper
        toks = [self.tokenize(t) for t in texts]
        counts = np.fromiter(map(len, toks), dtype=np.int64, count=len(toks))
        total = int(counts.sum())
        ids = np.fromiter(map(mapper.__getitem__, chain.from_iterable(toks)), dtype=np.int64, count=total)
        keep = ids >= 0
        if keep.all():
            return ids, counts
        doc_of = np.repeat(np.arange(len(toks)), counts)
        lengths = np.bincount(doc_of[keep], minlength=len(toks)).astype(np.int64)
        return ids[keep], lengths


class _IdMapper(dict):  # type: ignore[type-arg]
    """raw token -> term id (-1: stop word or, when not growing, unknown term), filled on demand."""

    def __init__(self, analyzer: EnglishAnalyzer, vocab: dict[str, int], grow: bool) -> None:
        super().__init__()
        self.analyzer = analyzer
        self.vocab = vocab  # a strong reference: identity checks stay valid
        self.grow = grow

    def __missing__(self, raw: str) -> int:
        term = self.analyzer.term(raw)
        if term is None:
            tid = -1
        elif self.grow:
            tid = self.vocab.get(term, -1)
            if tid < 0:
                tid = self.vocab[term] = len(self.vocab)
        else:
            tid = self.vocab.get(term, -1)
        self[raw] = tid
        return tid


def default_analyzer() -> EnglishAnalyzer:
    """Anserini's default: Porter stemming and Lucene's 33 English stop words."""
    return EnglishAnalyzer()
