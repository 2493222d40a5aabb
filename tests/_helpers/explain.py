"""The one way the tests call ``explain-module``: the CLI's argument list, the CLI run
in process, and the Python API on a set of inputs."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def explain_args(inputs: Mapping[str, Any], out: Path, *extra: str,
                 device: str | None = "cpu", quiet: bool = True,
                 report: bool = False) -> list[str]:
    """``explain-module`` arguments for ``inputs`` ("artifact", "feature_table" and, when
    present and not None, "feature_meta"; paths) writing to ``out``, then ``extra``.
    ``device=None`` leaves the device to the CLI; ``quiet=False`` keeps the progress;
    ``report=False`` (the tests' default: report.html has its own tests, and drawing it
    costs seconds a run) adds ``--no-report``."""
    args = ["explain-module", "--artifact-dir", str(inputs["artifact"]),
            "--feature-table", str(inputs["feature_table"])]
    if inputs.get("feature_meta") is not None:
        args += ["--feature-meta", str(inputs["feature_meta"])]
    args += ["--output-dir", str(out)]
    if device is not None:
        args += ["--device", device]
    if quiet:
        args.append("--quiet")
    if not report:
        args.append("--no-report")
    return [*args, *extra]


def invoke_explain(inputs: Mapping[str, Any], out: Path, *extra: str, **options: Any):
    """:func:`explain_args` run through the CLI in process (click's ``CliRunner``; stderr
    mixed into ``result.output``); returns click's ``Result``."""
    from click.testing import CliRunner

    from isograph_gpu.cli import main

    return CliRunner().invoke(main, explain_args(inputs, out, *extra, **options))


def explain_api(inputs: Mapping[str, Any], report: bool = False, **kwargs: Any) -> Any:
    """``explain_module(inputs["artifact"], inputs["feature_table"], inputs.get(
    "feature_meta"), **kwargs)`` with its UserWarnings (e.g. reference quirks) silenced;
    without ``report`` the config's ``report`` is switched off (see :func:`explain_args`)."""
    from isograph_gpu import ExplainConfig, explain_module

    if not report:
        kwargs["config"] = (kwargs.get("config") or ExplainConfig()).replace(report=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return explain_module(inputs["artifact"], inputs["feature_table"],
                              inputs.get("feature_meta"), **kwargs)
