"""HTTP/2 framing (RFC 9113 §4): the one place frame headers are parsed and padding removed.

``iter_frames`` is the frame iterator the connection, the sniffer and the splice filters
share; ``frame_head`` parses one 9-byte header (for callers that pass a frame through before
its payload is in); ``unpad`` and ``header_fragment`` strip padding and priority fields.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from authsvc.h2wire._enums import ErrorCode, Flag, FrameType
from authsvc.h2wire._errors import FrameError

__all__ = [
    "FRAME_HEAD",
    "PREFACE",
    "frame",
    "frame_head",
    "header_fragment",
    "iter_frames",
    "unpad",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The client connection preface (RFC 9113 §3.4)."""
FRAME_HEAD = 9
_HEAD = struct.Struct(">IBI")  # (length << 8 | type), flags, R + stream id
_STREAM_MASK = 0x7FFFFFFF
_PADDED = int(Flag.PADDED)
_PRIORITY = int(Flag.PRIORITY)
_HEADERS = int(FrameType.HEADERS)


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame's bytes."""
    return _HEAD.pack(len(payload) << 8 | kind, flags, stream_id) + payload


def frame_head(buf: bytes, pos: int) -> tuple[int, int, int, int]:
    """``(length, type, flags, stream id)`` of the frame header at ``buf[pos:pos + 9]``."""
    head, flags, sid = _HEAD.unpack_from(buf, pos)
    return head >> 8, head & 0xFF, flags, sid & _STREAM_MASK


def iter_frames(
    buf: bytes, pos: int = 0, max_length: int | None = None
) -> Iterator[tuple[int, int, int, int, int]]:
    """Every complete frame in ``buf`` from ``pos``: ``(type, flags, stream id, start, stop)``,
    the payload being ``buf[start:stop]``; ``stop`` is where the next frame begins, so a caller
    that stops early resumes there. Stops at an incomplete frame. A header announcing more than
    ``max_length`` bytes raises ``FrameError(FRAME_SIZE_ERROR)`` before its payload is in."""
    end = len(buf)
    unpack = _HEAD.unpack_from
    while end - pos >= 9:
        head, flags, sid = unpack(buf, pos)
        length = head >> 8
        if max_length is not None and length > max_length:
            raise FrameError(ErrorCode.FRAME_SIZE_ERROR, f"frame of {length} bytes")
        start = pos + 9
        if end - start < length:
            return
        pos = start + length
        yield head & 0xFF, flags, sid & _STREAM_MASK, start, pos


def unpad(flags: int, payload: bytes) -> bytes:
    """A DATA or HEADERS payload without its padding (RFC 9113 §6.1). Raises ``FrameError``."""
    if not flags & _PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise FrameError(ErrorCode.PROTOCOL_ERROR, "bad padding")
    return payload[1 : len(payload) - payload[0]]


def header_fragment(kind: int, flags: int, payload: bytes) -> bytes:
    """The header block fragment of a HEADERS (padding and priority removed) or CONTINUATION
    frame. Raises ``FrameError``."""
    if kind != _HEADERS:
        return payload
    block = unpad(flags, payload)
    if flags & _PRIORITY:
        if len(block) < 5:
            raise FrameError(ErrorCode.FRAME_SIZE_ERROR, "short HEADERS priority")
        block = block[5:]
    return block
