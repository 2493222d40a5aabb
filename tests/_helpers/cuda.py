"""CUDA test helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def no_host_sync() -> Iterator[None]:
    """Run the block with ``torch.cuda.set_sync_debug_mode("error")``: any host
    synchronisation in it raises. Synchronises once before (pending work is not the
    block's) and restores the default mode after."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")
