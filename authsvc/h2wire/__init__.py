"""HTTP/2 and gRPC wire code: framing, HPACK, Huffman, a server connection, a sniffer. Sans-I/O.

Bytes in, callbacks (or bytes and verdicts) out: no sockets, no event loop, no clock of its own,
and **no imports from the rest of authsvc** (an import-linter contract and
``tests/h2wire/test_independent.py`` hold that), so it could be published on its own, and its
tests need nothing but bytes.

Modules: ``_frames`` (the one frame iterator, padding), ``_enums`` (protocol constants),
``_hpack`` + ``_huffman`` (RFC 7541 decoding), ``_connection`` + ``_sending`` (a gRPC unary
server connection), ``_limits`` (flood limits, memory budget), ``_sniff`` (first-request
classification and relay filters), ``_errors`` (``WireError`` and its subclasses).
"""

from __future__ import annotations

from authsvc.h2wire._connection import H2Connection, OnRequest
from authsvc.h2wire._enums import ErrorCode, Flag, FrameType, GrpcStatus, SettingId
from authsvc.h2wire._errors import (
    FrameError,
    HpackError,
    HuffmanError,
    SpliceRefused,
    WireError,
)
from authsvc.h2wire._frames import PREFACE, frame, frame_head, header_fragment, iter_frames, unpad
from authsvc.h2wire._hpack import STATIC_TABLE, Decoder, Headers, literal
from authsvc.h2wire._huffman import huffman_decode
from authsvc.h2wire._limits import FloodLimits, MemoryBudget
from authsvc.h2wire._sending import grpc_message_text
from authsvc.h2wire._sniff import AckFilter, SpliceGuard, sniff

__all__ = [
    "PREFACE",
    "STATIC_TABLE",
    "AckFilter",
    "Decoder",
    "ErrorCode",
    "Flag",
    "FloodLimits",
    "FrameError",
    "FrameType",
    "GrpcStatus",
    "H2Connection",
    "Headers",
    "HpackError",
    "HuffmanError",
    "MemoryBudget",
    "OnRequest",
    "SettingId",
    "SpliceGuard",
    "SpliceRefused",
    "WireError",
    "frame",
    "frame_head",
    "grpc_message_text",
    "header_fragment",
    "huffman_decode",
    "iter_frames",
    "literal",
    "sniff",
    "unpad",
]
