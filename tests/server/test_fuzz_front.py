"""Fuzzing the fast front's HTTP/2 layer on the real server, over raw sockets.

A production ``AuthzServer`` (front on a Unix socket, the ``Observer`` attached, grpc.aio
behind it for spliced connections) on its own loop thread gets, on a new connection each:

- the client preface, a Check that makes the connection fast, then arbitrary frames: every
  type (unknown ones too), random flags and stream ids (reserved bit included), lying and
  huge lengths, padding longer than its frame, CONTINUATION out of place, WINDOW_UPDATE 0 or
  overflowing, SETTINGS with bad values, RST_STREAM and PRIORITY anywhere, header blocks of
  hostile HPACK, gRPC bodies whose length prefix lies or that are compressed or split, floods;
- the same without the fast start (those connections are spliced to grpc.aio), and garbage;
- a valid exchange (without a valid key), mutated: frames dropped, duplicated, reordered,
  then bits flipped, bytes truncated, duplicated or inserted;
- two interleaved Checks, one with a valid key, with noise frames in between;

each wire sent in one piece or a few (read separately by the server), then a PING.

Properties, for every example:
(a) the server still works: on a new connection a Check with a valid key is allowed and one
    without a key is denied with 401;
(b) everything the server wrote parses as HTTP/2 frames of legal shape and size, header
    blocks decode, and no stream is answered with an allowing CheckResponse unless it is the
    stream that carried the valid key; after a connection error (GOAWAY with an error code)
    the front writes nothing more;
(c) nothing is reported to the loop's exception handler, nothing is logged at ERROR (or with
    a traceback) by ``asyncio`` or ``authsvc``;
(d) a fast connection answers a PING sent after the fuzzed bytes, or ends (within 1 s);
    every connection ends promptly once the client half-closes.
"""

from __future__ import annotations

import logging
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2 as ext
from authsvc.authz import STATUS, Policy
from authsvc.keys import KeyRecord, KeyRing, KeyStore, digest, fingerprint
from authsvc.observability import Observer
from authsvc.server import AuthzServer
from tests._keys import MASTER
from tests.server._h2strategies import (
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    NO_KEY,
    SETTINGS,
    exchange,
    fast_wire,
    interleaved,
    other_wire,
)
from tests.server._h2wire import (
    PREFACE,
    Reply,
    check_block,
    check_response,
    converse,
    grpc_body,
    raw_frame,
    streams_of,
    walk,
)
from tests.server.conftest import LoopThread, request

FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DENY_STATUSES = {s for s in STATUS.values() if s != 200}
FRONT_SETTINGS = struct.pack(">HIHIHI", 3, 1024, 4, 1 << 20, 6, 1 << 16)
VALID = request(headers={"authorization": f"Bearer {MASTER}"}).SerializeToString()
SERVER_KINDS = {0, 1, 3, 4, 6, 7, 8, 9}  # never PRIORITY or PUSH_PROMISE, nor unknown types


class Trouble(logging.Handler):
    """Records at ERROR or with a traceback, and whatever reaches the loop's exception handler
    (described by type, logger and message: never the data that caused them)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
            self.seen.append(f"{record.name}: {record.getMessage()[:200]} {exc}")

    def loop_handler(self, loop: Any, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self.seen.append(f"loop: {context.get('message')} {type(exc).__name__ if exc else ''}")


class Front:
    """The production server (fast path on, the Observer attached) on a Unix socket."""

    def __init__(self, loop: LoopThread, path: Path, trouble: Trouble) -> None:
        self.path, self.trouble = str(path), trouble
        master = KeyRecord("master", "test", fingerprint(MASTER), digest(MASTER))
        observer = Observer()
        self.server = AuthzServer(
            KeyStore(KeyRing(master=master)),
            Policy.build(),
            [f"unix:{path}"],
            on_decision=observer.on_decision,
        )
        loop.run(self.server.start())


@pytest.fixture(scope="module")
def front() -> Iterator[Front]:
    directory = Path(tempfile.mkdtemp(prefix="authsvc-fz-", dir="/tmp"))  # short socket path
    loop = LoopThread()
    trouble = Trouble()
    loggers = [logging.getLogger("asyncio"), logging.getLogger("authsvc")]
    for logger in loggers:
        logger.addHandler(trouble)
    loop.call(lambda: loop.loop.set_exception_handler(trouble.loop_handler))
    try:
        srv = Front(loop, directory / "authz.sock", trouble)
        try:
            yield srv
        finally:
            loop.run(srv.server.stop(0))
    finally:
        for logger in loggers:
            logger.removeHandler(trouble)
        loop.close()
        shutil.rmtree(directory, ignore_errors=True)


# -- the properties --------------------------------------------------------------------------


def _still_serving(front: Front) -> None:
    """(a): a new connection, a Check with a valid key (stream 1) and one without (stream 3)."""
    wire = PREFACE + raw_frame(SETTINGS, 0, 0, b"")
    for sid, message in ((1, VALID), (3, NO_KEY)):
        wire += raw_frame(HEADERS, END_HEADERS, sid, check_block())
        wire += raw_frame(DATA, END_STREAM, sid, grpc_body(message))
    reply, _ = converse(front.path, wire)
    streams = streams_of(reply)
    allowed = check_response(streams[1]) if 1 in streams else None
    denied = check_response(streams[3]) if 3 in streams else None
    assert allowed is not None and allowed.status.code == 0, "a valid key was not allowed"
    assert allowed.HasField("ok_response")
    assert denied is not None and denied.denied_response.status.code == 401, "no key, no 401"


def _judge(
    front: Front, wire: bytes, cuts: list[int] | None = None, keyed: frozenset[int] = frozenset()
) -> Reply:
    """Send a fuzzed wire (split at ``cuts``) and check (b), (c), (d) on it, then (a).
    ``keyed``: the streams whose request carried the valid key (the only ones that may be
    allowed)."""
    front.trouble.seen.clear()
    tail = walk(wire[len(PREFACE) :]) if wire.startswith(PREFACE) else None
    while tail is not None and tail.missing and not tail.oversized:
        wire += b"\x00" * tail.missing  # finish the last frame: the PING after it is whole
        tail = walk(wire[len(PREFACE) :])  # (a header finished with zeros may want more)
    swallowed = tail is None or tail.oversized  # the PING may be part of something else
    pieces = tuple(c % len(wire) for c in cuts or ()) if wire else ()
    reply, took = converse(front.path, wire, cuts=pieces, patience=0.05 if swallowed else 1.0)
    fast = any(f.kind == SETTINGS and f.payload == FRONT_SETTINGS for f in reply.frames)
    # (d) a fast connection answers a PING after the fuzzed bytes, or ends; every connection
    # ends promptly once the client half-closes
    assert reply.eof, "the connection did not end within 5 s of the client's half-close"
    assert reply.alive or took is None or not fast, "a fast connection neither answered nor ended"
    # (b) the reply is HTTP/2 of legal shape
    assert not reply.rest, f"{len(reply.rest)} bytes after the last whole frame"
    max_frame = tail.max_frame if tail is not None else 16384
    for i, f in enumerate(reply.frames):
        assert f.kind in SERVER_KINDS, f"server sent frame type {f.kind}"
        assert len(f.payload) <= max_frame, f"server frame {f.kind} of {len(f.payload)} bytes"
        if f.kind in (0, 1, 3, 9):  # stream frames: on a client-opened (odd) stream
            assert f.sid % 2 == 1, f"server frame {f.kind} on stream {f.sid}"
        elif f.kind != 8:  # connection frames (WINDOW_UPDATE may be either)
            assert f.sid == 0, f"server frame {f.kind} on stream {f.sid}"
        else:
            assert f.sid == 0 or f.sid % 2 == 1, f"WINDOW_UPDATE on stream {f.sid}"
        expected = {3: 4, 6: 8, 8: 4}.get(f.kind)
        assert expected is None or len(f.payload) == expected, f"frame {f.kind} length"
        if f.kind == 7:
            assert len(f.payload) >= 8
            if fast and struct.unpack_from(">I", f.payload, 4)[0]:
                assert i == len(reply.frames) - 1, "frames after a connection error"
    for sid, stream in streams_of(reply).items():
        if stream.grpc_status is not None:
            assert stream.grpc_status.isdigit(), "grpc-status is a number"
        if fast and stream.grpc_status == "0":
            assert stream.message() is not None, f"stream {sid}: OK without one message"
        resp = check_response(stream)
        if resp is None:
            continue
        if resp.status.code == 0:
            assert sid in keyed, f"stream {sid} allowed without a valid key"
            assert resp.HasField("ok_response")
        else:
            assert resp.denied_response.status.code in DENY_STATUSES, f"stream {sid}"
    # (c) nothing went wrong inside
    assert not front.trouble.seen, front.trouble.seen
    _still_serving(front)
    assert not front.trouble.seen, front.trouble.seen
    return reply


cut_points = st.lists(st.integers(0, 2**20), max_size=3)  # where the wire is split in reads


@FUZZ
@given(wire=fast_wire(), cuts=cut_points)
def test_fast_connection_survives_arbitrary_frames(
    front: Front, wire: bytes, cuts: list[int]
) -> None:
    _judge(front, wire, cuts)


@settings(FUZZ, max_examples=150)
@given(wire=other_wire(), cuts=cut_points)
def test_spliced_and_garbage_connections_survive(
    front: Front, wire: bytes, cuts: list[int]
) -> None:
    _judge(front, wire, cuts)


@FUZZ
@given(wire=exchange(), cuts=cut_points)
def test_mutated_valid_exchanges_never_allow(front: Front, wire: bytes, cuts: list[int]) -> None:
    _judge(front, wire, cuts)


@settings(FUZZ, max_examples=150)
@given(plan=interleaved(), cuts=cut_points)
def test_interleaved_checks_are_answered_on_their_own_streams(
    front: Front, plan: Any, cuts: list[int]
) -> None:
    """Stream 1 carries the valid key, stream 3 none; their frames interleave, with noise."""
    wire, noisy = plan.wire(VALID)
    streams = streams_of(_judge(front, wire, cuts, keyed=frozenset({1})))
    if not noisy:
        assert 1 in streams and 3 in streams, "a Check was not answered"
        first, second = check_response(streams[1]), check_response(streams[3])
        assert first is not None and first.status.code == 0, "stream 1 was not allowed"
        assert second is not None and second.denied_response.status.code == 401


def test_the_properties_hold_for_a_plain_exchange(front: Front) -> None:
    """The judge itself: a clean Check without a key is judged fine and answered 401."""
    wire = PREFACE + raw_frame(SETTINGS, 0, 0, b"")
    wire += raw_frame(HEADERS, END_HEADERS, 1, check_block())
    wire += raw_frame(DATA, END_STREAM, 1, grpc_body(NO_KEY))
    resp = check_response(streams_of(_judge(front, wire))[1])
    assert isinstance(resp, ext.CheckResponse) and resp.denied_response.status.code == 401
