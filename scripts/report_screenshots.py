#!/usr/bin/env python3
"""Screenshots of the HTML experiment report, on screen and printed, for docs/report/.

Runs the small experiment in ``docs/report/report-demo.toml`` (BM25 variants and their fusions on
SciFact and TREC DL 2019, from the data in the repository: no model, about half a minute the first
time, seconds once cached), writes its report (``results/report-demo/report.html``), opens it in
Debian's headless Chromium through Playwright, and saves:

* ``docs/report/report-screen.png``: the top of the report in a 1280 px wide window;
* ``docs/report/report-screen-plots.png``: SciFact's per-query plots, on screen;
* ``docs/report/report-print-1.png``, ``-2.png``, ``-3.png``: the first pages of the A4 PDF that
  printing gives (``page.pdf``, rendered back by Chromium's own PDF viewer);
* ``results/report-demo/report.pdf``: that PDF.

    .venv/bin/python scripts/report_screenshots.py             # --chromium PATH, --out DIR

Needs ``playwright`` (the ``test`` extra) and a Chromium at /usr/bin/chromium (``apt-get install
chromium``); ``playwright install`` is not needed.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOML = ROOT / "docs" / "report" / "report-demo.toml"
#: on a closed network Chromium hangs without the background-networking flags
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_PNG = 400_000  # bytes


def build_report() -> Path:
    from rankstack.experiments.config import load_experiment
    from rankstack.experiments.runner import run_experiment

    spec = load_experiment(TOML)
    report = run_experiment(spec, progress=False)
    failed = report.failed_checks
    if failed:
        sys.exit(f"golden figures out of tolerance: {failed}")
    assert spec.output is not None
    return spec.output / "report.html"


def _optimize(png: Path, crop: bool = False) -> None:
    """Save ``png`` with a 256-colour palette (a third of the size; text and plots lose nothing visible);
    ``crop``: first cut the PDF viewer's grey background off a screenshot of one page."""
    from PIL import Image, ImageChops

    im = Image.open(png).convert("RGB")
    if crop:
        bg = Image.new("RGB", im.size, im.getpixel((2, 2)))
        box = ImageChops.difference(im, bg).convert("L").point(lambda v: 255 if v > 40 else 0).getbbox()
        if box:
            im = im.crop((box[0] + 1, box[1] + 1, box[2] - 1, box[3] - 1))  # and the page's shadow line
    im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(png, optimize=True)


def shoot(html: Path, out: Path, chromium: str, pages: int = 3) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(html.as_uri())
            page.wait_for_load_state("load")
            top = out / "report-screen.png"
            page.screenshot(path=str(top))
            written.append(top)
            plots = out / "report-screen-plots.png"
            page.locator("section.plots figure").first.screenshot(path=str(plots))
            written.append(plots)
            for shot in (top, plots):
                _optimize(shot)
            pdf = html.with_suffix(".pdf")
            pdf.write_bytes(page.pdf(format="A4", print_background=True, prefer_css_page_size=True))
            n_pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf.read_bytes()))
            # A4 at 1.3 px per CSS px: 1032 x 1460; the viewer fits one page to the window
            viewer = browser.new_context(viewport={"width": 794, "height": 1123}, device_scale_factor=1.3)
            for n in range(1, min(pages, n_pages) + 1):
                tab = viewer.new_page()
                tab.goto(f"{pdf.as_uri()}#toolbar=0&navpanes=0&view=Fit&page={n}")
                time.sleep(2.0)  # the viewer paints after load
                shot = out / f"report-print-{n}.png"
                tab.screenshot(path=str(shot))
                tab.close()
                _optimize(shot, crop=True)
                written.append(shot)
        finally:
            browser.close()
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "report")
    ap.add_argument("--pages", type=int, default=3, help="printed pages to save as PNG")
    args = ap.parse_args()
    html = build_report()
    for path in shoot(html, args.out, args.chromium, args.pages):
        size = path.stat().st_size
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {size / 1000:.0f} KB")
        if size > MAX_PNG:
            sys.exit(f"{path}: {size} bytes, over {MAX_PNG}")
    print(f"report: {html}\nPDF: {html.with_suffix('.pdf')}")


if __name__ == "__main__":
    main()
