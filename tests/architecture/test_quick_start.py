"""The README's quick start as a newcomer meets it (issue 23): a Linux CPU machine's block
installs torch's CPU build before anything pulls PyPI's CUDA wheel, a GPU machine has one
line, CI runs the README's test command exactly as written (then the slow tests), and the
install extras do not downgrade pandas 3 where a newer anndata allows it."""

from __future__ import annotations

import re
import tomllib

from _helpers import paths

ROOT = paths.REPO
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def _quick_start_blocks() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [[ln for ln in b.splitlines() if ln.strip() and not ln.startswith("#")]
            for b in blocks]


def test_the_cpu_block_installs_torch_from_the_cpu_index_first():
    cpu, gpu = _quick_start_blocks()[:2]
    torch_lines = [ln for ln in cpu if "pip install torch" in ln]
    assert torch_lines and all(CPU_INDEX in ln for ln in torch_lines)
    assert CPU_INDEX in cpu[0]  # before `pip install -e .` could pull the CUDA wheel
    assert len(gpu) == 1 and gpu[0].startswith("pip install torch==") and CPU_INDEX not in gpu[0]


def test_ci_runs_the_readme_test_command_as_written_then_the_slow_tests():
    cpu = _quick_start_blocks()[0]
    (test_command,) = [ln for ln in cpu if "python -m pytest" in ln]
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"{test_command} || rc=$?" in ci
    assert "python -m pytest -q -m slow" in ci
    assert "apt-get install" in ci and "chromium" in ci


def test_the_default_run_leaves_the_slow_tests_out():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    assert "-m 'not slow'" in config["ini_options"]["addopts"]


def test_the_anndata_extra_allows_pandas_3_where_anndata_does():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for extra in ("anndata", "dev"):
        assert "anndata>=0.13; python_version >= '3.12'" in extras[extra]
