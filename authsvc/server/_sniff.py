"""How the fast front tells connections apart, and what it must hide when it steps aside.

``sniff`` classifies a connection by its first request (a Check from Envoy is answered by the
front; anything else is relayed to the private gRPC server); ``AckFilter`` removes, from the
relayed client bytes, the client's ACK of the empty SETTINGS frame the front sent while it
was still listening. ``internal_address`` names the private server's socket. All pure.
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
    PADDED,
    PREFACE,
    PRIORITY_FLAG,
    SETTINGS,
)
from authsvc.server._hpack import Decoder, HpackError

__all__ = ["CHECK_PATH", "FAST_PATHS", "HEALTH_PATH", "AckFilter", "internal_address", "sniff"]

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
