"""Denial lines are attacker-driven: the first few of each kind are written, the rest counted.

A client that sends wrong keys as fast as Envoy forwards them decides how much authsvc logs
(3.5k denials/s wrote 18.6 MiB in 15 s). ``DenialThrottle`` bounds that: per
``(reason, route)`` the first ``burst`` denials of each ``interval`` are written in full, the
rest are only counted, and when the interval ends one summary line per key gives the count.
``route`` is the request path cut to its first ``ROUTE_SEGMENTS`` segments; at most
``max_routes`` distinct routes are tracked per interval, further ones share the route
``OTHER`` (so a client cycling through paths gets no more lines either).

Bound per interval: ``(max_routes + reasons) * (burst + 1)`` lines, whatever the request rate.
Every denial is still counted in ``authsvc_checks_total``; the summary is written by a timer
thread at the end of the interval, so a flood that stops is still summed up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["OTHER", "ROUTE_SEGMENTS", "DenialThrottle", "Suppressed", "route_of"]

ROUTE_SEGMENTS = 3
OTHER = "(other routes)"
_MAX_ROUTE = 96


def route_of(target: str) -> str:
    """``/v1/chat/completions?x=1`` → ``/v1/chat/completions``; ``/a/b/c/d`` → ``/a/b/c``."""
    path = target.partition("?")[0].partition("#")[0]
    return "/".join(path.split("/", ROUTE_SEGMENTS + 1)[: ROUTE_SEGMENTS + 1])[:_MAX_ROUTE]


@dataclass(frozen=True, slots=True)
class Suppressed:
    """``count`` denials with ``reason`` on ``route`` were not written in ``seconds``."""

    reason: str
    route: str
    count: int
    seconds: float


class DenialThrottle:
    """Decides per denial whether its line is written (``admit``); reports what was not.

    ``report`` is called (from a timer thread, or from ``flush``) with the ``Suppressed``
    entries of an interval that ended. Thread-safe: one small lock, held for a dict update.
    """

    def __init__(
        self,
        report: Callable[[list[Suppressed]], None],
        *,
        burst: int = 5,
        interval: float = 10.0,
        max_routes: int = 32,
        clock: Callable[[], float] = time.monotonic,
        timer: bool = True,
    ) -> None:
        if burst < 1 or interval <= 0 or max_routes < 1:
            raise ValueError("burst, interval and max_routes must be positive")
        self._report = report
        self.burst, self.interval, self.max_routes = burst, interval, max_routes
        self._clock = clock
        self._timer = timer
        self._lock = threading.Lock()
        self._start = clock()
        self._counts: dict[tuple[str, str], list[int]] = {}  # key -> [written, suppressed]
        self._routes: set[str] = set()
        self._pending: threading.Timer | None = None

    def admit(self, reason: str, target: str) -> bool:
        """True: write this denial's line. False: it is counted for the interval's summary."""
        due: list[Suppressed] = []
        with self._lock:
            now = self._clock()
            if now - self._start >= self.interval:
                due = self._roll(now)
            route = route_of(target)
            if route not in self._routes:
                if len(self._routes) >= self.max_routes:
                    route = OTHER
                else:
                    self._routes.add(route)
            entry = self._counts.get((reason, route))
            if entry is None:
                entry = self._counts[(reason, route)] = [0, 0]
            if entry[0] < self.burst:
                entry[0] += 1
                admitted = True
            else:
                entry[1] += 1
                admitted = False
                if self._pending is None:
                    self._schedule(now)
        if due:
            self._report(due)
        return admitted

    def flush(self, *, force: bool = False) -> None:
        """Report the current interval if it ended (``force``: now, e.g. at shutdown)."""
        with self._lock:
            self._pending = None
            now = self._clock()
            due = []
            if force or now - self._start >= self.interval:
                due = self._roll(now)
            elif any(counts[1] for counts in self._counts.values()):
                self._schedule(now)  # woke early (the interval rolled over since): again
        if due:
            self._report(due)

    def _schedule(self, now: float) -> None:
        """A timer for the end of this interval (lock held), so its summary is written even
        when no denial follows."""
        if not self._timer:
            return
        delay = max(0.0, self.interval - (now - self._start)) + 0.01
        self._pending = threading.Timer(delay, self.flush)
        self._pending.daemon = True
        self._pending.start()

    def _roll(self, now: float) -> list[Suppressed]:
        seconds = round(now - self._start, 3)
        due = [
            Suppressed(reason, route, counts[1], seconds)
            for (reason, route), counts in self._counts.items()
            if counts[1]
        ]
        self._counts.clear()
        self._routes.clear()
        self._start = now
        return due
