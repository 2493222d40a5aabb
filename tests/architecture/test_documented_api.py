"""Every import the README and docs/*.md show exists, and every ```python example in them
runs (on the tests/data reference inputs), with its stated results checked."""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from _helpers import paths
from _helpers.explain import explain_api

ROOT = paths.REPO
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("ops", "io", "plots", "structure", "attribution", "training", "errors",
            "synthetic", "config", "backends", "engine", "pipeline", "result")
DOTTED = re.compile(r"`((?:isograph_gpu\.)?(?:" + "|".join(PACKAGES) + r")(?:\.\w+)*)`")
FENCE = re.compile(r"```python\n(.*?)```", re.S)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted`` and get the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def documented_names() -> list[tuple[str, str]]:
    """(doc file, dotted name) for each `isograph_gpu.x.y` (or `ops.x.y`, short for
    `isograph_gpu.ops.x.y`) the docs name."""
    found = []
    for path in DOCS:
        for name in DOTTED.findall(_text(path)):
            if not name.startswith("isograph_gpu."):
                if not name.startswith("ops."):
                    continue  # `config.x`, `plots.json`: a field or a file, not an import
                name = "isograph_gpu." + name
            found.append((path.name, name))
    return sorted(set(found))


def readme_ops_names() -> list[str]:
    """The names the README lists as importable from ``isograph_gpu.ops``."""
    text = " ".join(_text(ROOT / "README.md").split())
    match = re.search(r"`isograph_gpu\.ops`: (.*?)\.\.\.", text)
    assert match, "README no longer lists the isograph_gpu.ops names"
    return re.findall(r"`(\w+)`", match.group(1))


@pytest.mark.parametrize(("doc", "name"), documented_names())
def test_every_documented_dotted_name_imports(doc, name):
    assert _resolve(name) is not None, f"{doc} names {name}"


def test_the_readme_ops_names_import_from_the_namespace():
    import isograph_gpu.ops as ops

    names = readme_ops_names()
    assert len(names) >= 6
    for name in names:
        assert name in ops.__all__, name
        assert callable(getattr(ops, name))


@pytest.mark.parametrize("package", ["ops", "io"])
def test_namespace_all_is_exactly_its_public_names(package):
    """Each name in ``__all__`` exists and comes from one of the package's modules;
    nothing public is missing from ``__all__``."""
    namespace = importlib.import_module(f"isograph_gpu.{package}")
    home = f"isograph_gpu.{package}"
    for name in namespace.__all__:
        obj = getattr(namespace, name)
        assert getattr(obj, "__module__", home).startswith(home), name
    public = {n for n, v in vars(namespace).items()
              if not n.startswith("_") and not isinstance(v, type(namespace))
              and n != "annotations"}
    assert public == set(namespace.__all__)


#: building blocks that stay in their modules: (namespace, module, names)
PLUMBING = [
    ("ops", "ops.moments", ["RightBlock", "Workspace", "centre_and_mask",
                            "moments_from_block", "power_of_two_scale",
                            "finite_column_means"]),
    ("ops", "ops.pvalues", ["betainc_route"]),
    ("ops", "ops.groups", ["GroupLayout"]),
    ("ops", "ops.eigengene", ["gather_module_rows"]),
    ("io", "io.output", ["StagedOutput", "WrittenTable", "atomic_write_bytes"]),
    ("io", "io.feature_tables", ["ParquetFeatureBlocks"]),
    ("io", "io.anndata", ["AnnDataFeatureBlocks", "AnnDataFeatureTable"]),
]


@pytest.mark.parametrize(("package", "module", "names"), PLUMBING)
def test_namespaces_hold_what_a_user_calls_not_the_plumbing(package, module, names):
    """ops exports the verbs, io what a user calls; the GEMM building blocks, the
    staging object and the concrete readers are imported from their own modules."""
    namespace = importlib.import_module(f"isograph_gpu.{package}")
    home = importlib.import_module(f"isograph_gpu.{module}")
    for name in names:
        assert name not in namespace.__all__ and not hasattr(namespace, name), name
        assert getattr(home, name) is not None


def test_the_ops_namespace_has_each_verb():
    import isograph_gpu.ops as ops

    verbs = {"masked_pearson", "pearson_pvalue", "welch_pvalue", "fdr_adjust",
             "switch_strength", "module_eigengenes", "percentile_split", "tail_split",
             "welch_from_sums"}
    assert verbs <= set(ops.__all__)
    assert all(callable(getattr(ops, verb)) for verb in verbs)


def test_the_documented_io_names_import_from_the_namespace():
    """docs/input_formats.md lists the ``isograph_gpu.io`` names; each is in ``__all__``."""
    import isograph_gpu.io as io

    names = [n.split(".")[-1] for doc, n in documented_names()
             if n.count(".") == 2 and n.startswith("isograph_gpu.io.")]
    assert len(names) >= 5
    for name in names:
        assert name in io.__all__, name


def python_blocks() -> list[tuple[str, int, str]]:
    return [(path.name, i, code) for path in DOCS
            for i, code in enumerate(FENCE.findall(_text(path)))]


def test_every_python_block_has_a_runner():
    """A new ```python block in the docs must get a runner below (so it is run)."""
    assert {(doc, i) for doc, i, _ in python_blocks()} == set(RUNNERS)


@pytest.fixture
def block_code():
    blocks = {(doc, i): code for doc, i, code in python_blocks()}
    return lambda doc, i: blocks[(doc, i)]


def _exec_doc(code: str, doc: str, paths: dict[str, object] | None = None,
              namespace: dict | None = None) -> dict:
    """Run a doc's python block with each quoted placeholder path in ``paths`` (e.g.
    ``'"out"'``) replaced by the repr of a real one; UserWarnings (progress, notes) are
    silenced. Returns the block's namespace."""
    for placeholder, path in (paths or {}).items():
        code = code.replace(placeholder, repr(str(path)))
    namespace = {} if namespace is None else namespace
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        exec(compile(code, doc, "exec"), namespace)
    return namespace


def _run_readme_api(code, ref_inputs, tmp_path):
    res = _exec_doc(code, "README.md", {
        '"artifacts/fit"': ref_inputs["artifact"],
        '"transcript_usage.parquet"': ref_inputs["feature_table"],
        '"feature_meta.parquet"': ref_inputs["feature_meta"],
        '"artifacts/explain"': tmp_path / "explain"})["res"]
    # each `res.<table>  # col, col, [optional], ...` comment states the table's columns
    for table, cols in re.findall(r"^res\.(\w+_table)\s+# (.*)$", code, re.M):
        got = list(getattr(res, table).columns)
        stated = [c.strip() for c in cols.split(",")]
        required = [c for c in stated if not c.startswith("[")]
        assert [c for c in got if c in required] == required, (table, got)
        assert set(got) <= {c.strip("[]") for c in stated}, (table, got)
    assert len(res.eigengene) == len(res.sample_ids) > 0
    assert (tmp_path / "explain" / "M000" / "gene_driver_table.parquet").is_file()
    assert res.tails_contrast_table is not None  # contrast_tails=10.0 in the example


def _run_figures(code, ref_inputs, tmp_path, monkeypatch):
    from isograph_gpu import ExplainConfig

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    explain_api(ref_inputs, module_ids=["M000", "M001"],
                config=ExplainConfig(device="cpu", progress=False), output_dir="out")
    namespace = _exec_doc(
        code.replace("feature_usage, feature_meta)", "feature_usage, feature_meta, jobs=1)"),
        "figures.md", namespace={"feature_usage": pd.read_parquet(ref_inputs["feature_table"]),
                                 "feature_meta": pd.read_parquet(ref_inputs["feature_meta"])})
    assert sorted(namespace["results"]) == ["M000", "M001"]
    figures = namespace["figures"]
    assert figures and all(f.endswith(".pdf") for f in figures)
    assert all((tmp_path / "figs" / f).is_file() for f in figures)
    assert "M000/driver_bar.pdf" in figures
    bars = namespace["ax"].patches
    table = namespace["results"]["M000"].gene_driver_table
    assert 0 < len(bars) <= 10 <= len(table)


def _run_training_loop(code):
    import importlib.util
    import sys

    path = ROOT / "examples" / "train_vae_with_drivers.py"
    spec = importlib.util.spec_from_file_location("train_vae_with_drivers", path)
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example
    spec.loader.exec_module(example)
    data = example.make_data(n_samples=64, n_genes=6, seed=2)
    model = example.TinyVAE(data.features.shape[1]).double()
    if not torch.cuda.is_available():
        code = code.replace('.to("cuda")', '.to("cpu")')
    x = data.features.to("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(x.device)
    namespace = {"gene_ids": data.gene_ids, "epochs": 2, "model": model, "x": x,
                 "x_in": torch.nan_to_num(x),
                 "vae_loss": lambda *_: torch.zeros((), dtype=torch.float64, device=x.device)}
    exec(compile(code, "training_loop.md", "exec"), namespace)
    out, stats = namespace["out"], namespace["stats"]
    n_features = x.shape[1]
    assert out.r.shape == (n_features, 2) and out.pvalue.dtype == torch.float64
    assert out.switch_strength.shape == (len(stats.gene_names), 2)
    # the switch-strength term reaches the encoder through mu
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def _run_anndata(code, ref_inputs, tmp_path, monkeypatch):
    """docs/input_formats.md: an .h5ad feature table without --feature-meta, results back
    into the AnnData; r in varm checked against numpy's Pearson r of one feature."""
    anndata = pytest.importorskip("anndata")
    table = pd.read_parquet(ref_inputs["feature_table"]).set_index("sample_id")
    meta = pd.read_parquet(ref_inputs["feature_meta"]).set_index("feature_id")
    keep = [c for c in table.columns if c in meta.index]
    anndata.AnnData(X=table[keep].to_numpy(dtype=np.float64),
                    obs=pd.DataFrame(index=table.index.astype(str)),
                    var=meta.loc[keep]).write_h5ad(tmp_path / "features.h5ad")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "fit").symlink_to(ref_inputs["artifact"])
    monkeypatch.chdir(tmp_path)
    namespace = _exec_doc(code, "input_formats.md")
    back = anndata.read_h5ad(tmp_path / "features_explained.h5ad")
    results = namespace["results"]
    r = back.varm["isograph_r"]
    assert r.shape == (back.n_vars, len(results))
    polarity = results["M000"].transcript_polarity_table
    feature = polarity.loc[polarity["r"].notna(), "feature_id"].iloc[0]
    column = list(results).index("M000")
    x = np.asarray(back[list(results["M000"].sample_ids), feature].X).ravel()
    eig = np.asarray(results["M000"].eigengene)
    ok = np.isfinite(x) & np.isfinite(eig)
    want = np.corrcoef(x[ok], eig[ok])[0, 1]
    assert r[list(back.var_names).index(feature), column] == pytest.approx(want, abs=1e-9)


def _run_distributed(code, ref_inputs, tmp_path, monkeypatch):
    """The dask-cuda example with a 2-worker CPU LocalCluster standing in for
    LocalCUDACluster (no GPU here): the same calls, the same output dir."""
    import types

    distributed = pytest.importorskip("distributed")
    fake = types.ModuleType("dask_cuda")
    fake.LocalCUDACluster = lambda: distributed.LocalCluster(  # type: ignore[attr-defined]
        n_workers=2, threads_per_worker=1, dashboard_address=None)
    monkeypatch.setitem(sys.modules, "dask_cuda", fake)
    namespace = _exec_doc(code.replace('device="cuda"', 'device="cpu"'), "distributed.md", {
        '"artifact"': ref_inputs["artifact"],
        '"features.parquet"': ref_inputs["feature_table"],
        '"feature_meta.parquet"': ref_inputs["feature_meta"],
        '"out"': tmp_path / "out"})
    assert list(namespace["results"]) == ["M000", "M001", "M002", "M003", "M004"]
    assert (tmp_path / "out" / "module_explanation_manifest.json").is_file()


RUNNERS = {("README.md", 0): "readme", ("figures.md", 0): "figures",
           ("training_loop.md", 0): "training", ("input_formats.md", 0): "anndata",
           ("distributed.md", 0): "distributed", ("module_traits.md", 0): "config",
           ("covariates.md", 0): "config", ("switch_significance.md", 0): "config",
           ("training_loop.md", 1): "training_options"}


def _run_config(code):
    """The ExplainConfig of a statistic's page: it builds, and records its options."""
    namespace: dict = {}
    exec(compile(code, "config block", "exec"), namespace)
    recorded = namespace["config"].to_dict()
    assert any(recorded[name] not in (None, 0) for name in
               ("sample_traits", "covariates", "switch_permutations"))


def _run_training_options(code):
    """docs/training_loop.md's second block on small tensors: the outputs it names."""
    from isograph_gpu.training import ModuleStatistics

    rng = np.random.default_rng(0)
    n = 24
    namespace = {"ModuleStatistics": ModuleStatistics, "gene_ids": ["a", "a", "b", "b", "c"],
                 "x": torch.from_numpy(rng.normal(size=(n, 5))),
                 "mu": torch.from_numpy(rng.normal(size=(n, 2))),
                 "z": torch.from_numpy(rng.normal(size=(n, 2))),
                 "t": torch.from_numpy(rng.normal(size=(n, 3)))}
    exec(compile(code, "training_loop.md", "exec"), namespace)
    out = namespace["out"]
    assert out.switch_pvalue.shape == (3, 2) and out.trait_r.shape == (3, 2)


@pytest.mark.parametrize("key", sorted(RUNNERS), ids=lambda k: f"{k[0]}[{k[1]}]")
def test_python_example_runs(key, block_code, ref_inputs, tmp_path, monkeypatch):
    code = block_code(*key)
    kind = RUNNERS[key]
    if kind == "readme":
        _run_readme_api(code, ref_inputs, tmp_path)
    elif kind == "figures":
        _run_figures(code, ref_inputs, tmp_path, monkeypatch)
    elif kind == "anndata":
        _run_anndata(code, ref_inputs, tmp_path, monkeypatch)
    elif kind == "distributed":
        _run_distributed(code, ref_inputs, tmp_path, monkeypatch)
    elif kind == "config":
        _run_config(code)
    elif kind == "training_options":
        _run_training_options(code)
    else:
        _run_training_loop(code)
