"""An interrupt raised inside a native library's Python callback and wrapped by it in an
exception of its own is still reported as the interrupt. polars does this: a SIGTERM whose
handler runs in the callback ``scan_parquet`` makes while building its plan comes back as
``pyo3_runtime.PanicException`` (a ``BaseException``, neither ``Exception`` nor
``KeyboardInterrupt``), which once escaped the command line with a traceback (found by
tests/integrity/test_kill_points.py on a CI runner). Here the wrapping is done by a
stand-in class, deterministically; the kill test covers the real library."""

from __future__ import annotations

import os
import signal
import time

import pytest

from isograph_gpu.cli.common import run_command


class PanicException(BaseException):
    """What pyo3 raises for a Rust panic (``called Result::unwrap() on an Err value``)."""


def _native_call_interrupted_by(signum: int) -> None:
    try:
        os.kill(os.getpid(), signum)  # the handler runs at the next bytecode, in here
        time.sleep(5)
    except BaseException as exc:  # the library unwraps the error it got from Python
        raise PanicException(f"called `Result::unwrap()` on an `Err` value: {exc!r}") from exc
    pytest.fail("the signal handler did not raise")


@pytest.mark.parametrize("signum, code, words", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                 (signal.SIGINT, 130, "interrupted")])
def test_an_interrupt_wrapped_by_a_native_library_is_reported_as_the_interrupt(
        tmp_path, capsys, signum, code, words):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exited:
        run_command(lambda: _native_call_interrupted_by(signum), outputs=[out])
    assert exited.value.code == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"Error: {words}; {os.path.realpath(out)} was not created"), err
    assert signal.getsignal(signal.SIGTERM) is not None  # handlers restored


def test_a_native_panic_without_an_interrupt_is_reported_as_a_bug(capsys):
    def job():
        raise PanicException("index out of bounds")

    with pytest.raises(SystemExit) as exited:
        run_command(job)
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error" in err[0] and "PanicException" in err[0], err


def test_system_exit_from_the_command_passes_through():
    def job():
        raise SystemExit(3)

    with pytest.raises(SystemExit) as exited:
        run_command(job)
    assert exited.value.code == 3


def test_a_signal_arriving_as_the_handler_is_installed_is_reported(tmp_path, capsys,
                                                                    monkeypatch):
    """SIGTERM delivered the moment its handler is in place (before the command starts)
    is the run's interrupt, reported in one line, not an escaped exception (click once
    printed 'Aborted!' and exited 1)."""
    real_signal = signal.signal

    def install_then_deliver(signum, handler):
        previous = real_signal(signum, handler)
        if signum == signal.SIGTERM and callable(handler):
            os.kill(os.getpid(), signal.SIGTERM)  # the new handler runs before returning
            time.sleep(0.5)
        return previous

    monkeypatch.setattr(signal, "signal", install_then_deliver)
    with pytest.raises(SystemExit) as exited:
        run_command(lambda: pytest.fail("the command ran after the SIGTERM"),
                    outputs=[tmp_path / "out"])
    monkeypatch.undo()
    assert exited.value.code == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: terminated (SIGTERM)"), err
