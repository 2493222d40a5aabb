"""report.html as text: a readable template filled from :class:`ReportContent` and the
figures' data URIs. Self-contained: CSS and JS inline, images as data URIs, no request to
anything outside the file (links go only to the run's own files, by relative path)."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from string import Template
from typing import Any
from urllib.parse import quote

import pandas as pd

from .content import ModuleContent, ReportContent

FDR_NAMES = {"bh": "Benjamini-Hochberg", "by": "Benjamini-Yekutieli"}

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>isograph-gpu report: $title</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1a1a1a; background: #fafafa; }
header { background: #22313f; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; color: #cfd8e0; }
nav { padding: 8px 28px; background: #eef1f4; border-bottom: 1px solid #d5dbe1; }
nav a { margin-right: 12px; }
main { padding: 0 28px 40px; max-width: 1200px; }
section { background: #fff; border: 1px solid #dde2e7; border-radius: 6px;
          padding: 12px 20px; margin: 18px 0; }
h2 { font-size: 18px; margin: 6px 0 10px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
table { border-collapse: collapse; font-size: 12.5px; margin: 4px 0 10px; }
th, td { border-bottom: 1px solid #e3e6ea; padding: 3px 9px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f5f7; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #9aa5b1; }
table.sortable th.asc::after { content: " \\2191"; color: #22313f; }
table.sortable th.desc::after { content: " \\2193"; color: #22313f; }
.adj { color: #8a4b00; font-weight: normal; font-size: 11px; }
.unadj { color: #5a6b7b; font-weight: normal; font-size: 11px; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.facts td:first-child { color: #5a6b7b; white-space: nowrap; }
.files a { margin-right: 12px; font-family: monospace; }
.warnings li { color: #8a4b00; }
.muted { color: #6b7785; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12px; }
</style>
</head>
<body>
<header>
<h1>isograph-gpu report</h1>
<p>$subtitle</p>
</header>
<nav>$nav</nav>
<main>
$sections
</main>
<script>
// click a column header to sort its table (numbers by value, NaN last; text by name)
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(ascending ? "asc" : "desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.v, y = b.cells[column].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        if (x !== undefined && y !== undefined) {
          if (isNaN(nx)) { return isNaN(ny) ? 0 : 1; }
          if (isNaN(ny)) { return -1; }
          return ascending ? nx - ny : ny - nx;
        }
        var tx = a.cells[column].textContent, ty = b.cells[column].textContent;
        return ascending ? tx.localeCompare(ty) : ty.localeCompare(tx);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
</script>
</body>
</html>
""")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number_text(value: float, column: str) -> str:
    if not math.isfinite(value):
        return "NaN"
    if "pvalue" in column or "qvalue" in column:
        return f"{value:.3g}" if value >= 1e-3 or value == 0 else f"{value:.2e}"
    if column.startswith("n_") or column.endswith("_bytes"):
        return f"{int(value)}"
    return f"{value:.3f}"


def column_header(column: str, fdr_method: str) -> str:
    """A column's header: p-values say unadjusted, q-values say how they were adjusted."""
    adjusted = FDR_NAMES.get(fdr_method, fdr_method)
    if column.endswith("qvalue"):
        return (f"{esc(column)} <span class='adj'>(adjusted, {esc(adjusted)})</span>")
    if column.endswith("pvalue"):
        return f"{esc(column)} <span class='unadj'>(unadjusted)</span>"
    return esc(column)


def table_html(frame: pd.DataFrame, fdr_method: str, css_class: str = "sortable") -> str:
    """An HTML table of ``frame``; numeric cells carry their value for sorting."""
    if frame is None or frame.empty:
        return "<p class='muted'>no rows</p>"
    head = "".join(f"<th>{column_header(str(c), fdr_method)}</th>" for c in frame.columns)
    numeric = {c: pd.api.types.is_numeric_dtype(frame[c]) and not
               pd.api.types.is_bool_dtype(frame[c]) for c in frame.columns}
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            if numeric[column]:
                number = float(value) if value is not None and not pd.isna(value) else math.nan
                cells.append(f"<td class='num' data-v='{number!r}'>"
                             f"{_number_text(number, str(column))}</td>")
            else:
                text = "" if value is None or (not isinstance(value, str) and pd.isna(value)) \
                    else str(value)
                cells.append(f"<td class='mono'>{esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table class='{css_class}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def facts_html(rows: Sequence[tuple[str, object]]) -> str:
    return "<table class='facts'>" + "".join(
        f"<tr><td>{esc(k)}</td><td class='mono'>{esc(v)}</td></tr>" for k, v in rows) \
        + "</table>"


def _inputs_frame(inputs: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for name, entry in inputs.items():
        entry = entry if isinstance(entry, Mapping) else {"path": entry}
        rows.append({"input": name, "path": str(entry.get("path", "")),
                     "size_bytes": entry.get("size"),
                     "sha256 (first+last MiB)": str(entry.get("sha256_head_tail", "")),
                     })
    return pd.DataFrame(rows)


def run_section(content: ReportContent) -> str:
    m = content.manifest
    facts = [
        ("modules", f"{m.get('n_modules', len(content.modules))}"),
        ("samples", m.get("n_samples", "")),
        ("device", f"{m.get('device', '')} ({m.get('device_name', '')})"),
        ("precision", f"{m.get('precision', '')} (p-values {m.get('pvalue_precision', '')})"),
        ("q-values", f"{FDR_NAMES.get(content.fdr_method, content.fdr_method)}, per module"),
        ("feature table streamed", m.get("feature_table_streamed", "")),
        ("isograph-gpu", m.get("isograph_gpu_version", "")),
        ("reproduces", f"isograph {m.get('isograph_version', '')}"),
    ]
    inputs = m.get("inputs") if isinstance(m.get("inputs"), Mapping) else {}
    versions = m.get("versions") if isinstance(m.get("versions"), Mapping) else {}
    timings = m.get("timings_seconds") if isinstance(m.get("timings_seconds"), Mapping) else {}
    timing_rows = pd.DataFrame({"stage": list(timings),
                                "seconds": [float(v) for v in timings.values()]})
    config = json.dumps(m.get("config", {}), indent=1, sort_keys=True)
    return (
        "<section id='run'><h2>The run</h2>" + facts_html(facts)
        + "<h3>Inputs</h3>" + table_html(_inputs_frame(inputs), content.fdr_method, "plain")
        + "<h3>Stage timings</h3>" + table_html(timing_rows, content.fdr_method, "plain")
        + "<h3>Versions</h3>" + facts_html(list(versions.items()))
        + f"<h3>Configuration</h3><details><summary>every setting</summary>"
        f"<pre class='mono'>{esc(config)}</pre></details></section>")


def warnings_section(content: ReportContent) -> str:
    shown = content.manifest.get("warnings")
    if not isinstance(shown, list):
        return ("<section id='warnings'><h2>Warnings</h2><p class='muted'>not recorded: "
                "the run hid its warnings (--quiet)</p></section>")
    if not shown:
        return "<section id='warnings'><h2>Warnings</h2><p>none</p></section>"
    items = "".join(f"<li>{esc(w)}</li>" for w in shown)
    return f"<section id='warnings'><h2>Warnings ({len(shown)})</h2><ul class='warnings'>" \
        f"{items}</ul></section>"


def overview_section(content: ReportContent, eigengene_uri: str | None,
                     trait_uri: str | None) -> str:
    rows = pd.DataFrame([{
        "module_id": mod.module_id, "n_module_genes": mod.n_module_genes,
        "n_driver_genes": mod.n_driver_genes, "n_transcripts": mod.n_transcripts,
        "top_driver": mod.drivers["gene_id"].iloc[0] if len(mod.drivers) else "",
        "top_switch_gene": mod.switching["gene_id"].iloc[0] if len(mod.switching) else "",
    } for mod in content.modules])
    parts = ["<section id='overview'><h2>Modules</h2>",
             table_html(rows, content.fdr_method)]
    if eigengene_uri:
        parts.append(f"<h3>Eigengenes</h3><img alt='module eigengene heatmap' "
                     f"src='{eigengene_uri}'>")
    if content.module_traits is not None:
        parts.append("<h3>Module-trait associations</h3>")
        if trait_uri:
            parts.append(f"<img alt='module by trait heatmap' src='{trait_uri}'>")
        traits = content.module_traits
        order = traits.assign(_q=pd.to_numeric(traits["qvalue"], errors="coerce")) \
            .sort_values(["_q", "module_id", "trait"], na_position="last", kind="stable") \
            .drop(columns="_q")
        parts.append(table_html(order.reset_index(drop=True), content.fdr_method))
    parts.append("</section>")
    return "".join(parts)


def module_section(module: ModuleContent, panel_uri: str | None, fdr_method: str) -> str:
    mid = esc(module.module_id)
    links = "".join(f"<a href='{esc(quote(f))}'>{esc(f)}</a>" for f in module.files)
    panel = (f"<img alt='{mid} summary panel' src='{panel_uri}'>" if panel_uri else
             "<p class='muted'>no summary panel</p>")
    return (
        f"<section id='module-{mid}' class='module'><h2>Module {mid}</h2>"
        f"<p>{module.n_module_genes} module genes, {module.n_driver_genes} driver genes, "
        f"{module.n_transcripts} transcripts</p>{panel}"
        "<h3>Top driver genes</h3><p class='muted'>ranked by |r| with the module "
        "eigengene; feature_id / feature_type: the channel (isoform switch or abundance) "
        "that made the gene a driver</p>" + table_html(module.drivers, fdr_method)
        + "<h3>Top switching genes</h3><p class='muted'>switch strength: spread of the "
        "gene's transcripts' r with the eigengene; against / with: the transcripts moving "
        "most against and with the module</p>" + table_html(module.switching, fdr_method)
        + "<h3>High vs low module samples</h3><p class='muted'>features with the "
        "smallest Welch p (unadjusted)</p>" + table_html(module.high_vs_low, fdr_method)
        + f"<h3>Files</h3><p class='files'>{links}</p></section>")


def render_page(content: ReportContent, panels: Mapping[str, str],
                eigengene_uri: str | None, trait_uri: str | None) -> str:
    """The whole page as one string."""
    ids = [m.module_id for m in content.modules]
    title = ", ".join(ids[:6]) + (" ..." if len(ids) > 6 else "")
    shown = content.manifest.get("warnings")
    n_warnings = len(shown) if isinstance(shown, list) else "not recorded"
    nav = ("<a href='#overview'>modules</a>"
           + "".join(f"<a href='#module-{esc(i)}'>{esc(i)}</a>" for i in ids)
           + f"<a href='#warnings'>warnings ({n_warnings})</a><a href='#run'>the run</a>")
    m = content.manifest
    subtitle = (f"{len(ids)} modules, {m.get('n_samples', '?')} samples; device "
                f"{m.get('device', '?')}, precision {m.get('precision', '?')}")
    # findings first; how they were computed (the run) after the modules
    sections = [overview_section(content, eigengene_uri, trait_uri)]
    sections += [module_section(mod, panels.get(mod.module_id), content.fdr_method)
                 for mod in content.modules]
    sections += [warnings_section(content), run_section(content)]
    return PAGE.substitute(title=esc(title), subtitle=esc(subtitle), nav=nav,
                           sections="\n".join(sections))
