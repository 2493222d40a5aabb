"""Progress feedback on stderr for long runs: stage lines with timings, and for steps with a
known count (feature chunks, modules drawn) a progress bar on a terminal or a few plain
lines otherwise."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

PREFIX = "[isograph-gpu]"


class Progress:
    """Reports stages and step counts on a stream; silent when ``enabled`` is False.

    Stage timings are always recorded (``timings``, seconds), so the manifest can carry
    them. A stage that runs inside another is not counted twice: the outer stage's entry
    is its own time, without the stages nested in it, so the entries add up to the run.
    """

    def __init__(self, enabled: bool = False, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.timings: dict[str, float] = {}
        #: the warnings shown while :meth:`recording_warnings` was open, one line each;
        #: None when the warning filters hid them (``--quiet``): nothing was recorded
        self.warnings: list[str] | None = []
        self._interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._nested: list[float] = []  # per open stage: seconds spent in its inner stages
        self._bars: dict[str, Any] = {}

    def message(self, text: str) -> None:
        if self.enabled:
            print(f"{PREFIX} {text}", file=self.stream, flush=True)

    @contextmanager
    def recording_warnings(self) -> Iterator[None]:
        """Keep a copy of every warning shown inside this block in :attr:`warnings` (the
        manifest and the report list them); warnings are still shown as before, and a
        warning the filters hide (``--quiet``) is neither shown nor kept."""
        if _filters_hide_user_warnings():
            self.warnings = None
        with warnings.catch_warnings():
            shown = warnings.showwarning

            def show_and_keep(message, category, filename, lineno, file=None, line=None):
                if self.warnings is not None:
                    self.warnings.append(str(message).strip())
                shown(message, category, filename, lineno, file, line)

            warnings.showwarning = show_and_keep
            yield

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; when enabled and the stage succeeded, prints its name and duration
        (its own time, and the total when stages ran inside it). A failed stage prints
        nothing and closes the step bars it opened: its error is then the only line."""
        start = time.perf_counter()
        self._nested.append(0.0)
        bars_before = set(self._bars)
        succeeded = False
        try:
            yield
            succeeded = True
        finally:
            if not succeeded:  # a bar this stage opened stops here, before the error line
                for label in [b for b in self._bars if b not in bars_before]:
                    self._bars.pop(label).close()
            elapsed = time.perf_counter() - start
            inner = self._nested.pop()
            own = max(elapsed - inner, 0.0)
            if self._nested:
                self._nested[-1] += elapsed
            self.timings[name] = self.timings.get(name, 0.0) + own
            if succeeded:
                self.message(f"{name}: {own:.2f} s" if inner == 0.0 else
                             f"{name}: {own:.2f} s (total {elapsed:.2f} s with the stages "
                             "above)")

    def chunk(self, label: str, done: int, total: int, unit: str = "chunk") -> None:
        """``done`` of ``total`` steps of ``label`` finished. A progress bar (tqdm) on a
        terminal; elsewhere a line at about every tenth step and at the last."""
        if not self.enabled or total <= 1:
            return
        if self._interactive:
            self._draw_bar(label, done, total, unit)
        elif done == total or done % max(1, total // 10) == 0:
            self.message(f"{label}: {unit} {done}/{total}")

    def _draw_bar(self, label: str, done: int, total: int, unit: str) -> None:
        from tqdm import tqdm

        bar = self._bars.get(label)
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total, desc=f"{PREFIX} {label}", unit=unit, file=self.stream,
                       leave=True, dynamic_ncols=True, mininterval=0.2)
            self._bars[label] = bar
        bar.update(max(done - bar.n, 0))
        if done >= total:
            bar.close()
            del self._bars[label]


def _filters_hide_user_warnings() -> bool:
    """Whether the first warning filter that applies to a UserWarning from this package
    ignores it (``warnings.simplefilter("ignore")``, as ``--quiet`` sets)."""
    for action, message, category, module, lineno in warnings.filters:
        if (message is None or message.match("")) and issubclass(UserWarning, category) \
                and (module is None or module.match("isograph_gpu")) and lineno == 0:
            return action == "ignore"
    return False


def cpu_model_name() -> str:
    """The processor's model name from ``/proc/cpuinfo`` ("" where there is none: not
    Linux). Read, never asked of a subprocess (``platform.processor()`` runs ``uname -p``
    on Linux and macOS: a child process of the run before any of its work)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def device_name(device: Any) -> str:
    """What ``device`` (a torch.device) is: the GPU's name on CUDA, else the processor
    (:func:`cpu_model_name`, else the machine, else "CPU"). The progress line's and the
    manifest's ``device_name``."""
    import platform

    if getattr(device, "type", "") == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_model_name() or platform.machine() or "CPU"


def describe_device(device: Any, dtype: Any) -> str:
    """The first progress line: ``device cpu (AMD EPYC), precision float64 (p-values float64)``
    (a torch.device and torch.dtype; :func:`device_name` in brackets)."""
    name = device_name(device)
    precision = str(dtype).replace("torch.", "")
    return f"device {device} ({name}), precision {precision} (p-values float64)"
