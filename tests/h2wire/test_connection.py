"""The HTTP/2 server connection (``authsvc.h2wire.H2Connection``), its sniffer and its ACK filter, driven with bytes
(no sockets): frames in, frames out, parsed back here."""

from __future__ import annotations

import itertools
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authsvc.h2wire import PREFACE, AckFilter, Decoder, H2Connection, frame, literal, sniff
from tests.h2wire._names import (
    ACK,
    CHECK_PATH,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FAST_PATHS,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
)

HEALTH = "/grpc.health.v1.Health/Check"


def request_block(path: str = CHECK_PATH) -> bytes:
    block = b"\x83\x86" + literal(":path", path) + literal(":authority", "authsvc")
    return block + literal("content-type", "application/grpc") + literal("te", "trailers")


def grpc_message(payload: bytes, compressed: int = 0) -> bytes:
    return bytes([compressed]) + struct.pack(">I", len(payload)) + payload


def settings_payload(**values: int) -> bytes:
    ids = {"initial_window": 4, "max_frame": 5, "enable_push": 2}
    return b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items())


@dataclass
class Frame:
    kind: int
    flags: int
    stream: int
    payload: bytes


@dataclass
class Peer:
    """A client: feeds the connection and parses everything it writes."""

    answer: bool = True
    out: bytearray = field(default_factory=bytearray)
    requests: list[tuple[int, dict[str, str], bytes | None]] = field(default_factory=list)
    conn: H2Connection = field(init=False)
    decoder: Decoder = field(default_factory=Decoder)
    options: dict[str, Any] = field(default_factory=dict)  # H2Connection's keyword arguments

    def __post_init__(self) -> None:
        self.conn = H2Connection(self.on_request, self.out.extend, **self.options)

    def on_request(
        self, sid: int, headers: tuple[tuple[str, str], ...], body: bytes | None
    ) -> None:
        self.requests.append((sid, dict(headers), body))
        if self.answer:
            self.conn.respond(sid, b"answer:" + (body or b""))

    def send(self, *frames: bytes, preface: bool = False) -> list[Frame]:
        self.conn.receive((PREFACE if preface else b"") + b"".join(frames))
        return self.frames()

    def frames(self) -> list[Frame]:
        data, self.out[:] = bytes(self.out), b""
        out = []
        while data:
            head, flags, sid = struct.unpack_from(">IBI", data)
            length = head >> 8
            out.append(Frame(head & 0xFF, flags, sid, data[9 : 9 + length]))
            data = data[9 + length :]
        return out

    def start(self, **peer_settings: int) -> None:
        frames = self.send(frame(SETTINGS, 0, 0, settings_payload(**peer_settings)), preface=True)
        kinds = [(f.kind, f.flags) for f in frames]
        assert kinds == [(SETTINGS, 0), (WINDOW_UPDATE, 0), (SETTINGS, ACK)], kinds

    def call(self, sid: int, message: bytes, path: str = CHECK_PATH) -> list[Frame]:
        return self.send(
            frame(HEADERS, END_HEADERS, sid, request_block(path)),
            frame(DATA, END_STREAM, sid, grpc_message(message)),
        )


def goaway_code(frames: list[Frame]) -> int | None:
    codes = [struct.unpack(">II", f.payload[:8])[1] for f in frames if f.kind == GOAWAY]
    return codes[-1] if codes else None


def test_a_unary_call_and_its_answer() -> None:
    peer = Peer()
    peer.start()
    frames = peer.call(1, b"hello")
    assert peer.requests[0][0] == 1 and peer.requests[0][2] == b"hello"
    assert peer.requests[0][1][":path"] == CHECK_PATH
    assert [(f.kind, f.flags, f.stream) for f in frames] == [
        (HEADERS, END_HEADERS, 1),
        (DATA, 0, 1),
        (HEADERS, END_HEADERS | END_STREAM, 1),
    ]
    assert dict(peer.decoder.decode(frames[0].payload)) == {
        ":status": "200",
        "content-type": "application/grpc",
    }
    assert frames[1].payload == grpc_message(b"answer:hello")
    assert dict(peer.decoder.decode(frames[2].payload)) == {"grpc-status": "0"}
    assert peer.conn.open_streams == 0


def test_many_calls_split_across_reads_in_any_way() -> None:
    peer = Peer()
    peer.start()
    wire = b"".join(
        frame(HEADERS, END_HEADERS, sid, request_block())
        + frame(DATA, END_STREAM, sid, grpc_message(b"%d" % sid))
        for sid in range(1, 40, 2)
    )
    for i in range(0, len(wire), 7):
        peer.conn.receive(wire[i : i + 7])
    assert [body for _, _, body in peer.requests] == [b"%d" % s for s in range(1, 40, 2)]


def test_continuation_padding_and_priority() -> None:
    peer = Peer()
    peer.start()
    block = request_block()
    padded = bytes([3]) + b"\x00\x00\x00\x00\x10" + block[:10] + b"\x00" * 3
    peer.send(
        frame(HEADERS, PADDED | PRIORITY_FLAG, 1, padded),
        frame(CONTINUATION, END_HEADERS, 1, block[10:]),
        frame(DATA, PADDED | END_STREAM, 1, bytes([2]) + grpc_message(b"x") + b"\x00\x00"),
    )
    assert peer.requests == [(1, dict(Decoder().decode(block)), b"x")]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (grpc_message(b"abc", compressed=1), None),
        (grpc_message(b"abc")[:-1], None),
        (grpc_message(b"abc") + grpc_message(b"d"), None),
        (b"", None),
        (grpc_message(b""), b""),
    ],
)
def test_only_one_uncompressed_message_is_a_request(body: bytes, expected: bytes | None) -> None:
    peer = Peer(answer=False)
    peer.start()
    peer.send(frame(HEADERS, END_HEADERS, 1, request_block()), frame(DATA, END_STREAM, 1, body))
    assert peer.requests[0][2] == expected


def test_error_status_is_trailers_only() -> None:
    peer = Peer(answer=False)
    peer.start()
    peer.call(1, b"x")
    peer.conn.respond_status(1, 12, "Method not found: /x 100%")
    (f,) = peer.frames()
    assert (f.kind, f.flags) == (HEADERS, END_HEADERS | END_STREAM)
    assert dict(peer.decoder.decode(f.payload))["grpc-status"] == "12"
    assert dict(peer.decoder.decode(f.payload))["grpc-message"] == "Method not found: /x 100%25"


def test_response_waits_for_flow_control_window() -> None:
    peer = Peer()
    peer.start(initial_window=4)
    first = peer.call(1, b"hello")  # the answer: 5-byte prefix + 12 bytes
    assert [(f.kind, len(f.payload)) for f in first] == [(HEADERS, 20), (DATA, 4)]
    second = peer.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 6)))
    assert [(f.kind, len(f.payload)) for f in second] == [(DATA, 6)]
    third = peer.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 100)))
    assert [(f.kind, f.flags) for f in third] == [(DATA, 0), (HEADERS, END_HEADERS | END_STREAM)]
    sent = b"".join(f.payload for f in first + second + third if f.kind == DATA)
    assert sent == grpc_message(b"answer:hello")


def test_settings_change_of_window_applies_to_open_streams() -> None:
    peer = Peer(answer=False)
    peer.start(initial_window=0)
    peer.call(1, b"x")
    peer.conn.respond(1, b"abc")
    assert [f.kind for f in peer.frames()] == [HEADERS]
    frames = peer.send(frame(SETTINGS, 0, 0, settings_payload(initial_window=65535)))
    assert [f.kind for f in frames] == [SETTINGS, DATA, HEADERS]


def test_large_answers_are_split_at_the_peer_frame_size() -> None:
    peer = Peer(answer=False)
    peer.start()
    peer.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20)))
    peer.call(1, b"x")
    peer.conn.respond(1, b"z" * 40000)
    sizes = [len(f.payload) for f in peer.frames() if f.kind == DATA]
    assert sizes == [16384, 16384, 40005 - 32768]


def test_ping_is_answered() -> None:
    peer = Peer()
    peer.start()
    (f,) = peer.send(frame(PING, 0, 0, b"12345678"))
    assert (f.kind, f.flags, f.payload) == (PING, ACK, b"12345678")
    assert peer.send(frame(PING, ACK, 0, b"12345678")) == []


def test_reset_before_the_answer_drops_it() -> None:
    peer = Peer(answer=False)
    peer.start()
    peer.call(1, b"x")
    peer.send(frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))
    peer.conn.respond(1, b"late")
    assert peer.frames() == []


def test_goaway_refuses_new_streams_and_lets_open_ones_finish() -> None:
    peer = Peer(answer=False)
    peer.start()
    peer.call(1, b"x")
    peer.conn.goaway()
    (f,) = peer.frames()
    assert f.kind == GOAWAY and struct.unpack(">II", f.payload) == (1, 0)
    frames = peer.call(3, b"y")
    assert [(f.kind, f.stream) for f in frames] == [(RST_STREAM, 3)]
    assert struct.unpack(">I", frames[0].payload)[0] == REFUSED_STREAM
    peer.conn.respond(1, b"done")
    assert [f.kind for f in peer.frames()] == [HEADERS, DATA, HEADERS]


def test_oversized_message_is_resource_exhausted() -> None:
    peer = Peer()
    peer.start()
    peer.send(frame(HEADERS, END_HEADERS, 1, request_block()))
    chunk = frame(DATA, 0, 1, b"\x00" * 16384)
    out = []
    for _ in range(4 * 64 + 2):  # a little over 4 MiB, in windows the server grants
        out += peer.send(chunk)
    trailers = [f for f in out if f.kind == HEADERS]
    assert dict(peer.decoder.decode(trailers[0].payload))["grpc-status"] == "8"
    assert not peer.requests and not peer.conn.closed


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (frame(HEADERS, END_HEADERS, 2, request_block()), PROTOCOL_ERROR),  # even stream id
        (frame(HEADERS, 0, 1, b"\x82") + frame(PING, 0, 0, b"x" * 8), PROTOCOL_ERROR),
        (frame(DATA, 0, 0, b"x"), PROTOCOL_ERROR),
        (frame(DATA, 0, 5, b"x"), PROTOCOL_ERROR),  # idle stream
        (frame(SETTINGS, 0, 0, b"\x00\x04"), FRAME_SIZE_ERROR),
        (frame(SETTINGS, 0, 0, settings_payload(initial_window=1 << 31)), FLOW_CONTROL_ERROR),
        (frame(SETTINGS, 0, 0, settings_payload(max_frame=100)), PROTOCOL_ERROR),
        (frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)), PROTOCOL_ERROR),
        (frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", (1 << 31) - 1)), FLOW_CONTROL_ERROR),
        (frame(PING, 0, 0, b"short"), FRAME_SIZE_ERROR),
        (frame(5, END_HEADERS, 1, b"\x00\x00\x00\x02"), PROTOCOL_ERROR),  # PUSH_PROMISE
        (frame(HEADERS, END_HEADERS, 1, b"\xbe"), 9),  # bad HPACK index: COMPRESSION_ERROR
        (b"\x00\x40\x01\x00\x00\x00\x00\x00\x01" + b"x" * 16385, FRAME_SIZE_ERROR),
    ],
)
def test_protocol_violations_end_the_connection(wire: bytes, code: int) -> None:
    peer = Peer()
    peer.start()
    frames = peer.send(wire)
    assert goaway_code(frames) == code
    assert peer.conn.closed
    assert peer.send(frame(PING, 0, 0, b"12345678")) == []  # nothing more is processed


def test_bad_preface_is_refused() -> None:
    peer = Peer()
    peer.conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert goaway_code(peer.frames()) == PROTOCOL_ERROR and peer.conn.closed


def test_a_flood_of_empty_continuations_is_cut_off_in_linear_time() -> None:
    """Regression: the block size was re-summed over all fragments on every CONTINUATION, and
    empty ones added nothing: 16,000 of them (144 KB) held the event loop for 3 s, and more
    grew quadratically, without ever reaching the limit. Every frame now counts its header."""
    peer = Peer()
    peer.start()
    flood = frame(CONTINUATION, 0, 1) * 40_000  # 360 KB: over the 256 KiB block limit
    started = time.perf_counter()
    frames = peer.send(frame(HEADERS, END_STREAM, 1, request_block()[:5]), flood)
    assert time.perf_counter() - started < 2.0  # ~0.05 s; the quadratic version took ~20 s
    assert goaway_code(frames) == ENHANCE_YOUR_CALM and peer.conn.closed


def test_an_error_answer_fits_one_frame_whatever_its_text() -> None:
    """Regression: ``grpc-message`` carried the whole text, and the front puts the client's
    ``:path`` into it: a 16 KiB path made a HEADERS frame over the peer's maximum frame size
    (a FRAME_SIZE_ERROR for the client). The text is cut to fit."""
    peer = Peer(answer=False)
    peer.start()
    peer.call(1, b"x")
    peer.conn.respond_status(1, 12, "Method not found: /" + "\xff" * 20_000)
    (f,) = peer.frames()
    assert (f.kind, f.flags) == (HEADERS, END_HEADERS | END_STREAM)
    assert len(f.payload) <= 16384
    fields = dict(peer.decoder.decode(f.payload))
    assert fields["grpc-status"] == "12"
    assert fields["grpc-message"].startswith("Method not found: /%C3%BF%C3%BF")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10), st.integers(0, 255), st.integers(0, 9), st.binary(max_size=40)
        ),
        max_size=12,
    )
)
def test_arbitrary_frames_never_raise(frames: list[tuple[int, int, int, bytes]]) -> None:
    peer = Peer()
    peer.start()
    for kind, flags, sid, payload in frames:
        peer.conn.receive(frame(kind, flags, sid, payload))
    peer.frames()


# --- sniffing and the ACK filter -------------------------------------------------------------

CHECK_CALL = frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 1, request_block())


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (PREFACE + CHECK_CALL, "fast"),
        (
            PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 1, request_block(HEALTH)),
            "fast",
        ),
        (
            PREFACE + frame(HEADERS, END_HEADERS, 1, request_block("/grpc.health.v1.Health/Watch")),
            "splice",
        ),
        (PREFACE[:10], None),
        (PREFACE + frame(SETTINGS, 0, 0), None),
        (PREFACE + CHECK_CALL[:-3], None),
        (b"GET / HTTP/1.1\r\n\r\n", "splice"),
        (PREFACE + frame(HEADERS, END_HEADERS, 1, b"\xbe"), "splice"),  # undecodable
        (
            PREFACE + frame(HEADERS, 0, 1, request_block()[:5]) + frame(PING, 0, 0, b"x" * 8),
            "splice",
        ),
        (
            PREFACE
            + frame(HEADERS, 0, 1, request_block()[:5])
            + frame(CONTINUATION, END_HEADERS, 1, request_block()[5:]),
            "fast",
        ),
    ],
)
def test_sniff(data: bytes, verdict: str | None) -> None:
    assert sniff(data, FAST_PATHS) == verdict


ACKED = PREFACE + frame(SETTINGS, 0, 0, b"") + frame(SETTINGS, ACK, 0) + frame(PING, 0, 0, b"p" * 8)


@given(st.lists(st.integers(0, len(ACKED)), max_size=6))
def test_ack_filter_removes_exactly_the_first_ack_however_bytes_arrive(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(ACKED)]
    ack_filter = AckFilter()
    out = b"".join(ack_filter.feed(ACKED[a:b]) for a, b in itertools.pairwise(points))
    out += ack_filter.feed(frame(SETTINGS, ACK, 0))  # later ACKs are the server's business
    expected = PREFACE + frame(SETTINGS, 0, 0) + frame(PING, 0, 0, b"p" * 8)
    assert out == expected + frame(SETTINGS, ACK, 0)
