"""Screenshots of a built Snakemake report in headless Chromium, to check by eye that it renders
(the report is a React page: nothing shows until its scripts have run). Not part of the tests:
it needs Chromium and Playwright (`apt-get install chromium`, `pip install playwright`).

    snakemake --report report.html --configfile configs/smoke.yaml
    python benchmarks/report_screenshot.py report.html screenshots/

writes intro.png (the landing page: the introduction and the categories), per_run.png (the
"Per-run curves" category and its first figure) and paper.png (the "Paper" category and its
claims table); exits non-zero when a view shows no text.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

# view name -> the JavaScript steps run on the report's `app` (snakemake/report/html_reporter),
# one React update each, from the landing page (the introduction beside the rule graph, the
# menu listing the categories); `categories` and `results` are the report's own variables.
FIRST_RUN_FIGURE = "Object.values(categories['Per-run curves'])[0][0]"
REPRODUCTION = "'results/paper/reproduction.html'"
VIEWS = {
    "intro": [],
    "per_run": [
        "app.showCategory('Per-run curves')",
        "app.setView({navbarMode: 'subcategory',"
        " subcategory: Object.keys(categories['Per-run curves'])[0]})",
        f"app.setView({{content: 'img', resultPath: {FIRST_RUN_FIGURE},"
        f" contentPath: results[{FIRST_RUN_FIGURE}].data_uri}})",
    ],
    "paper": [
        "app.showCategory('Paper')",
        "app.setView({navbarMode: 'subcategory', subcategory: 'Claims'})",
        f"app.setView({{content: 'html', resultPath: {REPRODUCTION},"
        f" contentPath: results[{REPRODUCTION}].data_uri}})",
    ],
}


def screenshot(report: Path, out_dir: Path, chromium: str, settle_ms: int) -> list[str]:
    """Save one PNG per view; return the views that show no text."""
    out_dir.mkdir(parents=True, exist_ok=True)
    empty = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        for name, steps in VIEWS.items():
            page.goto(report.resolve().as_uri())
            page.wait_for_function("typeof app !== 'undefined'")
            for step in steps:
                page.wait_for_timeout(300)
                page.evaluate(f"() => {{ {step} }}")
            page.wait_for_timeout(settle_ms)
            # The rule graph scrolls the page down as it lays out: show each view from its top.
            page.evaluate("() => document.querySelectorAll('*').forEach(e => e.scrollTo(0, 0))")
            page.screenshot(path=out_dir / f"{name}.png")
            if not page.inner_text("body").strip():
                empty.append(name)
        browser.close()
    return empty


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the report's HTML file")
    parser.add_argument("out_dir", type=Path, help="where the PNGs go")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary")
    parser.add_argument("--settle-ms", type=int, default=1500, help="wait after each view")
    args = parser.parse_args(argv)
    empty = screenshot(args.report, args.out_dir, args.chromium, args.settle_ms)
    for name in empty:
        print(f"{name}: the page shows no text", file=sys.stderr)
    return 1 if empty else 0


if __name__ == "__main__":
    sys.exit(main())
