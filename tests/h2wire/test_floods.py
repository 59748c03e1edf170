"""Issue 20 item 1: no frame costs work in proportion to the connection's state, and Envoy's
``http2_protocol_options`` flood limits end a connection that abuses them (GOAWAY
ENHANCE_YOUR_CALM) while traffic shaped like Envoy's never trips them.

Costs are compared as ratios measured side by side (same process, same moment), so a busy
machine slows both sides alike: on the code before this change a WINDOW_UPDATE with 1,024
blocked answers cost ~236x one with a single answer, a 16 KiB SETTINGS frame ~75 ms.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from authsvc.h2wire import FloodLimits, frame
from tests.h2wire._names import (
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    GOAWAY,
    HEADERS,
    PING,
    PRIORITY,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
)
from tests.h2wire.test_connection import Peer, goaway_code, grpc_message, request_block

UNLIMITED = FloodLimits(
    max_inbound_window_update_frames_per_data_frame_sent=10**9,
    max_blocked_streams=10**6,
)


def _best(run: Callable[[], None], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _blocked_peer(streams: int, limits: FloodLimits = UNLIMITED) -> Peer:
    """A peer that granted no stream window, with ``streams`` answers waiting for it."""
    peer = Peer(options={"limits": limits})
    peer.start(initial_window=0)
    for i in range(streams):
        peer.call(2 * i + 1, b"x")
    return peer


def test_a_window_update_costs_the_same_with_1000_blocked_answers_as_with_one() -> None:
    """The attack of finding 1: many answers blocked, then a stream of WINDOW_UPDATEs."""
    few, many = _blocked_peer(1), _blocked_peer(1000)
    assert goaway_code(many.frames()) is None  # no limit in the way: only the cost is measured
    updates = frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) * 2000

    def cost(peer: Peer) -> Callable[[], None]:
        return lambda: peer.conn.receive(updates)

    ratio = _best(cost(many)) / _best(cost(few))
    assert ratio < 4, f"a WINDOW_UPDATE costs {ratio:.1f}x more with 1,000 blocked answers"
    # the legitimate outcome is intact: a stream window, once granted, releases its answer
    frames = many.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 100)))
    assert [(f.kind, f.stream) for f in frames if f.kind in (DATA, HEADERS)] == [
        (DATA, 1),
        (HEADERS, 1),
    ]


def test_initial_window_size_changes_cost_the_same_with_1000_streams_as_with_one() -> None:
    """A 16 KiB SETTINGS frame of INITIAL_WINDOW_SIZE entries: O(entries), not O(entries x
    streams) (75 ms with 1,024 streams before)."""
    entries = b"".join(struct.pack(">HI", 4, 1000 + i % 7) for i in range(2730))
    settings = frame(SETTINGS, 0, 0, entries)
    few, many = Peer(answer=False), Peer(answer=False)
    for peer, streams in ((few, 1), (many, 1000)):
        peer.start()
        for i in range(streams):  # requests in progress: headers in, body not ended
            peer.send(frame(HEADERS, END_HEADERS, 2 * i + 1, request_block()))
    ratio = _best(lambda: many.conn.receive(settings)) / _best(lambda: few.conn.receive(settings))
    assert ratio < 4, f"a SETTINGS frame costs {ratio:.1f}x more with 1,000 open streams"
    assert goaway_code(many.frames()) is None


def test_too_many_answers_blocked_by_flow_control_end_the_connection() -> None:
    limits = FloodLimits(max_blocked_streams=128)
    peer = Peer(options={"limits": limits})
    peer.start(initial_window=0)
    for i in range(128):
        assert goaway_code(peer.call(2 * i + 1, b"x")) is None
    assert goaway_code(peer.call(257, b"x")) == ENHANCE_YOUR_CALM
    assert peer.conn.closed


def test_window_updates_without_data_sent_end_the_connection() -> None:
    peer = Peer()
    peer.start()
    frames = peer.send(*[frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1))] * 16)
    assert goaway_code(frames) == ENHANCE_YOUR_CALM


def test_window_updates_like_envoys_are_fine() -> None:
    """Envoy (or any gRPC client) grants back what each answer used: one or two WINDOW_UPDATEs
    per DATA frame received."""
    peer = Peer()
    peer.start()
    for i in range(2000):
        sid = 2 * i + 1
        frames = peer.call(sid, b"check")
        used = sum(len(f.payload) for f in frames if f.kind == DATA)
        frames += peer.send(
            frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", used)),
            frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", used)),
        )
        assert goaway_code(frames) is None
    assert len(peer.requests) == 2000


def test_consecutive_empty_frames_end_the_connection() -> None:
    peer = Peer()
    peer.start()
    peer.send(frame(HEADERS, END_HEADERS, 1, request_block()))
    assert goaway_code(peer.send(frame(DATA, 0, 1))) is None  # one is tolerated (Envoy: 1)
    assert goaway_code(peer.send(frame(DATA, 0, 1))) == ENHANCE_YOUR_CALM


def test_an_empty_data_frame_that_ends_the_stream_is_fine() -> None:
    peer = Peer()
    peer.start()
    for i in range(100):
        sid = 2 * i + 1
        frames = peer.send(
            frame(HEADERS, END_HEADERS, sid, request_block()),
            frame(DATA, 0, sid, grpc_message(b"x")),
            frame(DATA, END_STREAM, sid),
        )
        assert goaway_code(frames) is None
    assert len(peer.requests) == 100


def test_priority_frames_beyond_100_per_stream_end_the_connection() -> None:
    peer = Peer()
    peer.start()
    priority = frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10")
    assert goaway_code(peer.send(priority * 100)) is None
    assert goaway_code(peer.send(priority)) == ENHANCE_YOUR_CALM


def test_rapid_reset_ends_the_connection() -> None:
    """CVE-2023-44487: open a stream, reset it before its answer, again and again."""
    peer = Peer(answer=False)
    peer.start()
    frames = []
    for i in range(200):
        sid = 2 * i + 1
        frames += peer.send(
            frame(HEADERS, END_HEADERS | END_STREAM, sid, request_block()),
            frame(RST_STREAM, 0, sid, struct.pack(">I", 8)),
        )
        if goaway_code(frames) is not None:
            break
    assert goaway_code(frames) == ENHANCE_YOUR_CALM
    assert i < 150


def test_resets_of_answered_streams_stay_within_budget() -> None:
    """A client that cancels some calls after their answers (allowed) is not cut off."""
    peer = Peer()
    peer.start()
    for i in range(300):
        sid = 2 * i + 1
        frames = peer.call(sid, b"x") + peer.send(frame(RST_STREAM, 0, sid, struct.pack(">I", 8)))
        assert goaway_code(frames) is None


def test_a_peer_that_does_not_read_gets_no_endless_control_frames() -> None:
    """PINGs from a client that never reads the ACKs: once 1,000 control frames wait in the
    transport's buffer, GOAWAY (Envoy's max_outbound_control_frames)."""
    unsent = [0]
    peer = Peer(options={"write_buffer": lambda: unsent[0]})
    peer.start()
    unsent[0] = 1  # from now on the transport holds everything
    ping = frame(PING, 0, 0, b"12345678")
    frames = []
    for _ in range(1100):
        frames += peer.send(ping)
        if peer.conn.closed:
            break
    assert goaway_code(frames) == ENHANCE_YOUR_CALM
    assert sum(f.kind == PING for f in frames) <= 1001


def test_a_peer_that_reads_may_ping_as_it_likes() -> None:
    peer = Peer()
    peer.start()
    frames = peer.send(*[frame(PING, 0, 0, b"12345678")] * 3000)
    assert goaway_code(frames) is None and sum(f.kind == PING for f in frames) == 3000


def test_goaway_frames_are_recognised() -> None:
    assert GOAWAY == 7  # the helper above reads GOAWAY by type


def test_huffman_decoding_is_budgeted_per_connection() -> None:
    """Huffman decoding costs ~1.2 µs per symbol here (16,000 symbols: ~20 ms): a client
    cannot make the connection decode more than 8 KiB of it up front, plus 512 bytes per
    request; a string beyond that ends the connection before it is decoded."""
    from tests.h2wire._huffman import huffman_encode

    value = huffman_encode(b"a" * 8) * 1000  # 5,000 bytes: within the up-front allowance
    long_value = value * 2  # 10,000 bytes: beyond it

    def block(encoded: bytes) -> bytes:
        n = len(encoded) - 127
        tail = bytearray()
        while n >= 0x80:
            tail.append(n & 0x7F | 0x80)
            n >>= 7
        tail.append(n)
        return request_block() + b"\x00\x05x-big\xff" + bytes(tail) + encoded

    peer = Peer()
    peer.start()
    frames = peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block(value)))
    assert goaway_code(frames) is None and len(peer.requests) == 1
    started = time.perf_counter()
    frames = peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, block(long_value)))
    assert goaway_code(frames) == 9  # COMPRESSION_ERROR: the block was refused, not decoded
    assert time.perf_counter() - started < 0.01
