"""Importing the package asks MKL for strict reproducibility (same GEMM bits whatever the
thread count) unless the user's environment says otherwise, and on Intel CPUs it holds: a
GEMM in a fresh process gives the same bits with 1 and 2 threads. (MKL ignores the mode on
AMD CPUs: there the GEMMs, and so the statistics, agree across thread counts to rounding;
tests/compute/test_engine_and_contrasts.py checks both.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import paths

from isograph_gpu.reproducible_blas import REPRODUCIBLE_BLAS, set_reproducible_blas

PROBE = """
import os
import isograph_gpu
from _helpers.blas import gemm_bits_independent_of_threads
print(os.environ.get("MKL_CBWR"), gemm_bits_independent_of_threads())
"""


def _probe(env: dict[str, str]) -> list[str]:
    """In a fresh process (MKL reads MKL_CBWR once): the setting after importing the
    package, and whether the engine's GEMM shapes then give the same bits at 1 and 2
    threads (tests/_helpers/blas.py)."""
    env = {**env, "PYTHONPATH": os.pathsep.join(
        [str(paths.TESTS), *filter(None, [env.get("PYTHONPATH")])])}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.split()


def _intel_cpu() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and "GenuineIntel" in cpuinfo.read_text()


def test_import_sets_strict_mkl():
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    assert _probe(env)[0] == REPRODUCIBLE_BLAS["MKL_CBWR"]


@pytest.mark.skipif(not _intel_cpu(), reason="MKL's strict mode holds on Intel CPUs only")
def test_strict_mkl_gemms_agree_across_thread_counts():
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    assert _probe(env) == [REPRODUCIBLE_BLAS["MKL_CBWR"], "True"]


def test_the_users_setting_wins():
    assert _probe({**os.environ, "MKL_CBWR": "COMPATIBLE"})[0] == "COMPATIBLE"
    environ = {"MKL_CBWR": ""}
    assert set_reproducible_blas(environ) == {} and environ == {"MKL_CBWR": ""}
    environ = {}
    assert set_reproducible_blas(environ) == REPRODUCIBLE_BLAS == environ
