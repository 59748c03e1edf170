"""Flood limits and the shared memory budget of the server connection (no I/O, no clock).

``FloodLimits`` follows Envoy's ``http2_protocol_options`` (same names, same defaults where
Envoy has one) plus the budgets Envoy keeps elsewhere: resets, header blocks, blocked streams
and a deadline for unfinished requests. Exceeding a limit is a connection error
``ENHANCE_YOUR_CALM``: GOAWAY, then the caller closes the transport.

``MemoryBudget`` is one object shared by every connection of a server: the bytes of unfinished
request bodies and header blocks across all of them. A request that does not fit is refused
(``RESOURCE_EXHAUSTED``), a header block that does not fit ends its connection.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FloodLimits", "MemoryBudget"]


@dataclass(frozen=True, slots=True)
class FloodLimits:
    max_outbound_frames: int = 10_000
    """Frames written while the transport has not drained its buffer (Envoy: same name)."""
    max_outbound_control_frames: int = 1_000
    """Of those, PING/SETTINGS ACKs, RST_STREAM, WINDOW_UPDATE, GOAWAY (Envoy: same name)."""
    max_consecutive_inbound_frames_with_empty_payload: int = 1
    """DATA/HEADERS/CONTINUATION frames with no payload and no END_STREAM in a row."""
    max_inbound_priority_frames_per_stream: int = 100
    """PRIORITY frames allowed: this * (1 + streams opened)."""
    max_inbound_window_update_frames_per_data_frame_sent: int = 10
    """WINDOW_UPDATE frames allowed: 5 + 2 * streams opened + this * (1 + DATA frames sent)."""
    max_inbound_rst_stream_frames_per_stream: int = 2
    """RST_STREAM frames allowed: 10 + this * streams opened."""
    max_premature_reset_ratio: float = 0.5
    """Once 100 streams were opened, the share of them the client may reset before their
    answer (Envoy's premature-reset rule against "rapid reset", CVE-2023-44487)."""
    max_header_block: int = 1 << 18
    """Bytes of one header block's frames (HEADERS + CONTINUATION, 9-byte heads included)."""
    max_huffman_bytes: int = 8 << 10
    """Huffman-coded header bytes a connection may have decoded before its first request (each
    costs ~1 µs per symbol in pure Python; a cached string costs nothing)..."""
    huffman_bytes_per_stream: int = 512
    """...and what each new stream adds, up to ``max_huffman_bytes`` in hand at a time."""
    max_blocked_streams: int = 128
    """Answers waiting for flow-control window at once (each costs work per window change)."""
    request_deadline: float = 10.0
    """Seconds an unfinished request (or header block) may hold buffers before it is reset."""


class MemoryBudget:
    """Bytes buffered for unfinished requests, shared by every connection (one event loop:
    not thread-safe). ``take`` says whether ``n`` more bytes fit; ``give`` returns them."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n

    @property
    def tight(self) -> bool:
        """More than half is in use: connections stop granting new window."""
        return self.used * 2 > self.limit
