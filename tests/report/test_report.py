"""report.html: written by every run (unless switched off), self-contained, its tables the
top rows of the parquet files (checked against pandas recomputations of the selections),
p/q columns labelled, warnings of the run listed, redrawn atomically by ``report``."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers.explain import explain_api
from click.testing import CliRunner

from isograph_gpu import ExplainConfig, explain_module
from isograph_gpu.cli import main
from isograph_gpu.manifest import MANIFEST
from isograph_gpu.report import REPORT_NAME
from isograph_gpu.report.html import column_header
from isograph_gpu.synthetic import make_synthetic_dataset

N_MODULES = 3


class PageParser(HTMLParser):
    """Tables (headers, cell texts, numeric cell values) by the section they are in, every
    src/href, and the text of each section."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.tables: dict[str, list[dict]] = {}
        self.links: list[tuple[str, str]] = []
        self.text: dict[str, list[str]] = {}
        self._table: dict | None = None
        self._cell: list[str] | None = None
        self._cell_value: str | None = None
        self._row: list | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.links.append((key, a[key]))
        if tag == "section":
            self.section = a.get("id")
        elif tag == "table":
            self._table = {"headers": [], "rows": []}
            self.tables.setdefault(self.section, []).append(self._table)
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th"):
            self._cell, self._cell_value = [], a.get("data-v")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            text = "".join(self._cell).strip()
            if tag == "th":
                self._table["headers"].append(text)
            else:
                self._row.append((text, self._cell_value))
            self._cell = None
        elif tag == "tr" and self._row:
            self._table["rows"].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self.section is not None:
            self.text.setdefault(self.section, []).append(data)


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def column(table: dict, header_start: str, numeric: bool = False) -> list:
    """The cells of the column whose header starts with ``header_start`` (texts, or the
    numbers the cells carry)."""
    j = next(i for i, h in enumerate(table["headers"]) if h.split(" ")[0] == header_start)
    return [float(row[j][1]) if numeric else row[j][0] for row in table["rows"]]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One run of the API on a small synthetic dataset whose feature_meta lacks two of
    the table's features (a warning the run prints)."""
    root = tmp_path_factory.mktemp("report")
    data = make_synthetic_dataset(n_samples=60, n_genes=60, n_modules=N_MODULES,
                                  genes_per_module=8, seed=4)
    paths = data.write(root / "inputs")
    meta = pd.read_parquet(paths["feature_meta"])
    dropped = [f for f in meta["feature_id"] if f.endswith(".T1")][:2]
    meta[~meta["feature_id"].isin(dropped)].to_parquet(paths["feature_meta"], index=False)
    out = root / "explain"
    with pytest.warns(UserWarning, match="not in feature_meta"):
        explain_module(paths["artifact_dir"], paths["feature_table"], paths["feature_meta"],
                       config=ExplainConfig(device="cpu"), output_dir=out,
                       return_tables=False)
    return {"out": out, "paths": paths, "dropped": dropped}


def test_every_run_writes_the_report_and_lists_it(run):
    out = run["out"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert (out / REPORT_NAME).is_file()
    assert REPORT_NAME in manifest["files"]
    assert manifest["optional_parts"]["report"] is True
    assert "report" in manifest["timings_seconds"]
    page = parse(out / REPORT_NAME)
    for module_id in manifest["module_ids"]:
        assert f"module-{module_id}" in page.tables


def test_driver_tables_are_the_top_rows_by_abs_r(run):
    out = run["out"]
    page = parse(out / REPORT_NAME)
    for module_id in json.loads((out / MANIFEST).read_text())["module_ids"]:
        drivers = pd.read_parquet(out / module_id / "gene_driver_table.parquet")
        drivers = drivers[np.isfinite(drivers["r"])]
        expected = drivers.assign(abs_r=drivers["r"].abs()).sort_values(
            ["abs_r", "gene_id"], ascending=[False, True], kind="stable").head(15)
        shown = page.tables[f"module-{module_id}"][0]
        assert column(shown, "gene_id") == expected["gene_id"].tolist()
        assert column(shown, "feature_type") == expected["feature_type"].tolist()
        for name in ("r", "pvalue", "qvalue"):  # the exact float64, for sorting
            assert column(shown, name, numeric=True) == expected[name].tolist()


def test_switching_and_high_vs_low_tables_follow_the_parquet_files(run):
    out = run["out"]
    page = parse(out / REPORT_NAME)
    module_id = "M001"
    polarity = pd.read_parquet(out / module_id / "transcript_polarity_table.parquet")
    strength = polarity.groupby("gene_id")["switch_strength"].first().dropna()
    top = sorted(strength.index, key=lambda g: (-strength[g], g))[:15]
    switching = page.tables[f"module-{module_id}"][1]
    assert column(switching, "gene_id") == top
    assert column(switching, "switch_strength", numeric=True) == [strength[g] for g in top]
    lowest = [polarity.loc[polarity[polarity["gene_id"] == g]["r"].idxmin(), "feature_id"]
              for g in top]
    assert column(switching, "against_feature") == lowest

    hvl = pd.read_parquet(out / module_id / "high_vs_low_table.parquet")
    expected = hvl.sort_values(["pvalue", "feature_id"], kind="stable").head(15)
    shown = page.tables[f"module-{module_id}"][2]
    assert column(shown, "feature_id") == expected["feature_id"].tolist()
    assert column(shown, "delta", numeric=True) == expected["delta"].tolist()


def test_p_and_q_columns_say_whether_they_are_adjusted(run):
    page = parse(run["out"] / REPORT_NAME)
    headers = page.tables["module-M000"][0]["headers"]
    assert "pvalue (unadjusted)" in headers
    assert "qvalue (adjusted, Benjamini-Hochberg)" in headers
    assert column_header("qvalue", "by").endswith("(adjusted, Benjamini-Yekutieli)</span>")
    assert column_header("switch_pvalue", "bh").endswith("(unadjusted)</span>")


def test_the_page_is_self_contained(run):
    out = run["out"]
    text = (out / REPORT_NAME).read_text(encoding="utf-8")
    assert "://" not in text  # no http(s), no CDN, no absolute file URL
    page = parse(out / REPORT_NAME)
    sources = [v for k, v in page.links if k == "src"]
    assert len(sources) == 1 + N_MODULES  # eigengene heatmap + one panel per module
    for src in sources:
        head, _, data = src.partition(",")
        assert head == "data:image/png;base64"
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    for href in (v for k, v in page.links if k == "href"):
        if href.startswith("#"):
            assert f"id='{href[1:]}'" in text
        else:
            assert (out / href).is_file() and (out / href).resolve().is_relative_to(
                out.resolve())


def test_the_run_and_its_warnings_are_on_the_page(run):
    out = run["out"]
    manifest = json.loads((out / MANIFEST).read_text())
    dropped = [w for w in manifest["warnings"] if "not in feature_meta" in w]
    assert len(dropped) == 1 and all(f in dropped[0] for f in run["dropped"])
    page = parse(out / REPORT_NAME)
    warnings_text = "".join(page.text["warnings"])
    assert dropped[0] in warnings_text
    run_text = "".join(page.text["run"])
    for entry in manifest["inputs"].values():
        assert entry["path"] in run_text and entry["sha256_head_tail"] in run_text
    assert manifest["versions"]["torch"] in run_text
    assert "float64" in run_text


def test_no_report_when_switched_off(tmp_path):
    data = make_synthetic_dataset(n_samples=30, n_genes=30, n_modules=1, genes_per_module=5,
                                  seed=2)
    paths = data.write(tmp_path / "inputs")
    inputs = {"artifact": paths["artifact_dir"], "feature_table": paths["feature_table"],
              "feature_meta": paths["feature_meta"]}
    explain_api(inputs, config=ExplainConfig(device="cpu", report=False),
                output_dir=tmp_path / "api")
    result = CliRunner().invoke(main, [
        "explain-module", "--artifact-dir", str(paths["artifact_dir"]), "--feature-table",
        str(paths["feature_table"]), "--feature-meta", str(paths["feature_meta"]),
        "--output-dir", str(tmp_path / "cli"), "--device", "cpu", "--quiet", "--no-report"])
    assert result.exit_code == 0, result.output
    for out in (tmp_path / "api", tmp_path / "cli"):
        assert not (out / REPORT_NAME).exists()
        assert REPORT_NAME not in json.loads((out / MANIFEST).read_text())["files"]


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_report_command_redraws_the_page_atomically_inside_the_dir(run, tmp_path,
                                                                   monkeypatch):
    out = tmp_path / "explain"
    shutil.copytree(run["out"], out)
    (out / REPORT_NAME).write_text("old page")
    before = _digests(out)

    import isograph_gpu.report as report

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(report, "render_page", broken)
    failed = CliRunner().invoke(main, ["report", "--explain-dir", str(out)])
    assert failed.exit_code == 1 and "drawing failed" in failed.output
    assert _digests(out) == before  # the old page, nothing else, no temp file
    monkeypatch.undo()

    result = CliRunner().invoke(main, ["report", "--explain-dir", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out / REPORT_NAME)
    after = _digests(out)
    assert set(after) == set(before)
    assert [f for f in after if after[f] != before[f]] == [REPORT_NAME]
    assert parse(out / REPORT_NAME).tables["module-M000"][0]["rows"]


def test_report_command_on_a_missing_dir_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["report", "--explain-dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: explain dir {tmp_path / 'none'} does not exist or is not a folder"]


def _trait_table(module_ids: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for module_id in module_ids:
        for trait, kind in (("age", "numeric"), ("bmi", "numeric"), ("sex", "categorical")):
            r = rng.uniform(-0.9, 0.9) if kind == "numeric" else np.nan
            rows.append({"module_id": module_id, "trait": trait, "kind": kind,
                         "statistic": r if kind == "numeric" else rng.uniform(0, 9),
                         "r": r, "pvalue": rng.uniform(1e-6, 0.2),
                         "qvalue": rng.uniform(1e-5, 0.3), "n_samples": 60})
    return pd.DataFrame(rows)


def test_module_trait_table_is_drawn_and_listed_when_present(run, tmp_path):
    out = tmp_path / "explain"
    shutil.copytree(run["out"], out)
    traits = _trait_table(["M000", "M001", "M002"])
    traits.to_parquet(out / "module_trait_table.parquet", index=False)
    result = CliRunner().invoke(main, ["report", "--explain-dir", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    page = parse(out / REPORT_NAME)
    table = page.tables["overview"][1]
    assert "qvalue (adjusted, Benjamini-Hochberg)" in table["headers"]
    expected = traits.sort_values(["qvalue", "module_id", "trait"], kind="stable")
    assert column(table, "trait") == expected["trait"].tolist()
    assert column(table, "qvalue", numeric=True) == expected["qvalue"].tolist()
    text = (out / REPORT_NAME).read_text()
    assert "alt='module by trait heatmap'" in text


def test_module_trait_heatmap_marks_the_adjusted_significance():
    from isograph_gpu.plots.overview import plot_module_trait_heatmap, q_stars

    traits = _trait_table(["M000", "M001"])
    ax = plot_module_trait_heatmap(traits)
    marks = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
             for t in ax.texts}
    for i, module_id in enumerate(["M000", "M001"]):
        for j, trait in enumerate(["age", "bmi", "sex"]):
            pair = (traits["module_id"] == module_id) & (traits["trait"] == trait)
            q = traits.loc[pair, "qvalue"].item()
            stars = "***" if q < 0.001 else "**" if q < 0.01 else "*" if q < 0.05 else ""
            assert marks.get((i, j), "") == stars == q_stars(q)


def test_switch_test_columns_are_shown_when_the_tables_carry_them(run, tmp_path):
    out = tmp_path / "explain"
    shutil.copytree(run["out"], out)
    path = out / "M000" / "transcript_polarity_table.parquet"
    polarity = pd.read_parquet(path)
    genes = sorted(polarity["gene_id"].unique())
    p = {g: 10.0 ** -(k + 1) for k, g in enumerate(genes)}
    polarity.assign(switch_pvalue=polarity["gene_id"].map(p),
                    switch_qvalue=polarity["gene_id"].map(p) * 2).to_parquet(path, index=False)
    result = CliRunner().invoke(main, ["report", "--explain-dir", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    switching = parse(out / REPORT_NAME).tables["module-M000"][1]
    assert "switch_pvalue (unadjusted)" in switching["headers"]
    assert "switch_qvalue (adjusted, Benjamini-Hochberg)" in switching["headers"]
    shown = column(switching, "gene_id")
    assert column(switching, "switch_pvalue", numeric=True) == [p[g] for g in shown]
    assert column(switching, "switch_qvalue", numeric=True) == [p[g] * 2 for g in shown]


@pytest.mark.slow
def test_twenty_modules_stay_under_ten_megabytes(tmp_path):
    data = make_synthetic_dataset(n_samples=200, n_genes=400, n_modules=20,
                                  genes_per_module=15, seed=5)
    paths = data.write(tmp_path / "inputs")
    out = tmp_path / "explain"
    explain_api({"artifact": paths["artifact_dir"], "feature_table": paths["feature_table"],
                 "feature_meta": paths["feature_meta"]},
                config=ExplainConfig(device="cpu"), output_dir=out, return_tables=False,
                report=True)
    page = parse(out / REPORT_NAME)
    assert len([s for s in page.tables if s and s.startswith("module-")]) == 20
    assert (out / REPORT_NAME).stat().st_size < 10 * 1024**2


def test_a_quiet_run_says_its_warnings_were_not_recorded(tmp_path):
    """--quiet hides the warnings, so the page must not claim there were none."""
    data = make_synthetic_dataset(n_samples=30, n_genes=30, n_modules=1, genes_per_module=5,
                                  seed=2)
    paths = data.write(tmp_path / "inputs")
    result = CliRunner().invoke(main, [
        "explain-module", "--artifact-dir", str(paths["artifact_dir"]), "--feature-table",
        str(paths["feature_table"]), "--feature-meta", str(paths["feature_meta"]),
        "--output-dir", str(tmp_path / "out"), "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["warnings"] is None
    text = "".join(parse(tmp_path / "out" / REPORT_NAME).text["warnings"])
    assert "not recorded" in text


def test_summary_panels_do_not_depend_on_the_number_of_workers(run):
    """The report's panels drawn in this process and in two forked figure workers are the
    same bytes, in module order."""
    from isograph_gpu.plots.load import load_explain_dir
    from isograph_gpu.report.figures import summary_panel_uris

    results = load_explain_dir(run["out"])
    usage = pd.read_parquet(run["paths"]["feature_table"])
    meta = pd.read_parquet(run["paths"]["feature_meta"])
    alone = summary_panel_uris(results, usage, meta, jobs=1)
    workers = summary_panel_uris(results, usage, meta, jobs=2)
    assert list(alone) == [str(m) for m in results]
    assert workers == alone
