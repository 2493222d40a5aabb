"""The layering the package promises: ``config`` (the one home of every option's choices)
imports no torch, so ``isograph-gpu --help`` stays light; ``ops`` imports no pandas,
pyarrow, matplotlib, click or captum; and every user of a choice takes it from config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "pyarrow", "matplotlib", "click", "captum")


def _imported_after(statement: str) -> set[str]:
    code = (f"import sys; {statement}; "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return set(out.stdout.split())


def test_config_and_the_cli_help_import_no_torch():
    assert _imported_after("import isograph_gpu.config") == set()
    assert "torch" not in _imported_after(
        "from isograph_gpu.cli import main; main(['--help'], standalone_mode=False)")


def test_ops_imports_only_torch():
    assert _imported_after("import isograph_gpu.ops") == {"torch"}


@pytest.mark.parametrize("command", ["explain-module", "plot"])
def test_cli_format_choices_are_configs(command):
    from isograph_gpu.cli import main
    from isograph_gpu.config import PLOT_FORMATS

    option = next(p for p in main.commands[command].params if p.name == "output_format")
    assert tuple(option.type.choices) == PLOT_FORMATS


def test_each_choice_tuple_has_one_home():
    from isograph_gpu import config
    from isograph_gpu.attribution import integrated_gradients
    from isograph_gpu.ops import fdr
    from isograph_gpu.plots import render, style

    assert fdr.FDR_METHODS is config.FDR_METHODS
    assert integrated_gradients.IG_BASELINES is config.IG_BASELINES
    assert style.PLOT_FORMATS is render.PLOT_FORMATS is config.PLOT_FORMATS


@pytest.mark.parametrize(("command", "option", "choices"), [
    ("explain-module", "device", "DEVICES"), ("explain-module", "precision", "PRECISIONS"),
    ("explain-module", "fdr_method", "FDR_METHODS"), ("demo", "device", "DEVICES")])
def test_cli_device_precision_and_fdr_choices_are_configs(command, option, choices):
    from isograph_gpu import config
    from isograph_gpu.cli import main

    param = next(p for p in main.commands[command].params if p.name == option)
    assert tuple(param.type.choices) == getattr(config, choices)
