"""Whether this machine's BLAS gives the same GEMM bits with 1 and 2 threads.

MKL does in its strict reproducibility mode (``MKL_CBWR=AUTO,STRICT``, which the package
sets at import) on Intel CPUs; on AMD CPUs it ignores the mode and a wide GEMM's last bits
depend on how it splits the output over threads. Bit-identity across thread counts is
tested where the BLAS itself has it; agreement to rounding everywhere."""

from __future__ import annotations

import functools

import numpy as np
import torch


@functools.cache
def gemm_bits_independent_of_threads() -> bool:
    """The engine's GEMM shapes (a 200-sample chunk of 300 features against 193 columns,
    both orientations) with 1 and 2 torch threads give equal bits."""
    rng = np.random.default_rng(32)
    x = torch.from_numpy(np.asfortranarray(rng.normal(size=(200, 300)) + 5.0))
    b = torch.from_numpy(rng.normal(size=(200, 193)))
    threads = torch.get_num_threads()
    runs = []
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            runs.append([(x[:, :c].T @ b, b.T @ x[:, :c]) for c in (13, 34, 300)])
    finally:
        torch.set_num_threads(threads)
    one, two = runs
    return all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1])
               for p, q in zip(one, two, strict=True))
