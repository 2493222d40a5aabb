"""Peak bytes of the tensors torch allocates inside a block, measured by a dispatch mode
(an oracle for "fits the memory budget" that does not restate the code's own formula).

Every op's outputs are recorded by their storage; a storage an op's input already holds
(a view, an in-place result) is not a new allocation. Storages are released when the
last tensor recorded on them is garbage collected. CPU and CUDA alike.
"""

from __future__ import annotations

import gc
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class PeakAllocation(TorchDispatchMode):
    """``with PeakAllocation() as meter: ...`` then ``meter.peak`` (bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage pointer -> [bytes, tensors alive]
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr()
                  for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key in self.live:
                self.live[key][1] += 1
            elif key in inputs or storage.nbytes() == 0:
                continue
            else:
                self.live[key] = [storage.nbytes(), 1]
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
            weakref.finalize(t, self._release, key)
        return out

    def __exit__(self, *exc):
        gc.collect()
        return super().__exit__(*exc)
