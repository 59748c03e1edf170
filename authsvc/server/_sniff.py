"""How the fast front tells connections apart, and what it must hide when it steps aside.

``sniff`` classifies a connection by its first request (a Check from Envoy is answered by the
front; anything else is relayed to the private gRPC server); ``AckFilter`` removes, from the
relayed client bytes, the client's ACK of the empty SETTINGS frame the front sent while it
was still listening; ``SpliceGuard`` holds back every relayed request the private server must
not see. ``internal_address`` names the private server's socket. All pure.
"""

from __future__ import annotations

import os
import secrets
import struct
import sys
import tempfile

from authsvc.server._h2 import (
    ACK,
    CONTINUATION,
    END_HEADERS,
    HEADERS,
    MAX_HEADER_BLOCK,
    PADDED,
    PREFACE,
    PRIORITY_FLAG,
    SETTINGS,
)
from authsvc.server._hpack import Decoder, HpackError

__all__ = [
    "CHECK_PATH",
    "FAST_PATHS",
    "HEALTH_PATH",
    "AckFilter",
    "SpliceGuard",
    "SpliceRefused",
    "internal_address",
    "sniff",
]

CHECK_PATH = "/envoy.service.auth.v3.Authorization/Check"
HEALTH_PATH = "/grpc.health.v1.Health/Check"
FAST_PATHS = frozenset({CHECK_PATH, HEALTH_PATH})
"""First requests that make a connection fast: Envoy's checks, and probes' health checks."""
_HEAD = struct.Struct(">IBI")


def internal_address() -> tuple[str, str, str | None]:
    """(gRPC target, asyncio connect path, directory to remove) for the private server."""
    name = f"authsvc-{os.getpid()}-{secrets.token_hex(8)}"
    if sys.platform.startswith("linux"):
        return f"unix-abstract:{name}", "\0" + name, None
    directory = tempfile.mkdtemp(prefix="authsvc-")
    path = os.path.join(directory, "grpc.sock")
    return f"unix:{path}", path, directory


def sniff(data: bytes) -> str | None:
    """``"fast"`` if the first request on a connection is a Check or a Health/Check,
    ``"splice"`` for anything else (including garbage), ``None`` while more bytes are needed
    to tell."""
    if len(data) < len(PREFACE):
        return None if PREFACE.startswith(data) else "splice"
    if not data.startswith(PREFACE):
        return "splice"
    pos, parts, end = len(PREFACE), list[bytes](), len(data)
    while end - pos >= 9:
        head, flags, _ = _HEAD.unpack_from(data, pos)
        length, kind = head >> 8, head & 0xFF
        if end - pos - 9 < length:
            return None
        payload = data[pos + 9 : pos + 9 + length]
        pos += 9 + length
        if kind == HEADERS:
            if flags & PADDED:
                if not payload or payload[0] >= len(payload):
                    return "splice"
                payload = payload[1 : len(payload) - payload[0]]
            parts.append(payload[5:] if flags & PRIORITY_FLAG else payload)
        elif kind == CONTINUATION and parts:
            parts.append(payload)
        elif parts:
            return "splice"  # a HEADERS not followed by its CONTINUATION
        else:
            continue
        if flags & END_HEADERS:
            try:
                headers = Decoder().decode(b"".join(parts))
            except HpackError:
                return "splice"
            return "fast" if dict(headers).get(":path") in FAST_PATHS else "splice"
    return None


class AckFilter:
    """Client→server bytes of a spliced connection, minus the first SETTINGS ACK frame.

    Feed it the client's bytes from the first one (the preface included); it returns what to
    forward. Once that ACK is gone it passes everything through untouched.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._preface = False
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return data
        buf, out = self._buf + data, []
        pos = 0
        if not self._preface:
            if len(buf) < len(PREFACE):
                self._buf = buf
                return b""
            self._preface, pos = True, len(PREFACE)
            out.append(buf[:pos])
        while len(buf) - pos >= 9:
            head, flags, _ = _HEAD.unpack_from(buf, pos)
            size = 9 + (head >> 8)
            if len(buf) - pos < size:
                break
            if head & 0xFF == SETTINGS and flags & ACK:
                self.done = True
                out.append(buf[pos + size :])
                self._buf = b""
                return b"".join(out)
            out.append(buf[pos : pos + size])
            pos += size
        self._buf = buf[pos:]
        return b"".join(out)


class SpliceRefused(Exception):
    """A relayed request the private gRPC server must not see: close the connection."""


class SpliceGuard:
    """Client→server bytes of a spliced connection, with every header block held back until it
    is complete and decoded (one HPACK decoder, in step with the client's encoder).

    grpc.aio's serving loop decodes a request's method as UTF-8 outside any error handling: a
    single ``:path`` that is not UTF-8 ends the private server (grpcio 1.85), and with it every
    spliced connection after it. So a header block with such a path — or one that cannot be
    decoded, is out of place or larger than the front's own limit — is never forwarded:
    ``feed`` raises ``SpliceRefused``. Other frames pass as they arrive. Bytes that do not start
    with the client preface pass untouched (the server refuses them by itself).
    """

    def __init__(self) -> None:
        self._buf = b""
        self._http2: bool | None = None  # unknown until the preface is in (or refuted)
        self._skip = 0  # bytes of a frame being passed through
        self._held: list[bytes] = []  # the frames of an unfinished header block
        self._parts: list[bytes] = []  # and its fragments
        self._size = 0  # bytes of the held frames (a running total: empty frames count too)
        self._decoder = Decoder()

    def feed(self, data: bytes) -> bytes:
        if self._http2 is False:
            return data
        buf, pos, out = self._buf + data, 0, []
        if self._http2 is None:
            if len(buf) < len(PREFACE) and PREFACE.startswith(buf):
                self._buf = buf
                return b""
            self._http2 = buf.startswith(PREFACE)
            if not self._http2:
                self._buf = b""
                return buf
            out.append(PREFACE)
            pos = len(PREFACE)
        while pos < len(buf):
            if self._skip:
                step = min(self._skip, len(buf) - pos)
                out.append(buf[pos : pos + step])
                pos, self._skip = pos + step, self._skip - step
                continue
            if len(buf) - pos < 9:
                break
            head, flags, _ = _HEAD.unpack_from(buf, pos)
            length, kind = head >> 8, head & 0xFF
            if kind not in (HEADERS, CONTINUATION) or not (self._held or kind == HEADERS):
                if self._held:
                    raise SpliceRefused("a header block interrupted")
                out.append(buf[pos : pos + 9])
                pos, self._skip = pos + 9, length
                continue
            if self._size + 9 + length > MAX_HEADER_BLOCK:
                raise SpliceRefused("header block too large")
            if len(buf) - pos - 9 < length:
                break
            self._held.append(buf[pos : pos + 9 + length])
            self._size += 9 + length
            self._parts.append(_fragment(kind, flags, buf[pos + 9 : pos + 9 + length]))
            pos += 9 + length
            if flags & END_HEADERS:
                self._check(b"".join(self._parts))
                out += self._held
                self._held, self._parts, self._size = [], [], 0
        self._buf = buf[pos:]
        return b"".join(out)

    def _check(self, block: bytes) -> None:
        try:
            headers = self._decoder.decode(block)
        except HpackError:
            raise SpliceRefused("undecodable header block") from None
        for name, value in headers:
            if name == ":path":
                try:
                    value.encode("latin-1").decode("utf-8")
                except UnicodeDecodeError:
                    raise SpliceRefused("a :path that is not UTF-8") from None


def _fragment(kind: int, flags: int, payload: bytes) -> bytes:
    """The header block fragment of a HEADERS (padding, priority removed) or CONTINUATION."""
    if kind != HEADERS:
        return payload
    if flags & PADDED:
        if not payload or payload[0] >= len(payload):
            raise SpliceRefused("bad padding")
        payload = payload[1 : len(payload) - payload[0]]
    return payload[5:] if flags & PRIORITY_FLAG else payload
