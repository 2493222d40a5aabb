"""Optional accelerated backends beyond plain torch.

The statistics themselves have one backend: torch (:mod:`isograph_gpu.ops`, cuBLAS GEMMs on
CUDA). The fused CuPy kernels that used to live in ``kernels/`` lost to torch and were
removed (docs/gpu.md, The backend rule). What remains here is :mod:`.cupy_special`: the
incomplete beta of the p-values through ``cupyx.scipy.special.betainc`` on CUDA when CuPy
is installed (faster than the float64 torch betainc: docs/gpu.md), chosen by
:func:`isograph_gpu.ops.pvalues.betainc_route`.
"""
