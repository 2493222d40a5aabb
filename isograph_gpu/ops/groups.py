"""The group layout of the high-vs-low contrasts: which column of the one-hot group matrix
is the high or the low group of which split and module.

Every caller (engine, training API, benchmarks, tests) builds the group matrix and reads
group sums back through :class:`GroupLayout`, never by hand. Splits may overlap: a sample
can be in the high group of the median split and in the high group of the tails split, and
each group column counts it independently (the GEMM path in
:func:`isograph_gpu.ops.moments.moments_and_group_sums` does; a kernel that folded two
groups into one membership test would not, see ``tests/ops/test_group_layout.py``).

A split given as a :class:`~isograph_gpu.ops.contrast.ComplementSplit` (the percentile
split: low = every other sample with a finite score) puts only its high columns into the
GEMMs: its low sums are the pairwise-complete sums less the high ones
(:func:`~isograph_gpu.ops.moments.moments_from_block`), a third fewer GEMM columns for the
default run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from .contrast import ComplementSplit, WelchResult, welch_from_sums
from .moments import GroupSums

__all__ = ["GroupLayout"]


@dataclass(frozen=True)
class GroupLayout:
    """Columns of the group matrix ``[n, 2 K S]`` for S named splits of K modules each:
    split s occupies columns ``2Ks : 2Ks + K`` (high, module order) then
    ``2Ks + K : 2K(s+1)`` (low).

    ``matrix``: bool [n, 2 K S] on the device given to :meth:`from_splits`.
    ``complement``: per split, whether its low group is the other samples with a finite
    score (given as a :class:`~isograph_gpu.ops.contrast.ComplementSplit`); those low
    columns are left out of :attr:`gemm_matrix` and derived (:attr:`segments`).
    """

    names: tuple[str, ...]
    n_modules: int
    matrix: Tensor
    complement: tuple[bool, ...] = ()

    def summed(self) -> GroupLayout:
        """This layout with every group summed by the GEMMs (no complement split)."""
        return dataclasses.replace(self, complement=(False,) * len(self.complement))

    @property
    def gemm_matrix(self) -> Tensor:
        """bool [n, G'] the columns the GEMMs carry: each split's high columns, and its low
        ones unless it is a complement split (a view of :attr:`matrix` when none is)."""
        if not any(self.complement):
            return self.matrix
        k = self.n_modules
        keep = [self.matrix[:, 2 * k * s: 2 * k * s + (k if derived else 2 * k)]
                for s, derived in enumerate(self.complement)]
        return torch.cat(keep, dim=1)

    @property
    def segments(self) -> tuple[tuple[bool, int], ...]:
        """The 2 S groups of K columns of :attr:`matrix` in order, each as (derived,
        start): its sums are :attr:`gemm_matrix`'s columns ``start : start + K``, or, when
        derived (a complement split's low group), the pairwise-complete sums less those
        columns' (its high group's). Empty when nothing is derived."""
        if not any(self.complement):
            return ()
        out: list[tuple[bool, int]] = []
        start, k = 0, self.n_modules
        for derived in self.complement:
            out.append((False, start))
            out.append((True, start) if derived else (False, start + k))
            start += k if derived else 2 * k
        return tuple(out)

    @classmethod
    def from_splits(cls, splits: Mapping[str, tuple[Tensor, Tensor]] | None, n_samples: int,
                    n_modules: int, device: torch.device | str | None = None) -> GroupLayout:
        """Layout of ``splits[name] = (high, low)`` (bool [n, K] each, any device), in the
        mapping's order; the group matrix is built once on ``device`` (default: the masks'
        device, CPU when there are no splits). A :class:`ComplementSplit` is trusted to be
        one: its low sums are derived, never summed."""
        columns: list[Tensor] = []
        complement: list[bool] = []
        for name, split in (splits or {}).items():
            high, low = split
            complement.append(isinstance(split, ComplementSplit))
            for side, mask in (("high", high), ("low", low)):
                if tuple(mask.shape) != (n_samples, n_modules):
                    raise ValueError(
                        f"split {name!r}: {side} mask has shape {tuple(mask.shape)}, "
                        f"expected ({n_samples}, {n_modules})")
            columns += [high.to(dtype=torch.bool), low.to(dtype=torch.bool)]
        if columns:
            matrix = torch.cat([c.to(columns[0].device) for c in columns], dim=1)
        else:
            matrix = torch.zeros((n_samples, 0), dtype=torch.bool)
        if device is not None:
            matrix = matrix.to(device)
        return cls(names=tuple((splits or {}).keys()), n_modules=int(n_modules), matrix=matrix,
                   complement=tuple(complement))

    @property
    def n_groups(self) -> int:
        """Columns of the group matrix (2 K S)."""
        return 2 * self.n_modules * len(self.names)

    def columns(self, name: str) -> tuple[slice, slice]:
        """(high, low) column slices of split ``name``."""
        s = self.names.index(name)
        k = self.n_modules
        return slice(2 * k * s, 2 * k * s + k), slice(2 * k * s + k, 2 * k * (s + 1))

    def masks(self, name: str) -> tuple[Tensor, Tensor]:
        """(high, low) bool [n, K] of split ``name``, views of ``matrix``."""
        hi, lo = self.columns(name)
        return self.matrix[:, hi], self.matrix[:, lo]

    def welch(self, sums: GroupSums, name: str) -> WelchResult:
        """Welch statistics [F, K] of split ``name`` from group sums over ``matrix``."""
        if sums.count.shape[1] != self.n_groups:
            raise ValueError(f"group sums have {sums.count.shape[1]} columns, the layout "
                             f"{self.n_groups}")
        hi, lo = self.columns(name)
        centred = None if sums.centred is None else (sums.centred.columns(hi),
                                                     sums.centred.columns(lo))
        return welch_from_sums(sums.count[:, hi], sums.total[:, hi], sums.squares[:, hi],
                               sums.count[:, lo], sums.total[:, lo], sums.squares[:, lo],
                               sums.centre, sums.scale, centred=centred)
