"""Progress feedback on stderr for long runs (stage lines with timings, chunk counters)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """Reports stages and chunk progress on a stream; silent when ``enabled`` is False.

    Stage timings are always recorded (``timings``), so the manifest can carry them.
    """

    def __init__(self, enabled: bool = False, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.timings: dict[str, float] = {}
        self._interactive = bool(getattr(self.stream, "isatty", lambda: False)())

    def message(self, text: str) -> None:
        if self.enabled:
            print(f"[isograph-gpu] {text}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; prints its name and duration when enabled."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + elapsed
            self.message(f"{name}: {elapsed:.2f} s")

    def chunk(self, label: str, done: int, total: int) -> None:
        """Chunk counter; rewrites one line on a terminal, prints sparse lines otherwise."""
        if not self.enabled or total <= 1:
            return
        if self._interactive:
            end = "\n" if done == total else ""
            print(f"\r[isograph-gpu] {label}: chunk {done}/{total}", end=end,
                  file=self.stream, flush=True)
        elif done == total or done % max(1, total // 10) == 0:
            self.message(f"{label}: chunk {done}/{total}")
