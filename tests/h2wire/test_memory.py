"""Issue 20 item 2: memory a client can make authsvc hold is bounded — per HPACK decoder in
bytes, and across connections by one shared budget with a deadline.

Before: the decoder kept up to 256 Huffman-decoded strings and 64 blocks of any size for the
connection's life (4 connections took RSS from 37 to 339 MB), and unfinished request bodies
were held up to 8 MiB per connection with no global bound and no deadline.
"""

from __future__ import annotations

import struct
import tracemalloc

from authsvc.h2wire import Decoder, FloodLimits, MemoryBudget, frame, literal
from authsvc.h2wire._hpack import CACHE_BYTES
from tests.h2wire._huffman import huffman_encode
from tests.h2wire._names import (
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    HEADERS,
    RST_STREAM,
)
from tests.h2wire.test_connection import Peer, goaway_code, grpc_message, request_block


def _huffman_literal(name: str, tag: int) -> bytes:
    """A literal without indexing, new name, Huffman-coded value (RFC 7541 §6.2.2): 8 symbols
    naming ``tag``, then 8,000 ``a`` (every symbol used is 5 bits: 8 make 5 whole bytes)."""
    digits = "".join("012aceiost"[int(d)] for d in f"{tag:08d}")
    encoded = huffman_encode(digits.encode()) + huffman_encode(b"a" * 8) * 1000
    head = b"\x00" + bytes([len(name)]) + name.encode()
    length = len(encoded)
    assert length >= 127
    rest, out = length - 127, [0xFF]
    while rest >= 0x80:
        out.append(rest & 0x7F | 0x80)
        rest >>= 7
    out.append(rest)
    return head + bytes(out) + encoded


def test_hostile_header_blocks_leave_the_decoder_caches_small() -> None:
    """300 distinct blocks, each one 8 KB Huffman-coded value: the caches keep none of them
    (before: the last 256, ~3.5 MB per connection; with 64 KiB values, ~30 MB)."""
    decoder = Decoder()
    blocks = [_huffman_literal("x-big", i) for i in range(300)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for block in blocks:
            headers = decoder.decode(block)
            assert len(headers[0][1]) == 8_008
        del headers
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert held < 1 << 20, f"the decoder holds {held} bytes after 300 hostile blocks"
    assert decoder.cached_bytes <= 2 * CACHE_BYTES


def test_a_proxys_repeated_blocks_are_still_cached() -> None:
    """The cache still does its job for Envoy's small, repeated blocks."""
    decoder = Decoder()
    block = request_block() + literal("grpc-timeout", "1000m")
    first = decoder.decode(block)
    assert decoder.decode(block) is first  # the cached tuple itself
    assert 0 < decoder.cached_bytes <= CACHE_BYTES


def _partial_bodies(peer: Peer, streams: int, size: int) -> list[int]:
    """Open ``streams`` requests whose bodies never end; returns the grpc-status codes seen."""
    codes = []
    for i in range(streams):
        sid = 2 * i + 1
        frames = peer.send(
            frame(HEADERS, END_HEADERS, sid, request_block()),
            frame(DATA, 0, sid, b"\x00" + struct.pack(">I", 1 << 20) + b"y" * (size - 5)),
        )
        for f in frames:
            if f.kind == HEADERS:
                fields = dict(peer.decoder.decode(f.payload))
                if "grpc-status" in fields:
                    codes.append(int(fields["grpc-status"]))
    return codes


def test_unfinished_bodies_across_connections_stay_within_the_budget() -> None:
    """Four attacking connections, 1 MiB budget: their extra requests are refused
    (RESOURCE_EXHAUSTED) and the budget is never exceeded; a legitimate client sharing the
    budget still gets its answer (a body in one DATA frame is never held)."""
    budget = MemoryBudget(1 << 20)
    attackers = [Peer(answer=False, options={"budget": budget}) for _ in range(4)]
    refused = 0
    for peer in attackers:
        peer.start()
        codes = _partial_bodies(peer, 20, 16_000)
        refused += codes.count(8)
        assert budget.used <= budget.limit
    assert refused >= 4 * 20 - (1 << 20) // 16_000
    legit = Peer(options={"budget": budget})
    legit.start()
    frames = legit.call(1, b"a check request")
    assert legit.requests[0][2] == b"a check request"
    assert [f.kind for f in frames].count(DATA) == 1
    for peer in attackers:  # closing a connection gives everything back
        peer.conn.release()
    assert budget.used == 0


def test_a_request_unfinished_past_its_deadline_is_reset_and_its_bytes_freed() -> None:
    now = [0.0]
    budget = MemoryBudget(1 << 30)
    peer = Peer(
        answer=False,
        options={"budget": budget, "clock": lambda: now[0], "limits": FloodLimits()},
    )
    peer.start()
    _partial_bodies(peer, 3, 10_000)
    assert budget.used == 3 * 10_000
    now[0] = 5.0
    peer.conn.expire(now[0])
    assert budget.used == 3 * 10_000  # not yet
    now[0] = 10.5
    peer.conn.expire(now[0])
    resets = [f for f in peer.frames() if f.kind == RST_STREAM]
    assert sorted(f.stream for f in resets) == [1, 3, 5]
    assert budget.used == 0 and peer.conn.open_streams == 0
    frames = peer.send(  # the connection itself is fine
        frame(HEADERS, END_HEADERS, 7, request_block()),
        frame(DATA, END_STREAM, 7, grpc_message(b"ok")),
    )
    assert goaway_code(frames) is None and peer.requests[-1][0] == 7


def test_a_header_block_that_does_not_fit_the_budget_ends_its_connection() -> None:
    budget = MemoryBudget(64 << 10)
    peer = Peer(options={"budget": budget})
    peer.start()
    frames = peer.send(frame(HEADERS, 0, 1, b"\x00" * 16_000))
    from tests.h2wire._names import CONTINUATION

    for _ in range(5):
        frames += peer.send(frame(CONTINUATION, 0, 1, b"\x00" * 16_000))
    assert goaway_code(frames) == ENHANCE_YOUR_CALM
    assert budget.used == 0


def test_end_stream_flag_constant() -> None:
    assert END_STREAM == 1
