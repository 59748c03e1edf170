"""CPU time and peak memory of a process tree, from Linux ``/proc`` accounting.

``cpu_seconds(pids)`` sums utime+stime (fields 14 and 15 of ``/proc/PID/stat``) of the given
processes; ``peak_rss_mb(pid)`` is ``VmHWM`` (the resident-set high-water mark) in MiB. The
bench takes a CPU snapshot before and after a measured run: the difference, divided by the
number of checks served, is the CPU cost of one check (all threads, user + kernel).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["children", "cpu_seconds", "peak_rss_mb", "tree"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        text = f.read()
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pids: Iterable[int]) -> float:
    """user + system CPU seconds of ``pids`` (processes that are gone count as 0)."""
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except (OSError, ValueError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _TICKS


def peak_rss_mb(pid: int) -> float:
    """``VmHWM`` of ``pid`` in MiB (0.0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (by scanning ``/proc``: no kernel config needed)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry))[1]) == pid:  # field 4: ppid
                found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(found)


def tree(pid: int) -> list[int]:
    """``pid`` and its direct children (a supervisor and its workers)."""
    return [pid, *children(pid)]
