"""``explain-module`` imports only what the work asked for: figures, attribution and
structure (and matplotlib, captum), AnnData (anndata, h5py, scipy.sparse) and Dask stay
unimported unless their options or inputs ask for them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import paths
from _helpers.explain import explain_args
from conftest import INPUTS, REF

REPO = paths.REPO
OPTIONAL = ("matplotlib", "captum", "isograph_gpu.plots", "isograph_gpu.attribution",
            "isograph_gpu.structure", "isograph_gpu.distributed", "anndata", "h5py",
            "scipy.sparse", "dask", "distributed")  # scipy.special: the CPU's betainc

_CHILD = """
import json, sys, warnings
warnings.simplefilter("ignore")
from isograph_gpu.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps(sorted(m for m in sys.modules
                            if m.split(".")[0] in ("matplotlib", "captum", "isograph_gpu", "anndata",
                                                   "h5py", "scipy", "dask", "distributed"))))
"""


def _modules_after(args: list[str]) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _CHILD, *args],
                          capture_output=True, text=True, cwd=REPO, check=True, timeout=300)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def _args(out: Path) -> list[str]:
    """A run without the report (explain_args' default: report.html draws figures, it
    imports matplotlib and the plots package at the end of a run that writes it)."""
    return explain_args({"artifact": INPUTS / "artifact",
                         "feature_table": INPUTS / "feature_table.parquet",
                         "feature_meta": INPUTS / "feature_meta.parquet"}, out)


@pytest.mark.slow
def test_plain_explain_imports_no_optional_part(tmp_path):
    modules = _modules_after(_args(tmp_path / "plain"))
    assert "isograph_gpu.pipeline" in modules  # the run did happen in this process
    assert (tmp_path / "plain" / "module_explanation_manifest.json").is_file()
    for name in OPTIONAL:
        assert not _loaded(modules, name), name


@pytest.mark.slow
def test_annotation_imports_structure_only(tmp_path):
    annotation = REF / "structure" / "transcript_structure_annotations.tsv"
    args = [*_args(tmp_path / "annotated"), "--annotation-table", str(annotation)]
    modules = _modules_after(args)
    assert _loaded(modules, "isograph_gpu.structure")  # the check can see an import
    for name in ("matplotlib", "captum", "isograph_gpu.plots", "isograph_gpu.attribution"):
        assert not _loaded(modules, name), name


_FREEZE_CHILD = """
import gc, json, sys
from isograph_gpu.cli.common import PROCESS_ENTRY, import_long_lived
PROCESS_ENTRY["enabled"] = True  # as the console script sets it
before = gc.get_freeze_count()
module = import_long_lived("isograph_gpu.pipeline")
again = import_long_lived("isograph_gpu.pipeline")
print(json.dumps([before, gc.get_freeze_count(), gc.isenabled(), module.__name__,
                  again is module]))
"""


def test_import_long_lived_freezes_the_imported_objects():
    """The heavy import runs with the collector paused and leaves its objects in the
    permanent generation; the collector is on again afterwards."""
    done = subprocess.run([sys.executable, "-c", _FREEZE_CHILD], capture_output=True,
                          text=True, cwd=REPO, check=True, timeout=300)
    before, after, enabled, name, same = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == 0
    assert after > 100_000  # torch, pandas, polars: hundreds of thousands of objects
    assert enabled and name == "isograph_gpu.pipeline" and same


_IN_PROCESS_CHILD = """
import gc, json, sys
from isograph_gpu.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps([gc.get_freeze_count(), gc.isenabled()]))
"""


def test_in_process_main_leaves_the_callers_collector_alone(tmp_path):
    """A caller's ``main([...])`` (notebook, test) imports plainly: nothing is frozen into
    the permanent generation and the collector stays on."""
    done = subprocess.run([sys.executable, "-c", _IN_PROCESS_CHILD, *_args(tmp_path / "o")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    frozen, enabled = json.loads(done.stdout.strip().splitlines()[-1])
    assert frozen == 0 and enabled
    assert (tmp_path / "o" / "module_explanation_manifest.json").is_file()


@pytest.mark.slow
def test_process_entry_output_equals_an_in_process_run(tmp_path):
    """``python -m isograph_gpu`` (the entry that freezes the collector before exiting)
    leaves a complete, committed output: every table equal to an in-process run's."""
    import pandas as pd

    from isograph_gpu.cli import main

    child = tmp_path / "child"
    done = subprocess.run([sys.executable, "-m", "isograph_gpu", *_args(child)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    here = tmp_path / "here"
    main(_args(here), standalone_mode=False)
    files = sorted(p.relative_to(here) for p in here.rglob("*.parquet"))
    assert files == sorted(p.relative_to(child) for p in child.rglob("*.parquet"))
    assert len(files) > 3
    for rel in files:
        pd.testing.assert_frame_equal(pd.read_parquet(child / rel), pd.read_parquet(here / rel))
    assert (child / "module_explanation_manifest.json").is_file()
    assert not list(tmp_path.glob(".child.isograph-gpu-staging-*"))
