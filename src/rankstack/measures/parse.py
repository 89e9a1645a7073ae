"""The measure language: ``nDCG@10``, ``AP``, ``AP@100``, ``RR@10``, ``P(rel=2)@5``, ``R@100``, ``Rprec``...

The syntax follows ir_measures (``NAME[(param=value, ...)][@cutoff]``); the semantics are trec_eval's
(9.0.x, as bundled in pytrec_eval-terrier), see :mod:`rankstack.measures.compute` for the exact
definitions. trec_eval's own names are accepted as aliases (``ndcg_cut_10``, ``map_cut_100``,
``recip_rank``, ``P_5``, ``recall_100``, ``success_10``), and so are the common spellings ``MAP``,
``MRR``, ``NDCG``, ``R-Prec``, ``Recall`` (names are matched case-insensitively).

>>> str(parse_measure("p(rel=2)@5"))
'P(rel=2)@5'
>>> parse_measure("ndcg_cut_10") == nDCG @ 10
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from rankstack.errors import ConfigError

__all__ = [
    "AP",
    "MEASURE_NAMES",
    "Judged",
    "Measure",
    "P",
    "R",
    "RR",
    "Rprec",
    "Success",
    "nDCG",
    "parse_measure",
    "parse_measures",
]

#: canonical name -> (what it is, cutoff: "required" | "optional" | "forbidden", takes ``rel``)
_SPECS: dict[str, tuple[str, str, bool]] = {
    "nDCG": ("normalised DCG, gain = grade, discount log2(rank+1) (trec_eval ndcg / ndcg_cut_k)", "optional", False),
    "AP": ("average precision (trec_eval map / map_cut_k)", "optional", True),
    "RR": ("reciprocal rank of the first relevant doc (trec_eval recip_rank on the run cut at k)", "optional", True),
    "P": ("precision at k (trec_eval P_k)", "required", True),
    "R": ("recall at k (trec_eval recall_k); without a cutoff: over the whole ranking", "optional", True),
    "Rprec": ("precision at rank R = number of relevant docs (trec_eval Rprec)", "forbidden", True),
    "Success": ("1 if a relevant doc is in the top k (trec_eval success_k)", "optional", True),
    "Judged": ("fraction of the top k that has a judgment (ir_measures Judged@k)", "optional", False),
}

#: The canonical measure names, in a stable order.
MEASURE_NAMES: tuple[str, ...] = tuple(_SPECS)

_ALIASES: dict[str, str] = {name.lower(): name for name in _SPECS}
_ALIASES.update(
    {
        "map": "AP",
        "mrr": "RR",
        "recip_rank": "RR",
        "precision": "P",
        "recall": "R",
        "r-prec": "Rprec",
        "r_prec": "Rprec",
        "rprecision": "Rprec",
    }
)

# trec_eval's parameterised names: ndcg_cut_10, ndcg_cut.10, map_cut_100, P_5, recall_100, success_10
_TREC_CUT = re.compile(r"^(ndcg_cut|map_cut|p|recall|success)[_.](\d+)$", re.IGNORECASE)
_TREC_CUT_NAMES = {"ndcg_cut": "nDCG", "map_cut": "AP", "p": "P", "recall": "R", "success": "Success"}

_SYNTAX = re.compile(
    r"""^\s*(?P<name>[A-Za-z][A-Za-z0-9_.\-]*?)\s*
        (?:\((?P<params>[^()]*)\))?\s*
        (?:@\s*(?P<cutoff>[^@\s]*))?\s*$""",
    re.VERBOSE,
)


def _known() -> str:
    return (
        "known measures: " + ", ".join(MEASURE_NAMES)
        + " (aliases: MAP, MRR, NDCG, R-Prec, Recall, Precision; trec_eval names: ndcg, ndcg_cut_K, map, "
        "map_cut_K, recip_rank, P_K, recall_K, Rprec, success_K); syntax NAME[(rel=N)][@K], "
        "e.g. nDCG@10, AP@100, RR@10, P(rel=2)@5"
    )


@dataclass(frozen=True, slots=True)
class Measure:
    """One evaluation measure: a canonical ``name``, an optional rank ``cutoff`` and a relevance level.

    ``rel`` is the minimum grade that counts as relevant for the binary measures (trec_eval's
    ``-l``/``relevance_level``, ir_measures' ``rel``); nDCG and Judged do not take it (trec_eval's nDCG
    uses the grades themselves as gains whatever the relevance level).

    ``str(measure)`` gives the canonical spelling, which :func:`parse_measure` reads back. Like
    ir_measures, ``nDCG @ 10`` and ``P(rel=2) @ 5`` build measures from the module constants.
    """

    name: str
    cutoff: int | None = None
    rel: int = 1

    def __post_init__(self) -> None:
        if self.name not in _SPECS:
            raise ConfigError(f"unknown measure name {self.name!r}; {_known()}")
        if self.cutoff is not None and (
            isinstance(self.cutoff, bool) or not isinstance(self.cutoff, int) or self.cutoff < 1
        ):
            raise ConfigError(f"{self.name}: cutoff must be a positive integer, got {self.cutoff!r}")
        if isinstance(self.rel, bool) or not isinstance(self.rel, int) or self.rel < 0:
            raise ConfigError(f"{self.name}: rel must be an integer >= 0, got {self.rel!r}")
        _what, cut, takes_rel = _SPECS[self.name]
        if not takes_rel and self.rel != 1:
            raise ConfigError(
                f"{self.name} takes no 'rel' parameter (trec_eval's {self.name} does not use a relevance level)"
            )
        if cut == "forbidden" and self.cutoff is not None:
            raise ConfigError(f"{self.name} takes no cutoff (got @{self.cutoff})")

    def validate(self) -> Measure:
        """Check that the measure is complete (e.g. ``P`` has its cutoff); return it."""
        if _SPECS[self.name][1] == "required" and self.cutoff is None:
            raise ConfigError(f"{self.name} needs a cutoff, e.g. {self.name}@10")
        return self

    def __matmul__(self, cutoff: int) -> Measure:
        return replace(self, cutoff=cutoff)

    def __call__(self, *, rel: int = 1) -> Measure:
        return replace(self, rel=rel)

    def __str__(self) -> str:
        out = self.name
        if self.rel != 1:
            out += f"(rel={self.rel})"
        if self.cutoff is not None:
            out += f"@{self.cutoff}"
        return out

    def __repr__(self) -> str:
        return str(self)

    @property
    def description(self) -> str:
        """What the measure is, in one line."""
        return _SPECS[self.name][0]

    @property
    def trec_eval_name(self) -> str | None:
        """trec_eval/pytrec_eval's name for this measure (use it with ``relevance_level=rel``), or None
        where trec_eval has no such measure (RR@k, Judged, R without cutoff)."""
        n, k = self.name, self.cutoff
        if n == "nDCG":
            return "ndcg" if k is None else f"ndcg_cut_{k}"
        if n == "AP":
            return "map" if k is None else f"map_cut_{k}"
        if n == "RR":
            return "recip_rank" if k is None else None
        if n == "P":
            return f"P_{k}"
        if n == "R":
            return None if k is None else f"recall_{k}"
        if n == "Rprec":
            return "Rprec"
        if n == "Success":
            return None if k is None else f"success_{k}"
        return None


def _parse_int(text: str, what: str, source: str) -> int:
    t = text.strip()
    if not re.fullmatch(r"[+-]?\d+", t):
        raise ConfigError(f"bad {what} {t!r} in measure {source!r}: expected an integer; {_known()}")
    return int(t)


def parse_measure(text: str | Measure) -> Measure:
    """Parse ``"nDCG@10"``, ``"P(rel=2)@5"``, ``"ndcg_cut_10"``... into a :class:`Measure`.

    Raises ``ValueError`` saying what is wrong and listing the known measure names.
    """
    if isinstance(text, Measure):
        return text.validate()
    if not isinstance(text, str):
        raise TypeError(f"a measure is a string or a Measure, got {type(text).__name__}: {text!r}")
    m = _TREC_CUT.match(text.strip())
    if m:
        return Measure(_TREC_CUT_NAMES[m.group(1).lower()], cutoff=_parse_int(m.group(2), "cutoff", text))
    m = _SYNTAX.match(text)
    if not m:
        raise ConfigError(f"cannot parse measure {text!r}; {_known()}")
    raw_name = m.group("name")
    name = _ALIASES.get(raw_name.lower())
    if name is None:
        raise ConfigError(f"unknown measure {raw_name!r} in {text!r}; {_known()}")
    rel = 1
    params = m.group("params")
    if params is not None and params.strip():
        for part in params.split(","):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq:
                raise ConfigError(f"bad parameter {part.strip()!r} in {text!r}: expected key=value, e.g. rel=2")
            if key != "rel":
                raise ConfigError(f"unknown parameter {key!r} in {text!r}: the only parameter is rel (e.g. P(rel=2)@5)")
            rel = _parse_int(value, "rel", text)
    cutoff = None
    if m.group("cutoff") is not None:
        cutoff = _parse_int(m.group("cutoff"), "cutoff", text)
        if cutoff < 1:
            raise ConfigError(f"cutoff must be >= 1 in measure {text!r}, got {cutoff}")
    if rel < 0:
        raise ConfigError(f"rel must be >= 0 in measure {text!r}, got {rel}")
    try:
        return Measure(name, cutoff=cutoff, rel=rel).validate()
    except ValueError as e:
        raise ConfigError(f"{e} (in measure {text!r})") from None


def parse_measures(measures: str | Measure | list[str | Measure] | tuple[str | Measure, ...]) -> list[Measure]:
    """Parse one measure or a list of them (duplicates removed, order kept)."""
    if isinstance(measures, str | Measure):
        measures = [measures]
    out: list[Measure] = []
    seen: set[Measure] = set()
    for item in measures:
        m = parse_measure(item)
        if m not in seen:
            seen.add(m)
            out.append(m)
    if not out:
        raise ConfigError(f"no measure given; {_known()}")
    return out


# ir_measures-style constants: nDCG@10, AP@100, P(rel=2)@5
nDCG = Measure("nDCG")
AP = Measure("AP")
RR = Measure("RR")
P = Measure("P")
R = Measure("R")
Rprec = Measure("Rprec")
Success = Measure("Success")
Judged = Measure("Judged")
