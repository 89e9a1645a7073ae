"""The five-task robustness benchmark on real parts: BM25 and all-MiniLM-L6-v2 on a handful of
SciFact test queries through ``rankstack robustness``, and a hand-made collection where a typo must
lower BM25's nDCG@10."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rankstack.data.records import Collection, Document, Qrels, Query
from rankstack.errors import ConfigError
from rankstack.interfaces.cli import main
from rankstack.robust.benchmark import distribution, load_benchmark, markdown, parse_benchmark, run_benchmark
from rankstack.robust.variations import vary

SMALL = """
[benchmark]
name = "ci"
tasks = ["iid", "variations", "query-attack", "doc-attack"]
depth = 10
seed = 0
bootstrap = 200
cache = "{cache}"
variations = ["typo", "order", "drop"]

[attack]
methods = ["stuffing"]
queries = 1
depth = 60

[[collections]]
name = "scifact"
role = "iid"
queries = 40
candidates = [{{ stage = "bm25", k = 100 }}]

[[rankers]]
name = "bm25"
stage = {{ stage = "bm25-rerank" }}

[[rankers]]
name = "minilm"
stage = {{ stage = "dense-rerank", max_length = 128 }}
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("robustness")
    toml = d / "bench.toml"
    toml.write_text(SMALL.format(cache=d / "cache"))
    out = d / "out.json"
    main(["robustness", str(toml), "-o", str(out), "--queries", "4", "--html", str(d / "out.html")])  # caps 40
    return d, toml, json.loads(out.read_text())


def test_unperturbed_bm25_equals_rankstack_evaluate(small, capsys):
    d, toml, res = small
    from rankstack.data import datasets
    from rankstack.data.formats import write_run
    from rankstack.index.bm25 import BM25Index

    coll = datasets.load("scifact")
    ids = res["collections"]["scifact"]["query_ids"]
    assert len(ids) == 4 and len(set(ids)) == 4
    qs = [q for q in coll.queries if q.id in ids]
    run = BM25Index.load(next((d / "cache").glob("scifact/index/bm25"))).retriever(k=100)(qs)
    write_run(run, d / "bm25.trec", tag="bm25")
    capsys.readouterr()
    main(["evaluate", "scifact", str(d / "bm25.trec"), "-m", "nDCG@10", "--json", "--per-query"])
    ev = json.loads(capsys.readouterr().out)
    assert res["per_query"]["scifact"]["bm25"]["original"] == ev["per_query"]["nDCG@10"]
    assert res["tasks"]["iid"]["scifact"]["bm25"]["mean"] == pytest.approx(ev["aggregate"]["nDCG@10"], abs=1e-12)


def test_distribution_figures(small):
    _, _, res = small
    for r in ("bm25", "minilm"):
        pq = res["per_query"]["scifact"][r]["original"]
        v = np.array([pq[q] for q in sorted(pq)])
        got = res["tasks"]["iid"]["scifact"][r]
        assert got["std"] == pytest.approx(v.std(ddof=1)) and got["variance"] == pytest.approx(v.var(ddof=1))
        assert got["q10"] == pytest.approx(np.quantile(v, 0.1)) and got["q25"] == pytest.approx(np.quantile(v, 0.25))
        lo, hi = got["ci95"]
        assert v.min() <= lo <= got["mean"] <= hi <= v.max()
        assert distribution(pq, 200, 0) == got  # seeded: the same interval again
    many = {str(i): float(i % 7) / 7 for i in range(50)}
    assert distribution(many, 500, 1)["ci95"] != distribution(many, 500, 2)["ci95"]


def test_variations_and_query_attack_figures(small):
    _, _, res = small
    pq = res["per_query"]["scifact"]
    for r in ("bm25", "minilm"):
        for k in ("typo", "order", "drop"):
            row = res["tasks"]["variations"]["scifact"][k][r]
            assert row["drop"] == pytest.approx(np.mean([pq[r][k][q] - pq[r]["original"][q] for q in pq[r]["original"]]))
        worst = np.mean([min(pq[r][k][q] for k in ("typo", "order", "drop")) for q in pq[r]["original"]])
        assert res["tasks"]["query-attack"]["scifact"][r]["mean"] == pytest.approx(worst)
        assert res["tasks"]["query-attack"]["scifact"][r]["drop"] <= 1e-12  # the worst case never gains
    # BM25 is a bag of words: shuffling the query cannot change a single score
    assert pq["bm25"]["order"] == pq["bm25"]["original"]
    assert res["collections"]["scifact"]["variations_changed"] == {"typo": 4, "order": 4, "drop": 4}


def test_document_attack_and_table(small):
    _, _, res = small
    bm = res["tasks"]["doc-attack"]["rankers"]["bm25"][0]
    assert bm["method"] == "stuffing" and bm["attacked"] == 5 and bm["success_rate"] == 1.0  # lexical: always
    rows = {(r["task"], r["figure"]): r for r in res["table"]}
    iid = rows["1 IID", "nDCG@10 mean"]
    assert iid["delta"]["bm25"] == 0.0
    assert iid["best"] in ("bm25", "minilm", "bm25 = minilm")
    assert rows["3 variation", "order (4 queries changed)"]["delta"]["bm25"] == 0.0
    md = markdown(res)
    assert md.count("\n") == len(res["table"]) + 1 and "| 4a document attack |" in md


def test_a_typo_must_lower_bm25():
    q = Query("q1", "aspirin")
    typo = vary(q, "typo", 0).text
    assert typo != "aspirin"
    docs = {"d1": Document("d1", "aspirin lowers the risk of heart attack"),
            "d2": Document("d2", f"a note on {typo} and other words"),
            "d3": Document("d3", "unrelated text about bridges")}
    coll = Collection("toy", docs, [q], Qrels({"q1": {"d1": 1}}))
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "cands.trec"
        run.write_text("q1 Q0 d1 1 3 x\nq1 Q0 d2 2 2 x\nq1 Q0 d3 3 1 x\n")
        spec = parse_benchmark({
            "benchmark": {"tasks": ["iid", "variations"], "variations": ["typo"], "depth": 3, "cache": tmp},
            "collections": [{"name": "toy", "candidates": [{"stage": "run", "path": str(run)}]}],
            "rankers": [{"name": "bm25", "stage": {"stage": "bm25-rerank"}}]})
        res = run_benchmark(spec, collections={"toy": coll})
    pq = res["per_query"]["toy"]["bm25"]
    assert pq["original"]["q1"] == 1.0  # d1 alone matches "aspirin"
    # the typo matches d2 only; d1 and d3 tie at 0 and trec_eval puts the larger id first: d2, d3, d1
    assert pq["typo"]["q1"] == pytest.approx(1 / np.log2(4))
    assert res["tasks"]["variations"]["toy"]["typo"]["bm25"]["drop"] == pytest.approx(-0.5)


@pytest.mark.parametrize("edit, message", [
    (("benchmark", "tasks", ["iid", "odd"]), "field 'tasks': unknown 'odd'"),
    (("benchmark", "baselin", "bm25"), "unknown key 'baselin' \\(did you mean 'baseline'\\?\\)"),
    (("rankers", "stage", {"stage": "bm25"}), "ranker 'r': field 'stage': 'bm25' is not a reranker"),
    (("rankers", "stage", {"stage": "bm25-rerank", "k2": 1}), "ranker 'r' stage: stage 'bm25-rerank' has no parameter 'k2'"),
    (("collections", "role", "train"), "collection 'scifact': field 'role' must be 'iid' or 'ood'"),
    (("collections", "queries", 0), "field 'queries' must be >= 1"),
    (("attack", "methods", ["prado"]), "\\[attack\\]: field 'methods': unknown 'prado'"),
])
def test_bad_files_name_file_table_and_field(tmp_path, edit, message):
    raw = {"benchmark": {"tasks": ["iid"]}, "attack": {},
           "collections": [{"name": "scifact", "role": "iid", "candidates": [{"stage": "bm25", "k": 100}]}],
           "rankers": [{"name": "r", "stage": {"stage": "bm25-rerank"}}]}
    table, key, val = edit
    (raw[table][0] if isinstance(raw[table], list) else raw[table])[key] = val
    with pytest.raises(ConfigError, match=message):
        parse_benchmark(raw, tmp_path / "b.toml")


def test_cli_bad_input_is_one_error_line(tmp_path, capsys):
    f = tmp_path / "b.toml"
    f.write_text("[benchmark]\nmeasure = 'nDCG@ten'\n")
    with pytest.raises(SystemExit) as e:
        main(["robustness", str(f), "-o", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(f"error: {f} [benchmark]: field 'measure'")
    with pytest.raises(ConfigError, match="no such robustness benchmark file"):
        load_benchmark(tmp_path / "missing.toml")


def _images(page: str) -> list[str]:
    import re

    return re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)


def test_html_report_written_with_the_run(small):
    d, _, result = small
    page = (d / "out.html").read_text()
    assert len(_images(page)) == 3  # effectiveness (IID only here), variations, document attack
    mean = result["tasks"]["iid"]["scifact"]["minilm"]["mean"]
    assert f"{mean:.3f}" in page and "<th>minilm</th>" in page


def test_html_report_renders_a_finished_result(tmp_path, capsys):
    """``rankstack robustness OUT.json --html`` renders the recorded benchmark without rerunning it; the
    plotted bars are the recorded means."""
    from pathlib import Path

    from rankstack.interfaces.robustness_report import effectiveness_figure, load_result

    shipped = Path(__file__).resolve().parents[2] / "docs" / "bench" / "robustness_benchmark.json"
    out = tmp_path / "r.html"
    main(["robustness", str(shipped), "--html", str(out)])
    assert "| 1 IID | scifact | nDCG@10 mean |" in capsys.readouterr().out
    page = out.read_text()
    assert len(_images(page)) == 3
    assert '<td class="up"><span class="v">0.664</span>' in page  # ce-scifact, best in domain
    result = load_result(shipped)
    fig = effectiveness_figure(result)
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches)
    want = sorted(round(v["mean"], 6) for role in ("iid", "ood") for per in result["tasks"][role].values()
                  for v in per.values())
    assert heights == want and len(want) == 12  # 3 collections x 4 rankers


def test_html_report_bad_input_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "r.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(SystemExit) as e:
        main(["robustness", str(bad), "--html", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"error: {bad}: not a robustness result: missing field(s) measure" in err
    with pytest.raises(SystemExit) as e:
        main(["robustness", str(bad)])
    assert e.value.code == 2 and "give --html" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
