"""Experiments: TOML files (:mod:`~rankstack.experiments.config`, run by
:mod:`~rankstack.experiments.runner`) and the same in one Python call, :func:`Experiment`."""

from __future__ import annotations

__all__ = ["Experiment", "ExperimentTable"]


def __getattr__(name: str):
    if name in __all__:
        from rankstack.experiments import python

        return getattr(python, name)
    raise AttributeError(f"module 'rankstack.experiments' has no attribute {name!r}")
