"""Bit-reproducible GEMMs on the CPU whatever the thread count (on Intel CPUs).

MKL (torch's CPU BLAS on x86) splits some GEMMs' sums over threads in a thread-dependent
order, so 1 and 2 threads (a Dask worker and its caller, a laptop and a CI runner) could
give tables that differ in the last bit. MKL's conditional numerical reproducibility in
strict mode (``MKL_CBWR=AUTO,STRICT``) fixes the order; measured at the engine's chunk
shape it costs nothing (bench/results/blas_reproducibility_cpu.json). MKL reads the
setting at its first call, so :func:`set_reproducible_blas` runs when the package is
imported; a value the user's environment sets wins. MKL honours the mode on Intel CPUs
only: on AMD CPUs thread counts agree to rounding, not bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: what :func:`set_reproducible_blas` puts in the environment where unset
REPRODUCIBLE_BLAS = {"MKL_CBWR": "AUTO,STRICT"}


def set_reproducible_blas(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put each of :data:`REPRODUCIBLE_BLAS` the environment does not set (even to an empty
    value) into ``environ`` (default ``os.environ``); returns those set. Effective only
    before MKL's first call in the process (importing torch makes none)."""
    environ = os.environ if environ is None else environ
    applied = {k: v for k, v in REPRODUCIBLE_BLAS.items() if k not in environ}
    environ.update(applied)
    return applied
