"""``receive(max_requests=, max_bytes=)``: a pipelined read is parsed in bounded turns.

The check flood of issue 20: one read may hold hundreds of pipelined checks; parsing it whole
keeps every other connection (Envoy's) waiting. With a limit, ``receive`` hands over at most
that many requests (parses at most that many bytes, whole frames), keeps the rest and says so
(``more``); later calls continue exactly where it stopped, and the answers are the same as
those of one unlimited ``receive``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from authsvc.h2wire import frame
from tests.h2wire._names import DATA, END_HEADERS, END_STREAM, HEADERS, PING, SETTINGS
from tests.h2wire.test_connection import Peer, grpc_message, request_block


def _pipelined(count: int, first: int = 1) -> bytes:
    return b"".join(
        frame(HEADERS, END_HEADERS, sid, request_block())
        + frame(DATA, END_STREAM, sid, grpc_message(b"m%d" % sid))
        for sid in range(first, first + 2 * count, 2)
    )


def _started() -> Peer:
    peer = Peer()
    peer.start()
    return peer


def test_a_read_of_100_checks_is_handed_over_16_per_turn() -> None:
    peer = _started()
    peer.conn.receive(_pipelined(100), max_requests=16)
    assert len(peer.requests) == 16 and peer.conn.more
    turns = 1
    while peer.conn.more:
        before = len(peer.requests)
        peer.conn.receive(b"", max_requests=16)
        assert len(peer.requests) - before <= 16
        turns += 1
    assert turns == 7 and [r[0] for r in peer.requests] == list(range(1, 200, 2))
    assert [r[2] for r in peer.requests] == [b"m%d" % sid for sid in range(1, 200, 2)]


def test_zero_only_buffers_and_new_bytes_queue_behind_the_old() -> None:
    peer = _started()
    peer.conn.receive(_pipelined(3), max_requests=0)
    assert peer.requests == [] and peer.conn.more and peer.frames() == []
    peer.conn.receive(_pipelined(2, first=7), max_requests=0)
    assert peer.requests == []
    peer.conn.receive(b"")
    assert [r[0] for r in peer.requests] == [1, 3, 5, 7, 9] and not peer.conn.more


def test_max_bytes_stops_at_a_frame_boundary_even_for_control_frames() -> None:
    peer = _started()
    pings = b"".join(frame(PING, 0, 0, b"%08d" % i) for i in range(100))  # 17 bytes each
    peer.conn.receive(pings, max_bytes=170)
    acks = peer.frames()
    assert len(acks) == 10 and peer.conn.more
    peer.conn.receive(b"", max_bytes=10**6)
    rest = peer.frames()
    assert [f.payload for f in acks + rest] == [b"%08d" % i for i in range(100)]
    assert not peer.conn.more


def test_without_limits_nothing_changes() -> None:
    peer = _started()
    peer.conn.receive(_pipelined(50))
    assert len(peer.requests) == 50 and not peer.conn.more


def _answers(peer: Peer) -> list[tuple[int, int, int, bytes]]:
    return [(f.kind, f.flags, f.stream, f.payload) for f in peer.frames()]


@settings(max_examples=50, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 12_000), max_size=6),
    per_turn=st.integers(0, 20),
    max_bytes=st.none() | st.integers(1, 3000),
)
def test_turns_give_the_answers_of_one_unlimited_receive(
    cuts: list[int], per_turn: int, max_bytes: int | None
) -> None:
    wire = _pipelined(60) + frame(SETTINGS, 0, 0) + _pipelined(20, first=121)
    whole = _started()
    whole.conn.receive(wire)
    expected = _answers(whole)
    peer = _started()
    out: list[tuple[int, int, int, bytes]] = []
    pos = 0
    for cut in [*sorted(cuts), len(wire)]:
        peer.conn.receive(wire[pos:cut], max_requests=per_turn, max_bytes=max_bytes)
        pos = max(pos, cut)
        out += _answers(peer)
    for _ in range(10_000):
        if not peer.conn.more:
            break
        peer.conn.receive(b"", max_requests=max(per_turn, 1), max_bytes=max_bytes)
        out += _answers(peer)
    assert out == expected and len(peer.requests) == 80
