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


@contextmanager
def counted_host_syncs() -> Iterator[list[str]]:
    """Run the block with ``torch.cuda.set_sync_debug_mode("warn")`` and yield a list that
    holds, after the block, the message of each host synchronisation in it. Synchronises
    once before and restores the default mode after."""
    import warnings

    torch.cuda.synchronize()
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode("default")
    found.extend(str(w.message) for w in caught if "synchroniz" in str(w.message))
