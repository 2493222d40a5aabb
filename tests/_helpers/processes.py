"""Processes as /proc shows them: the one scan the kill tests use to find what a run left
running (Linux only)."""

from __future__ import annotations

from pathlib import Path

#: fields of /proc/<pid>/stat after the command name: state, parent pid, process group
STATE, PARENT, GROUP = 0, 1, 2


def processes_where(field: int, value: int, zombies: bool = False) -> list[int]:
    """Pids of the processes whose /proc stat ``field`` (one of :data:`PARENT`,
    :data:`GROUP`) is ``value``; zombies only when ``zombies``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[field]) == value and (zombies or fields[STATE] != "Z"):
            found.append(int(entry.name))
    return found
