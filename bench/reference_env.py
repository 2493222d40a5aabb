"""Create (once) the virtualenv holding the reference isograph 0.1.5 for the benchmarks.

The venv lives under ``bench/.venv-reference`` (git-ignored). torch is installed FIRST and pinned
to ``torch==2.13.0`` so pip picks the local CPU wheel; isograph 0.1.5 itself does not require
torch (checked with ``pip download --no-deps isograph==0.1.5``: its Requires-Dist lists PyYAML,
hydra-core, matplotlib, mpmath, networkx, numpy, pandas<3, patsy, pyarrow, pydantic,
scikit-learn, scipy; captum only in the ``torch-explain`` extra), so nothing else can pull in a
CUDA torch. captum is added because ``explain-module`` imports it for Integrated Gradients.

Run directly to build the venv: ``python bench/reference_env.py``.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REFERENCE_VENV = BENCH_DIR / ".venv-reference"
REFERENCE_VERSION = "0.1.5"
TORCH_PIN = "torch==2.13.0"


def reference_python(venv_dir: Path = REFERENCE_VENV) -> Path:
    """Path of the venv's python interpreter."""
    return venv_dir / "bin" / "python"


def reference_cli(venv_dir: Path = REFERENCE_VENV) -> Path:
    """Path of the venv's ``isograph`` console script."""
    return venv_dir / "bin" / "isograph"


def installed_reference_version(venv_dir: Path = REFERENCE_VENV) -> str | None:
    """isograph version installed in the venv, or None when absent/broken."""
    python = reference_python(venv_dir)
    if not python.exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('isograph'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_reference_env(venv_dir: Path = REFERENCE_VENV, quiet: bool = True) -> Path:
    """Create the venv with isograph 0.1.5 unless it is already there; return the CLI path."""
    if installed_reference_version(venv_dir) == REFERENCE_VERSION and reference_cli(venv_dir).exists():
        return reference_cli(venv_dir)
    if not reference_python(venv_dir).exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(venv_dir)
    pip = [str(reference_python(venv_dir)), "-m", "pip", "install"]
    if quiet:
        pip.append("--quiet")
    # torch first, pinned: the local CPU wheel satisfies it; never let pip choose another torch.
    subprocess.run([*pip, TORCH_PIN], check=True)
    subprocess.run([*pip, f"isograph=={REFERENCE_VERSION}", "captum>=0.7", TORCH_PIN], check=True)
    version = installed_reference_version(venv_dir)
    if version != REFERENCE_VERSION:
        raise RuntimeError(f"reference venv {venv_dir} has isograph {version!r}, expected {REFERENCE_VERSION}")
    return reference_cli(venv_dir)


def reference_versions(venv_dir: Path = REFERENCE_VENV) -> dict[str, str]:
    """Versions of isograph, torch, numpy, pandas, scipy inside the reference venv."""
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({p: m.version(p) for p in ('isograph', 'torch', 'numpy', 'pandas', 'scipy')}"
        " | {'python': sys.version.split()[0]}))"
    )
    proc = subprocess.run(
        [str(reference_python(venv_dir)), "-c", code], capture_output=True, text=True, check=True
    )
    import json

    return json.loads(proc.stdout)


if __name__ == "__main__":
    cli = ensure_reference_env(quiet=False)
    print(cli)
    print(reference_versions())
    sys.exit(0)
