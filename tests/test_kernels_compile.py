"""kernels/*.cu compile to PTX for sm_90 (CI check without a GPU), and the CPU dispatch of
isograph_gpu.backends falls back to the torch ops."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from isograph_gpu import backends
from isograph_gpu.backends import cupy_kernels
from isograph_gpu.ops.moments import masked_moments

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "compile_kernels.sh"
EXPECTED_ENTRIES = {
    "masked_moments": {"masked_moments_f32", "masked_moments_f64"},
    "segment_extrema": {"segment_extrema_f32", "segment_extrema_f64"},
    "group_sums": {"group_sums_f32", "group_sums_f64"},
}


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.exists() else None


@pytest.mark.skipif(_nvcc() is None, reason="nvcc not installed")
def test_every_kernel_compiles_to_ptx_with_its_entry_points(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    sources = sorted(p.stem for p in (ROOT / "kernels").glob("*.cu"))
    assert sources == sorted(EXPECTED_ENTRIES)
    for name in sources:
        ptx = (tmp_path / f"{name}.ptx").read_text()
        assert ".target sm_90" in ptx
        entries = set(re.findall(r"\.entry\s+(\w+)\(", ptx))
        assert entries == EXPECTED_ENTRIES[name]


def test_compile_script_skips_cleanly_without_nvcc(tmp_path: Path) -> None:
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path)}
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run(
        [bash, str(SCRIPT), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if Path("/usr/local/cuda/bin/nvcc").exists() or list(
        Path("/usr/local").glob("cuda-*/bin/nvcc")
    ):
        pytest.skip("a CUDA toolkit is installed at its default place")
    assert done.returncode == 0
    assert "skipped" in done.stdout


def test_cpu_dispatch_is_the_torch_path() -> None:
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(30, 7)))
    x[rng.random(x.shape) < 0.2] = float("nan")
    y = torch.as_tensor(rng.normal(size=(30, 3)))
    assert not backends.kernels_enabled(x, y)
    got = backends.masked_moments(x, y)
    want = masked_moments(x, y)
    for name in ("n", "sx", "sy", "sxx", "syy", "sxy"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=0, atol=0)
    high = torch.as_tensor(rng.random((30, 3)) < 0.5)
    low = ~high
    moments, sums = backends.moments_and_group_sums(x, y, torch.cat([high, low], dim=1))
    for name in ("n", "sx", "sy", "sxx", "syy", "sxy"):
        # same sums, GEMM blocking may differ with the extra group columns
        torch.testing.assert_close(getattr(moments, name), getattr(want, name),
                                   rtol=1e-12, atol=1e-12)
    xn = x.numpy()
    np.testing.assert_allclose(sums.centre.numpy(), np.nanmean(xn, axis=0), rtol=1e-13)
    np.testing.assert_array_equal(sums.finite.numpy(), np.isfinite(xn).sum(axis=0))
    for k in range(3):
        for f in range(7):
            col = xn[:, f]
            fin = np.isfinite(col)
            c = col[fin].mean()
            for j, member in ((k, high[:, k].numpy()), (3 + k, low[:, k].numpy())):
                v = col[fin & member] - c
                assert sums.count[f, j] == v.size
                np.testing.assert_allclose([sums.total[f, j], sums.squares[f, j]],
                                           [v.sum(), (v * v).sum()], atol=1e-12)


def test_kernels_can_be_switched_off(monkeypatch) -> None:
    monkeypatch.setattr(cupy_kernels, "available", lambda: True)
    x = torch.zeros((3, 2))
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    assert backends.kernels_enabled(x)
    monkeypatch.setenv(backends.KERNELS_ENV, "0")
    assert not backends.kernels_enabled(x)


def test_csr_index_groups_rows_by_gene_ascending() -> None:
    segment = torch.tensor([2, 0, 2, 1, 0, 2])
    order, offsets = cupy_kernels.csr_index(segment, 4)
    assert offsets.tolist() == [0, 2, 3, 6, 6]
    for g in range(4):
        rows = order[offsets[g] : offsets[g + 1]].tolist()
        assert rows == [i for i, s in enumerate(segment.tolist()) if s == g]


def test_kernels_unavailable_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    assert cupy_kernels.available() is False


def test_build_ships_the_kernel_sources_inside_the_package(tmp_path: Path) -> None:
    """setup.py's build_py copies kernels/*.cu to isograph_gpu/kernels, where
    cupy_kernels looks first in an installed wheel."""
    setup = ROOT / "setup.py"
    done = subprocess.run(
        [sys.executable, str(setup), "-q", "build_py", "--build-lib", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    shipped = sorted(p.name for p in (tmp_path / "isograph_gpu" / "kernels").glob("*.cu"))
    assert shipped == sorted(f"{name}.cu" for name in EXPECTED_ENTRIES)
    for name in shipped:
        assert (tmp_path / "isograph_gpu" / "kernels" / name).read_bytes() == (
            ROOT / "kernels" / name).read_bytes()
