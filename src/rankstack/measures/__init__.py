"""Evaluation measures with trec_eval's exact semantics, and significance tests.

* :func:`evaluate` / :class:`Evaluator`: nDCG, AP, RR, P, R, Rprec, Success, Judged (numpy, no
  trec_eval needed at run time); :class:`Evaluation` holds the means and per-query values.
* :func:`parse_measure`: the measure language (``nDCG@10``, ``AP@100``, ``RR@10``, ``P(rel=2)@5``).
* every other ir_measures measure (``Bpref``, ``infAP``, ``ERR@10``, ``RBP(rel=1)``, ``SetP``,
  ``nDCG(judged_only=True)@10``...) and ir_measures measure objects: an :class:`ExternalMeasure`,
  computed by ir_measures (optional: ``pip install 'rankstack[measures]'``);
  :func:`measure_provider` / :meth:`Evaluation.provider` say who computes a measure.
* :func:`compare`, :func:`significance_table`: paired t-test and randomization test with Holm
  correction.

This layer needs only numpy at import (scipy is imported lazily for the t-test); it never imports
readers, stages or pytrec_eval (ir_measures only when a measure beyond the core set is asked for).
"""

from rankstack.measures.compute import Evaluation, Evaluator, evaluate
from rankstack.measures.external import ExternalMeasure
from rankstack.measures.parse import (
    AP,
    MEASURE_NAMES,
    RR,
    AnyMeasure,
    Judged,
    Measure,
    P,
    R,
    Rprec,
    Success,
    measure_provider,
    nDCG,
    parse_measure,
    parse_measures,
)
from rankstack.measures.significance import (
    SignificanceRow,
    compare,
    holm,
    paired_t_test,
    randomization_test,
    significance_table,
)

__all__ = [
    "AP",
    "AnyMeasure",
    "ExternalMeasure",
    "MEASURE_NAMES",
    "RR",
    "Evaluation",
    "Evaluator",
    "Judged",
    "Measure",
    "P",
    "R",
    "Rprec",
    "SignificanceRow",
    "Success",
    "compare",
    "evaluate",
    "holm",
    "measure_provider",
    "nDCG",
    "paired_t_test",
    "parse_measure",
    "parse_measures",
    "randomization_test",
    "significance_table",
]
