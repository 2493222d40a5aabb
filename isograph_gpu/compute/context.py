"""The run context: what every stage of an explain run shares (device, working dtype,
progress, memory plan, configuration, an optional Dask client), passed as one object
instead of loose parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import ExplainConfig
from ..progress import Progress
from .plan import MemoryPlan


@dataclass(frozen=True)
class RunContext:
    """One explain run's shared settings. ``dtype`` is the working precision of the
    statistics (p- and q-values are float64 whatever it is); ``client`` a Dask client
    for the feature statistics, or None (one process)."""

    config: ExplainConfig
    device: torch.device
    dtype: torch.dtype
    progress: Progress
    plan: MemoryPlan
    client: Any = None

    @property
    def min_pairs(self) -> int:
        return int(self.config.min_complete_pairs)
