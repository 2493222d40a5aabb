"""``explain-module`` imports only what the work asked for: figures, attribution and
structure (and matplotlib, captum) stay unimported unless their options are given."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers.explain import explain_args
from conftest import INPUTS, REF

REPO = Path(__file__).resolve().parents[1]
OPTIONAL = ("matplotlib", "captum", "isograph_gpu.plots", "isograph_gpu.attribution",
            "isograph_gpu.structure")

_CHILD = """
import json, sys, warnings
warnings.simplefilter("ignore")
from isograph_gpu.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps(sorted(m for m in sys.modules
                            if m.split(".")[0] in ("matplotlib", "captum", "isograph_gpu"))))
"""


def _modules_after(args: list[str]) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _CHILD, *args],
                          capture_output=True, text=True, cwd=REPO, check=True, timeout=300)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def _args(out: Path) -> list[str]:
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
