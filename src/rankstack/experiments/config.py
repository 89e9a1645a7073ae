"""Declarative experiments: a TOML file of collections x pipelines x measures.

Example::

    [experiment]
    name = "demo"
    measures = ["nDCG@10", "AP@100", "RR@10", "R@100"]
    baseline = "bm25"            # pipeline the others are compared with (per collection)
    significance = "t"           # "t" | "randomization"
    correction = "holm"          # "holm" | "bonferroni" | "none"
    output = "results/demo"      # results.json, report.html and runs/<collection>/<pipeline>.trec
    cache = ".rankstack-cache"   # stage outputs and indexes

    [[collections]]
    name = "scifact"             # a name from `rankstack datasets`

    [[pipelines]]
    name = "bm25"
    stages = [{ stage = "bm25", k = 1000 }]

    [[pipelines]]
    name = "bm25"                # same name on another collection: a shipped run
    collections = ["dl19"]
    stages = [{ stage = "run", run = "bm25" }]

    [[expected]]                 # golden figures: a regression turns the check red
    collection = "scifact"
    pipeline = "bm25"
    measure = "nDCG@10"
    value = 0.6789
    tolerance = 0.0005

A stage is ``{stage = NAME, ...params}`` (NAME from the stage registry, or ``run`` for a run file,
``cutoff`` with ``k``); ``{stage = "fuse", pipelines = [...], method = "rrf"}`` fuses other pipelines.
``plugins = ["my_stages.py", "my_package.stages"]`` in ``[experiment]`` loads modules (files relative
to the TOML, or importable names) that register stages of their own (``rankstack.registry.register``).
``ray = true`` (a local cluster), ``ray = "ADDRESS"`` or ``ray = { address, workers, cpus_per_worker,
queries_per_batch }`` runs the retrievers and rerankers on Ray workers (``docs/scale.md``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import ConfigError, strict_table
from rankstack.stages.build import check_spec


@dataclass
class PipelineSpec:
    name: str
    stages: list[dict[str, Any]]
    collections: list[str] | None = None  # None: every collection


@dataclass
class Expected:
    collection: str
    pipeline: str
    measure: str
    value: float
    tolerance: float


@dataclass
class ExperimentSpec:
    name: str
    path: Path
    collections: list[str]
    pipelines: list[PipelineSpec]
    measures: list[str]
    baseline: str | None = None
    significance: str = "t"
    alpha: float = 0.05
    output: Path | None = None
    cache: Path | None = None
    expected: list[Expected] = field(default_factory=list)
    #: multiple-comparison correction of the p-values against the baseline
    correction: str = "holm"
    #: write each pipeline's run (``runs/<collection>/<pipeline>.trec``) under ``output``
    write_runs: bool = True
    #: the experiment file's text, recorded in results.json
    text: str | None = None
    #: run the retrievers and rerankers on Ray (``[experiment] ray``): None (in process) or the keywords
    #: ``address`` (None: a local cluster), ``workers``, ``cpus_per_worker``, ``queries_per_batch``
    ray: dict[str, Any] | None = None

    def pipelines_for(self, collection: str) -> list[PipelineSpec]:
        return [p for p in self.pipelines if p.collections is None or collection in p.collections]


def _need(table: dict, key: str, where: str, typ: type | tuple[type, ...]) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: missing field '{key}'")
    val = table[key]
    if not isinstance(val, typ):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise ConfigError(f"{where}: field '{key}' must be {names}, got {type(val).__name__}")
    return val


#: the keys each table of an experiment file may have: anything else is an error (a misspelt
#: ``baselin`` would otherwise silently leave the experiment without a baseline)
KEYS: dict[str, tuple[str, ...]] = {
    "": ("experiment", "collections", "pipelines", "expected"),
    "experiment": ("name", "measures", "baseline", "significance", "correction", "alpha", "output", "cache",
                   "plugins", "runs", "ray"),
    "collections": ("name",),
    "pipelines": ("name", "stages", "collections"),
    "expected": ("collection", "pipeline", "measure", "value", "tolerance"),
}
CORRECTIONS = ("holm", "bonferroni", "none")


def _strict(table: Any, kind: str, where: str) -> dict:
    return strict_table(table, KEYS[kind], where)


def read_toml(path: str | Path, what: str = "experiment") -> dict[str, Any]:
    """The parsed TOML file; a missing file or bad TOML is a ``ConfigError`` naming the file."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what} file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def pipeline_tables(raw: dict[str, Any], path: str | Path) -> list[Any]:
    """A pipeline file's ``[[pipelines]]`` tables, or its top-level ``stages = [...]`` as one pipeline
    named by the file's stem; ``ConfigError`` when it has neither."""
    tables = raw.get("pipelines")
    if tables is None and "stages" in raw:
        tables = [{"name": Path(path).stem, "stages": raw["stages"]}]
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{path}: no [[pipelines]] tables (nor a top-level stages = [...])")
    return tables


def load_experiment(path: str | Path) -> ExperimentSpec:
    path = Path(path)
    raw = read_toml(path)
    base = path.parent
    _strict(raw, "", str(path))
    where = f"{path} [experiment]"
    exp = _strict(raw.get("experiment", {}), "experiment", where)
    load_plugins(exp.get("plugins", []), base, where)
    measures = _need(exp, "measures", where, list)
    if not measures:
        raise ConfigError(f"{where}: 'measures' is empty")
    from rankstack.measures import parse_measure

    for m in measures:
        try:
            parse_measure(m)
        except ValueError as e:
            raise ConfigError(f"{where}: measure {m!r}: {e}") from None
    colls = []
    for i, c in enumerate(raw.get("collections", [])):
        w = f"{path} [[collections]] #{i + 1}"
        colls.append(_need(_strict(c, "collections", w), "name", w, str))
    if not colls:
        raise ConfigError(f"{path}: no [[collections]]")
    pipes = []
    for i, p in enumerate(raw.get("pipelines", [])):
        w = f"{path} [[pipelines]] #{i + 1}"
        name = _need(_strict(p, "pipelines", w), "name", w, str)
        w = f"{path} pipeline {name!r}"
        stages = _need(p, "stages", w, list)
        if not stages:
            raise ConfigError(f"{w}: 'stages' is empty")
        for j, s in enumerate(stages):
            if not isinstance(s, dict) or "stage" not in s:
                raise ConfigError(f"{w} stage #{j + 1}: each stage is a table with a 'stage' field")
            check_spec(s, f"{w} stage #{j + 1}")  # a misspelt parameter fails now, before any work
        only = p.get("collections")
        if only is not None:
            unknown = [c for c in only if c not in colls]
            if unknown:
                raise ConfigError(f"{w}: collections {unknown} are not in [[collections]]")
        pipes.append(PipelineSpec(name, stages, only))
    if not pipes:
        raise ConfigError(f"{path}: no [[pipelines]]")
    expected = []
    for i, e in enumerate(raw.get("expected", [])):
        w = f"{path} [[expected]] #{i + 1}"
        _strict(e, "expected", w)
        expected.append(Expected(
            _need(e, "collection", w, str), _need(e, "pipeline", w, str), _need(e, "measure", w, str),
            float(_need(e, "value", w, (int, float))), float(e.get("tolerance", 1e-4)),
        ))
    sig = exp.get("significance", "t")
    if sig not in ("t", "randomization"):
        raise ConfigError(f"{where}: significance must be 't' or 'randomization', got {sig!r}")
    correction = exp.get("correction", "holm")
    if correction not in CORRECTIONS:
        raise ConfigError(f"{where}: correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    runs = exp.get("runs", True)
    if not isinstance(runs, bool):
        raise ConfigError(f"{where}: 'runs' (write each pipeline's run file) must be true or false")
    ray = _ray_table(exp.get("ray"), where)
    out = exp.get("output")
    cache = exp.get("cache")
    baseline = exp.get("baseline")
    if baseline is not None and baseline not in {p.name for p in pipes}:
        raise ConfigError(f"{where}: baseline {baseline!r} is not a pipeline name")
    return ExperimentSpec(
        name=exp.get("name", path.stem), path=path, collections=colls, pipelines=pipes,
        measures=list(measures), baseline=baseline, significance=sig, alpha=float(exp.get("alpha", 0.05)),
        output=_norm(base / out) if out else None, cache=_norm(base / cache) if cache else None, expected=expected,
        correction=correction, write_runs=runs, text=path.read_text(encoding="utf-8"), ray=ray,
    )


RAY_KEYS = ("address", "workers", "cpus_per_worker", "queries_per_batch")


def _ray_table(val: Any, where: str) -> dict[str, Any] | None:
    """``ray = true`` (a local cluster), ``ray = "ADDRESS"``, or a table of :data:`RAY_KEYS`; false or
    absent: in process."""
    if val is None or val is False:
        return None
    if val is True:
        return {}
    if isinstance(val, str):
        if not val.strip():
            raise ConfigError(f"{where}: 'ray' is an empty address (true starts a local cluster)")
        return {"address": val}
    if not isinstance(val, dict):
        raise ConfigError(f"{where}: 'ray' must be true, an address or a table ({', '.join(RAY_KEYS)}), "
                          f"got {type(val).__name__}")
    unknown = [k for k in val if k not in RAY_KEYS]
    if unknown:
        raise ConfigError(f"{where}: 'ray' has no key {unknown[0]!r}; its keys: {', '.join(RAY_KEYS)}")
    for key in ("workers", "queries_per_batch"):
        if key in val and (isinstance(val[key], bool) or not isinstance(val[key], int) or val[key] < 1):
            raise ConfigError(f"{where}: ray.{key} must be an integer >= 1, got {val[key]!r}")
    cpus = val.get("cpus_per_worker", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not cpus > 0:
        raise ConfigError(f"{where}: ray.cpus_per_worker must be a number > 0, got {cpus!r}")
    if "address" in val and not isinstance(val["address"], str):
        raise ConfigError(f"{where}: ray.address must be a string")
    return dict(val)


def load_plugins(plugins: list[str], base: Path, where: str) -> None:
    """Import each plugin (a ``.py`` file relative to ``base``, or a module name) once; plugins
    register their stages when imported."""
    import importlib
    import importlib.util
    import sys

    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f"{where}: 'plugins' must be a list of file paths or module names")
    for plugin in plugins:
        if plugin.endswith(".py"):
            file = _norm(base / plugin)
            name = f"rankstack_plugin_{file.stem}"
            if name in sys.modules:
                continue
            if not file.exists():
                raise ConfigError(f"{where}: plugin {plugin!r}: no such file {file}")
            spec = importlib.util.spec_from_file_location(name, file)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception:
                del sys.modules[name]
                raise
        else:
            try:
                importlib.import_module(plugin)
            except ImportError as e:
                raise ConfigError(f"{where}: plugin {plugin!r} cannot be imported: {e}") from None


def _norm(p: Path) -> Path:
    return Path(os.path.normpath(p))
