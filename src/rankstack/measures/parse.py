"""The measure language: ``nDCG@10``, ``AP``, ``AP@100``, ``RR@10``, ``P(rel=2)@5``, ``R@100``, ``Rprec``...

The syntax follows ir_measures (``NAME[(param=value, ...)][@cutoff]``); the semantics are trec_eval's
(9.0.x, as bundled in pytrec_eval-terrier), see :mod:`rankstack.measures.compute` for the exact
definitions. trec_eval's own names are accepted as aliases (``ndcg_cut_10``, ``map_cut_100``,
``recip_rank``, ``P_5``, ``recall_100``, ``success_10``), and so are the common spellings ``MAP``,
``MRR``, ``NDCG``, ``R-Prec``, ``Recall`` (names are matched case-insensitively).

Every other ir_measures measure name is accepted too (``Bpref``, ``infAP``, ``ERR@10``, ``RBP(rel=1,p=0.8)``,
``SetP``, ``SetR``, ``SetF``, ``nDCG(judged_only=True)@10``...), and so are ir_measures measure objects
(``ir_measures.nDCG@10``): a measure rankstack has a kernel for becomes a :class:`Measure`, any other an
:class:`~rankstack.measures.external.ExternalMeasure`, computed by ir_measures (the optional extra
``rankstack[measures]``); see :mod:`rankstack.measures.external`.

>>> str(parse_measure("p(rel=2)@5"))
'P(rel=2)@5'
>>> parse_measure("ndcg_cut_10") == nDCG @ 10
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Union

from rankstack.errors import ConfigError, MissingDependencyError
from rankstack.measures.external import (
    CORE_PROVIDER,
    ExternalMeasure,
    core_fields,
    ir_measures_names,
    is_ir_measures_object,
    known_elsewhere,
    load_ir_measures,
    parse_ir_measures_text,
    validate_ir_measures,
)
from rankstack.optional import install_hint

__all__ = [
    "AP",
    "AnyMeasure",
    "ExternalMeasure",
    "MEASURE_NAMES",
    "Judged",
    "Measure",
    "P",
    "R",
    "RR",
    "Rprec",
    "Success",
    "measure_provider",
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


#: a measure rankstack computes itself, or one handed to ir_measures
AnyMeasure = Union[Measure, ExternalMeasure]  # noqa: UP007 - a runtime alias


def _parse_int(text: str, what: str, source: str) -> int:
    t = text.strip()
    if not re.fullmatch(r"[+-]?\d+", t):
        raise ConfigError(f"bad {what} {t!r} in measure {source!r}: expected an integer; {_known()}")
    return int(t)


def parse_measure(text: str | Measure | ExternalMeasure | Any) -> AnyMeasure:
    """Parse ``"nDCG@10"``, ``"P(rel=2)@5"``, ``"ndcg_cut_10"``, ``"ERR@10"``, ``ir_measures.Bpref``... into
    a :class:`Measure` (rankstack's own kernels) or an :class:`ExternalMeasure` (handed to ir_measures).

    Raises :class:`~rankstack.errors.ConfigError` (a ``ValueError``) saying what is wrong and listing
    the known measure names; for a measure that needs ir_measures when it is not installed, the
    ``pip install 'rankstack[measures]'`` line.
    """
    if isinstance(text, Measure):
        return text.validate()
    if isinstance(text, ExternalMeasure):
        return text
    if is_ir_measures_object(text):
        return _from_ir_measures(text, repr(text))
    if not isinstance(text, str):
        raise TypeError(f"a measure is a string, a Measure or an ir_measures measure, "
                        f"got {type(text).__name__}: {text!r}")
    try:
        return _parse_core(text)
    except ConfigError as e:
        if not _hand_off(text):
            raise
        return _parse_elsewhere(text, e)


def _hand_off(text: str) -> bool:
    """Whether a text rankstack's own parser refused may be an ir_measures measure: an unknown name, a
    text outside rankstack's syntax, or a core name with a parameter other than ``rel``."""
    if _TREC_CUT.match(text.strip()):
        return False
    m = _SYNTAX.match(text)
    if not m or m.group("name").lower() not in _ALIASES:
        return True
    params = m.group("params")
    return params is not None and any(
        part.partition("=")[0].strip() not in ("rel", "") for part in params.split(",")
    )


def _parse_elsewhere(text: str, core_error: ConfigError) -> AnyMeasure:
    lead = re.match(r"^\s*([^\W\d]\w*)", text)
    raw_name = lead.group(1) if lead else text.strip()
    try:
        irm = load_ir_measures(repr(text))
    except ConfigError as e:
        dep = e.__cause__ if isinstance(e.__cause__, MissingDependencyError) else e
        if known_elsewhere(raw_name) or raw_name.lower() in _ALIASES:
            raise ConfigError(
                f"measure {text!r} is not one of rankstack's own ({', '.join(MEASURE_NAMES)}, without "
                f"judged_only or other ir_measures parameters); it is computed by ir_measures, which is not "
                f"installed: install it with {install_hint('measures')}"
            ) from dep
        raise ConfigError(
            f"{core_error}; every other measure is handed to ir_measures, which is not installed: install it "
            f"with {install_hint('measures')}"
        ) from dep
    try:
        measure = parse_ir_measures_text(irm, text)
        validate_ir_measures(measure)
    except ConfigError as e:
        if raw_name.lower() in _ALIASES:
            raise ConfigError(f"{core_error}; nor does ir_measures read it ({e})") from None
        cls = next((c for k, c in irm.measures.registry.items() if k.lower() == raw_name.lower()), None)
        if cls is not None:  # an ir_measures measure, with parameters it does not take
            takes = ", ".join(f"{k} ({p.desc})" if p.desc else k for k, p in cls.SUPPORTED_PARAMS.items())
            raise ConfigError(f"bad measure {text!r}: {e}; ir_measures' {cls.NAME} takes "
                              f"{takes or 'no parameter'}") from None
        names = ", ".join(ir_measures_names(irm, MEASURE_NAMES))
        raise ConfigError(f"{core_error}; nor does ir_measures read it ({e}); ir_measures' other measures: "
                          f"{names}") from None
    return _from_ir_measures(measure, text)


def _from_ir_measures(measure: Any, source: str) -> AnyMeasure:
    """rankstack's own :class:`Measure` where it has a kernel for the ir_measures ``measure``, else an
    :class:`ExternalMeasure`."""
    fields = core_fields(measure, _SPECS)
    if fields is None:
        try:
            return ExternalMeasure.from_ir_measures(measure)
        except ConfigError as e:
            if source == repr(measure):
                raise
            raise ConfigError(f"{e} (in measure {source!r})") from e.__cause__
    name, cutoff, rel = fields
    try:
        return Measure(name, cutoff=cutoff, rel=rel).validate()
    except ConfigError as e:
        raise ConfigError(f"{e} (in measure {source!r})") from None


def measure_provider(measure: str | Measure | ExternalMeasure | Any) -> str:
    """Who computes ``measure``: ``"rankstack"`` for rankstack's own kernels, ``"ir_measures (<provider>)"``
    (e.g. ``"ir_measures (pytrec_eval)"``) for a measure handed to ir_measures."""
    m = parse_measure(measure)
    return m.provider_label if isinstance(m, ExternalMeasure) else CORE_PROVIDER


def _parse_core(text: str) -> Measure:
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
                raise ConfigError(f"unknown parameter {key!r} in {text!r}: rankstack's own {name} takes "
                                  "only rel (e.g. P(rel=2)@5)")
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


def parse_measures(measures: Any) -> list[AnyMeasure]:
    """Parse one measure or a list of them (duplicates removed, order kept); a measure is a string, a
    :class:`Measure`, an :class:`ExternalMeasure` or an ir_measures measure object."""
    if isinstance(measures, str | Measure | ExternalMeasure) or is_ir_measures_object(measures):
        measures = [measures]
    out: list[AnyMeasure] = []
    seen: set[AnyMeasure] = set()
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
