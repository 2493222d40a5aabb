"""tensors -> statistics on a Dask cluster: the feature statistics as one task per read
block of the feature table (``ExplainConfig.scheduler`` / ``--scheduler``).

The single-process chunk plan (:class:`isograph_gpu.compute.plan.ChunkPlan`) is grouped by
the reader's read block (:meth:`~isograph_gpu.compute.plan.ChunkPlan.read_groups` of its
``read_columns``, :data:`~isograph_gpu.memory_model.LOAD_BLOCK_BYTES` of a parquet table):
each task reads its block once and runs the engine's own chunk loop on it (the shared
chunk step, :func:`~isograph_gpu.compute.step.chunk_statistics`, and the options'
companions, :mod:`isograph_gpu.compute.companions`), in the single-process chunks, on its
worker's device, and returns the block's [F_block, K]
:class:`~isograph_gpu.compute.results.FeatureStatistics` (with ``--covariates`` its partial
r / n / p) and, with ``--switch-permutations``, the running null extremes of the pairs
its columns test, on the CPU. The client stores them into the same device tensors the
single-process loop fills (and folds the extremes into its own with max / min, which do
not depend on the order), so q-values, switch strength, switch p and the tables are built
exactly as in one process, and the arithmetic, and the result, is the same byte for byte.

Where the columns come from: a parquet feature table or a backed ``.h5ad`` opened in
blocks (:class:`~isograph_gpu.io.feature_tables.ParquetFeatureBlocks`,
:class:`~isograph_gpu.io.anndata.AnnDataFeatureBlocks`) is sent to the workers once and
each task reads its own columns from the file (the path must be readable by every
worker); any other matrix (in memory) is read on the client and its column blocks are
scattered, one per task.

``dask.distributed`` is an optional extra: ``pip install 'isograph-gpu[distributed]'``.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .compute.companions import NullScores, PartialScores, SwitchNull
from .compute.plan import ChunkPlan, plan_chunks
from .compute.results import FeatureStatistics
from .engine import feature_statistics
from .errors import InputError, OptionalDependencyError, first_line
from .ops.contrast import split_like
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


#: default of ``--scheduler-timeout`` (``ExplainConfig.scheduler_timeout``), seconds
SCHEDULER_TIMEOUT = 30.0


def probe_scheduler(address: str, timeout: float = SCHEDULER_TIMEOUT) -> None:
    """Connect to the scheduler at ``address``, complete distributed's handshake and get
    the answer to one ``identity`` request, all within ``timeout`` seconds; otherwise
    :class:`InputError` naming the address (``distributed.Client`` itself bounds the TCP
    connect but not the handshake: a server that accepts and never answers held it for
    ever). Runs on its own thread and event loop, so a caller's running loop is no
    obstacle."""
    import asyncio
    import threading

    from distributed.comm import connect
    from distributed.core import send_recv

    outcome: list[BaseException | None] = []

    async def exchange() -> None:
        comm = await connect(address, timeout=timeout)
        try:
            await send_recv(comm, op="identity")
        finally:
            comm.abort()

    def attempt() -> None:
        try:
            asyncio.run(asyncio.wait_for(exchange(), timeout))
            outcome.append(None)
        except BaseException as exc:  # reported by the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=attempt, name="isograph-gpu-scheduler-probe",
                              daemon=True)
    thread.start()
    thread.join(timeout + 5)  # wait_for ends the attempt at ``timeout``; 5 s to unwind
    error = outcome[0] if outcome else TimeoutError()
    if error is None:
        return
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        reason = f"no answer within {timeout:g} s (--scheduler-timeout)"
    else:
        reason = first_line(error) or type(error).__name__
    raise InputError(f"scheduler (--scheduler) {address}: cannot connect ({reason})") \
        from (error if isinstance(error, Exception) else None)


@contextmanager
def scheduler_client(scheduler: str, timeout: float = SCHEDULER_TIMEOUT) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler``: ``local[:N]`` starts a LocalCluster of N
    one-thread worker processes for the run; anything else is a scheduler address
    (``tcp://host:8786``) the client connects to, after :func:`probe_scheduler` found it
    answering within ``timeout`` seconds. Closed on exit."""
    distributed = require_distributed()
    n_workers = local_workers(scheduler)
    if n_workers is None:
        probe_scheduler(scheduler, timeout)
        try:
            client = distributed.Client(scheduler, timeout=timeout)
        except (OSError, ValueError) as exc:  # unreachable, or not an address
            raise InputError(f"scheduler (--scheduler) {scheduler}: cannot connect "
                             f"({first_line(exc)})") from exc
        with client:
            yield client
        return
    with _started_local_cluster(distributed, n_workers) as cluster, \
            distributed.Client(cluster) as client:
        yield client


#: set while a local cluster starts: the path where a worker process that finds itself
#: re-running the caller's script (:func:`exit_if_unguarded_worker`) leaves a mark
UNGUARDED_MARKER_ENV = "ISOGRAPH_GPU_UNGUARDED_MAIN_MARKER"
UNGUARDED_MAIN_MESSAGE = (
    "scheduler {scheduler!r} starts worker processes, which import the calling script "
    "again: put the script's explain_module call under `if __name__ == \"__main__\":` "
    "(or use a scheduler address)")


def exit_if_unguarded_worker(scheduler: str | None) -> None:
    """Called first by ``explain_module``: in a local cluster's worker process that is
    importing the caller's script (which runs ``explain_module`` at its top level, with no
    ``if __name__ == "__main__":`` guard), leave a mark for the parent and exit quietly
    instead of loading the inputs and starting a cluster of its own (which fails with a
    long traceback in every worker)."""
    import multiprocessing

    if scheduler is None or local_workers(scheduler) is None \
            or not getattr(multiprocessing.current_process(), "_inheriting", False):
        return
    marker = os.environ.get(UNGUARDED_MARKER_ENV)
    if marker:
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
    raise SystemExit(1)


@contextmanager
def _started_local_cluster(distributed: Any, n_workers: int) -> Iterator[Any]:
    """A LocalCluster of ``n_workers`` one-thread worker processes; when its workers do
    not start because they re-ran an unguarded calling script, one InputError saying so
    (and the workers' failure logs are held back)."""
    import logging
    import tempfile

    with tempfile.TemporaryDirectory(prefix="isograph-gpu-cluster-") as folder:
        marker = os.path.join(folder, "unguarded")
        os.environ[UNGUARDED_MARKER_ENV] = marker
        quiet = [logging.getLogger(n) for n in ("distributed.nanny", "distributed.deploy")]
        levels = [logger.level for logger in quiet]
        try:
            for logger in quiet:
                logger.setLevel(logging.CRITICAL)
            cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                               processes=True, dashboard_address=None)
        except Exception as exc:
            if os.path.exists(marker):
                scheduler = f"local:{n_workers}"
                raise InputError(UNGUARDED_MAIN_MESSAGE.format(scheduler=scheduler)) from None
            raise exc
        finally:
            del os.environ[UNGUARDED_MARKER_ENV]
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)
    with cluster:
        yield cluster


def _readable_on_workers(features: Any) -> bool:
    """True when the workers can read their own columns of ``features``: a parquet table,
    a backed ``.h5ad`` or a feature cache opened in blocks (each pickles as its path,
    columns and rows)."""
    from .io.anndata import AnnDataFeatureBlocks
    from .io.feature_cache import CachedFeatureBlocks
    from .io.feature_tables import ParquetFeatureBlocks

    return isinstance(features, ParquetFeatureBlocks | AnnDataFeatureBlocks
                      | CachedFeatureBlocks)


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
    pvalue_where: np.ndarray | torch.Tensor | None = None,
    chunks: ChunkPlan | None = None,
    partial: PartialScores | None = None,
    switch_null: SwitchNull | None = None,
) -> FeatureStatistics:
    """:func:`isograph_gpu.engine.feature_statistics` with each read block a Dask task on
    ``client``'s cluster: same arguments, same result ([F, K] tensors on ``device``; the
    running extremes of ``switch_null`` folded in as each task's arrive).

    Each task runs :func:`~isograph_gpu.engine.feature_statistics` on its block with the
    single-process chunk width, so its chunks, and their arithmetic, are the single-process
    ones. The module scores, the split masks and a reader of the file are sent once, each
    as a task (computed again when the worker holding it dies); a task that raises (bad
    input) fails the run with its own exception, raised here.
    """
    distributed = require_distributed()
    if isinstance(pvalue_where, torch.Tensor):
        pvalue_where = pvalue_where.cpu().numpy()  # sliced per task, sent with it
    f = features.shape[1]
    k = scores.shape[1]
    split_names = list(splits or {})
    out = FeatureStatistics.empty(f, k, split_names, device)
    if chunks is None:  # a run passes its MemoryPlan's, as the single-process loop does
        chunks = plan_chunks(features, k * (1 + len(split_names)), dtype,
                             memory_budget_bytes, chunk_features)
    step, spans = chunks.step, list(chunks.spans)
    host_splits = {name: split_like(split, split[0].cpu().numpy(), split[1].cpu().numpy())
                   for name, split in (splits or {}).items()}
    # tasks, not scattered data: a worker that dies with the last copy (the scheduler
    # keeps one copy of data that no queued task needs on several workers) loses
    # scattered data for good, and every task needing it is cancelled; a task's result
    # is computed again
    companions = (None if partial is None else dataclasses.replace(partial.to("cpu"), rows=None),
                  None if switch_null is None else switch_null.shared.to("cpu"))
    shared = [client.submit(_given, value, pure=False)
              for value in (scores.to(torch.float64).cpu().numpy(), host_splits, *companions)]
    source = client.submit(_given, features, pure=False) \
        if _readable_on_workers(features) else None
    task_of: dict[Any, tuple[int, int, int]] = {}
    # one task per read block: the chunk spans grouped as one process reads them (a
    # source without read_columns, in memory or a backed .h5ad: one task per chunk)
    starts = [a for a, _ in spans]
    for a, b in chunks.read_groups(chunks.read_columns or 0):
        n_chunks = bisect.bisect_left(starts, b) - bisect.bisect_left(starts, a)
        where = None if pvalue_where is None else np.ascontiguousarray(
            pvalue_where[a:b], dtype=bool)
        if source is not None:
            columns, lo, hi = source, a, b
        else:
            columns, lo, hi = client.scatter(np.asarray(features[:, a:b])), 0, b - a
        rows = None if partial is None or partial.rows is None else partial.rows[a:b]
        ids, pairs = (None, None) if switch_null is None else switch_null.part(a, b)
        future = client.submit(_block_task, columns, lo, hi, *shared, min_pairs, where,
                               device.type, dtype, step, rows, pairs, pure=False,
                               retries=TASK_RETRIES)
        task_of[future] = (a, b, n_chunks, ids)
    done = 0
    try:
        for future in distributed.as_completed(list(task_of)):
            a, b, n_chunks, ids = task_of[future]
            stats, null = future.result()
            out.store(a, b, stats.to(device))
            if switch_null is not None:
                switch_null.merge(ids, *null)
            done += n_chunks
            if progress is not None:
                progress.chunk(label, done, len(spans))
    finally:
        client.cancel(list(task_of))
    return out


def _given(value: Any) -> Any:
    """``value``, as the result of a task (which the scheduler can compute again)."""
    return value


def _block_task(columns: Any, a: int, b: int, scores: np.ndarray,
                splits: dict[str, tuple[np.ndarray, np.ndarray]],
                partial: PartialScores | None, null_scores: NullScores | None,
                min_pairs: int, where: np.ndarray | None, device_type: str,
                dtype: torch.dtype, step: int, rows: np.ndarray | None = None,
                pairs: np.ndarray | None = None
                ) -> tuple[FeatureStatistics, tuple[torch.Tensor, torch.Tensor] | None]:
    """On a worker: columns a:b of ``columns`` (a feature reader or one scattered block),
    read once, through :func:`~isograph_gpu.engine.feature_statistics` in chunks of
    ``step`` features on the worker's device (its current CUDA device for "cuda"), with
    the companions on the same chunks: ``partial`` over the block's ``rows``, the switch
    null of ``null_scores`` over the block's pair table ``pairs``
    (:meth:`~isograph_gpu.compute.companions.SwitchNull.part`). The block's statistics
    container and its switch null's running extremes ``(hi, lo)`` (None without one),
    on the CPU."""
    device = torch.device("cuda", torch.cuda.current_device()) if device_type == "cuda" \
        else torch.device("cpu")
    masks = {name: split_like(split, torch.from_numpy(split[0]), torch.from_numpy(split[1]))
             for name, split in splits.items()}
    block = np.asarray(columns[:, a:b])  # the one read of this block
    null = None if null_scores is None or pairs is None else SwitchNull(
        null_scores.to(device), pairs, int(pairs.max(initial=-1)) + 1)
    stats = feature_statistics(
        block, torch.from_numpy(scores), min_pairs=min_pairs, splits=masks or None,
        device=device, dtype=dtype, memory_budget_bytes=0, chunk_features=step,
        pvalue_where=where, switch_null=null,
        partial=None if partial is None else dataclasses.replace(partial.to(device), rows=rows))
    if null is None:
        return stats.to("cpu"), None
    null.flush()
    return stats.to("cpu"), (null.hi.cpu(), null.lo.cpu())
