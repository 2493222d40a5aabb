"""Figure files: formats (magic bytes), byte-for-byte determinism, vector text, the
``isograph-gpu plot`` command (manifest update, one-line errors) and load_explain_dir."""

from __future__ import annotations

import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _helpers import paths
from click.testing import CliRunner

from isograph_gpu.errors import MissingInputError
from isograph_gpu.plots import load_explain_dir, plot_driver_bar, render_explain_figures
from isograph_gpu.plots.style import encode_png, figure_bytes, figure_style, freeze_layout

FIXTURE = paths.DATA / "isograph-0.1.5"
API_RUN = FIXTURE / "expected" / "api_run"
FEATURE_TABLE = FIXTURE / "inputs" / "feature_table.parquet"
FEATURE_META = FIXTURE / "inputs" / "feature_meta.parquet"
TABLES = ("gene_driver_table", "transcript_polarity_table", "high_vs_low_table")
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


def make_explain_dir(root: Path, modules=("M000", "M003"), with_module_info=True) -> Path:
    """An explain output dir built from the fixture: tables, eigengenes and a manifest."""
    out = root / "explain"
    for m in modules:
        shutil.copytree(API_RUN / m, out / m,
                        ignore=shutil.ignore_patterns("vae_*", "ig_*"))
    eig = pd.read_parquet(API_RUN / "eigengenes.parquet")[["sample_id", *modules]]
    eig.to_parquet(out / "eigengenes.parquet", index=False)
    manifest = json.loads((API_RUN / "module_explanation_manifest.json").read_text())
    manifest.update(module_ids=list(modules), n_modules=len(modules))
    if with_module_info:
        manifest["modules"] = {m: {"n_module_genes": 20, "n_transcripts": 0} for m in modules}
    (out / "module_explanation_manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


def is_svg(data: bytes) -> bool:
    return data.lstrip().startswith(b"<?xml") and b"<svg" in data[:2000]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("formats")
    results = load_explain_dir(make_explain_dir(root, modules=("M000",)))
    usage = pd.read_parquet(FEATURE_TABLE)  # sample_id column form
    files = render_explain_figures(results, root / "figs", ("png", "pdf", "svg"), usage,
                                   pd.read_parquet(FEATURE_META), top_n=3, dpi=40)
    return root / "figs", files


def test_every_figure_in_every_format_with_magic_bytes(rendered):
    out, files = rendered
    stems = {f.rsplit(".", 1)[0] for f in files if not f.endswith(".json")}
    assert len(stems) == 8  # eigengene heatmap + 7 module figures
    for stem in stems:
        for fmt in ("png", "pdf", "svg"):
            data = (out / f"{stem}.{fmt}").read_bytes()
            assert is_svg(data) if fmt == "svg" else data.startswith(MAGIC[fmt]), (stem, fmt)


def test_vector_output_keeps_text_and_has_no_dates(rendered):
    out, _ = rendered
    svg = (out / "M000" / "driver_bar.svg").read_text()
    assert "<text" in svg and "G00023_name" in svg  # text as text, gene names in labels
    assert "<dc:date>" not in svg
    pdf = (out / "M000" / "driver_bar.pdf").read_bytes()
    assert b"/FontFile2" in pdf  # TrueType (Type 42) embedded, text stays selectable
    assert b"/CreationDate" not in pdf and b"/ModDate" not in pdf


@pytest.mark.parametrize("fmt", ["svg", "pdf", "png"])
def test_rendering_twice_gives_identical_bytes(fmt):
    drivers = pd.read_parquet(API_RUN / "M002" / "gene_driver_table.parquet")
    first = figure_bytes(plot_driver_bar(drivers).figure, fmt, dpi=40)
    second = figure_bytes(plot_driver_bar(drivers).figure, fmt, dpi=40)
    assert first == second


def decode_png(data: bytes) -> tuple[np.ndarray, str, tuple]:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    return np.asarray(image), image.mode, image.info.get("dpi")


@pytest.mark.parametrize("dpi", [40, 300])
def test_png_has_the_pixels_matplotlib_savefig_draws(dpi):
    drivers = pd.read_parquet(API_RUN / "M002" / "gene_driver_table.parquet")
    ours = figure_bytes(plot_driver_bar(drivers).figure, "png", dpi=dpi)
    reference = plot_driver_bar(drivers).figure
    freeze_layout(reference, dpi)
    buf = io.BytesIO()
    with figure_style():
        reference.savefig(buf, format="png", dpi=dpi, facecolor="white")
    pixels, mode, resolution = decode_png(ours)
    expected, _, expected_resolution = decode_png(buf.getvalue())
    assert mode == "RGB"  # opaque figure: no alpha channel stored
    np.testing.assert_array_equal(pixels, expected[..., :3])
    assert (expected[..., 3] == 255).all()
    assert resolution == expected_resolution == pytest.approx((dpi, dpi), abs=0.02)


def test_encode_png_round_trips_rgb_and_rgba():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    pixels, mode, resolution = decode_png(encode_png(rgba, 150))
    assert mode == "RGBA" and resolution == pytest.approx((150, 150), abs=0.02)
    np.testing.assert_array_equal(pixels, rgba)
    rgba[..., 3] = 255
    pixels, mode, _ = decode_png(encode_png(rgba, 150))
    assert mode == "RGB"
    np.testing.assert_array_equal(pixels, rgba[..., :3])
    assert encode_png(rgba, 150) == encode_png(rgba.copy(), 150)


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_saving_draws_the_figure_once(fmt):
    drivers = pd.read_parquet(API_RUN / "M002" / "gene_driver_table.parquet")
    fig = plot_driver_bar(drivers).figure
    freeze_layout(fig, 40)
    assert fig.get_layout_engine() is None  # a leftover engine makes savefig draw twice
    draws = []
    original = fig.draw
    fig.draw = lambda renderer: (draws.append(1), original(renderer))[1]
    figure_bytes(fig, fmt, dpi=40)
    assert len(draws) == 1


def test_png_of_a_figure_on_another_canvas_leaves_its_canvas():
    from matplotlib.backend_bases import FigureCanvasBase

    drivers = pd.read_parquet(API_RUN / "M002" / "gene_driver_table.parquet")
    fig = plot_driver_bar(drivers).figure
    expected = figure_bytes(fig, "png", dpi=40)
    other = plot_driver_bar(drivers).figure
    canvas = FigureCanvasBase(other)
    assert figure_bytes(other, "png", dpi=40) == expected
    assert other.canvas is canvas


def test_full_render_is_deterministic_for_vector_formats(rendered, tmp_path):
    out, files = rendered
    results = load_explain_dir(out.parent / "explain")
    again = render_explain_figures(results, tmp_path, ("pdf", "svg"),
                                   pd.read_parquet(FEATURE_TABLE),
                                   pd.read_parquet(FEATURE_META), top_n=3, dpi=40)
    assert again == [f for f in files if not f.endswith(".png")]
    for rel in again:
        assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_load_explain_dir_round_trips_tables_and_eigengenes(tmp_path):
    results = load_explain_dir(make_explain_dir(tmp_path))
    assert list(results) == ["M000", "M003"]
    eig = pd.read_parquet(API_RUN / "eigengenes.parquet")
    for m, res in results.items():
        for name in TABLES:
            pd.testing.assert_frame_equal(getattr(res, name),
                                          pd.read_parquet(API_RUN / m / f"{name}.parquet"))
        np.testing.assert_array_equal(res.eigengene, eig[m].to_numpy())
        assert res.sample_ids == eig["sample_id"].tolist()
        assert res.n_module_genes == 20


def test_load_explain_dir_without_module_info_or_eigengenes(tmp_path):
    out = make_explain_dir(tmp_path, modules=("M001",), with_module_info=False)
    (out / "eigengenes.parquet").unlink()
    with pytest.warns(UserWarning, match="eigengenes.parquet not found"):
        res = load_explain_dir(out)["M001"]
    assert res.n_module_genes == len(res.gene_driver_table)
    assert res.eigengene.size == 0 and res.sample_ids == []


def test_load_explain_dir_missing_parts_name_the_path(tmp_path):
    with pytest.raises(MissingInputError, match="nowhere"):
        load_explain_dir(tmp_path / "nowhere")
    out = make_explain_dir(tmp_path)
    (out / "M003" / "high_vs_low_table.parquet").unlink()
    with pytest.raises(MissingInputError, match=r"M003.high_vs_low_table.parquet"):
        load_explain_dir(out)


# ------------------------------------------------------------------ CLI


def cli():
    from isograph_gpu.cli import main

    return main


def test_plot_command_renders_and_updates_manifest(tmp_path):
    out = make_explain_dir(tmp_path)
    before = json.loads((out / "module_explanation_manifest.json").read_text())
    result = CliRunner().invoke(cli(), [
        "plot", "--explain-dir", str(out), "--feature-table", str(FEATURE_TABLE),
        "--feature-meta", str(FEATURE_META), "--output-format", "png", "svg",
        "--top-n", "3", "--dpi", "40", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    plot_files = manifest["plot_files"]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if p.suffix in {".png", ".svg"})
    assert sorted(plot_files) == on_disk
    assert len(plot_files) == 2 * (1 + 2 * 7)
    assert plot_files[:2] == ["eigengene_heatmap.png", "eigengene_heatmap.svg"]
    assert {k: v for k, v in manifest.items() if k != "plot_files"} == \
        {k: v for k, v in before.items() if k != "plot_files"}
    summary = json.loads((out / "M003" / "module_summary.json").read_text())
    assert summary["module_id"] == "M003" and summary["n_module_genes"] == 20
    assert not list(out.rglob("*.tmp"))

    # a second run in another format keeps the earlier figures listed
    result = CliRunner().invoke(cli(), ["plot", "--explain-dir", str(out), "--output-format",
                                        "pdf", "--dpi", "40", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    assert set(plot_files) < set(manifest["plot_files"])
    assert "M000/driver_bar.pdf" in manifest["plot_files"]
    assert "M000/isoform_gradient.pdf" not in manifest["plot_files"]  # no usage table


def test_plot_command_without_feature_table_warns_once(tmp_path):
    out = make_explain_dir(tmp_path, modules=("M004",))
    with pytest.warns(UserWarning, match="no feature usage table given") as record:
        result = CliRunner().invoke(cli(), ["plot", "--explain-dir", str(out), "--dpi", "40"])
    assert result.exit_code == 0
    assert sum("feature usage" in str(w.message) for w in record) == 1
    assert (out / "M004" / "driver_bar.png").is_file()


@pytest.mark.parametrize("case", ["missing_dir", "missing_manifest", "bad_feature_table"])
def test_plot_command_errors_are_one_line_and_exit_1(tmp_path, case):
    args = ["plot", "--explain-dir", str(tmp_path / "absent")]
    if case == "missing_manifest":
        (tmp_path / "empty").mkdir()
        args = ["plot", "--explain-dir", str(tmp_path / "empty")]
    elif case == "bad_feature_table":
        out = make_explain_dir(tmp_path, modules=("M000",))
        args = ["plot", "--explain-dir", str(out), "--feature-table", str(tmp_path / "no.tsv")]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    expected = {"missing_dir": "absent", "missing_manifest": "module_explanation_manifest.json",
                "bad_feature_table": "no.tsv"}[case]
    assert expected in lines[0]


def test_explain_plot_and_plot_command_list_the_same_plot_files(tmp_path):
    """plot_files lists figures only, whichever path drew them (isograph 0.1.5 lists no
    module_summary.json there); the summaries are recorded in the manifest's files."""
    from isograph_gpu import ExplainConfig, explain_module

    out = tmp_path / "explain"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explain_module(FIXTURE / "inputs" / "artifact", FEATURE_TABLE, FEATURE_META,
                       module_ids=["M000", "M003"], output_dir=out,
                       config=ExplainConfig(device="cpu", plot=True, output_format="png"))
    manifest = json.loads((out / "module_explanation_manifest.json").read_text())
    figures = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert len(figures) == 1 + 2 * 7
    assert sorted(manifest["plot_files"]) == figures
    assert {"M000/module_summary.json", "M003/module_summary.json"} <= set(manifest["files"])

    result = CliRunner().invoke(cli(), [
        "plot", "--explain-dir", str(out), "--feature-table", str(FEATURE_TABLE),
        "--feature-meta", str(FEATURE_META), "--quiet"])
    assert result.exit_code == 0, result.output
    replotted = json.loads((out / "module_explanation_manifest.json").read_text())
    assert replotted["plot_files"] == manifest["plot_files"]
    assert replotted["files"] == manifest["files"]


def test_plot_command_drops_summaries_an_older_manifest_listed(tmp_path):
    out = make_explain_dir(tmp_path, modules=("M000",))
    path = out / "module_explanation_manifest.json"
    manifest = json.loads(path.read_text())
    (out / "M000" / "module_summary.json").write_text("{}")
    manifest["plot_files"] = ["M000/module_summary.json"]
    path.write_text(json.dumps(manifest))
    result = CliRunner().invoke(cli(), ["plot", "--explain-dir", str(out), "--dpi", "40",
                                        "--quiet"])
    assert result.exit_code == 0, result.output
    plot_files = json.loads(path.read_text())["plot_files"]
    assert plot_files and not [p for p in plot_files if p.endswith(".json")]


def _explain_run_with_own_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An explain run (M000) whose feature table and meta are copies the test can remove."""
    from isograph_gpu import ExplainConfig, explain_module

    table, meta = tmp_path / "usage.parquet", tmp_path / "meta.parquet"
    shutil.copy(FEATURE_TABLE, table)
    shutil.copy(FEATURE_META, meta)
    out = tmp_path / "explain"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explain_module(FIXTURE / "inputs" / "artifact", table, meta, module_ids=["M000"],
                       output_dir=out, config=ExplainConfig(device="cpu"))
    return out, table, meta


def test_plot_command_takes_the_inputs_from_the_manifest(tmp_path):
    """Issue 13.3: without --feature-table the gradient and heatmap figures were skipped
    although the manifest names the run's feature table."""
    out, table, _ = _explain_run_with_own_inputs(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "skipped" warning at all
        result = CliRunner().invoke(cli(), ["plot", "--explain-dir", str(out), "--dpi", "40",
                                            "--jobs", "1"])
    assert result.exit_code == 0, result.output
    for name in ("isoform_gradient", "driver_heatmap", "driver_bar"):
        assert (out / "M000" / f"{name}.png").is_file(), name
    gene_name = pd.read_parquet(FEATURE_META)["gene_name"].iloc[0]
    assert gene_name  # the meta came from the manifest too: names in the svg labels
    result = CliRunner().invoke(cli(), ["plot", "--explain-dir", str(out), "--dpi", "40",
                                        "--output-format", "svg", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "_name" in (out / "M000" / "driver_bar.svg").read_text()

    table.unlink()  # gone: said, and the usage figures are skipped
    (out / "M000" / "isoform_gradient.png").unlink()
    with pytest.warns(UserWarning, match=f"{table} no longer exists"):
        result = CliRunner().invoke(cli(), ["plot", "--explain-dir", str(out), "--dpi", "40",
                                            "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert not (out / "M000" / "isoform_gradient.png").exists()


@pytest.mark.parametrize("wrong", ["meta", "renamed_samples"])
def test_plot_command_rejects_a_feature_table_of_another_run(tmp_path, wrong):
    """A wrong --feature-table is one error line naming it, not five 'skipped' warnings."""
    out = make_explain_dir(tmp_path, modules=("M000", "M003"))
    path = tmp_path / "wrong.parquet"
    if wrong == "meta":
        shutil.copy(FEATURE_META, path)
    else:
        usage = pd.read_parquet(FEATURE_TABLE)
        usage.assign(sample_id="X" + usage["sample_id"].astype(str)).to_parquet(path)
    result = CliRunner().invoke(cli(), ["plot", "--explain-dir", str(out), "--feature-table",
                                        str(path), "--dpi", "40"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: feature table "), lines
    assert str(path) in lines[0]
    assert not (out / "M000" / "driver_bar.png").exists()  # nothing drawn


def test_plot_reads_only_the_transcripts_it_draws_from_a_parquet_table(tmp_path):
    from isograph_gpu.plots.load import read_feature_usage

    out = make_explain_dir(tmp_path, modules=("M000", "M003"))
    results = load_explain_dir(out)
    full = pd.read_parquet(FEATURE_TABLE)
    wide = full.assign(**{f"unused_{i}": np.arange(len(full), dtype=float) for i in range(50)})
    path = tmp_path / "wide.parquet"
    wide.to_parquet(path, index=False)
    usage = read_feature_usage(path, results)
    needed = list(dict.fromkeys(f for m in ("M000", "M003")
                                for f in results[m].transcript_polarity_table["feature_id"]
                                if f in full.columns))
    assert list(usage.columns) == ["sample_id", *needed]
    pd.testing.assert_frame_equal(usage, full[["sample_id", *needed]])
    csv = tmp_path / "wide.csv"  # CSV too: the one table reader reads only these columns
    wide.head(3).to_csv(csv, index=False)
    from_csv = read_feature_usage(csv, results)
    assert list(from_csv.columns) == ["sample_id", *needed]
    np.testing.assert_allclose(from_csv[needed].to_numpy(dtype=float),
                               full[needed].head(3).to_numpy(dtype=float), rtol=0, atol=0)
