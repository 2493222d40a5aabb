"""Progress on stderr: stage times that add up (nested stages counted once), a bar on a
terminal and sparse plain lines elsewhere, and the device/precision line first."""

from __future__ import annotations

import io

import pytest
from _helpers.explain import invoke_explain

from isograph_gpu import progress as progress_module
from isograph_gpu.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nested_stages_are_not_counted_twice(monkeypatch):
    """Issue 13.3: 'write outputs' included the plot time, so the stage times of a 36.7 s
    run added up to 64 s."""
    clock = FakeClock()
    monkeypatch.setattr(progress_module.time, "perf_counter", clock)
    stream = io.StringIO()
    progress = Progress(enabled=True, stream=stream)
    with progress.stage("write outputs"):
        clock.now += 1.0
        with progress.stage("plots"):
            clock.now += 7.0
            with progress.stage("inner"):
                clock.now += 2.0
        clock.now += 0.5
    with progress.stage("plots"):  # a stage run twice adds up
        clock.now += 1.0
    assert progress.timings == pytest.approx({"write outputs": 1.5, "plots": 8.0, "inner": 2.0})
    assert sum(progress.timings.values()) == pytest.approx(clock.now - 100.0)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[isograph-gpu] inner: 2.00 s"
    assert lines[1] == "[isograph-gpu] plots: 7.00 s (total 9.00 s with the stages above)"
    assert lines[2] == "[isograph-gpu] write outputs: 1.50 s (total 10.50 s with the stages above)"


def test_stage_time_is_recorded_when_the_stage_fails(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(progress_module.time, "perf_counter", clock)
    stream = io.StringIO()
    progress = Progress(enabled=True, stream=stream)
    with pytest.raises(RuntimeError), progress.stage("outer"):
        with progress.stage("inner"):
            clock.now += 3.0
            raise RuntimeError
    assert progress.timings == {"inner": 3.0, "outer": 0.0}
    assert stream.getvalue() == ""  # the error is the only line a failed run prints


def test_steps_are_a_bar_on_a_terminal():
    stream = Terminal()
    progress = Progress(enabled=True, stream=stream)
    for done in range(1, 6):
        progress.chunk("plots", done, 5, unit="module")
    text = stream.getvalue()
    assert "[isograph-gpu] plots" in text and "5/5" in text and "module" in text
    assert "\r" in text  # redrawn in place, not one line per step
    assert progress._bars == {}  # closed at the last step


def test_a_failed_stage_closes_the_bar_it_opened():
    """A stage that fails mid-steps closes its bar (the terminal line ends before the
    error line); a bar opened by an enclosing stage is left to that stage."""
    stream = Terminal()
    progress = Progress(enabled=True, stream=stream)
    with pytest.raises(RuntimeError), progress.stage("outer"):
        progress.chunk("outer steps", 1, 4)
        with progress.stage("feature statistics"):
            progress.chunk("feature statistics", 2, 10)
            bar = progress._bars["feature statistics"]
            raise RuntimeError
    assert bar.disable  # tqdm sets it when the bar is closed
    assert "feature statistics" not in progress._bars
    assert progress._bars == {}  # the outer stage failed too: its bar is closed as well
    assert stream.getvalue().endswith("\n")


def test_a_bar_of_an_enclosing_stage_survives_an_inner_failure():
    stream = Terminal()
    progress = Progress(enabled=True, stream=stream)
    with progress.stage("outer"):
        progress.chunk("outer steps", 1, 4)
        with pytest.raises(RuntimeError), progress.stage("inner"):
            raise RuntimeError
        assert "outer steps" in progress._bars
        progress.chunk("outer steps", 4, 4)
    assert progress._bars == {}


def test_steps_are_sparse_lines_elsewhere():
    stream = io.StringIO()
    progress = Progress(enabled=True, stream=stream)
    for done in range(1, 101):
        progress.chunk("feature statistics", done, 100)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in stream.getvalue()
    assert lines[-1] == "[isograph-gpu] feature statistics: chunk 100/100"
    quiet = io.StringIO()
    Progress(enabled=False, stream=quiet).chunk("x", 1, 2)
    assert quiet.getvalue() == ""


def test_first_progress_line_says_device_and_precision(ref_inputs, tmp_path):
    result = invoke_explain(ref_inputs, tmp_path / "o", "--module-ids", "M004",
                            "--precision", "float32", quiet=False)
    assert result.exit_code == 0, result.output
    first = next(ln for ln in result.output.splitlines() if ln.startswith("[isograph-gpu]"))
    assert first.startswith("[isograph-gpu] device cpu (") and "precision float32" in first


def test_progress_line_and_manifest_name_the_device_alike(ref_inputs, tmp_path, monkeypatch):
    """One device_name for the first progress line and the manifest's device_name: the
    processor's name on the CPU, 'CPU' when the platform names none."""
    import json
    import platform

    import torch

    cpu = torch.device("cpu")
    result = invoke_explain(ref_inputs, tmp_path / "o", "--module-ids", "M000",
                            "--device", "cpu", quiet=False)
    assert result.exit_code == 0, result.output
    first = next(ln for ln in result.output.splitlines() if ln.startswith("[isograph-gpu]"))
    manifest = json.loads((tmp_path / "o" / "module_explanation_manifest.json").read_text())
    assert first.startswith(f"[isograph-gpu] device cpu ({manifest['device_name']}),")
    assert manifest["device_name"] == progress_module.device_name(cpu)
    monkeypatch.setattr(progress_module, "cpu_model_name", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "")
    assert progress_module.device_name(cpu) == "CPU"


def test_naming_the_cpu_starts_no_process(monkeypatch):
    """platform.processor() runs `uname -p`: a child of the run before any of its work
    (a kill harness waiting for the plot workers saw it). The name is read instead."""
    import subprocess

    import torch

    def refuse(*args, **kwargs):
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    name = progress_module.device_name(torch.device("cpu"))
    assert name
    model = progress_module.cpu_model_name()
    if model:  # Linux: the processor's own name
        assert name == model
