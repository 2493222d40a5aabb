"""Read ahead: run the next of a sequence of reads on a background thread while the caller
works on the current result (a streamed feature table's next column block is decoded while
the engine computes on the last one).

At most one read runs ahead: the caller holds result ``i`` while read ``i + 1`` runs, and
read ``i + 2`` starts only when the caller takes result ``i + 1`` (after its ``finish``,
e.g. decoded columns copied into a block, has run). Each read runs on its own
short-lived thread that ends with the read, so no thread outlives the read it runs, even
when the caller stops early or fails; closing the iterator waits for a read in flight. A
read's exception (an :class:`~isograph_gpu.errors.InputError` naming the file) is raised
in the caller, unchanged, when it takes that result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: name of the threads that run reads ahead (tests check none is left)
THREAD_NAME = "isograph-read-ahead"


class _Read(threading.Thread, Generic[T]):
    """One read on its own thread; :meth:`result` waits for it and returns its value or
    raises its exception."""

    def __init__(self, read: Callable[[], T]) -> None:
        # not a daemon: an interpreter that exits (a failed run) waits for the read in
        # flight instead of stopping a thread inside the parquet decoder
        super().__init__(name=THREAD_NAME, daemon=False)
        self._read: Callable[[], T] | None = read
        self._value: T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            assert self._read is not None
            self._value = self._read()
        except BaseException as exc:  # re-raised in the caller
            self._error = exc
        finally:
            self._read = None

    def result(self) -> T:
        self.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        value, self._value = self._value, None
        return value  # type: ignore[return-value]


def read_ahead(reads: Sequence[Callable[[], R]],
               finish: Callable[[R], T] | None = None) -> Iterator[T]:
    """Yield ``finish(read())`` for each of ``reads``, in order (``finish``: none), each
    next read running on a background thread while the caller holds the last result (one
    read ahead at most). ``finish`` runs in the caller before the next read starts, so a
    read's raw result (decoded columns) and its finished form (the block) are never held
    beside a read in flight."""
    pending: _Read[R] | None = None
    try:
        for i in range(len(reads)):
            if pending is None:
                pending = _Read(reads[i])
                pending.start()
            raw = pending.result()
            pending = None
            value = raw if finish is None else finish(raw)
            del raw
            if i + 1 < len(reads):
                pending = _Read(reads[i + 1])
                pending.start()
            yield value  # type: ignore[misc]
            del value  # the caller's reference is the only one left
    finally:
        if pending is not None:
            pending.join()  # the read in flight ends before the caller goes on
