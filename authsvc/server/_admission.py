"""What the fast front lets in and how long it keeps it: connection caps (global and per peer),
handshake and idle timeouts, the shared memory budget, and one log line per burst.

Every public connection costs file descriptors (one, three when spliced to the private gRPC
server) and memory; a client that opens thousands and says nothing must not starve Envoy's
checks, ``/livez`` or the process's own files. So:

- at most ``max_connections`` connections at once (default: a third of the file-descriptor
  limit less a reserve, at most 4,096) and ``max_connections_per_peer`` from one peer (an IP
  address; for a Unix socket, the peer's uid). A connection over the per-peer cap is reset
  right after accept() (no transport, no task, nothing read: ``_front``); at the global cap
  the front stops accepting until a connection goes, as nginx and HAProxy do (new clients
  wait in the kernel's backlog instead of costing a refusal each);
- a connection must send its first request within ``handshake_timeout`` seconds; a
  connection with no open stream that sends nothing for ``idle_timeout`` seconds is closed
  (with GOAWAY NO_ERROR on a fast one: gRPC clients reconnect quietly). When the front is at
  90 % of its cap, ``pressure_idle_timeout`` applies instead (to both): idle connections go
  first;
- ``memory_budget`` bytes for unfinished request bodies, header blocks and the bytes buffered
  while a connection's first request is read, across all connections
  (``authsvc.h2wire.MemoryBudget``); a request unfinished after ``request_deadline`` is reset.
"""

from __future__ import annotations

import logging
import resource
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CLOSED_REASONS", "REFUSED_REASONS", "Admission", "BurstLog", "FrontLimits", "peer_of"]

REFUSED_REASONS = ("peer_cap", "memory", "internal")
"""Why the front refused a connection (``authsvc_front_refused_total{reason}``): the per-peer
cap, no memory left for a first request, the private gRPC server unreachable. (At the global
cap nothing is refused: the listeners are not read until a connection goes.)"""
CLOSED_REASONS = (
    "handshake_timeout",
    "idle_timeout",
    "flood_limit",
    "protocol_error",
    "splice_refused",
)
"""Why the front closed a connection it had admitted (``authsvc_front_closed_total{reason}``):
no first request in time, idle, a flood limit (GOAWAY ENHANCE_YOUR_CALM), another HTTP/2
violation, a request the private gRPC server cannot survive (``SpliceGuard``)."""


def _default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 16
    return max(16, min(4096, (soft - 128) // 3))


@dataclass(frozen=True)
class FrontLimits:
    max_connections: int = field(default_factory=_default_max_connections)
    max_connections_per_peer: int = 512
    handshake_timeout: float = 10.0
    idle_timeout: float = 300.0
    pressure_idle_timeout: float = 5.0
    memory_budget: int = 64 << 20
    sweep_interval: float = 1.0


class BurstLog:
    """Logs the first event of a burst at once; later ones within ``window`` seconds are only
    counted, and reported in one line with the next event after the window."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger, self._what, self._window, self._clock = logger, what, window, clock
        self._until = float("-inf")
        self._suppressed = 0

    def event(self, detail: str, level: int = logging.WARNING) -> None:
        now = self._clock()
        if now < self._until:
            self._suppressed += 1
            return
        more = f" ({self._suppressed} more in the last burst)" if self._suppressed else ""
        self._logger.log(level, "%s: %s%s", self._what, detail, more)
        self._until, self._suppressed = now + self._window, 0


def peer_of(transport_socket: socket.socket | None, peername: object) -> object:
    """The key a per-peer cap counts by: the IP address, or a Unix peer's uid."""
    if isinstance(peername, tuple) and peername:
        return peername[0]
    if transport_socket is not None and transport_socket.family == socket.AF_UNIX:
        try:
            creds = transport_socket.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
            )
            return ("uid", struct.unpack("3i", creds)[1])
        except (OSError, AttributeError):
            pass
    return "unix"


class Admission:
    """Counts connections, globally and per peer (one event loop: not thread-safe)."""

    def __init__(self, limits: FrontLimits) -> None:
        self.limits = limits
        self.total = 0
        self.refused = 0
        self._per_peer: dict[object, int] = {}

    def admit(self, peer: object) -> str | None:
        """``None`` (and the connection is counted) or why it is refused."""
        if self.total >= self.limits.max_connections:
            self.refused += 1
            return f"{self.total} connections open (the cap)"
        count = self._per_peer.get(peer, 0)
        if count >= self.limits.max_connections_per_peer:
            self.refused += 1
            return f"{count} connections open from one peer (the per-peer cap)"
        self.total += 1
        self._per_peer[peer] = count + 1
        return None

    def release(self, peer: object) -> None:
        self.total -= 1
        count = self._per_peer.get(peer, 0) - 1
        if count > 0:
            self._per_peer[peer] = count
        else:
            self._per_peer.pop(peer, None)

    @property
    def under_pressure(self) -> bool:
        return self.total * 10 >= self.limits.max_connections * 9
