"""The statistics container of the chunk step: per feature x module tensors, one Pearson
block (r, n, p) and one :class:`~isograph_gpu.ops.contrast.WelchResult` per contrast split.

The chunk step (:func:`isograph_gpu.compute.step.chunk_statistics`) returns one for a
chunk; the engine fills one for the whole table (:meth:`FeatureStatistics.empty`,
:meth:`FeatureStatistics.store`); a Dask task returns one for its block. Every method
walks the dataclass fields, so a new statistic is one more field (with its dtype and
shape in the field's metadata) and needs nothing else here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from ..ops.contrast import WelchResult
from ..ops.moments import block_x_orientation

#: the Welch fields the engine keeps per split, and their dtypes (``df`` is not kept)
WELCH_KEPT: dict[str, torch.dtype] = {
    "mean_high": torch.float64, "mean_low": torch.float64, "delta": torch.float64,
    "se": torch.float64, "tstat": torch.float64, "pvalue": torch.float64,
    "n_high": torch.int64, "n_low": torch.int64}


#: a statistic field's metadata: its dtype and shape ([F, K], or [F] when not per module)
_FLOAT = {"dtype": torch.float64, "per_module": True}
_COUNT = {"dtype": torch.int64, "per_module": True}
_FEATURE_COUNT = {"dtype": torch.int64, "per_module": False}


@dataclass
class FeatureStatistics:
    """Per feature x module statistics, [F, K] tensors on the device they were computed
    on (r, p float64; n int64): r, n, pvalue (None when not computed), ``n_finite`` [F]
    int64 (finite values per feature over all samples) and the Welch statistics of each
    named contrast split."""

    r: torch.Tensor = field(metadata=_FLOAT)
    n: torch.Tensor = field(metadata=_COUNT)
    pvalue: torch.Tensor | None = field(metadata=_FLOAT)
    n_finite: torch.Tensor = field(metadata=_FEATURE_COUNT)
    contrasts: dict[str, WelchResult] = field(default_factory=dict)

    @classmethod
    def empty(cls, f: int, k: int, splits: list[str], device: torch.device, *,
              column_major: bool | None = None) -> FeatureStatistics:
        """Uninitialised tensors for ``f`` features x ``k`` modules and the named splits on
        ``device``, filled chunk by chunk (results stay on the device). ``column_major``
        (default: in the chunk step's layout on ``device``,
        :func:`~isograph_gpu.ops.moments.block_x_orientation`): [F, K] tensors as
        transposed [K, F] ones, so storing a chunk is a plain copy and each module's
        column is contiguous for its table; False: row-major."""
        if column_major is None:
            column_major = block_x_orientation(device)

        def make(dtype: torch.dtype, per_module: bool = True) -> torch.Tensor:
            if not per_module:
                return torch.empty((f,), dtype=dtype, device=device)
            if column_major:
                return torch.empty((k, f), dtype=dtype, device=device).T
            return torch.empty((f, k), dtype=dtype, device=device)

        values = {s.name: make(**s.metadata) for s in dataclasses.fields(cls) if s.metadata}
        contrasts = {name: WelchResult(df=None, **{w: make(dtype)
                                                   for w, dtype in WELCH_KEPT.items()})
                     for name in splits}
        return cls(**values, contrasts=contrasts)

    def named_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor by name: the statistic fields ("r", "n", "pvalue", "n_finite") and
        "<split>.<field>" for each kept Welch field of each contrast (None skipped)."""
        tensors = {s.name: getattr(self, s.name) for s in dataclasses.fields(self)
                   if s.metadata and getattr(self, s.name) is not None}
        for split, contrast in self.contrasts.items():
            for name in WELCH_KEPT:
                value = getattr(contrast, name)
                if value is not None:
                    tensors[f"{split}.{name}"] = value
        return tensors

    def modules(self, cols: slice) -> FeatureStatistics:
        """The statistics of the module columns ``cols`` (views; ``n_finite`` shared)."""
        values = {s.name: None if getattr(self, s.name) is None
                  else getattr(self, s.name)[:, cols] if s.metadata["per_module"]
                  else getattr(self, s.name)
                  for s in dataclasses.fields(self) if s.metadata}
        contrasts = {name: WelchResult(**{w: None if getattr(c, w) is None
                                          else getattr(c, w)[:, cols]
                                          for w in (*WELCH_KEPT, "df")})
                     for name, c in self.contrasts.items()}
        return type(self)(**values, contrasts=contrasts)

    def store(self, a: int, b: int, chunk: FeatureStatistics) -> None:
        """Write ``chunk`` (the statistics of features a:b) into rows a:b, tensor by name
        (device to device, no host synchronisation)."""
        mine = self.named_tensors()
        for name, value in chunk.named_tensors().items():
            if name in mine:
                mine[name][a:b] = value

    def to(self, device: torch.device | str) -> FeatureStatistics:
        """The same statistics on ``device`` (what a Dask task returns: on the CPU)."""
        values = {s.name: None if getattr(self, s.name) is None
                  else getattr(self, s.name).to(device)
                  for s in dataclasses.fields(self) if s.metadata}
        contrasts = {name: WelchResult(**{w: None if getattr(c, w) is None
                                          else getattr(c, w).to(device)
                                          for w in (*WELCH_KEPT, "df")})
                     for name, c in self.contrasts.items()}
        return type(self)(**values, contrasts=contrasts)

    def to_host(self) -> dict[str, np.ndarray]:
        """Every tensor as a host numpy array, named as :meth:`named_tensors`."""
        return {name: t.cpu().numpy() for name, t in self.named_tensors().items()}

    def store_rows(self, a: int, b: int, host: dict[str, np.ndarray]) -> None:
        """Write ``host`` (:meth:`to_host` of features a:b) into rows a:b, each array into
        the tensor of its name on that tensor's device."""
        tensors = self.named_tensors()
        if host.keys() != tensors.keys():
            raise ValueError(f"store_rows: arrays {sorted(host)} do not match the "
                             f"statistics' tensors {sorted(tensors)}")
        for name, value in host.items():
            target = tensors[name]
            target[a:b] = torch.from_numpy(value).to(target.device)
