"""The attacks-and-certification section of the robustness HTML report (issue #19, item 6): success
against the edit budget and the certified ratio against K, from `rankstack attack` / `rankstack
certify` JSON, through `rankstack robustness A.json C.json --html OUT.html`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rankstack.errors import FormatError
from rankstack.interfaces.attack_report import budget_figure, certified_figure, kind_of, success_by_budget
from rankstack.interfaces.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _result(changed: list[int], success: list[bool], status: list[str] | None = None) -> dict:
    status = status or ["succeeded" if s else "failed" for s in success]
    done = [s for s, st in zip(success, status) if st != "skipped"]
    return {"method": "prada", "protocol": "easy5", "targets": len(changed), "attacked": len(done),
            "success_rate": sum(done) / len(done) if done else None,
            "results": [{"words_changed": c, "success": s, "status": st, "start_rank": 60, "final_rank": 5 if s else 40}
                        for c, s, st in zip(changed, success, status)]}


def _attack_json() -> dict:
    return {"victim": "bm25", "model": None, "max_words": 5, "budget": 100, "attacks": [
        _result([1, 3, 5, 5, 2], [True, True, False, True, False]),
        {**_result([0, 4, 2], [False, True, True], ["skipped", "succeeded", "succeeded"]), "protocol": "hard5"}]}


def _cert_json(name: str, ratios: dict[int, float | None]) -> dict:
    return {"victim": name, "model": None, "samples": 1000, "queries": 10, "mc_error": 0.0859,
            "certified_ratio": {str(k): v for k, v in ratios.items()}, "queries_at_k": {}}


def test_success_by_budget_counts_successes_within_b_words():
    rows = _attack_json()["attacks"]
    # targets succeeded with 1, 3 and 5 words; failures never count
    assert success_by_budget(rows[0], 5) == [0.0, 0.2, 0.2, 0.4, 0.4, 0.6]
    assert success_by_budget(rows[0], 5)[-1] == rows[0]["success_rate"]
    # a skipped target (already at rank 1) is left out, as in success_rate
    assert success_by_budget(rows[1], 5) == [0, 0, 0.5, 0.5, 1.0, 1.0]
    assert success_by_budget(rows[0]) == success_by_budget(rows[0], 5)  # default: the most words changed
    assert success_by_budget({"results": []}) is None
    bad = {**rows[0], "success_rate": 0.8}
    with pytest.raises(FormatError, match="success rate of 0.6000 at the full budget, the row says 0.8000"):
        success_by_budget(bad, 5)


def test_figures_plot_the_curves_and_the_ratios():
    fig = budget_figure([_attack_json()])
    lines = fig.axes[0].get_lines()
    assert [list(map(float, ln.get_ydata())) for ln in lines] == [[0, 20, 20, 40, 40, 60], [0, 0, 50, 50, 100, 100]]
    cert = certified_figure([_cert_json("bm25", {1: 0.9, 2: 0.5, 10: 0.1, 50: None}),
                             _cert_json("dense", {1: 0.4, 2: 0.2, 10: 0.0, 50: None})])
    ys = [list(map(float, ln.get_ydata())) for ln in cert.axes[0].get_lines()]
    xs = [list(map(int, ln.get_xdata())) for ln in cert.axes[0].get_lines()]
    assert ys == [[90, 50, 10], [40, 20, 0]] and xs == [[1, 2, 10], [1, 2, 10]]  # K=50: no query, no point


def test_kind_of_tells_the_files_apart():
    assert kind_of(_attack_json()) == "attack"
    assert kind_of(_cert_json("x", {1: 1.0})) == "certification"
    assert kind_of(json.loads((ROOT / "docs/bench/robustness_benchmark.json").read_text())) == "benchmark"
    assert kind_of({"name": "x"}) is None


def test_cli_renders_attack_and_certify_outputs_alone_and_with_a_benchmark(tmp_path, capsys):
    a, c = tmp_path / "a.json", tmp_path / "c.json"
    a.write_text(json.dumps(_attack_json()))
    c.write_text(json.dumps(_cert_json("bm25", {1: 0.9, 2: 0.5, 10: 0.1})))
    out = tmp_path / "ac.html"
    main(["robustness", str(a), str(c), "--html", str(out)])
    page = out.read_text()
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', page)) == 2
    assert "<td>60.0%</td>" in page and "<td>90.0%</td>" in page  # the prada row's success; K=1 certified
    both = tmp_path / "all.html"
    main(["robustness", str(ROOT / "docs/bench/robustness_benchmark.json"), str(a), str(c), "--html", str(both)])
    page = both.read_text()
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', page)) == 3 + 2
    assert "Attacks and certification" in page
    capsys.readouterr()
    other = tmp_path / "o.json"
    other.write_text('{"name": "x"}')
    with pytest.raises(SystemExit) as e:
        main(["robustness", str(a), str(other), "--html", str(tmp_path / "x.html")])
    assert e.value.code == 2 and f"{other}: not a robustness result: missing field(s)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["robustness", str(a), str(ROOT / "experiments" / "robustness.toml"), "--html", str(tmp_path / "x.html")])
    assert e.value.code == 2 and "a TOML benchmark runs on its own" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
