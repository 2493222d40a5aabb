"""tensors -> statistics on a Dask cluster: the feature statistics as one task per feature
chunk (``ExplainConfig.scheduler`` / ``--scheduler``).

Each task runs the engine's own chunk step (:func:`isograph_gpu.engine._chunk_statistics`)
on its worker's device and returns the chunk's [F_chunk, K] statistics as numpy arrays;
the client writes them into the same device tensors the single-process loop fills, so
q-values, switch strength and the tables are built exactly as in one process. Chunk
boundaries are the single-process ones (:func:`isograph_gpu.engine.chunk_plan`), so the
arithmetic, and the result, is the same byte for byte.

Where the columns come from: a parquet feature table or a backed ``.h5ad`` opened in
blocks (:class:`~isograph_gpu.io.feature_tables.ParquetFeatureBlocks`,
:class:`~isograph_gpu.io.anndata.AnnDataFeatureBlocks`) is sent to the workers once and
each task reads its own columns from the file (the path must be readable by every
worker); any other matrix (in memory) is read on the client and its column blocks are
scattered, one per task.

``dask.distributed`` is an optional extra: ``pip install 'isograph-gpu[distributed]'``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .engine import FeatureStatistics, _chunk_statistics, chunk_plan, chunk_right_block
from .errors import InputError, OptionalDependencyError, first_line
from .ops.groups import GroupLayout
from .progress import Progress

#: times Dask re-runs a task that raised (a worker that dies is re-run by the scheduler
#: on its own, up to ``distributed.scheduler.allowed-failures`` times)
TASK_RETRIES = 2


def require_distributed(purpose: str = "--scheduler") -> Any:
    """The ``distributed`` module, or :class:`OptionalDependencyError` naming ``purpose``
    and the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise OptionalDependencyError(
            f"{purpose} needs dask.distributed: pip install 'isograph-gpu[distributed]'"
        ) from exc
    return distributed


def local_workers(scheduler: str) -> int | None:
    """Workers of a ``local`` (one per core) / ``local:N`` scheduler (checked by
    :class:`~isograph_gpu.config.ExplainConfig`); ``None`` for a scheduler address."""
    if scheduler == "local":
        return max(1, os.cpu_count() or 1)
    if scheduler.startswith("local:"):
        return int(scheduler.partition(":")[2])
    return None


@contextmanager
def scheduler_client(scheduler: str) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler``: ``local[:N]`` starts a LocalCluster of N
    one-thread worker processes for the run; anything else is a scheduler address
    (``tcp://host:8786``) the client connects to. Closed on exit."""
    distributed = require_distributed()
    n_workers = local_workers(scheduler)
    if n_workers is None:
        try:
            client = distributed.Client(scheduler)
        except (OSError, ValueError) as exc:  # unreachable, or not an address
            raise InputError(f"scheduler (--scheduler) {scheduler}: cannot connect "
                             f"({first_line(exc)})") from exc
        with client:
            yield client
        return
    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _readable_on_workers(features: Any) -> bool:
    """True when the workers can read their own columns of ``features``: a parquet table
    or a backed ``.h5ad`` opened in blocks (each pickles as its path, columns and rows)."""
    from .io.anndata import AnnDataFeatureBlocks
    from .io.feature_tables import ParquetFeatureBlocks

    return isinstance(features, ParquetFeatureBlocks | AnnDataFeatureBlocks)


def feature_statistics_on_dask(
    client: Any,
    features: Any,
    scores: torch.Tensor,
    *,
    min_pairs: int,
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    device: torch.device,
    dtype: torch.dtype,
    memory_budget_bytes: int,
    chunk_features: int | None = None,
    progress: Progress | None = None,
    label: str = "features",
    pvalue_where: np.ndarray | None = None,
) -> FeatureStatistics:
    """:func:`isograph_gpu.engine.feature_statistics` with each feature chunk a Dask task
    on ``client``'s cluster: same arguments, same result ([F, K] tensors on ``device``).

    The module scores and split masks are scattered once; a task that raises (bad input)
    fails the run with its own exception, raised here.
    """
    distributed = require_distributed()
    f = features.shape[1]
    k = scores.shape[1]
    split_names = list(splits or {})
    out = FeatureStatistics.empty(f, k, split_names, device)
    _, spans = chunk_plan(features, k, len(split_names), dtype, memory_budget_bytes,
                          chunk_features)
    host_splits = {name: (hi.cpu().numpy(), lo.cpu().numpy())
                   for name, (hi, lo) in (splits or {}).items()}
    shared = client.scatter(
        [scores.to(torch.float64).cpu().numpy(), host_splits], broadcast=True)
    source = client.scatter(features, broadcast=True) if _readable_on_workers(features) \
        else None
    task_of: dict[Any, tuple[int, int]] = {}
    for a, b in spans:
        where = None if pvalue_where is None else np.ascontiguousarray(
            pvalue_where[a:b], dtype=bool)
        if source is not None:
            columns, lo, hi = source, a, b
        else:
            block = np.asarray(features[:, a:b])
            columns, lo, hi = client.scatter(block), 0, b - a
        future = client.submit(_chunk_task, columns, lo, hi, *shared, min_pairs, where,
                               device.type, dtype, pure=False, retries=TASK_RETRIES)
        task_of[future] = (a, b)
    try:
        for i, future in enumerate(distributed.as_completed(list(task_of)), start=1):
            a, b = task_of[future]
            _store(out, a, b, future.result())
            if progress is not None:
                progress.chunk(label, i, len(spans))
    finally:
        client.cancel(list(task_of))
    return out


def _chunk_task(columns: Any, a: int, b: int, scores: np.ndarray,
                splits: dict[str, tuple[np.ndarray, np.ndarray]], min_pairs: int,
                where: np.ndarray | None, device_type: str,
                dtype: torch.dtype) -> dict[str, np.ndarray]:
    """On a worker: statistics of columns a:b of ``columns`` (a feature reader or one
    scattered block) on the worker's device (its current CUDA device for "cuda"), as
    host arrays named as :func:`_statistics_arrays`."""
    device = torch.device("cuda", torch.cuda.current_device()) if device_type == "cuda" \
        else torch.device("cpu")
    n, k = scores.shape
    masks = {name: (torch.from_numpy(hi), torch.from_numpy(lo))
             for name, (hi, lo) in splits.items()}
    layout = GroupLayout.from_splits(masks or None, n, k, device)
    out = FeatureStatistics.empty(b - a, k, list(splits), device)
    x = torch.from_numpy(np.asarray(columns[:, a:b])).to(device=device, dtype=dtype)
    right = chunk_right_block(torch.from_numpy(scores), layout, device, dtype)
    _chunk_statistics(out, 0, b - a, x, right, layout, min_pairs,
                      None if where is None else torch.from_numpy(where).to(device))
    return _statistics_arrays(out)


def _statistics_arrays(stats: FeatureStatistics) -> dict[str, np.ndarray]:
    """Every tensor of ``stats`` as a host array: "r", "n", "pvalue", "n_finite" and
    "<split>.<field>" for each contrast."""
    arrays = {name: getattr(stats, name).cpu().numpy()
              for name in ("r", "n", "pvalue", "n_finite")}
    for split, contrast in stats.contrasts.items():
        for name in contrast.__dataclass_fields__:
            arrays[f"{split}.{name}"] = getattr(contrast, name).cpu().numpy()
    return arrays


def _store(out: FeatureStatistics, a: int, b: int, arrays: dict[str, np.ndarray]) -> None:
    """Write one chunk's host arrays (:func:`_statistics_arrays`) into rows a:b of ``out``."""
    for key, value in arrays.items():
        split, _, name = key.rpartition(".")
        target = getattr(out.contrasts[split], name) if split else getattr(out, name)
        target[a:b] = torch.from_numpy(value).to(target.device)
