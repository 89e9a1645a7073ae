"""Robustness: adversarial ranking attacks and certified robustness (issue #19).

``victim`` (the :class:`Victim` with its query budget, rank conversion, BM25 of edited texts),
``attacks`` (goals, constraints, stuffing, keyword spam, PRADA-style word substitution, target
protocols), ``wordnet`` (offline WordNet 3.0 reader), ``whitebox`` (gradient importance, embedding
neighbours), ``metrics`` (run metrics, TF-IDF spamicity), ``certify`` (CertDR: substitution sets,
the randomized-smoothing ranker, certified top-K robustness). Import the submodules directly; this
package imports nothing on its own so ``import rankstack.robust`` stays light.
"""
