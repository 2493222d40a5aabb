"""Atomic output: a run writes into a staging folder beside the destination, and the whole
folder replaces the destination in one step when the run succeeded.

- On Linux the swap is ``renameat2(RENAME_EXCHANGE)``: the old and the new folder trade
  places atomically; elsewhere (or on file systems without it) the old folder is renamed
  aside, the new one renamed into place (the old one is put back if that fails), and the
  old one is deleted. Either way the destination holds the old output or the new one,
  never a mix, and after success it holds exactly this run's files.
- A failed or interrupted run (exception, SIGINT, SIGTERM) removes its staging folder and
  leaves the destination byte-for-byte as it was. A run killed with SIGKILL leaves its
  staging folder; the next run into the same destination removes it once the process that
  created it (its pid is in the name) is gone.
- Checked before any computing: the destination is not a file, not a mount point, and
  either absent, empty, or an earlier output (it holds the manifest); a non-empty folder
  that is not one is refused unless ``replace_foreign`` is set. The staging folder is
  created then, so an unwritable location fails at once.
- Every I/O error names the path it concerns (:class:`OutputError`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import PLOT_FORMATS
from ..errors import InputError, OutputError
from ..interrupts import (
    COMMITTED,
    interrupts_deferred,
    note_output,
    raise_swallowed_interrupt,
    record_output,
)
from ..manifest import EIGENGENES, MANIFEST, ROOT_FILES, SAMPLE_ID_COLUMN, TOP_FIGURES

#: the file that marks a folder as an isograph(-gpu) explain output
#: staging folders are named ``.<destination name>.isograph-gpu-staging-<pid>-<random>``
STAGING_MARK = ".isograph-gpu-staging-"


def io_error(action: str, path: str | os.PathLike[str], exc: OSError) -> OutputError:
    """One-line :class:`OutputError` naming ``path`` (e.g. ENOSPC: 'No space left on
    device' alone does not say where)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    error = OutputError(f"cannot {action} {path}: {reason}")
    error.errno = exc.errno
    return error


def path_component(value: object, what: str) -> str:
    """``str(value)`` when it can name exactly one file or folder inside a directory;
    otherwise :class:`InputError` naming it. Refused: empty, '.', '..', absolute paths,
    and anything holding a path separator or a NUL byte."""
    text = str(value)
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if (text in ("", ".", "..") or "\x00" in text or any(s in text for s in separators)
            or os.path.isabs(text)):
        raise InputError(
            f"{what} {text!r} cannot be used as a folder name in the output dir "
            "(empty, '.', '..', or containing '/' or a NUL byte)"
        )
    return text


def check_path_components(values: Sequence[object], what: str) -> None:
    """:func:`path_component` for every value (call it before computing)."""
    for value in values:
        path_component(value, what)


def root_file_names() -> frozenset[str]:
    """Every name an explain run writes at the top of its output dir besides the module
    folders, case-folded (one file on a case-insensitive file system)."""
    figures = {f"{stem}.{fmt}" for stem in TOP_FIGURES for fmt in PLOT_FORMATS}
    return frozenset(name.casefold() for name in (*ROOT_FILES, *figures))


def check_module_folder_names(module_ids: Sequence[object]) -> None:
    """An :class:`InputError` naming the first module id that would collide with the run's
    own output: one of :func:`root_file_names` (in any case), or ``sample_id``, the sample
    id column of eigengenes.parquet. Call it before computing."""
    reserved = root_file_names()
    for module_id in map(str, module_ids):
        if module_id.casefold() in reserved:
            raise InputError(
                f"module_id {module_id!r} is the name of a file the run writes at the top of "
                f"the output dir (reserved: {', '.join(sorted(reserved))}); rename the module")
        if module_id == SAMPLE_ID_COLUMN:
            raise InputError(
                f"module_id {module_id!r} is the sample id column of {EIGENGENES}; "
                "rename the module")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file in ``path``'s folder, then move it to ``path``;
    the file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    An I/O failure is an :class:`OutputError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise io_error("write", path, exc) from exc
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise io_error("write", path, exc) from exc
        raise


def json_bytes(obj: Any) -> bytes:
    """JSON as the reference writes it (indent 2, sorted keys), NaN -> null."""
    return (json.dumps(_json_safe(obj), indent=2, sort_keys=True) + "\n").encode()


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _json_safe(obj.item())
    return obj


#: result-table columns whose values repeat across rows (a gene's id on each of its
#: features, sample counts, missing fractions, feature types): parquet stores them
#: dictionary-encoded. Every other column (feature ids, the statistics) is nearly all
#: distinct values, for which pyarrow's default would build a dictionary per column
#: and then drop it: most of the encoding time of a 250,000-row table, and larger
#: files (docs/ARCHITECTURE.md, "Writing").
DICTIONARY_COLUMNS = frozenset({"gene_id", "feature_type", "n_samples", "n_high", "n_low",
                                "missing_fraction"})


def write_parquet(table: pd.DataFrame | pa.Table, path: str | os.PathLike[str]) -> None:
    """Parquet of an Arrow table, or of a DataFrame without its index (as the reference:
    ``index=False``, pyarrow); snappy, one row group per 1 Mi rows (pyarrow's defaults),
    dictionary encoding for :data:`DICTIONARY_COLUMNS` only. Reads back to the same
    table whatever the encoding."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    pq.write_table(table, path,
                   use_dictionary=[c for c in table.column_names if c in DICTIONARY_COLUMNS])


def _write_table(df: pd.DataFrame | pa.Table, target: Path) -> None:
    """Write one parquet table; an OSError names the path."""
    try:
        write_parquet(df, target)
    except OutputError:
        raise
    except OSError as exc:
        raise io_error("write", target, exc) from exc


class ParquetWriters:
    """Writer threads (one per core; pyarrow encodes without the GIL) with a bounded
    number of tables in flight, so host memory holds a few tables, not all of them."""

    def __init__(self, workers: int | None = None, max_pending: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._slots = threading.BoundedSemaphore(max_pending or 2 * self.workers)
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []

    def submit(self, table: pd.DataFrame | pa.Table, path: Path) -> Future[None]:
        """Write ``table`` to ``path`` on a writer thread; blocks while the queue is full."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers,
                                            thread_name_prefix="isograph-gpu-writer")
        self._slots.acquire()
        try:
            future = self._pool.submit(_write_table, table, path)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)
        return future

    def wait(self) -> None:
        """Wait for every write; re-raises the first failure (in submission order)."""
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def cancel(self) -> None:
        """Drop queued writes and wait for running ones (a failed run: nothing may still be
        writing once the staging folder is removed)."""
        for future in self._futures:
            future.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures = []


class WrittenTable:
    """A parquet table submitted to :meth:`StagedOutput.submit_parquet`, read back as a
    DataFrame on each call: from the staging folder until the commit, from the
    destination after it (after the commit the staging path may hold the *old* output
    until it is deleted, so the commit state decides, not which file exists). Picklable
    (figure workers get it, before the commit); the pending write is waited for in the
    process that submitted it."""

    def __init__(self, staged: StagedOutput, relative: str, written: Future[None]) -> None:
        self._staged: StagedOutput | None = staged
        self.staging, self.destination = staged.staging, staged.destination
        self.relative = relative
        self._written: Future[None] | None = written
        self._committed = False

    def __call__(self) -> pd.DataFrame:
        if self._written is not None:
            self._written.result()  # re-raises the write's failure
        committed = self._staged.committed if self._staged is not None else self._committed
        return pd.read_parquet((self.destination if committed else self.staging)
                               / self.relative)

    def __getstate__(self) -> dict[str, Any]:
        committed = self._staged.committed if self._staged is not None else self._committed
        return {**self.__dict__, "_written": None, "_staged": None, "_committed": committed}


class StagedOutput:
    """A staging folder that replaces ``destination`` as a whole on :meth:`commit`."""

    def __init__(self, destination: Path, staging: Path) -> None:
        self.destination = destination
        self.staging = staging
        self._files: list[str] = []
        self._writers: ParquetWriters | None = None
        #: True once :meth:`commit` has put the staged files at ``destination``
        self.committed = False

    def path(self, relative: str) -> Path:
        """Where to write ``relative`` (a ``/``-separated path under the output dir) while
        staging. Each part must be a single path component (:func:`path_component`), so
        no input value (a module id...) can lead outside the output dir."""
        for part in str(relative).split("/"):
            path_component(part, "output path part")
        target = self.staging / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise io_error("create folder", target.parent, exc) from exc
        if relative not in self._files:
            self._files.append(relative)
        return target

    @property
    def files(self) -> list[str]:
        """Relative paths of every file staged so far, in write order."""
        return list(self._files)

    def write_parquet(self, table: pd.DataFrame | pa.Table, relative: str) -> None:
        _write_table(table, self.path(relative))

    def submit_parquet(self, table: pd.DataFrame | pa.Table, relative: str) -> Future[None]:
        """Register ``relative`` now and write ``table`` there on a writer thread (at most
        a few tables wait in memory; this blocks while they do). :meth:`wait_writes`
        before the commit; :meth:`cancel_writes` when the run fails."""
        if self._writers is None:
            self._writers = ParquetWriters()
        return self._writers.submit(table, self.path(relative))

    def wait_writes(self) -> None:
        """Wait for every submitted write; re-raises the first failure."""
        if self._writers is not None:
            self._writers.wait()

    def cancel_writes(self) -> None:
        """Drop queued writes and wait for the running ones."""
        if self._writers is not None:
            self._writers.cancel()

    def write_parquet_many(self, tables: Sequence[tuple[pd.DataFrame | pa.Table, str]]) -> None:
        """Write several tables at once: paths are registered in the given order, files
        are encoded on writer threads; the first failure is re-raised."""
        try:
            for table, relative in tables:
                self.submit_parquet(table, relative)
            self.wait_writes()
        except BaseException:
            self.cancel_writes()
            raise

    def write_json(self, obj: Any, relative: str) -> None:
        target = self.path(relative)
        try:
            target.write_bytes(json_bytes(obj))
        except OSError as exc:
            raise io_error("write", target, exc) from exc

    def commit(self) -> Path | None:
        """Replace the destination with the staging folder in one step; returns where the
        old output now lies (to be deleted), or None when there was none."""
        try:
            old = replace_directory(self.staging, self.destination)
        except OSError as exc:
            raise io_error("replace output dir", self.destination, exc) from exc
        self.committed = True
        return old


# --- one writer at a time -----------------------------------------------------------------

#: the lock file beside an output dir is named ``.<destination name>.isograph-gpu-lock``
LOCK_MARK = ".isograph-gpu-lock"
_held_locks: dict[str, int] = {}
_held_locks_guard = threading.Lock()


def lock_path(destination: Path) -> Path:
    """The lock file of output dir ``destination`` (beside it, in the same folder)."""
    return destination.parent / f".{destination.name}{LOCK_MARK}"


@contextmanager
def output_lock(destination: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the exclusive lock of output dir ``destination`` (``fcntl.flock`` on
    :func:`lock_path`, created when missing and left in place): a commit of explain-module
    and a whole ``plot --explain-dir`` hold it, so a plot never draws from a folder that
    is being replaced, nor a replacement lands in the middle of a plot: the second waits
    (a warning says so). Re-entrant within a process; released when the block ends or
    the process dies. Where ``fcntl`` is missing (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    destination = Path(os.path.realpath(destination))
    key = str(destination)
    with _held_locks_guard:
        if _held_locks.get(key):
            _held_locks[key] += 1
            held = True
        else:
            held = False
    if held:
        try:
            yield
        finally:
            with _held_locks_guard:
                _held_locks[key] -= 1
        return
    path = lock_path(destination)
    cloexec = getattr(os, "O_CLOEXEC", 0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | cloexec, 0o666)
    except PermissionError:
        try:  # another user's lock file: flock needs only a read-only descriptor
            fd = os.open(path, os.O_RDONLY | cloexec)
        except OSError as exc:
            raise io_error("open lock file", path, exc) from exc
    except OSError as exc:
        raise io_error("create lock file", path, exc) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            warnings.warn(f"waiting for another isograph-gpu run on {destination} to finish "
                          f"(it holds {path})", stacklevel=3)
            fcntl.flock(fd, fcntl.LOCK_EX)
        with _held_locks_guard:
            _held_locks[key] = 1
        try:
            yield
        finally:
            with _held_locks_guard:
                _held_locks.pop(key, None)
    finally:
        os.close(fd)


# --- a staged run that starts from the current output ------------------------------------

def check_no_links_out(root: str | os.PathLike[str]) -> None:
    """:class:`OutputError` when a folder under ``root`` is a symbolic link, or a file is
    a link that leads outside ``root``: a run that rewrites ``root`` writes only inside
    it (a module folder linked to another folder would take the figures there)."""
    root = Path(os.path.realpath(root))
    inside = str(root) + os.sep
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink():
                continue
            target = os.path.realpath(path)
            if os.path.isdir(target) or not target.startswith(inside):
                raise OutputError(
                    f"{path} is a symbolic link to {target}"
                    + (" (a folder)" if os.path.isdir(target) else ", outside " + str(root))
                    + f"; a run that rewrites {root} writes only inside it: replace the link "
                    "by the files themselves")


def copy_into_staging(source: Path, staging: Path) -> list[str]:
    """Give ``staging`` (empty) the files of output dir ``source`` as hard links (copies
    where the file system has none), so a run can add to the current output and commit
    the whole; files are replaced (:func:`atomic_write`), never written in place, so
    ``source`` stays as it was until the commit. File links inside ``source`` become
    links to their target's content; see :func:`check_no_links_out` (called here first).
    Returns the relative paths copied."""
    check_no_links_out(source)
    source = Path(os.path.realpath(source))
    copied = []
    for folder, dirs, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        for name in dirs:
            try:
                (staging / relative / name).mkdir()
            except OSError as exc:
                raise io_error("create folder", staging / relative / name, exc) from exc
        for name in files:
            original = os.path.realpath(Path(folder) / name)
            target = staging / relative / name
            try:
                try:
                    os.link(original, target)
                except OSError:
                    shutil.copy2(original, target)
            except OSError as exc:
                raise io_error("copy", original, exc) from exc
            copied.append((relative / name).as_posix())
    return copied


# --- replacing a whole directory --------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
#: renameat2's syscall number where glibc lacks the wrapper (< 2.28)
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "riscv64": 276, "ppc64le": 357}


def _renameat2_function() -> Any:
    import ctypes
    import platform

    libc = ctypes.CDLL(None, use_errno=True)
    wrapper = getattr(libc, "renameat2", None)
    if wrapper is not None:
        return wrapper
    number = _SYS_RENAMEAT2.get(platform.machine())
    if number is None:
        return None
    return lambda *args: libc.syscall(number, *args)


def exchange_directories(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically (Linux ``renameat2(RENAME_EXCHANGE)``). False when
    the platform or the file system cannot; OSError (naming both) for other failures."""
    import ctypes
    import errno
    import sys

    if not sys.platform.startswith("linux"):
        return False
    function = _renameat2_function()
    if function is None:
        return False
    status = function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if status == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _swap_by_renames(new: Path, destination: Path) -> Path:
    """Rename ``destination`` aside, ``new`` into place (undone if that fails); returns
    the aside path, which holds the old output."""
    aside = new.with_name(new.name + "-old")
    os.rename(destination, aside)
    try:
        os.rename(new, destination)
    except BaseException:
        os.rename(aside, destination)
        raise
    return aside


def replace_directory(new: Path, destination: Path) -> Path | None:
    """Make ``new`` the folder at ``destination`` in one step (both in the same parent).
    Returns the path that now holds the old folder, or None when there was none."""
    if not os.path.lexists(destination):
        os.rename(new, destination)
        return None
    if exchange_directories(new, destination):
        return new
    return _swap_by_renames(new, destination)


def remove_tree(path: Path) -> bool:
    """Delete a folder this run owns, making read-only subfolders writable first (an
    earlier output may have some). Returns False, with a warning naming it, on failure."""
    def make_writable_and_retry(function: Any, failed: str, _exc: Any) -> None:
        parent = os.path.dirname(failed)
        os.chmod(parent, os.stat(parent).st_mode | 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, os.stat(failed).st_mode | 0o700)
        function(failed)

    if not os.path.lexists(path):
        return True
    try:
        shutil.rmtree(path, onerror=make_writable_and_retry)
    except OSError as exc:
        warnings.warn(f"could not remove {path}: {exc.strerror or exc}; delete it by hand",
                      stacklevel=2)
        return False
    return True


# --- checks before computing ------------------------------------------------------------

def _real_paths(path: str | os.PathLike[str]) -> list[str]:
    """``path`` resolved through every link and ``..`` (:func:`os.path.realpath`), and,
    for a folder, each of its files and links resolved (an input folder's files may be
    links; its real subfolders are not inputs: an output dir may lie inside it)."""
    real = os.path.realpath(path)
    found = [real]
    if os.path.isdir(real):
        try:
            with os.scandir(real) as entries:
                found.extend(os.path.realpath(entry.path) for entry in entries
                             if entry.is_symlink() or not entry.is_dir())
        except OSError:
            pass
    return found


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def refuse_output_over_inputs(outputs: Sequence[object], inputs: Sequence[object],
                              what: str = "output",
                              own: Callable[[str], bool] | None = None) -> None:
    """Raise :class:`OutputError` when an output path (a file the run writes, or a folder
    it replaces as a whole) is, holds, or resolves to one of the run's ``inputs``, or two
    outputs are the same path; called before anything is read or written.

    Every path is resolved (:func:`os.path.realpath`: symbolic links and ``..``), and an
    input folder counts with each of its entries (an artifact dir's
    ``feature_scores.parquet`` may be a link into the output dir); files that are the same
    inode (hard links) are the same file. Objects that are not paths (a DataFrame, None)
    are skipped; an input that does not exist cannot be overwritten and is skipped.
    ``own(path)``: True for an existing output file that is the run's own earlier output
    (a feature cache kept in the artifact dir): as an input folder's entry it is no input
    (named as an input itself, it still is)."""
    def is_path(value: object) -> bool:
        return isinstance(value, str | os.PathLike) and str(value) != ""

    sources = [(value, real, i > 0) for value in inputs if is_path(value)
               and os.path.lexists(value)
               for i, real in enumerate(_real_paths(value))]  # type: ignore[arg-type]
    seen: dict[str, object] = {}
    for output in outputs:
        if not is_path(output):
            continue
        target = os.path.realpath(output)  # type: ignore[arg-type]
        if target in seen:
            raise OutputError(f"{what} {output} is the same path as {seen[target]}; give "
                              "each output its own path")
        seen[target] = output
        inside = target.rstrip(os.sep) + os.sep
        for source, real, entry in sources:
            if entry and own is not None and real == target and own(target):
                continue  # the run's own earlier output, found in an input folder
            if real == target or real.startswith(inside) or _same_file(real, target):
                relation = "is" if real == target or _same_file(real, target) else "holds"
                raise OutputError(
                    f"{what} {output} {relation} the input {source}"
                    + ("" if str(source) == real else f" ({real})")
                    + "; writing it would destroy that input: choose another path")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_STAGING_SUFFIX = re.compile(r"(\d+)-[0-9a-f]{8}(-old)?")


def staging_folders(destination: Path) -> list[tuple[Path, int]]:
    """The staging folders (and ``-old`` asides) of ``destination``, with the pid in each
    name, sorted: names compared as text, exactly ``.<name>.isograph-gpu-staging-<pid>-
    <8 hex>[-old]`` (never a glob pattern: a name such as ``o?t`` or ``out[1]`` must not
    match a neighbour's folders)."""
    prefix = f".{destination.name}{STAGING_MARK}"
    try:
        names = sorted(os.listdir(destination.parent))
    except (FileNotFoundError, NotADirectoryError):  # nothing there to clean up
        return []
    found = []
    for name in names:
        match = _STAGING_SUFFIX.fullmatch(name[len(prefix):]) if name.startswith(prefix) \
            else None
        if match is not None:
            found.append((destination.parent / name, int(match.group(1))))
    return found


def remove_stale_staging(destination: Path) -> list[Path]:
    """Delete the staging folders that runs killed earlier (SIGKILL, power loss) left
    beside ``destination``: those whose creating process is gone. Folders of a live
    process (a run in progress) are left alone. One exception: a run killed between the
    two renames of the portable swap left no ``destination`` and its old output under the
    ``-old`` name; that folder is renamed back to ``destination``, not deleted. Returns
    the folders removed."""
    removed = []
    for leftover, pid in staging_folders(destination):
        if not leftover.is_dir() or leftover.is_symlink():
            continue
        if _process_alive(pid):  # a run in progress (maybe in this process)
            continue
        if leftover.name.endswith("-old") and not os.path.lexists(destination):
            os.rename(leftover, destination)
            warnings.warn(f"restored the earlier output {destination} that a killed run had "
                          f"moved to {leftover.name}", stacklevel=3)
            continue
        if remove_tree(leftover):
            removed.append(leftover)
    if removed:
        warnings.warn(f"removed {len(removed)} staging folder(s) left by an earlier killed run "
                      f"beside {destination}", stacklevel=3)
    return removed


def check_destination(destination: Path, replace_foreign: bool = False,
                      inputs: Sequence[object] = ()) -> None:
    """Refuse, before any computing, an output dir the commit could not or should not
    replace: a file, a mount point (it cannot be renamed, and staging beside it would sit
    on another file system), a folder holding one of the run's ``inputs`` (paths; other
    objects are ignored), or a non-empty folder without an explain manifest (not an
    earlier output) unless ``replace_foreign``."""
    if not os.path.lexists(destination):
        return
    refuse_output_over_inputs([destination], inputs, "output dir")
    if not destination.is_dir():
        raise OutputError(f"output dir {destination} exists and is not a directory")
    if os.path.ismount(destination):
        raise OutputError(
            f"output dir {destination} is a mount point: it cannot be replaced in one step; "
            "choose a folder inside it"
        )
    try:
        with os.scandir(destination) as entries:
            empty = next(entries, None) is None
    except OSError as exc:
        raise io_error("read output dir", destination, exc) from exc
    if not empty and not (destination / MANIFEST).is_file() and not replace_foreign:
        raise OutputError(
            f"output dir {destination} is not empty and is not an isograph-gpu output (no "
            f"{MANIFEST}); the run replaces the whole folder, so it refuses: choose an "
            "empty or new folder, or pass --replace-output-dir to replace it"
        )


@contextmanager
def staged_output(destination: str | os.PathLike[str], replace_foreign: bool = False,
                  inputs: Sequence[object] = ()) -> Iterator[StagedOutput]:
    """Stage writes for ``destination``; replace it as a whole only if the block exits
    normally (see the module docstring). ``replace_foreign``: allow replacing a non-empty
    folder that is not an earlier output. ``inputs``: the run's input paths, which must
    not lie inside ``destination``.

    Everything that can be checked is checked on entry, before the caller computes
    anything (:class:`OutputError` naming the folder).
    """
    destination = Path(os.path.realpath(destination))  # a link: replace what it points to
    if destination.parent == destination:
        raise OutputError(f"output dir {destination} is a file system root")
    try:
        remove_stale_staging(destination)
    except OSError as exc:
        raise io_error("clean up earlier staging folders beside", destination, exc) from exc
    check_destination(destination, replace_foreign, inputs)
    parent = destination.parent
    leftover: Path | None = None
    try:
        # an interrupt while the staging folder is made waits until the finally below
        # knows it (raised at the end of this block, inside the try): none is left behind
        with interrupts_deferred():
            try:
                parent.mkdir(parents=True, exist_ok=True)
                staging = (parent / f".{destination.name}{STAGING_MARK}{os.getpid()}-"
                           f"{uuid.uuid4().hex[:8]}")
                staging.mkdir()
            except OSError as exc:
                raise OutputError(
                    f"cannot write to output dir {destination}: {exc.strerror or exc}"
                ) from exc
            leftover = staging
        if os.path.lexists(destination) and staging.stat().st_dev != destination.stat().st_dev:
            raise OutputError(f"output dir {destination} is on another file system than "
                              f"{parent}; choose a folder inside it")
        staged = StagedOutput(destination, staging)
        note_output(destination)
        yield staged
        raise_swallowed_interrupt()  # an interrupt Python swallowed still stops the commit
        # an interrupt from here on waits until the swap is done and the old output (or,
        # on a failure, the staging folder) is removed: no staging is ever left behind,
        # and the interrupt's message says which output the destination holds
        with output_lock(destination), interrupts_deferred():
            leftover = staged.commit()
            record_output(destination, COMMITTED)
            if leftover is not None:
                remove_tree(leftover)
                leftover = None
    finally:
        if leftover is not None:
            with interrupts_deferred():
                remove_tree(leftover)
