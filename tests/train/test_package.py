"""The public face of ``rankstack.train``: light to import, every public name resolves lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_import_rankstack_train_does_not_import_torch():
    code = ("import sys, rankstack.train as t\n"
            "from rankstack.train import kfold_queries, holdout_split\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
            "assert not heavy, heavy\n"
            "assert 'get_loss' in dir(t) and 'train_cross_encoder' in t.__all__\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_public_name_comes_from_its_submodule():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import importlib

    import rankstack.train as t

    assert sorted(t.__all__) == sorted(t._EXPORTS)
    for name in t.__all__:
        module = importlib.import_module(f"rankstack.train.{t._EXPORTS[name]}")
        assert getattr(t, name) is getattr(module, name), name
        assert name in getattr(module, "__all__", [name]), name
    from rankstack.train import (
        CrossEncoderTrainConfig,
        GroupedDataset,
        NegativeMiner,
        get_loss,
        train_cross_encoder,
    )

    assert callable(train_cross_encoder) and get_loss("ranknet") is not None
    assert CrossEncoderTrainConfig.__module__ == "rankstack.train.arguments"
    assert GroupedDataset.__module__ == "rankstack.train.data" and NegativeMiner.__module__ == "rankstack.train.negatives"
    with pytest.raises(AttributeError, match="no attribute 'make_ranking_trainer'"):
        t.make_ranking_trainer  # noqa: B018 - removed: the trainer classes are module-level
