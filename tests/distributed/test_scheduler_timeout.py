"""A scheduler address that accepts and never answers fails within --scheduler-timeout
(issue 21 item 16)."""

from __future__ import annotations

import pytest
from _helpers.explain import invoke_explain

pytest.importorskip("distributed")


def test_a_scheduler_that_accepts_and_never_answers_fails_within_the_timeout(
        ref_inputs, tmp_path):
    """Issue 21 item 16: a server on 127.0.0.1 that accepts connections and never writes a
    byte; explain-module --scheduler gives up after --scheduler-timeout, one line."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    out = tmp_path / "out"
    try:
        result = invoke_explain(ref_inputs, out, "--module-ids", "M000", "--scheduler",
                                address, "--scheduler-timeout", "2")
    finally:
        server.close()
        for conn in accepted:
            conn.close()
    assert accepted, "the client never connected"
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [f"Error: scheduler (--scheduler) {address}: cannot connect (no answer "
                     "within 2 s (--scheduler-timeout))"], lines
    assert not out.exists()
