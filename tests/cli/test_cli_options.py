"""What a person reads and types at the command line: every option has help, every value is
range-checked where it is parsed (usage error naming the flag, exit 2, before any work), and
nothing on the command line is silently ignored."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from isograph_gpu.cli import main
from isograph_gpu.cli.options import MEMORY_SIZE


def _commands() -> list[tuple[str, click.Command]]:
    return sorted(main.commands.items())


@pytest.mark.parametrize(("name", "command"), _commands(), ids=[n for n, _ in _commands()])
def test_every_option_has_help_without_printf_escapes(name, command):
    for param in command.params:
        if isinstance(param, click.Argument):  # click arguments carry no help text
            assert param.name in (command.help or ""), (name, param.name)
            continue
        text = (param.help or "").strip()
        assert text, f"{name} {param.opts} has no help"
        assert "%%" not in text, f"{name} {param.opts}: {text!r}"
    rendered = CliRunner().invoke(main, [name, "--help"]).output
    assert "%%" not in rendered
    for param in command.params:
        for opt in param.opts:
            assert opt in rendered, (name, opt)


REQUIRED = ["--artifact-dir", "no-such-artifact", "--feature-table", "no-such.parquet",
            "--feature-meta", "no-such-meta.parquet"]


def _explain(*extra: str):
    return CliRunner().invoke(main, ["explain-module", *REQUIRED, *extra])


def _usage_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.mark.parametrize(("flag", "value"), [
    ("--split-percentile", "nan"), ("--split-percentile", "101"), ("--split-percentile", "-1"),
    ("--min-complete-pairs", "1"), ("--contrast-tails", "0"), ("--contrast-tails", "50.5"),
    ("--contrast-tails", "nan"), ("--vae-fdr-threshold", "nan"),
    ("--vae-fdr-threshold", "1.5"), ("--vae-percentile-threshold", "500"),
    ("--vae-percentile-threshold", "inf"), ("--vae-epsilon", "nan"), ("--vae-epsilon", "0"),
    ("--vae-epsilon", "-inf"), ("--ig-n-steps", "0"), ("--memory-budget", "inf"),
    ("--memory-budget", "nan"), ("--memory-budget", "0"), ("--memory-budget", "-2G"),
    ("--memory-budget", "lots"),
])
def test_bad_values_are_usage_errors_naming_the_flag(flag, value):
    # the inputs do not exist: a parse-time check fails before anything is read
    line = _usage_error(_explain(flag, value))
    assert flag in line, line


@pytest.mark.parametrize(("flag", "value"), [
    ("--split-percentile", "0"), ("--split-percentile", "100"), ("--contrast-tails", "50"),
    ("--vae-epsilon", "-0.5"), ("--vae-fdr-threshold", "1"), ("--min-complete-pairs", "2"),
])
def test_boundary_values_parse(flag, value):
    command = main.commands["explain-module"]
    ctx = command.make_context("explain-module", [*REQUIRED, flag, value])
    assert ctx.params[flag.lstrip("-").replace("-", "_")] == float(value)


@pytest.mark.parametrize(("text", "expected"), [
    ("2G", 2 * 1024**3), ("512M", 512 * 1024**2), ("1.5GB", int(1.5 * 1024**3)),
    ("64KiB", 64 * 1024), ("1000", 1000),
])
def test_memory_sizes(text, expected):
    assert MEMORY_SIZE.convert(text, None, None) == expected


@pytest.mark.parametrize("extra", [
    ["split_percentile=10"],                     # a Hydra-style override without '--'
    ["M000", "M002"],                            # module ids without --module-ids
    ["--contrast-tails", "10", "20"],            # a second value after a one-value flag
])
def test_positional_arguments_are_an_error(extra):
    line = _usage_error(_explain(*extra))
    assert "unexpected extra argument" in line.lower(), line
    assert extra[-1] in line


def test_arguments_after_double_dash_are_ignored_as_in_the_reference():
    command = main.commands["explain-module"]
    ctx = command.make_context(
        "explain-module", [*REQUIRED, "--split-percentile", "25", "--", "x=1", "M000"])
    assert ctx.params["split_percentile"] == 25.0
    assert ctx.meta["isograph_gpu.ignored_overrides"] == ["x=1", "M000"]
