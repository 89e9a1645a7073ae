"""The one construction path: a stage spec becomes a stage here, whoever asks (the CLI, an
experiment, the service, a remote worker).

A *spec* is what an experiment TOML writes: ``{"stage": NAME, **parameters}``. :func:`build_stage`
looks ``NAME`` up in :mod:`rankstack.registry` and calls the class's ``from_context(ctx, **params)``
with a :class:`BuildContext`, which hands out what stages need and builds each artifact once:

* ``ctx.docs`` -- the collection's documents (a dict or a ``DocStore``);
* ``ctx.bm25_index()`` -- the collection's BM25 index (opened from an index directory written by
  ``rankstack index``, or built once into the cache);
* ``ctx.dense_index(encoder, kind)`` -- its dense index for that encoder (idem, resumable);
* ``ctx.runs`` -- earlier pipelines' runs (for ``fuse``);
* ``ctx.trained_model(stage, table, where)`` -- a model fine-tuned for a ``train = {...}`` table (the
  experiments layer supplies it: training sits above the stages).

Errors name where the spec came from (``where``: e.g. ``pipeline 'bm25>>ce' stage #2``), and a
misspelt parameter lists the stage's known parameters.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack import registry
from rankstack.data.records import Collection, FingerprintedDocs, Run
from rankstack.errors import ConfigError
from rankstack.index.artifact import build_once
from rankstack.stages.base import Stage

__all__ = ["BuildContext", "build_stage", "build_pipeline"]


@dataclass
class BuildContext:
    """What a stage factory may need. ``cache_dir`` is where artifacts are built once (one directory
    per collection); ``index_dir`` is a directory written by ``rankstack index`` (its ``docstore``,
    ``bm25`` and ``dense`` are used as they are)."""

    collection: Collection | None = None
    cache_dir: Path | None = None
    index_dir: Path | None = None
    runs: dict[str, Run] = field(default_factory=dict)
    trainer: Callable[[str, dict[str, Any], str], str] | None = None
    progress: bool = True
    #: rebuild every artifact (``--no-cache``) instead of loading a complete one
    rebuild: bool = False
    _docs: Any = None
    _artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def docs(self) -> Any:
        if self._docs is None:
            if self.index_dir is not None and (Path(self.index_dir) / "docstore").exists():
                from rankstack.data.docstore import DocStore

                self._docs = DocStore.open(Path(self.index_dir) / "docstore")
            elif self.collection is not None:
                docs = self.collection.docs
                if hasattr(docs, "fingerprint") or (isinstance(docs, Mapping) and not isinstance(docs, dict)):
                    self._docs = docs  # a store that knows its fingerprint, or a lazy mapping kept as it is
                else:  # a dict or a list of documents: give it a content fingerprint for the cache keys
                    self._docs = FingerprintedDocs(docs if isinstance(docs, Mapping) else {d.id: d for d in docs})
            else:
                raise ConfigError("this stage needs document texts: give a collection or an index directory")
        return self._docs

    def _doc_iter(self) -> Any:
        docs = self.docs
        return docs.values() if isinstance(docs, Mapping) else docs.iter_docs()

    def _where(self, name: str) -> Path:
        if self.cache_dir is None:
            raise ConfigError(f"building a {name} index needs a cache directory or an index directory")
        return Path(self.cache_dir) / "index" / name

    def artifact(self, name: str, build: Callable[[Path], Any], load: Callable[[Path], Any]) -> Any:
        """Any artifact a stage needs, built once into ``<cache>/index/<name>`` (and kept for the
        context's lifetime): a new kind of index needs no change here. The artifact is keyed by the
        documents' content fingerprint: after a text changes it is built again, never reused."""
        if name not in self._artifacts:
            fp = getattr(self.docs, "fingerprint", None)
            self._artifacts[name] = build_once(self._where(name), build, load, key=fp, rebuild=self.rebuild)
        return self._artifacts[name]

    def bm25_index(self) -> Any:
        """The collection's BM25 index: the index directory's, or built once into the cache."""
        if "bm25" not in self._artifacts:
            from rankstack.index.bm25 import BM25Index

            if self.index_dir is not None:
                self._artifacts["bm25"] = BM25Index.load(Path(self.index_dir) / "bm25")
            else:
                return self.artifact("bm25", lambda p: BM25Index.build(self._doc_iter(), p, progress=False),
                                     BM25Index.load)
        return self._artifacts["bm25"]

    def dense_index(self, encoder: Any = None, kind: str = "flat", tag: Any = None) -> Any:
        """The collection's dense index for ``encoder``: the index directory's, or built (resumably)
        once into the cache, one directory per ``tag`` (model, kind and encoder options)."""
        from rankstack.index.dense import DenseIndex

        if self.index_dir is not None:
            if "dense" not in self._artifacts:
                path = Path(self.index_dir) / "dense"
                if not path.exists():
                    raise ConfigError(f"{self.index_dir} has no dense index: build it with "
                                      f"rankstack index COLLECTION -o {self.index_dir} --dense")
                self._artifacts["dense"] = DenseIndex.load(path)
            return self._artifacts["dense"]
        if encoder is None:
            raise ConfigError("building a dense index needs an encoder (a model)")
        key = hashlib.sha256(json.dumps(tag if tag is not None else [encoder.config(), kind], sort_keys=True,
                                        default=str).encode()).hexdigest()[:12]
        return self.artifact(f"dense-{key}", lambda p: DenseIndex.build(
            list(self._doc_iter()), p, encoder=encoder, kind=kind, progress=self.progress), DenseIndex.load)

    def trained_model(self, stage: str, table: dict[str, Any], where: str) -> str:
        if self.trainer is None:
            raise ConfigError(f"{where}: 'train' tables are trained by experiments (rankstack experiment)")
        return self.trainer(stage, table, where)


def _known_params(cls: Any) -> tuple[list[str], bool]:
    """The spec parameters ``cls`` takes (constructor parameters and ``spec_params``), and whether its
    constructor also takes any keyword (``**kwargs``: e.g. options passed on to a model runtime)."""
    sig = inspect.signature(cls.__init__)
    params = list(sig.parameters.values())[1:]
    names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    names += [n for n in getattr(cls, "spec_params", ()) if n not in names]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def check_spec(spec: Mapping[str, Any], where: str = "stage") -> None:
    """Check a stage spec without building it: a known stage name, known parameters, ``train`` only
    for a trainable stage and not with ``model``. Experiments check every spec when they are loaded,
    so that a misspelt parameter fails before any work; :func:`build_stage` checks again."""
    if not isinstance(spec, Mapping) or "stage" not in spec:
        raise ConfigError(f"{where}: a stage needs 'stage' (a name: {', '.join(registry.names())})")
    name = spec["stage"]
    if not isinstance(name, str):
        raise ConfigError(f"{where}: 'stage' must be a name (a string), got {type(name).__name__}")
    try:
        entry = registry.resolve_entry(name)
    except KeyError as e:  # UnknownStageError, with where it was asked for
        raise type(e)(f"{where}: {e.args[0] if e.args else e}") from None
    params = {k: v for k, v in spec.items() if k != "stage"}
    if "train" in params:
        if entry.trainable is None:
            trainable = sorted(e.name for e in registry.entries() if e.trainable)
            raise ConfigError(f"{where}: stage {name!r} cannot be trained; 'train' works with {trainable}")
        if "model" in params:
            raise ConfigError(f"{where}: give either 'model' or 'train' (whose 'model' is the backbone), not both")
        params["model"] = None
        del params["train"]
    known, open_ended = _known_params(registry.resolve(name))
    unknown = sorted(set({**entry.defaults, **params}) - set(known))
    if unknown and not open_ended:
        hint = ""
        close = difflib.get_close_matches(unknown[0], known, n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        raise ConfigError(f"{where}: stage {name!r} has no parameter {', '.join(map(repr, unknown))}{hint}; "
                          f"its parameters: {', '.join(known)}")


def build_stage(spec: Mapping[str, Any], ctx: BuildContext | None = None, where: str = "stage") -> Stage:
    """The stage a spec describes (``{"stage": NAME, **params}``), built with ``ctx``."""
    ctx = ctx if ctx is not None else BuildContext()
    check_spec(spec, where)
    name = spec["stage"]
    params = {k: v for k, v in spec.items() if k != "stage"}
    entry = registry.resolve_entry(name)
    if "train" in params:  # a model trained (once, then cached) for this stage
        params["model"] = ctx.trained_model(name, params.pop("train"), where)
    cls = registry.resolve(name)
    params = {**entry.defaults, **params}
    known, _ = _known_params(cls)
    try:
        return cls.from_context(ctx, **params)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e) and "missing" not in str(e):
            raise
        raise ConfigError(f"{where}: stage {name!r}: {e}; its parameters: {', '.join(known)}") from None
    except ConfigError as e:
        if str(e).startswith(where):
            raise
        raise ConfigError(f"{where}: stage {name!r}: {e}") from None


def build_pipeline(specs: list[Mapping[str, Any]], ctx: BuildContext | None = None, where: str = "pipeline",
                   wrap: Callable[[Stage], Stage] | None = None) -> Stage:
    """A pipeline of specs (``a >> b >> ...``); ``wrap`` may wrap each stage (e.g. in a cache)."""
    from rankstack.stages.base import Pipeline

    if not specs:
        raise ConfigError(f"{where}: a pipeline needs at least one stage")
    stages = []
    for j, s in enumerate(specs):
        st = build_stage(s, ctx, f"{where} stage #{j + 1}")
        stages.append(wrap(st) if wrap is not None else st)
    return stages[0] if len(stages) == 1 else Pipeline(stages)
