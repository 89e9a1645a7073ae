"""Measures beyond rankstack's own kernels, handed to `ir_measures <https://ir-measur.es>`_.

rankstack computes its core set itself (nDCG, AP, RR, P, R, Rprec, Success, Judged; see
:mod:`rankstack.measures.compute`). Every other ir_measures measure (``Bpref``, ``infAP``, ``ERR@10``,
``RBP(rel=1,p=0.8)``, ``SetP``, ``SetR``, ``SetF``, ``IPrec@0.5``, ``nDCG(judged_only=True)@10``...) is
parsed by ``ir_measures.parse_measure`` and computed by the first installed ir_measures provider that
supports it, in the order of ``ir_measures.DefaultPipeline`` (pytrec_eval, cwl_eval, gdeval, ...).
:class:`ExternalMeasure` records which provider that is.

ir_measures is optional (``pip install 'rankstack[measures]'``); it is imported only when such a
measure is asked for. ``judged_only=True`` (trec_eval's ``-J``: unjudged documents are removed from the
ranking first) is always handed to ir_measures, also on a core name.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rankstack.errors import ConfigError, MissingDependencyError
from rankstack.optional import install_hint, require

__all__ = ["CORE_PROVIDER", "ExternalEvaluator", "ExternalMeasure", "ir_measures_names", "load_ir_measures"]

#: the provider name of the measures rankstack computes itself
CORE_PROVIDER = "rankstack"

#: ir_measures' measure names (0.4.x) and trec_eval names it reads, lower-cased: used only for the
#: error message when ir_measures is not installed (with it installed, its own registry is used)
_KNOWN_ELSEWHERE = frozenset(
    n.lower()
    for n in (
        "Accuracy", "alpha_DCG", "alpha_nDCG", "AP_IA", "MAP_IA", "BPM", "Bpref", "BPref", "Compat", "ERR",
        "ERR_IA", "nERR_IA", "infAP", "INSQ", "INST", "IPrec", "NERR8", "NERR9", "NERR10", "NERR11", "NRBP",
        "nNRBP", "NumQ",
        "NumRel", "NumRet", "NumRelRet", "P_IA", "RBP", "SDCG", "SetAP", "SetF", "SetP", "SetRelP", "SetR",
        "StRecall", "set_P", "set_recall", "set_F", "set_map", "num_ret", "num_rel", "num_q", "num_rel_ret",
    )
)

_LEAD_NAME = re.compile(r"^\s*([^\W\d]\w*)", re.UNICODE)


def load_ir_measures(what: str) -> Any:
    """Import ir_measures, or raise :class:`ConfigError` saying ``what`` needs it and how to install it."""
    try:
        return require("ir_measures", "measures")
    except MissingDependencyError as e:
        raise ConfigError(
            f"{what} is computed by ir_measures, which is not installed: "
            f"install it with {install_hint('measures')}"
        ) from e


def known_elsewhere(name: str) -> bool:
    """Whether ``name`` is an ir_measures (or its trec_eval) measure name, without importing ir_measures."""
    return name.lower() in _KNOWN_ELSEWHERE


def ir_measures_names(irm: Any, exclude: tuple[str, ...] = ()) -> list[str]:
    """ir_measures' canonical measure names (its registry), less ``exclude``."""
    return sorted({cls.NAME for cls in irm.measures.registry.values()} - set(exclude), key=str.lower)


def is_ir_measures_object(obj: Any) -> bool:
    """Whether ``obj`` is an ir_measures measure object (never imports ir_measures)."""
    irm = sys.modules.get("ir_measures")
    return irm is not None and isinstance(obj, irm.measures.Measure)


def parse_ir_measures_text(irm: Any, text: str) -> Any:
    """``text`` as an ir_measures measure object: ``ir_measures.parse_measure``, then the same with the
    name matched case-insensitively (``bpref``, ``err@10``), then a trec_eval name that stands for one
    measure (``set_P``, ``iprec_at_recall_0.50``). Raises :class:`ConfigError` with ir_measures' reason."""
    try:
        return irm.parse_measure(text.strip())
    except (ValueError, NameError, TypeError, SyntaxError) as e:
        first = e
    m = _LEAD_NAME.match(text)
    if m:
        names: dict[str, str] = {}
        for key, cls in irm.measures.registry.items():
            names.setdefault(key.lower(), cls.NAME)
        canonical = names.get(m.group(1).lower())
        if canonical is not None and canonical != m.group(1):
            try:
                return irm.parse_measure(canonical + text[m.end():])
            except (ValueError, NameError, TypeError, SyntaxError):
                pass
    try:
        found = irm.parse_trec_measure(text.strip())
    except (ValueError, NameError, TypeError, KeyError, IndexError):
        found = []
    if len(found) == 1:
        return found[0]
    raise ConfigError(str(first))


def validate_ir_measures(measure: Any) -> None:
    """ir_measures' own parameter check, as a :class:`ConfigError`."""
    try:
        measure.validate_params()
    except AssertionError as e:
        raise ConfigError(f"{e}") from None


def core_fields(measure: Any, core: dict[str, tuple[str, str, bool]]) -> tuple[str, int | None, int] | None:
    """``(name, cutoff, rel)`` of rankstack's own measure that equals the ir_measures ``measure``, or
    None where rankstack has no kernel for it (another name, ``judged_only=True``, ``dcg='exp-log2'``,
    custom ``gains``...). ``core`` is the core measures' spec table."""
    name = measure.NAME
    if name not in core:
        return None
    params = dict(measure.params)
    cutoff = params.pop("cutoff", None)
    rel = params.pop("rel", 1) if core[name][2] else 1
    if params.pop("judged_only", False) is not False:
        return None
    if name == "nDCG" and params.pop("dcg", "log2") != "log2":
        return None
    if params:  # any other parameter (gains, ...) is ir_measures' business
        return None
    return name, cutoff, rel


def find_provider(irm: Any, measure: Any) -> str:
    """The name of the first installed provider in ``ir_measures.DefaultPipeline`` that computes
    ``measure`` (the one ir_measures itself would use); a :class:`ConfigError` saying what to install,
    or which parameters the providers take, where none does."""
    would: list[str] = []
    shapes: list[str] = []
    for p in irm.DefaultPipeline.providers:
        if p.supports(measure):
            if p.is_available():
                return str(p.NAME)
            inst = p.install_instructions()
            would.append(f"{p.NAME} ({inst})" if inst else str(p.NAME))
        else:
            shapes += [f"{p.NAME}: {s!r}" for s in p.SUPPORTED_MEASURES if s.NAME == measure.NAME]
    if would:
        raise ConfigError(f"{measure!r}: no installed ir_measures provider computes it; "
                          f"these would: {', '.join(would)}")
    hint = f"; its providers take: {'; '.join(shapes)}" if shapes else ""
    raise ConfigError(f"{measure!r}: no ir_measures provider computes it with these parameters{hint}")


class ExternalMeasure:
    """A measure computed by ir_measures: ``measure`` is the ir_measures object, ``provider`` the name
    of the ir_measures provider that computes it (e.g. ``"pytrec_eval"``, ``"gdeval"``, ``"cwl_eval"``).

    ``str()`` is ir_measures' canonical spelling (``Bpref``, ``ERR@10``, ``nDCG(judged_only=True)@10``),
    which :func:`rankstack.measures.parse_measure` reads back; two are equal when their spellings are.
    """

    __slots__ = ("_key", "measure", "provider")

    def __init__(self, measure: Any, provider: str):
        self.measure = measure
        self.provider = provider
        self._key = repr(measure)

    @classmethod
    def from_ir_measures(cls, measure: Any) -> ExternalMeasure:
        irm = load_ir_measures(repr(measure))
        validate_ir_measures(measure)
        return cls(measure, find_provider(irm, measure))

    @property
    def name(self) -> str:
        return str(self.measure.NAME)

    @property
    def cutoff(self) -> Any:
        return self.measure.params.get("cutoff")

    @property
    def rel(self) -> Any:
        """The ``rel`` parameter where given (and an integer), else None."""
        r = self.measure.params.get("rel")
        return r if isinstance(r, int) and not isinstance(r, bool) else None

    @property
    def provider_label(self) -> str:
        """``"ir_measures (<provider>)"``."""
        return f"ir_measures ({self.provider})"

    @property
    def description(self) -> str:
        m = self.measure
        return str(getattr(m, "SHORT_DESC", None) or getattr(m, "PRETTY_NAME", None) or m.NAME) + (
            f" (ir_measures, provider {self.provider})"
        )

    @property
    def trec_eval_name(self) -> None:
        return None

    def validate(self) -> ExternalMeasure:
        return self

    def aggregate(self, values: Any) -> float:
        """ir_measures' own aggregation of per-query ``values`` (a mean for nearly all measures; a sum
        for NumQ, NumRet, NumRel)."""
        agg = self.measure.aggregator()
        for v in values:
            agg.add(float(v))
        return float(agg.result())

    @property
    def default(self) -> float:
        """ir_measures' value for a query with no retrieved document."""
        return float(self.measure.DEFAULT)

    def __str__(self) -> str:
        return self._key

    def __repr__(self) -> str:
        return self._key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExternalMeasure) and other._key == self._key

    def __hash__(self) -> int:
        return hash(("ExternalMeasure", self._key))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._key,))


def _rebuild(key: str) -> ExternalMeasure:
    irm = load_ir_measures(key)
    return ExternalMeasure.from_ir_measures(parse_ir_measures_text(irm, key))


#: errors an ir_measures provider raises on input it cannot take (gdeval's perl script exits non-zero,
#: a provider divides by zero or asserts); they are reported as a ConfigError naming the provider
_PROVIDER_FAILURES = (subprocess.CalledProcessError, ValueError, AssertionError, RuntimeError,
                      ZeroDivisionError, KeyError, TypeError, IndexError)


class ExternalEvaluator:
    """Computes :class:`ExternalMeasure` s with ir_measures against one set of qrels (each provider's
    evaluator is built once, like :class:`rankstack.measures.Evaluator`).

    ``qrels`` is the plain ``{qid: {docid: grade}}`` dict. Each measure is computed by its recorded
    provider (the one ``ir_measures.DefaultPipeline`` would pick), on the qrels as given, except that
    the pytrec_eval provider does not get a query with no judgment >= 0 (trec_eval is undefined there:
    pytrec_eval may crash or hang); such a query gets ir_measures' default value, 0, as rankstack's own
    kernels give it.
    """

    def __init__(self, qrels: Mapping[str, Mapping[str, int]], measures: Sequence[ExternalMeasure]):
        self.measures = tuple(measures)
        irm = load_ir_measures(", ".join(map(str, self.measures)))
        plain = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in qrels.items()}
        by_provider: dict[str, list[ExternalMeasure]] = {}
        for m in self.measures:
            by_provider.setdefault(m.provider, []).append(m)
        registry = irm.providers.registry
        self._evaluators: list[tuple[str, list[ExternalMeasure], Any]] = []
        for name, ms in by_provider.items():
            these = plain
            if name == "pytrec_eval":
                these = {q: docs for q, docs in plain.items() if docs and max(docs.values()) >= 0}
            if name == "gdeval":
                _check_gdeval(plain, ms)
            try:
                ev = registry[name].evaluator([m.measure for m in ms], these)
            except _PROVIDER_FAILURES as e:
                what = ", ".join(map(str, ms))
                raise ConfigError(f"ir_measures ({name}) cannot evaluate {what} with these qrels: "
                                  f"{type(e).__name__}: {e}") from e
            self._evaluators.append((name, ms, ev))

    def evaluate(self, run: Mapping[str, Mapping[str, float]], qids: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-query values of every measure, in the order of ``qids`` (``{str(measure): array}``).

        ``run`` is what ir_measures gets (``{qid: {docid: score}}``, no empty ranking); a query of
        ``qids`` that ir_measures reports no value for (it reports every qrels query) gets the measure's
        default value, ir_measures' value for a query with no retrieved document."""
        got: dict[str, dict[str, float]] = {str(m): {} for m in self.measures}
        for name, ms, ev in self._evaluators:
            try:
                for metric in ev.iter_calc(run):
                    values = got.get(str(metric.measure))
                    if values is not None:
                        values[str(metric.query_id)] = float(metric.value)
            except _PROVIDER_FAILURES as e:
                raise ConfigError(f"ir_measures ({name}) failed to compute {', '.join(map(str, ms))}: "
                                  f"{type(e).__name__}: {e}") from e
        return {
            str(m): np.array([got[str(m)].get(q, m.default) for q in qids], dtype=np.float64)
            for m in self.measures
        }


def _check_gdeval(qrels: Mapping[str, Mapping[str, int]], ms: Sequence[ExternalMeasure]) -> None:
    """gdeval (a perl script) reads only numeric query ids and grades up to 4: say so up front."""
    what = ", ".join(map(str, ms))
    bad = next((q for q in qrels if not q.isascii() or not q.isdigit()), None)
    if bad is not None:
        raise ConfigError(f"{what}: ir_measures computes it with gdeval, which reads only numeric query ids "
                          f"(the qrels have {bad!r})")
    top = max((g for docs in qrels.values() for g in docs.values()), default=0)
    if top > 4:
        raise ConfigError(f"{what}: ir_measures computes it with gdeval, which reads grades up to 4 "
                          f"(the qrels have {top})")
