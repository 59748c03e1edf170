"""How a server tells HTTP/2 connections apart by their first request, and what it must hide
when it relays a connection to another HTTP/2 server after having answered its preface.

``sniff`` classifies a connection by the ``:path`` of its first request; ``AckFilter``
removes, from the relayed client bytes, the client's ACK of the empty SETTINGS frame sent
while still listening; ``SpliceGuard`` holds back every relayed header block until it is
complete and decoded, and refuses ones the next server must not see. All pure: bytes in,
bytes (or a verdict) out.
"""

from __future__ import annotations

from collections.abc import Collection

from authsvc.h2wire._enums import Flag, FrameType
from authsvc.h2wire._errors import FrameError, HpackError, SpliceRefused
from authsvc.h2wire._frames import PREFACE, frame_head, header_fragment, iter_frames
from authsvc.h2wire._hpack import Decoder
from authsvc.h2wire._limits import FloodLimits

__all__ = ["AckFilter", "SpliceGuard", "SpliceRefused", "sniff"]

_HEADERS, _CONT = int(FrameType.HEADERS), int(FrameType.CONTINUATION)
_SETTINGS, _ACK, _END_HEADERS = int(FrameType.SETTINGS), int(Flag.ACK), int(Flag.END_HEADERS)
MAX_HEADER_BLOCK = FloodLimits().max_header_block
_SNIFF_HUFFMAN = FloodLimits().max_huffman_bytes
_GUARD_HUFFMAN, _GUARD_HUFFMAN_PER_BLOCK = 64 << 10, 1 << 10


def sniff(data: bytes, fast_paths: Collection[str]) -> str | None:
    """``"fast"`` if the first request on a connection has a ``:path`` in ``fast_paths``,
    ``"splice"`` for anything else (including garbage), ``None`` while more bytes are needed
    to tell."""
    if len(data) < len(PREFACE):
        return None if PREFACE.startswith(data) else "splice"
    if not data.startswith(PREFACE):
        return "splice"
    parts: list[bytes] = []
    for kind, flags, _, start, stop in iter_frames(data, len(PREFACE)):
        if kind == _HEADERS or (kind == _CONT and parts):
            try:
                parts.append(header_fragment(kind, flags, data[start:stop]))
            except FrameError:
                return "splice"
        elif parts:
            return "splice"  # a HEADERS not followed by its CONTINUATION
        else:
            continue
        if flags & _END_HEADERS:
            decoder = Decoder()
            decoder.huffman_left = _SNIFF_HUFFMAN
            try:
                headers = decoder.decode(b"".join(parts))
            except HpackError:
                return "splice"
            return "fast" if dict(headers).get(":path") in fast_paths else "splice"
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
        for kind, flags, _, _, stop in iter_frames(buf, pos):
            if kind == _SETTINGS and flags & _ACK:
                self.done = True
                out.append(buf[stop:])
                self._buf = b""
                return b"".join(out)
            out.append(buf[pos:stop])
            pos = stop
        self._buf = buf[pos:]
        return b"".join(out)


class SpliceGuard:
    """Client→server bytes of a spliced connection, with every header block held back until it
    is complete and decoded (one HPACK decoder, in step with the client's encoder).

    Why (authsvc's case): grpc.aio's serving loop decodes a request's method as UTF-8 outside any error handling: a
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
        self._decoder.huffman_left = _GUARD_HUFFMAN

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
            length, kind, flags, _ = frame_head(buf, pos)
            if kind not in (_HEADERS, _CONT) or not (self._held or kind == _HEADERS):
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
            try:
                self._parts.append(header_fragment(kind, flags, buf[pos + 9 : pos + 9 + length]))
            except FrameError as exc:
                raise SpliceRefused(str(exc)) from None
            pos += 9 + length
            if flags & _END_HEADERS:
                left = self._decoder.huffman_left + _GUARD_HUFFMAN_PER_BLOCK
                self._decoder.huffman_left = min(left, _GUARD_HUFFMAN)
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
