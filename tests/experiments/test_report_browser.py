"""The HTML experiment report (issue #17, item 5): what it computes, and what a reader sees in
headless Chromium, on screen and printed to an A4 PDF.

The first tests need no browser: the confidence intervals, the latency with inputs, the plots'
axes and scales. The browser tests skip only when /usr/bin/chromium or the playwright package is
missing (``apt-get install chromium``; playwright is in the ``test`` extra).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import rankstack
from rankstack.experiments import report as rep
from rankstack.experiments.config import ExperimentSpec, PipelineSpec
from rankstack.experiments.results import Report, Result
from rankstack.measures.significance import significance_table

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MEASURES = ["nDCG@10", "AP"]
#: stage wall times (s) of the synthetic pipelines; per query: divide by the collection's queries
BM25_S, CUT_S, CE_S, FUSE_S = 0.4, 0.004, 4.0, 0.04
META = {"rankstack": "9.8.7-test", "python": "3.11.0", "packages": {"numpy": "1.0-test", "scipy": "2.0-test"},
        "git_commit": "0123abc", "git_dirty": False, "date": "2026-01-02T03:04:05+00:00",
        "machine": {"platform": "test-os", "cpus": 2}, "config": "[experiment]\nname = \"synthetic\"  # the TOML\n"}


def _stage(name: str, wall: float, n: int) -> dict:
    return {"name": name, "wall_s": wall, "queries": n}


def synthetic_report(test: str = "t", meta: dict | None = None, n_queries=(40, 25)) -> Report:
    """Two collections x three pipelines (a baseline, a better one, their RRF), seeded scores."""
    pipes = [
        PipelineSpec("bm25", [{"stage": "bm25", "k": 100}]),
        PipelineSpec("bm25>>ce", [{"stage": "bm25", "k": 100}, {"stage": "cutoff", "k": 20},
                                  {"stage": "cross-encoder"}]),
        PipelineSpec("rrf", [{"stage": "fuse", "pipelines": ["bm25", "bm25>>ce"], "method": "rrf"}]),
    ]
    spec = ExperimentSpec(name="synthetic report", path=Path("synthetic.toml"), collections=["alpha", "beta"],
                          pipelines=pipes, measures=MEASURES, baseline="bm25", significance=test,
                          text=META["config"])
    rng = np.random.default_rng(7)
    results = []
    for cname, n in zip(spec.collections, n_queries):
        qids = [f"{cname}-q{i}" for i in range(n)]
        base = {m: {q: float(v) for q, v in zip(qids, rng.uniform(0.1, 0.8, n))} for m in MEASURES}
        better = {m: {q: min(1.0, v + rng.normal(0.08, 0.05)) for q, v in base[m].items()} for m in MEASURES}
        rrf = {m: {q: (base[m][q] + better[m][q]) / 2 + rng.normal(0, 0.02) for q in qids} for m in MEASURES}
        st = {
            "bm25": [_stage("bm25", BM25_S, n)],
            "bm25>>ce": [_stage("bm25", BM25_S, n), _stage("%20", CUT_S, n), _stage("cross-encoder", CE_S, n)],
            "rrf": [_stage("bm25", 1e-4, n), _stage("bm25>>ce", 1e-4, n), _stage("rrf(bm25, bm25>>ce)", FUSE_S, n)],
        }
        rs = []
        for name, pq in (("bm25", base), ("bm25>>ce", better), ("rrf", rrf)):
            wall = sum(s["wall_s"] for s in st[name])
            rs.append(Result(cname, name, {m: float(np.mean(list(pq[m].values()))) for m in MEASURES}, pq,
                             {"wall_s": wall, "queries": n, "stages": st[name], "ms_per_query": 1000 * wall / n}))
        for m in MEASURES:
            rows = significance_table(rs[0].per_query[m], {r.pipeline: r.per_query[m] for r in rs[1:]}, test=test,
                                      correction="holm")
            for r, row in zip(rs[1:], rows):
                r.significance[m] = asdict(row)
        results += rs
    checks = [{"collection": "alpha", "pipeline": "bm25", "measure": "nDCG@10", "expected": 0.45,
               "tolerance": 1e-4, "got": results[0].aggregate["nDCG@10"], "ok": False}]
    report = Report(spec, results, checks)
    report.meta = dict(META if meta is None else meta)  # also before Report had a meta field
    return report


# -- without a browser -----------------------------------------------------------------------------
def test_t_interval_is_students_and_matches_the_t_test():
    rng = np.random.default_rng(1)
    base = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 30))}
    system = {q: v + float(rng.normal(0.05, 0.1)) for q, v in base.items()}
    d = np.array([system[q] - base[q] for q in base])
    lo, hi = rep.delta_interval(base, system, "t")
    want = stats.t.interval(0.95, d.size - 1, loc=d.mean(), scale=stats.sem(d))
    assert (lo, hi) == pytest.approx(want, abs=1e-12)
    p = stats.ttest_rel(d + 0, np.zeros_like(d)).pvalue
    assert (lo > 0 or hi < 0) == (p < 0.05)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(2)
    base = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 50))}
    system = {q: v + float(rng.normal(0.02, 0.1)) for q, v in base.items()}
    a = rep.delta_interval(base, system, "bootstrap")
    assert a == rep.delta_interval(base, system, "bootstrap")  # seeded: the same interval every time
    mean = np.mean([system[q] - base[q] for q in base])
    assert a[0] < mean < a[1]
    assert a != rep.delta_interval(base, system, "bootstrap", seed=1)
    # only the queries both sides have are paired, as in the significance rows
    assert rep.delta_interval(base, {**system, "extra": 1.0}, "t") == rep.delta_interval(base, system, "t")
    assert all(np.isnan(rep.delta_interval({"q": 0.1}, {"q": 0.2})))


def test_the_interval_follows_the_test():
    assert rep.ci_method("t") == "t" and rep.ci_method("randomization") == "bootstrap"
    assert "Student's t-interval" in rep.render_html(synthetic_report("t"))
    assert "percentile bootstrap" in rep.render_html(synthetic_report("randomization"))


def test_a_fusion_counts_its_inputs_and_a_shared_stage_once():
    lat = rep.latencies(synthetic_report())
    n = 40
    ms = {k: 1000 * v / n for k, v in {"bm25": BM25_S, "cut": CUT_S, "ce": CE_S, "fuse": FUSE_S}.items()}
    assert lat[("alpha", "bm25")].total_ms == pytest.approx(ms["bm25"])
    assert lat[("alpha", "bm25>>ce")].total_ms == pytest.approx(ms["bm25"] + ms["cut"] + ms["ce"])
    fused = lat[("alpha", "rrf")]
    # bm25 runs once although both inputs start with it; the fusion's own time is only its kernel
    assert fused.total_ms == pytest.approx(ms["bm25"] + ms["cut"] + ms["ce"] + ms["fuse"])
    assert fused.own_ms == pytest.approx(ms["fuse"])
    assert fused.inputs == ["bm25", "bm25>>ce"] and not fused.shipped
    assert lat[("beta", "bm25")].total_ms == pytest.approx(1000 * BM25_S / 25)


def test_a_shipped_run_is_marked_and_unknown_stage_times_fall_back_to_the_wall_time():
    report = synthetic_report()
    report.spec.pipelines[0] = PipelineSpec("bm25", [{"stage": "run", "run": "bm25"}])
    for r in report.results:
        if r.pipeline == "bm25>>ce":
            r.stats["stages"] = []  # e.g. a result read back without its stage list
    lat = rep.latencies(report)
    assert lat[("alpha", "bm25")].shipped and lat[("alpha", "rrf")].shipped
    assert not lat[("alpha", "bm25>>ce")].shipped
    assert lat[("alpha", "bm25>>ce")].total_ms == pytest.approx(1000 * (BM25_S + CUT_S + CE_S) / 40)
    assert "0.0†" not in rep.render_html(report) and "†" in rep.render_html(report)


def test_per_query_plots_share_a_scale_per_measure_and_label_their_axes():
    report = synthetic_report()
    fig = rep.per_query_figure(report, "alpha")
    axes = np.array(fig.axes).reshape(2, len(MEASURES))  # a row per pipeline but the baseline
    for j, m in enumerate(MEASURES):
        col = axes[:, j]
        assert all(ax.get_ylabel() == f"Δ {m}" for ax in col)
        assert len({ax.get_ylim() for ax in col}) == 1  # one y scale across the pipelines
        lo, hi = col[0].get_ylim()
        assert lo == -hi  # symmetric: a win and a loss of one size look the same
        deltas = [report.results[1].per_query[m][q] - report.results[0].per_query[m][q]
                  for q in report.results[0].per_query[m]]
        assert hi >= max(abs(d) for d in deltas)  # nothing clipped
        assert col[-1].get_xlabel() == "queries, sorted by Δ"
    titles = [ax.get_title().split("\n")[0].strip() for ax in axes[:, 0]]
    assert titles == [f"{r.pipeline} {rep._mark(r, MEASURES[0])}".strip() for r in report.results[1:3]]
    fig2 = rep.latency_figure(report, "alpha")
    ax = fig2.axes[0]
    assert "ms per query" in ax.get_xlabel() and "inputs included" in ax.get_xlabel()
    assert ax.get_ylabel().startswith("nDCG@10") and ax.get_xscale() == "log"
    old = rep.per_query_delta_figure(report.results[0].per_query["AP"],
                                     {r.pipeline: r.per_query["AP"] for r in report.results[1:3]}, "AP")
    assert len({a.get_ylim() for a in old.axes}) == 1 and old.axes[-1].get_xlabel()


def test_without_a_baseline_the_plots_show_values():
    report = synthetic_report()
    report.spec.baseline = None
    for r in report.results:
        r.significance.clear()
    fig = rep.per_query_figure(report, "alpha")
    assert len(fig.axes) == 3 * len(MEASURES)
    assert {ax.get_ylim() for ax in fig.axes[::len(MEASURES)]} == {fig.axes[0].get_ylim()}
    assert "Δ" not in rep.render_html(report).split("<main>")[1].split("<footer")[0]


def test_the_footer_falls_back_to_this_process_versions_before_meta():
    report = synthetic_report(meta={})
    del report.meta  # a Report from before the meta field
    html = rep.render_html(report)
    footer = html.split("<footer", 1)[1]
    assert f"<td>{rankstack.__version__}</td>" in footer and "numpy" in footer
    assert "# the TOML" in footer  # the experiment's own text


# -- in Chromium -------------------------------------------------------------------------------------
def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing (pip install playwright; it is in the test extra)"
    return None


browser_only = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    report = synthetic_report()
    path = rep.write_html(report, tmp_path_factory.mktemp("report") / "report.html")
    return report, path


@pytest.fixture()
def page(browser, report_file):
    pg = browser.new_page(viewport={"width": 1280, "height": 900})
    pg.goto(report_file[1].as_uri())
    pg.wait_for_load_state("load")
    yield pg
    pg.close()


def _cells(page, collection_index: int) -> list[list[str]]:
    return page.evaluate(
        """i => [...document.querySelectorAll(`#c${i} table.results tbody tr`)].map(
               tr => [...tr.cells].map(td => td.innerText))""", collection_index)


@browser_only
def test_the_table_shows_delta_interval_and_p_values_as_text(page, report_file):
    report, _ = report_file
    text = lambda x: f"{x:+.4f}".replace("-", "−")
    for i, cname in enumerate(report.spec.collections):
        rows = _cells(page, i)
        rs = [r for r in report.results if r.collection == cname]
        assert [row[0].split("\n")[0] for row in rows] == [r.pipeline for r in rs]
        for row, r in zip(rows[1:], rs[1:]):
            for j, m in enumerate(MEASURES):
                cell = row[1 + j]
                sig = r.significance[m]
                lo, hi = rep.delta_interval(rs[0].per_query[m], r.per_query[m], "t")
                assert f"{r.aggregate[m]:.4f}" in cell
                assert f"Δ {text(sig['delta'])}" in cell
                assert f"[{text(lo)}, {text(hi)}]" in cell
                assert f"p {rep._p(sig['p'])}" in cell and f"Holm {rep._p(sig['p_corrected'])}" in cell
                assert (("▲" in cell) or ("▼" in cell)) == sig["significant"]
        assert "baseline" in rows[0][1]
        # the latency cell of the fusion says what it adds up
        assert "own" in rows[2][-1] and "inputs" in rows[2][-1]
    legend = page.inner_text(".legend")
    assert "Holm–Bonferroni" in legend and "95 % CI" in legend and "▲" in legend
    # nothing is only in hover text, and the figures stay visible when printed
    assert page.evaluate("document.querySelectorAll('[title]').length") == 0
    page.emulate_media(media="print")
    assert page.locator("span.ci").first.is_visible() and page.locator("span.p").first.is_visible()


@browser_only
def test_every_plot_image_loads(page, report_file):
    imgs = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
    assert len(imgs) == 2 * len(report_file[0].spec.collections)  # per-query plots + latency, per collection
    for complete, w, h, alt in imgs:
        assert complete and w > 0 and h > 0 and alt
    assert page.locator("figcaption").count() == len(imgs)


@browser_only
def test_the_footer_names_the_versions_and_the_config(page):
    footer = page.inner_text("footer")
    assert "rankstack\t9.8.7-test" in footer or "rankstack 9.8.7-test" in footer.replace("\t", " ")
    assert "numpy 1.0-test" in footer and "0123abc" in footer and "test-os" in footer
    assert '# the TOML' in footer and "cross-encoder" in footer  # the config and each pipeline's stages
    # a pipeline's name in the table leads to its definition
    href = page.get_attribute("#c0 table.results tbody tr:nth-child(2) a.name", "href")
    assert "bm25>>ce" in page.inner_text(href)


@browser_only
@pytest.mark.parametrize("media, width", [("screen", 794), ("print", 703)])  # A4 at 96 dpi; its printable width
def test_no_horizontal_overflow_at_a4_width(browser, report_file, media, width):
    pg = browser.new_page(viewport={"width": width, "height": 1123})
    try:
        pg.emulate_media(media=media)
        pg.goto(report_file[1].as_uri())
        pg.wait_for_load_state("load")
        assert pg.evaluate("document.documentElement.scrollWidth") <= width
        wide = pg.evaluate(f"""[...document.querySelectorAll('table, figure img, pre')]
            .filter(e => e.getBoundingClientRect().right > {width} + 0.5).map(e => e.tagName + '.' + e.className)""")
        assert wide == []
    finally:
        pg.close()


def _pdf_layout(pdf: bytes) -> tuple[list[tuple[float, float]], list[list[str]], dict[str, tuple[int, float]]]:
    """(each page's size in points, the link targets drawn on each page, target id -> (its page, its
    height on the page in points from the bottom)), from the plain objects of Chromium's PDF."""
    objs = {int(m.group(1)): m.group(2) for m in re.finditer(rb"(\d+) 0 obj\s*(.*?)endobj", pdf, re.DOTALL)}
    catalog = next(b for b in objs.values() if re.search(rb"/Type\s*/Catalog", b))
    root = int(re.search(rb"/Pages (\d+) 0 R", catalog).group(1))

    def leaves(n: int) -> list[int]:
        body = objs[n]
        if re.search(rb"/Type\s*/Pages\b", body):
            kids = re.search(rb"/Kids\s*\[([^\]]*)\]", body).group(1)
            return [leaf for k in re.findall(rb"(\d+) 0 R", kids) for leaf in leaves(int(k))]
        return [n]

    pages = leaves(root)
    sizes, links = [], []
    for n in pages:
        box = [float(x) for x in re.search(rb"/MediaBox\s*\[([^\]]*)\]", objs[n]).group(1).split()]
        sizes.append((box[2] - box[0], box[3] - box[1]))
        annots = re.search(rb"/Annots\s*\[([^\]]*)\]", objs[n])
        refs = re.findall(rb"(\d+) 0 R", annots.group(1)) if annots else []
        links.append([m.group(1).decode() for r in refs if (m := re.search(rb"/Dest\s*/([^\s/>\]]+)", objs[int(r)]))])
    dests: dict[str, tuple[int, float]] = {}
    ref = re.search(rb"/Dests (\d+) 0 R", catalog)
    if ref:
        index = {n: i for i, n in enumerate(pages)}
        for name, page_ref, y in re.findall(rb"/([^\s/\[]+)\s*\[(\d+) 0 R /XYZ [\d.]+ ([\d.]+)",
                                            objs[int(ref.group(1))]):
            dests[name.decode()] = (index[int(page_ref)], float(y))
    return sizes, links, dests


@browser_only
def test_printing_gives_a4_pages_with_each_table_on_one_page(browser, report_file):
    report, path = report_file
    pg = browser.new_page()
    try:
        pg.goto(path.as_uri())
        pg.wait_for_load_state("load")
        pdf = pg.pdf(format="A4", print_background=True, prefer_css_page_size=True)
    finally:
        pg.close()
    sizes, links, dests = _pdf_layout(pdf)
    n_coll = len(report.spec.collections)
    assert all(w == pytest.approx(595.3, abs=1.5) and h == pytest.approx(841.9, abs=1.5) for w, h in sizes)
    # each collection's section starts on a new page, at its top, in order (the contents links name them)
    top = sizes[0][1]  # a destination at the start of a page points at the page's top edge
    starts = [dests[f"c{i}"][0] for i in range(n_coll)]
    assert starts == sorted(set(starts)) and starts[0] == 0
    for i in range(1, n_coll):
        assert dests[f"c{i}"][1] == pytest.approx(top, abs=2), f"collection {i} does not start a page"
    assert dests["checks"][0] > starts[-1] and dests["checks"][1] == pytest.approx(top, abs=2)
    assert dests["footer"][0] >= dests["checks"][0]
    for i in range(n_coll):
        # every row's pipeline name links to its definition: the pages those links are on are the
        # pages the table's rows are on
        on = {k for k, page_links in enumerate(links) for d in page_links if d.startswith(f"p{i}-")}
        assert on == {starts[i]}, f"collection {i}'s table is on pages {sorted(on)}"
        n_rows = sum(r.collection == report.spec.collections[i] for r in report.results)
        assert sum(d.startswith(f"p{i}-") for d in links[starts[i]]) == n_rows
    assert len(sizes) <= 2 * n_coll + 2  # a section per page or two; the footer on one more
