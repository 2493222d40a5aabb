"""Render every explain figure for a set of module results into an output directory."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..config import PLOT_FORMATS
from ..errors import InputError
from ..interrupts import interrupts_deferred
from ..io.output import (
    atomic_write_bytes,
    check_module_folder_names,
    check_path_components,
    json_bytes,
)
from ..progress import Progress
from ..result import ExplainResult
from ._data import feature_type_map, gene_name_map, usage_frame
from .drivers import plot_driver_bar, plot_driver_heatmap
from .overview import plot_eigengene_heatmap, plot_high_vs_low
from .panel import plot_summary_panel
from .style import DEFAULT_DPI, save_figure
from .summary import summarize_module
from .transcripts import plot_isoform_gradient, plot_switch_pair, plot_transcript_polarity

#: per-module figure names, in the order they are written
MODULE_FIGURES = ("driver_bar", "isoform_gradient", "driver_heatmap", "high_vs_low",
                  "transcript_polarity", "switch_pair", "summary_panel")
SUMMARY_NAME = "module_summary.json"
_NEEDS_USAGE = ("isoform_gradient", "driver_heatmap")


def eigengene_frame(results: dict[str, ExplainResult]) -> pd.DataFrame:
    """Samples x modules eigengenes (outer join on sample ids, first-seen sample order)."""
    columns = []
    for module_id, result in results.items():
        eig = np.asarray(result.eigengene, dtype=np.float64)
        if eig.size and eig.size == len(result.sample_ids):
            columns.append(pd.Series(eig, index=[str(s) for s in result.sample_ids],
                                     name=str(module_id)))
    if not columns:
        return pd.DataFrame()
    return pd.concat(columns, axis=1, sort=False)


def _module_builders(result: ExplainResult, usage: pd.DataFrame | None,
                     gene_names: dict[str, str], top_n: int,
                     feature_types: dict[str, str] | None = None
                     ) -> dict[str, Callable[[], Figure | Axes]]:
    drivers, polarity = result.gene_driver_table, result.transcript_polarity_table
    module = str(result.module_id)  # every standalone figure names its module
    has_eigengene = np.asarray(result.eigengene).size == len(result.sample_ids) > 0

    def needs_usage(build: Callable[[], Figure]) -> Callable[[], Figure]:
        def checked() -> Figure:
            if usage is None:
                raise InputError("no feature usage table given")
            if not has_eigengene:
                raise InputError("no eigengene for this module")
            return build()
        return checked

    return {
        "driver_bar": lambda: plot_driver_bar(drivers, top_n=top_n, gene_names=gene_names,
                                              title=f"{module}: top driver genes"),
        "isoform_gradient": needs_usage(lambda: plot_isoform_gradient(
            drivers, polarity, result.eigengene, result.sample_ids, usage, top_n=top_n,
            gene_names=gene_names,
            title=f"{module}: transcript usage along the module eigengene")),
        "driver_heatmap": needs_usage(lambda: plot_driver_heatmap(
            drivers, polarity, result.eigengene, result.sample_ids, usage, top_n=top_n,
            gene_names=gene_names, title=f"{module}: positive and negative driver isoforms")),
        "high_vs_low": lambda: plot_high_vs_low(
            result.high_vs_low_table, top_n=10, gene_names=gene_names,
            feature_types=feature_types, title=f"{module}: high vs low module samples"),
        "transcript_polarity": lambda: plot_transcript_polarity(
            polarity, drivers, top_n=top_n, gene_names=gene_names,
            title=f"{module}: transcript polarity"),
        "switch_pair": lambda: plot_switch_pair(polarity, top_n=5, gene_names=gene_names,
                                                title=f"{module}: isoform switch pairs"),
        "summary_panel": lambda: plot_summary_panel(
            result, usage if has_eigengene else None, gene_names=gene_names,
            top_n=min(top_n, 6), feature_types=feature_types),
    }


def _module_usage(usage: pd.DataFrame | None, result: ExplainResult) -> pd.DataFrame | None:
    """The usage columns a module's figures can read (its transcripts): small to copy."""
    if usage is None:
        return None
    polarity = result.transcript_polarity_table
    wanted = [] if polarity is None or polarity.empty else \
        [f for f in dict.fromkeys(polarity["feature_id"].astype(str)) if f in usage.columns]
    return usage[wanted]


def _render_module(task: tuple) -> tuple[list[str], list[str]]:
    """Draw and write one module's figures and summary; returns (files written, skipped)."""
    result, usage, gene_names, top_n, output_dir, formats, dpi, usage_missing, types = task
    module_id = str(result.module_id)
    written: list[str] = []
    skipped: list[str] = []
    for name, build in _module_builders(result, usage, gene_names, top_n, types).items():
        try:
            figure = build()
        except InputError as exc:
            if not (usage_missing and name in _NEEDS_USAGE):
                skipped.append(f"{name} ({exc})")
            continue
        fig = figure.figure if isinstance(figure, Axes) else figure
        for path in save_figure(fig, output_dir / module_id / name, formats, dpi=dpi):
            written.append(path.relative_to(output_dir).as_posix())
    summary_path = output_dir / module_id / SUMMARY_NAME
    atomic_write_bytes(summary_path, json_bytes(summarize_module(result)))
    written.append(summary_path.relative_to(output_dir).as_posix())
    return written, skipped


def default_jobs(n_modules: int) -> int:
    """Worker processes used when ``jobs`` is not given: on Linux one per CPU core this
    process may run on, at most one per module (1 for a single module: no pool at all).
    Elsewhere 1: workers there are spawned, which re-imports the caller's main module and
    so needs an ``if __name__ == "__main__":`` guard that a script may not have."""
    if not sys.platform.startswith("linux"):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, int(n_modules)))


PR_SET_PDEATHSIG = 1


def _worker_start(parent_pid: int) -> None:
    """Pool worker initializer: die with the parent. On Linux the kernel sends SIGKILL to
    the worker when the process that forked it ends (``prctl(PR_SET_PDEATHSIG)``), so a
    killed run leaves no orphan still drawing into its staging folder; a worker whose
    parent already died before that exits at once. SIGINT is ignored (the parent stops
    its workers itself) and SIGTERM gets the default action (a forked copy of the parent's
    SIGTERM handler would keep a worker alive)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # forked while _signals_deferred blocked them
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _DEFERRED_SIGNALS)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


_DEFERRED_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while the pool forks its workers: a Python signal handler that
    runs inside an at-fork hook has its exception swallowed ("Exception ignored"), so a
    SIGTERM arriving mid-fork would be lost. The signal is delivered when this ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class FigureWorkers:
    """``jobs`` worker processes running ``draw`` (default :func:`_render_module`; a
    module-level function, so spawned workers can import it) on each of ``tasks``, each
    worker taking the next task from a shared counter and sending its outcome back on its
    own pipe. No thread in this process: an interrupt at any point is handled by
    :meth:`stop`, which kills the workers and returns at once (concurrent.futures' pool
    manager thread could be left waiting on a queue nobody reads, so the process never
    exited). Workers die with this process (:func:`_worker_start`)."""

    def __init__(self, jobs: int, tasks: list[tuple],
                 draw: Callable[[tuple], Any] | None = None) -> None:
        context = _pool_context()
        self._n_tasks = len(tasks)
        next_task = context.Value("l", 0)
        self._workers: dict[Any, mp.process.BaseProcess] = {}
        try:
            # forks (or spawns) here; an interrupt waits until every worker is started and
            # known (one landing inside Process.start() would leave a worker unknown to stop)
            with _signals_deferred(), interrupts_deferred():
                for _ in range(jobs):
                    receive, send = context.Pipe(duplex=False)
                    worker = context.Process(target=_draw_tasks, daemon=True,
                                             args=(os.getpid(), draw or _render_module,
                                                   tasks, next_task, send))
                    self._workers[receive] = worker
                    worker.start()
                    send.close()
        except BaseException:
            self.stop()
            raise

    def outcomes(self) -> Iterator[Any]:
        """Each task's outcome (for :func:`_render_module`: files written, skipped), in task order, as the workers finish them;
        a worker's exception is re-raised here, and a worker that dies is an error."""
        from multiprocessing.connection import wait

        done: dict[int, Any] = {}
        for index in range(self._n_tasks):
            while index not in done:
                if not self._workers:
                    raise RuntimeError(f"the figure workers ended before drawing module "
                                       f"{index + 1} of {self._n_tasks}")
                for receive in wait(list(self._workers)):
                    try:
                        task, outcome, error = receive.recv()
                    except EOFError:  # the worker exited (all tasks taken) or died
                        worker = self._workers.pop(receive)
                        receive.close()
                        worker.join(timeout=5)
                        if worker.exitcode != 0:
                            raise RuntimeError(f"a figure worker (pid {worker.pid}) died with "
                                               f"exit code {worker.exitcode}") from None
                        continue
                    if error is not None:
                        raise error
                    done[task] = outcome
            yield done.pop(index)

    def stop(self) -> None:
        """Kill every worker still running and reap it (a failure, Ctrl-C or SIGTERM: their
        figures are moot); after a complete run the workers have exited already."""
        started = {r: w for r, w in self._workers.items() if w.pid is not None}
        for worker in started.values():
            if worker.is_alive():
                worker.kill()
        for receive, worker in self._workers.items():
            if worker in started.values():  # an interrupt may land before a start
                worker.join(timeout=5)
            receive.close()
        self._workers = {}


def _draw_tasks(parent_pid: int, draw: Callable[[tuple], Any], tasks: list[tuple],
                next_task: Any, send: Any) -> None:
    """A figure worker: ``draw`` task after task (the next index from ``next_task``) and send
    ``(index, outcome, None)``, or ``(index, None, exception)`` and stop."""
    _worker_start(parent_pid)
    try:
        while True:
            with next_task.get_lock():
                index = next_task.value
                next_task.value += 1
            if index >= len(tasks):
                return
            try:
                send.send((index, draw(tasks[index]), None))
            except Exception as exc:  # re-raised in the parent
                try:
                    send.send((index, None, exc))
                except Exception:  # an exception that cannot be pickled
                    send.send((index, None, RuntimeError(f"{type(exc).__name__}: {exc}")))
                return
    finally:
        send.close()


def _pool_context() -> mp.context.BaseContext:
    # fork on Linux: workers start in milliseconds with matplotlib and the tables already
    # imported; elsewhere the platform default (spawn on macOS/Windows, where fork is unsafe)
    return mp.get_context("fork" if sys.platform.startswith("linux") else None)


def render_explain_figures(results: dict[str, ExplainResult], output_dir: Path,
                           formats: Sequence[str] = ("png",),
                           feature_usage: pd.DataFrame | None = None,
                           feature_meta: pd.DataFrame | None = None, top_n: int = 10,
                           dpi: int = DEFAULT_DPI, jobs: int | None = None,
                           progress: Progress | None = None) -> list[str]:
    """Write every figure (+ ``module_summary.json`` per module) under ``output_dir``; return
    the written paths relative to ``output_dir`` (``/``-separated, figures first per module,
    the summary json last; :func:`figure_files` keeps the figures, which is what the
    manifest's ``plot_files`` lists).

    ``feature_usage``: samples x features usage (index or ``sample_id`` column = sample ids);
    without it isoform_gradient and driver_heatmap are skipped with a warning.
    ``feature_meta`` with ``gene_name`` puts gene names in labels. Figures a module cannot
    have (no transcripts, no finite r, ...) are skipped with one warning per module.
    Each file is written atomically; tables are only read, never modified. Modules are
    drawn in ``jobs`` worker processes (default :func:`default_jobs`: on Linux one per CPU
    core, at most one per module; 1 draws in this process); the files and their bytes do
    not depend on ``jobs``. Workers die with this process (SIGKILL included, on Linux)
    and are killed when drawing fails or is interrupted. ``progress`` counts the modules
    drawn (a bar on a terminal).
    """
    formats = tuple(dict.fromkeys(str(f).lower() for f in formats))
    for fmt in formats:
        if fmt not in PLOT_FORMATS:
            raise InputError(f"unknown figure format {fmt!r}; choose from {list(PLOT_FORMATS)}")
    if not formats:
        raise InputError("no figure format requested")
    output_dir = Path(output_dir)
    check_path_components([r.module_id for r in results.values()], "module_id")  # folders
    check_module_folder_names([r.module_id for r in results.values()])
    gene_names = gene_name_map(feature_meta)
    usage = usage_frame(feature_usage) if feature_usage is not None else None
    if usage is None:
        warnings.warn("no feature usage table given: isoform_gradient and driver_heatmap "
                      "figures are skipped", stacklevel=2)
    jobs = default_jobs(len(results)) if jobs is None else max(1, min(int(jobs), len(results)))
    feature_types = feature_type_map(feature_meta)
    tasks = [(result, _module_usage(usage, result), gene_names, top_n, output_dir, formats, dpi,
              usage is None, feature_types) for result in results.values()]
    workers = FigureWorkers(jobs, tasks) if jobs > 1 else None
    try:
        # workers start on the modules while this process draws the eigengene heatmap
        outcomes = map(_render_module, tasks) if workers is None else workers.outcomes()
        written: list[str] = []
        eigengenes = eigengene_frame(results)
        try:
            figure = plot_eigengene_heatmap(eigengenes)
            for path in save_figure(figure.figure, output_dir / "eigengene_heatmap", formats,
                                    dpi=dpi):
                written.append(path.relative_to(output_dir).as_posix())
        except InputError as exc:
            warnings.warn(f"eigengene_heatmap skipped: {exc}", stacklevel=2)
        for done, (module_id, (files, skipped)) in enumerate(
                zip(results, outcomes, strict=True), start=1):
            written.extend(files)
            if progress is not None:
                progress.chunk("plots", done, len(results), unit="module")
            if skipped:
                warnings.warn(f"module {module_id}: skipped " + "; ".join(skipped),
                              stacklevel=2)
    finally:
        if workers is not None:
            workers.stop()
    return written


def figure_files(written: Sequence[str]) -> list[str]:
    """The figures among ``written`` (paths from :func:`render_explain_figures`), in order:
    what the manifest's ``plot_files`` lists. ``module_summary.json`` is written with the
    figures but is not one (isograph 0.1.5 does not list it either)."""
    return [p for p in written if Path(p).suffix.lstrip(".") in PLOT_FORMATS]
