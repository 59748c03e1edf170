"""Fair turns for the fast front: one client cannot keep Envoy's checks waiting.

A client may pipeline valid checks faster than one core answers them (issue 20, the check
flood). A connection therefore parses at most ``REQUESTS_PER_TURN`` requests (``SLICE``
bytes) per turn; what is left waits in ``Turns``, which gives every *peer* with work left
one turn per event-loop round, and rotates among that peer's connections. A peer with 500
busy connections gets the same share of the loop as Envoy's one connection, and a
connection that arrives with a request while its peer is queued waits its turn behind that
peer's others instead of being parsed at once. Envoy's requests thus wait at most one round
(about ``REQUESTS_PER_TURN`` checks per other busy peer), whatever the attacker's backlog.

A connection waiting for its turn is not read from (``pause_reading``): TCP flow control makes
the client wait, and nothing more than one read is buffered per connection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["REQUESTS_PER_TURN", "SLICE", "Turn", "Turns"]

REQUESTS_PER_TURN = 16
"""Requests one connection may hand over per turn (~0.5-1 ms of checks)."""
SLICE = 16 << 10
"""Bytes one connection may have parsed per turn (~130 pipelined checks, or control frames)."""

Turn = Callable[[], bool]
"""Does one connection's turn; returns whether it has work left (then it is queued again)."""


class Turns:
    """Round-robin over peers, then over each peer's waiting connections (one event loop)."""

    def __init__(self, call_soon: Callable[[Callable[[], None]], object]) -> None:
        self._call_soon = call_soon
        self._waiting: dict[object, deque[Turn]] = {}  # insertion order = the peers' order
        self._scheduled = False
        self.rounds = 0

    def busy(self, peer: object) -> bool:
        """Whether ``peer`` has connections waiting for a turn."""
        return peer in self._waiting

    def wait(self, peer: object, turn: Turn) -> None:
        """Queue ``turn`` (once: the caller remembers it is queued) behind ``peer``'s others."""
        queue = self._waiting.get(peer)
        if queue is None:
            self._waiting[peer] = queue = deque()
        queue.append(turn)
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._call_soon(self._round)

    def _round(self) -> None:
        """One turn for each peer that was waiting when the round began."""
        self._scheduled = False
        self.rounds += 1
        for peer in list(self._waiting):
            queue = self._waiting[peer]
            turn = queue.popleft()
            if turn():
                queue.append(turn)
            if not queue:
                del self._waiting[peer]
        if self._waiting:
            self._schedule()
