"""Hypothesis strategies for fuzzing the front: HTTP/2 client wires, well-formed or not.

No drawn value ever holds a valid key: the one test that needs one gets a plan here and
builds its wire with the key itself (so a failing example can be printed safely).
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

from hypothesis import strategies as st

from tests._mutate import mutate
from tests.h2wire.test_fuzz_hpack import Encoder, fields, hostile_blocks
from tests.server._h2wire import CHECK, PREFACE, check_block, grpc_body, raw_frame
from tests.server.conftest import request

__all__ = [
    "DATA",
    "END_HEADERS",
    "END_STREAM",
    "HEADERS",
    "NO_KEY",
    "SETTINGS",
    "exchange",
    "fast_wire",
    "interleaved",
    "other_wire",
]

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x4, 0x8, 0x20

NO_KEY = request().SerializeToString()
NOT_A_KEY = "sk-fuzz-not-any-key-0123456789abcdef"  # unknown to every ring (and not a secret)
WRONG_KEY = request(headers={"authorization": f"Bearer {NOT_A_KEY}"}).SerializeToString()
PATHS = [CHECK, CHECK, CHECK, "/envoy.service.auth.v3.Authorization/Nope", "/x/y", "", "*"]

u32 = st.one_of(
    st.sampled_from([0, 1, 65535, 2**31 - 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1)
)
sids = st.one_of(st.sampled_from([0, 1, 2, 3, 5, 7, 9, 11, 2**31 - 1, 2**31 + 1]), u32)
flag_sets = st.one_of(
    st.sampled_from([0, END_STREAM, END_HEADERS, END_STREAM | END_HEADERS, PADDED, PRIORITY_FLAG]),
    st.integers(0, 255),
)
latin1_text = st.text(st.characters(max_codepoint=255), max_size=30)
long_text = st.builds(  # one character many times, lengths around the frame and block limits
    lambda c, n: c * n,
    st.characters(max_codepoint=255),
    st.one_of(st.integers(0, 20000), st.sampled_from([4096, 16384, 20000])),
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A request body: gRPC-framed CheckRequest without a valid key, honest or lying."""
    message = draw(st.sampled_from([NO_KEY, WRONG_KEY, b"", b"\xff\xff"]))
    kind = draw(st.integers(0, 5))
    if kind == 0:  # the length prefix lies
        return grpc_body(message, declared=draw(st.one_of(st.integers(0, 600), u32)))
    if kind == 1:  # the compressed flag, or another flag byte
        return grpc_body(message, compressed=draw(st.integers(1, 255)))
    if kind == 2:  # two messages, or a truncated one
        body = grpc_body(message) + grpc_body(message)
        return body[: draw(st.integers(0, len(body)))]
    if kind == 3:
        return draw(st.binary(max_size=64))
    return grpc_body(message)


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind == 0:  # hostile HPACK
        return draw(hostile_blocks)
    if kind == 1:  # well-formed fields of any kind (Huffman, indexing, ...)
        encoder = Encoder()
        return b"".join(encoder.field(*f) for f in draw(st.lists(fields, max_size=6)))
    path = draw(st.one_of(st.sampled_from(PATHS), latin1_text, long_text))
    extra = draw(st.lists(st.tuples(latin1_text, st.one_of(latin1_text, long_text)), max_size=2))
    return check_block(path, *extra)


def _pad(draw: st.DrawFn, body: bytes) -> bytes:
    """A PADDED payload: pad length, body, padding; the pad length may lie."""
    pad = draw(st.integers(0, 255))
    actual = draw(st.one_of(st.just(pad), st.integers(0, 8)))
    return bytes([pad]) + body + b"\x00" * actual


@st.composite
def any_frame(draw: st.DrawFn) -> bytes:
    """One frame of any type, flags, stream, payload and declared length."""
    kind = draw(st.one_of(st.integers(0, 9), st.integers(10, 255)))
    flags = draw(flag_sets)
    sid = draw(sids)
    if kind == DATA:
        payload = draw(messages())
    elif kind in (HEADERS, CONTINUATION):
        payload = draw(header_blocks())
        if kind == HEADERS and flags & PRIORITY_FLAG:
            payload = draw(st.binary(min_size=0, max_size=5)) + payload
    elif kind == SETTINGS:
        pairs = st.tuples(st.integers(0, 8), u32)
        payload = b"".join(struct.pack(">HI", k, v) for k, v in draw(st.lists(pairs, max_size=4)))
    elif kind in (WINDOW_UPDATE, RST_STREAM):
        payload = struct.pack(">I", draw(u32))
    elif kind == PRIORITY:
        payload = struct.pack(">IB", draw(u32), draw(st.integers(0, 255)))
    elif kind == PING:
        payload = draw(st.binary(min_size=8, max_size=8))
    elif kind == GOAWAY:
        payload = struct.pack(">II", draw(u32), draw(u32)) + draw(st.binary(max_size=8))
    else:
        payload = draw(st.binary(max_size=32))
    if kind in (DATA, HEADERS) and flags & PADDED:
        payload = _pad(draw, payload)
    if draw(st.integers(0, 9)) == 0:  # a frame whose payload is of the wrong size
        payload = payload[: draw(st.integers(0, len(payload)))] + draw(st.binary(max_size=3))
    length = None
    if draw(st.integers(0, 14)) == 0:  # the length field lies, or is huge
        length = draw(st.one_of(st.integers(0, len(payload) + 40), st.integers(0, 2**24 - 1)))
    return raw_frame(kind, flags, sid, payload, length)


@st.composite
def request_frames(draw: st.DrawFn, sid: int, block: bytes | None = None) -> bytes:
    """A request on ``sid``: its header block (maybe split into CONTINUATIONs, padded, with
    priority) and its body (maybe split into DATA frames), in order."""
    block = draw(header_blocks()) if block is None else block
    cuts = sorted(draw(st.lists(st.integers(0, len(block)), max_size=3)))
    cuts += list(range(16000, len(block), 16000))  # no fragment above the maximum frame size
    points = [0, *sorted(cuts), len(block)]
    parts = [block[a:b] for a, b in itertools.pairwise(points)]
    body = draw(messages())
    headers_only = draw(st.integers(0, 7)) == 0
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        flags = END_HEADERS if last else 0
        if i == 0:
            flags |= END_STREAM if headers_only else 0
            if draw(st.booleans()) and len(part) < 16000:
                flags |= PRIORITY_FLAG
                part = struct.pack(">IB", 0, 15) + part
            if draw(st.booleans()) and len(part) < 16000:
                flags |= PADDED
                part = bytes([3]) + part + b"\x00" * 3
        out.append(raw_frame(HEADERS if i == 0 else CONTINUATION, flags, sid, part))
    if not headers_only:
        chunks = draw(st.integers(1, 3))
        size = -(-len(body) // chunks) or 1
        pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        for i, piece in enumerate(pieces):
            flags = END_STREAM if i == len(pieces) - 1 and draw(st.integers(0, 9)) else 0
            out.append(raw_frame(DATA, flags, sid, piece))
    return b"".join(out)


@st.composite
def units(draw: st.DrawFn, first_sid: int) -> list[bytes]:
    """Frames after the first request: arbitrary ones, more requests, floods."""
    out, sid = [], first_sid
    for choice in draw(st.lists(st.integers(0, 9), max_size=10)):
        if choice <= 5:
            out.append(draw(any_frame()))
        elif choice <= 8:
            out.append(draw(request_frames(sid)))
            sid += 2
        elif draw(st.booleans()):  # a flood of one frame
            out.append(draw(any_frame()) * draw(st.integers(2, 200)))
        else:  # a header block in countless (empty) CONTINUATIONs
            n = draw(st.sampled_from([3, 300, 300, 300, 30_000]))
            out.append(raw_frame(HEADERS, 0, sid, check_block()[:3]))
            out.append(raw_frame(CONTINUATION, 0, sid, draw(st.binary(max_size=1))) * n)
            sid += 2
    return out


@st.composite
def fast_wire(draw: st.DrawFn) -> bytes:
    """The preface, maybe SETTINGS, a Check (the connection is fast), then anything."""
    head = PREFACE + draw(st.sampled_from([raw_frame(SETTINGS, 0, 0, b""), b""]))
    head += draw(request_frames(1, block=check_block()))
    return head + b"".join(draw(units(3)))


@st.composite
def other_wire(draw: st.DrawFn) -> bytes:
    """Connections the front does not keep: no Check first (spliced), or no HTTP/2 at all."""
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return PREFACE + b"".join(draw(units(1)))
    if kind == 1:
        return PREFACE + raw_frame(SETTINGS, 0, 0, b"") + draw(request_frames(1))
    return draw(st.one_of(st.binary(max_size=64), st.just(PREFACE[:10])))


@st.composite
def exchange(draw: st.DrawFn) -> bytes:
    """A valid two-request exchange (no valid key), mutated frame-wise then byte-wise."""
    frames = [
        raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535)),
        raw_frame(HEADERS, END_HEADERS, 1, check_block()),
        raw_frame(DATA, END_STREAM, 1, grpc_body(NO_KEY)),
        raw_frame(HEADERS, 0, 3, check_block()[:9]),
        raw_frame(CONTINUATION, END_HEADERS, 3, check_block()[9:]),
        raw_frame(DATA, 0, 3, grpc_body(WRONG_KEY)[:20]),
        raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1000)),
        raw_frame(DATA, END_STREAM | PADDED, 3, bytes([4]) + grpc_body(WRONG_KEY)[20:] + bytes(4)),
        raw_frame(PING, 0, 0, b"12345678"),
    ]
    for _ in range(draw(st.integers(0, 3))):
        op, i, j = draw(st.integers(0, 2)), draw(st.integers(0, 8)), draw(st.integers(0, 8))
        i, j = i % len(frames), j % len(frames)
        if op == 0 and len(frames) > 1:
            del frames[i]
        elif op == 1:
            frames.insert(j, frames[i])
        else:
            frames[i], frames[j] = frames[j], frames[i]
    return mutate(draw, PREFACE + b"".join(frames), edits=4, repeat=40, insert=8)


@dataclass(frozen=True)
class Interleaving:
    """Stream 1 (the test's keyed message) and stream 3 (no key), split and interleaved."""

    cuts: tuple[int, int]  # how many DATA frames for stream 1 and for stream 3
    order: tuple[bool, ...]  # True: next frame of stream 1, False: of stream 3
    noise: tuple[tuple[int, bytes], ...]  # (position, frame)

    def wire(self, keyed: bytes) -> tuple[bytes, bool]:
        def frames(sid: int, message: bytes, parts: int) -> list[bytes]:
            body = grpc_body(message)
            size = -(-len(body) // parts)
            pieces = [body[i : i + size] for i in range(0, len(body), size)]
            out = [raw_frame(HEADERS, END_HEADERS, sid, check_block())]
            ends = [END_STREAM if i == len(pieces) - 1 else 0 for i in range(len(pieces))]
            return out + [raw_frame(DATA, e, sid, p) for e, p in zip(ends, pieces, strict=True)]

        one, three = frames(1, keyed, self.cuts[0]), frames(3, NO_KEY, self.cuts[1])
        merged = [one.pop(0)]  # stream 1 opens first (stream ids increase)
        for pick in self.order:
            source = one if (pick and one) or not three else three
            if source:
                merged.append(source.pop(0))
        merged += one + three
        for position, noise in self.noise:
            merged.insert(position % (len(merged) + 1), noise)
        return PREFACE + raw_frame(SETTINGS, 0, 0, b"") + b"".join(merged), bool(self.noise)


@st.composite
def interleaved(draw: st.DrawFn) -> Interleaving:
    return Interleaving(
        (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        tuple(draw(st.lists(st.booleans(), max_size=10))),
        tuple(draw(st.lists(st.tuples(st.integers(0, 20), any_frame()), max_size=3))),
    )
