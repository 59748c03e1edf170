"""A raw HTTP/2 client for fuzzing the front: bytes out, frames back, judged here.

Independent of ``authsvc.h2wire``'s framing: frames are packed and walked with this module's own
code (any length, any stream id, reserved bit included). The only authsvc code used is the
HPACK ``Decoder`` to read the server's header blocks (it is pinned to RFC 7541's examples).
"""

from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass, field

from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2 as ext
from authsvc.h2wire import Decoder, literal

__all__ = [
    "CHECK",
    "PREFACE",
    "Frame",
    "Reply",
    "Walk",
    "check_block",
    "check_response",
    "converse",
    "grpc_body",
    "raw_frame",
    "streams_of",
    "walk",
]

CHECK = "/envoy.service.auth.v3.Authorization/Check"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, GOAWAY, CONTINUATION = 0, 1, 4, 6, 7, 9
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
DEFAULT_MAX_FRAME = 16384
LIVE_PING = b"\xf0live?\x0f!"  # the payload of the PING sent after every fuzzed wire


def raw_frame(kind: int, flags: int, sid: int, payload: bytes, length: int | None = None) -> bytes:
    """A frame whose length field says ``length`` (default: the payload's true length)."""
    declared = len(payload) if length is None else length
    return struct.pack(">I", declared)[1:] + bytes([kind, flags]) + struct.pack(">I", sid) + payload


def check_block(path: str = CHECK, *extra: tuple[str, str]) -> bytes:
    """A gRPC request header block (literals without indexing, names by static index)."""
    block = b"\x83\x86" + literal(":path", path) + literal(":authority", "authsvc")
    block += literal("content-type", "application/grpc") + literal("te", "trailers")
    return block + b"".join(literal(name, value) for name, value in extra)


def grpc_body(message: bytes, compressed: int = 0, declared: int | None = None) -> bytes:
    """One gRPC length-prefixed message; ``declared`` may lie about its length."""
    size = len(message) if declared is None else declared
    return bytes([compressed]) + struct.pack(">I", size & 0xFFFFFFFF) + message


@dataclass(frozen=True)
class Frame:
    kind: int
    flags: int
    sid: int
    payload: bytes


@dataclass
class Walk:
    """How the server must see a client wire after the preface: whole frames and a tail."""

    frames: list[Frame]
    missing: int  # bytes the last (unfinished) frame still needs; 0 at a frame boundary
    oversized: bool  # some frame declares more than the default maximum frame size

    @property
    def max_frame(self) -> int:
        """The largest frame the server may send: SETTINGS_MAX_FRAME_SIZE values the wire set."""
        values = [DEFAULT_MAX_FRAME]
        for f in self.frames:
            if f.kind == SETTINGS and not f.flags & ACK and len(f.payload) % 6 == 0:
                for offset in range(0, len(f.payload), 6):
                    key, value = struct.unpack_from(">HI", f.payload, offset)
                    if key == 5 and DEFAULT_MAX_FRAME <= value < 1 << 24:
                        values.append(value)
        return max(values)


def walk(data: bytes) -> Walk:
    """Split ``data`` (no preface) into frames by their length fields."""
    frames, pos, oversized = [], 0, False
    while len(data) - pos >= 9:
        length = int.from_bytes(data[pos : pos + 3], "big")
        oversized |= length > DEFAULT_MAX_FRAME
        kind, flags = data[pos + 3], data[pos + 4]
        sid = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        if len(data) - pos - 9 < length:
            return Walk(frames, length - (len(data) - pos - 9), oversized)
        frames.append(Frame(kind, flags, sid, data[pos + 9 : pos + 9 + length]))
        pos += 9 + length
    return Walk(frames, 9 - (len(data) - pos) if len(data) > pos else 0, oversized)


@dataclass
class Reply:
    """What the server wrote on one connection."""

    frames: list[Frame] = field(default_factory=list)
    rest: bytes = b""  # bytes after the last whole frame
    eof: bool = False
    alive: bool = False  # the server acknowledged LIVE_PING

    @classmethod
    def parse(cls, data: bytes, eof: bool) -> Reply:
        w = walk(data)
        used = sum(9 + len(f.payload) for f in w.frames)
        alive = any(f.kind == PING and f.flags & ACK and f.payload == LIVE_PING for f in w.frames)
        return cls(w.frames, data[used:], eof, alive)


def converse(
    path: str,
    wire: bytes,
    *,
    cuts: tuple[int, ...] = (),
    patience: float = 1.0,
    timeout: float = 5.0,
) -> tuple[Reply, float | None]:
    """Send ``wire`` (in pieces at ``cuts``, a moment apart, so that the server reads them
    separately) then a PING on a new connection to the Unix socket ``path``, reading all
    along. Once the PING is acknowledged (or after ``patience`` seconds without that), half-
    close and read to EOF (at most ``timeout`` seconds). Returns the reply and how long the
    server took to hang up after the half-close (``None``: it hung up before)."""
    received = bytearray()
    out = wire + raw_frame(PING, 0, 0, LIVE_PING)
    shut_at: float | None = None
    eof = False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.settimeout(timeout)
        sent = 0
        for cut in sorted({c for c in cuts if 0 < c < len(wire)}):
            try:
                sock.sendall(out[sent:cut])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent = cut
            time.sleep(0.002)
        out = out[sent:]
        sock.setblocking(False)
        deadline = time.monotonic() + patience
        while True:
            now = time.monotonic()
            if shut_at is None and (now >= deadline or (not out and _alive(received))):
                sock.shutdown(socket.SHUT_WR)
                shut_at, deadline, out = now, now + timeout, b""
            elif now >= deadline:
                break
            readable, writable, _ = select.select(
                [sock], [sock] if out else [], [], max(0.0, deadline - now)
            )
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    eof = True
                    break
                received += chunk
            if writable and out:
                try:
                    out = out[sock.send(out[:65536]) :]
                except (BrokenPipeError, ConnectionResetError):
                    out = b""  # the server hung up; what it wrote is still to be read
    took = time.monotonic() - shut_at if shut_at is not None else None
    return Reply.parse(bytes(received), eof), took


def _alive(received: bytearray) -> bool:
    return LIVE_PING in received and Reply.parse(bytes(received), False).alive


@dataclass
class Stream:
    headers: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (flags, fields)
    data: bytes = b""

    @property
    def grpc_status(self) -> str | None:
        ended = [h for flags, h in self.headers if flags & END_STREAM]
        return ended[-1].get("grpc-status") if ended else None

    def message(self) -> bytes | None:
        """The single gRPC message of the response body, if the body is exactly one."""
        body = self.data
        if len(body) >= 5 and body[0] == 0 and int.from_bytes(body[1:5], "big") == len(body) - 5:
            return body[5:]
        return None


def streams_of(reply: Reply) -> dict[int, Stream]:
    """The server's responses per stream (header blocks decoded, DATA joined)."""
    decoder = Decoder()
    streams: dict[int, Stream] = {}
    for f in reply.frames:
        if f.kind == HEADERS:
            fields = dict(decoder.decode(f.payload))
            streams.setdefault(f.sid, Stream()).headers.append((f.flags, fields))
        elif f.kind == DATA:
            stream = streams.setdefault(f.sid, Stream())
            stream.data += f.payload
    return streams


def check_response(stream: Stream) -> ext.CheckResponse | None:
    message = stream.message()
    return None if message is None else ext.CheckResponse.FromString(message)
