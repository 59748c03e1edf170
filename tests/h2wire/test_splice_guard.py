"""The guard on spliced connections (``authsvc.h2wire.SpliceGuard``), driven with bytes: what a client
sends reaches the private gRPC server unchanged, except a request it must never see.

Regression: grpc.aio's serving loop decodes a request's method as UTF-8 outside any error
handling, so one request with a ``:path`` that is not UTF-8 (plus the ``:authority`` and
``te`` every gRPC client sends) ended the private server, and every spliced connection after
it was dropped ("cannot reach the internal gRPC server") until a restart.
"""

from __future__ import annotations

import itertools
import struct
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authsvc.h2wire import PREFACE, SpliceGuard, SpliceRefused, frame, literal
from tests.h2wire._names import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    PADDED,
    PING,
    PRIORITY_FLAG,
    SETTINGS,
)

REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
UTF8 = "/é/ü".encode().decode("latin-1")  # HPACK strings are bytes; these are UTF-8


def block(path: str, indexed: bool = False) -> bytes:
    """A gRPC request header block; ``indexed`` adds ``x-a: b`` to the dynamic table."""
    out = b"\x83\x86" + literal(":path", path) + literal(":authority", "authsvc")
    out += literal("content-type", "application/grpc") + literal("te", "trailers")
    return out + (b"\x40\x03x-a\x01b" if indexed else b"")


def call(sid: int, path: str, indexed: bool = False) -> bytes:
    return frame(HEADERS, END_HEADERS, sid, block(path, indexed)) + frame(
        DATA, END_STREAM, sid, b"\x00" + struct.pack(">I", 2) + b"hi"
    )


CLEAN = (
    PREFACE
    + frame(SETTINGS, 0, 0)
    + frame(SETTINGS, ACK, 0)
    + call(1, REFLECTION, indexed=True)
    + frame(HEADERS, PADDED | PRIORITY_FLAG, 3, b"\x02" + bytes(5) + block(UTF8)[:7] + b"\0\0")
    + frame(CONTINUATION, END_HEADERS, 3, block(UTF8)[7:] + b"\xbe")  # x-a: b, indexed
    + frame(PING, 0, 0, b"12345678")
    + frame(DATA, END_STREAM, 3, b"x" * 40_000)
)


@given(st.lists(st.integers(0, len(CLEAN)), max_size=8))
def test_a_clean_exchange_passes_unchanged_however_it_arrives(cuts: list[int]) -> None:
    guard = SpliceGuard()
    points = [0, *sorted(cuts), len(CLEAN)]
    assert b"".join(guard.feed(CLEAN[a:b]) for a, b in itertools.pairwise(points)) == CLEAN


def test_a_header_block_is_held_until_it_is_complete_and_data_is_not() -> None:
    guard = SpliceGuard()
    head = PREFACE + frame(HEADERS, 0, 1, block(REFLECTION)[:4])
    assert guard.feed(head) == PREFACE
    rest = frame(CONTINUATION, END_HEADERS, 1, block(REFLECTION)[4:])
    assert guard.feed(rest) == head[len(PREFACE) :] + rest
    data = frame(DATA, 0, 1, b"y" * 1000)
    assert guard.feed(data[:500]) == data[:500]  # passed as it arrives


@pytest.mark.parametrize(
    "earlier", [b"", call(1, REFLECTION, indexed=True)], ids=["first", "later"]
)
def test_a_path_that_is_not_utf8_is_refused_before_it_is_forwarded(earlier: bytes) -> None:
    guard = SpliceGuard()
    start = PREFACE + frame(SETTINGS, 0, 0) + earlier
    assert guard.feed(start) == start
    bad = frame(HEADERS, END_HEADERS, 3, block("/\xe8x/y", indexed=True))
    assert guard.feed(bad[:20]) == b""  # held
    with pytest.raises(SpliceRefused, match="UTF-8"):
        guard.feed(bad[20:])


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        (frame(HEADERS, END_HEADERS, 1, b"\xbf"), "undecodable"),  # index beyond the tables
        (frame(HEADERS, 0, 1, b"\x82") + frame(PING, 0, 0, b"p" * 8), "interrupted"),
        (frame(HEADERS, PADDED | END_HEADERS, 1, b"\x05\x82"), "padding"),
        (frame(HEADERS, END_HEADERS, 1, b"\x82" * 300_000), "too large"),
    ],
)
def test_blocks_the_server_would_refuse_anyway_end_the_connection(
    wire: bytes, problem: str
) -> None:
    with pytest.raises(SpliceRefused, match=problem):
        SpliceGuard().feed(PREFACE + wire)


def test_a_flood_of_empty_continuations_is_refused_in_linear_time() -> None:
    started = time.perf_counter()
    with pytest.raises(SpliceRefused, match="too large"):
        SpliceGuard().feed(
            PREFACE + frame(HEADERS, 0, 1, b"\x82") + frame(CONTINUATION, 0, 1) * 40_000
        )
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    "data", [b"GET / HTTP/1.1\r\n\r\n", b"PRI * HTTP/1.1\r\n\r\n", b"\x00" * 30]
)
def test_bytes_that_are_not_http2_pass_untouched(data: bytes) -> None:
    guard = SpliceGuard()
    assert guard.feed(data) == data
    assert guard.feed(b"more") == b"more"


def test_a_partial_preface_waits_until_it_can_be_told() -> None:
    guard = SpliceGuard()
    assert guard.feed(PREFACE[:10]) == b""
    assert guard.feed(PREFACE[10:] + frame(PING, 0, 0, b"p" * 8)) == PREFACE + frame(
        PING, 0, 0, b"p" * 8
    )
