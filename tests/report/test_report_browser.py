"""report.html in a real browser: headless Chromium (Debian's package) opens the file from
disk, and nothing but the file itself and its embedded images is requested, no console
message or exception appears, the DOM holds the module ids and the top drivers' gene
ids, and clicking a column header sorts its table. Skips, saying why, without Chromium."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from _helpers.explain import explain_api
from _helpers.headless_browser import find_chromium, visit

from isograph_gpu import ExplainConfig
from isograph_gpu.manifest import MANIFEST
from isograph_gpu.report import REPORT_NAME
from isograph_gpu.synthetic import make_synthetic_dataset

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (/usr/bin/chromium: Debian's chromium "
                             "package; .ci/run installs it)")

#: sort the first driver table by its r column (ascending on the first click), then read
#: the gene ids and r values in the order the rows now stand
SORT_BY_R = """(() => {
  const table = document.querySelector("section.module table.sortable");
  const headers = Array.from(table.querySelectorAll("th"));
  const j = headers.findIndex(h => h.textContent.trim().split(" ")[0] === "r");
  headers[j].click();
  return Array.from(table.tBodies[0].rows).map(row => parseFloat(row.cells[j].dataset.v));
})()"""


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("browser")
    data = make_synthetic_dataset(n_samples=80, n_genes=60, n_modules=3, genes_per_module=8,
                                  seed=8)
    paths = data.write(root / "inputs")
    out = root / "explain"
    explain_api({"artifact": paths["artifact_dir"], "feature_table": paths["feature_table"],
                 "feature_meta": paths["feature_meta"]},
                config=ExplainConfig(device="cpu"), output_dir=out, return_tables=False,
                report=True)
    visit_result = visit(out / REPORT_NAME, CHROMIUM, scripts=(SORT_BY_R,))
    shot = os.environ.get("ISOGRAPH_GPU_REPORT_SCREENSHOT")
    if shot:  # docs/gallery/report.png is taken this way
        Path(shot).write_bytes(visit_result.screenshot_png)
    return {"out": out, "visit": visit_result}


def test_the_browser_requests_nothing_outside_the_file(page):
    report_url = (page["out"] / REPORT_NAME).resolve().as_uri()
    outside = [u for u in page["visit"].requests
               if u != report_url and not u.startswith("data:image/png;base64,")]
    assert outside == []
    assert report_url in page["visit"].requests


def test_no_console_message_and_no_exception(page):
    assert page["visit"].console == []
    assert page["visit"].exceptions == []


def test_the_dom_names_every_module_and_its_top_drivers(page):
    out, text = page["out"], page["visit"].text
    for module_id in json.loads((out / MANIFEST).read_text())["module_ids"]:
        assert f"Module {module_id}" in text
        drivers = pd.read_parquet(out / module_id / "gene_driver_table.parquet")
        top = drivers.assign(abs_r=drivers["r"].abs()).sort_values(
            ["abs_r", "gene_id"], ascending=[False, True]).head(5)
        for gene_id in top["gene_id"]:
            assert gene_id in text
    assert "(adjusted, Benjamini-Hochberg)" in text and "(unadjusted)" in text


def test_clicking_a_header_sorts_the_table(page):
    (r_after_click,) = page["visit"].evaluated
    assert len(r_after_click) > 1
    assert r_after_click == sorted(r_after_click)


def test_the_screenshot_is_a_page(page):
    png = page["visit"].screenshot_png
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
