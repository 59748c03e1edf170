"""The wire package's own exception tree. It imports nothing from authsvc, so it cannot derive
from ``authsvc._errors.AuthsvcError``; instead every error here derives from ``WireError``, and
the one adapter that uses the package (``authsvc.server._front``) converts a ``WireError`` that
crosses into authsvc into ``authsvc._errors.PeerProtocolError`` (httpx's rule for httpcore's
exceptions: the transport's errors never leak past the transport seam)."""

from __future__ import annotations

from authsvc.h2wire._enums import ErrorCode

__all__ = ["FrameError", "HpackError", "HuffmanError", "SpliceRefused", "WireError"]


class WireError(Exception):
    """Base of every error this package raises: the peer's bytes broke the protocol."""


class FrameError(WireError):
    """An HTTP/2 connection error: the connection ends with GOAWAY carrying ``code``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class HpackError(WireError, ValueError):
    """A header block cannot be decoded; the connection must end (COMPRESSION_ERROR)."""


class HuffmanError(HpackError):
    """A Huffman-coded string is not valid (RFC 7541 §5.2)."""


class SpliceRefused(WireError):
    """A relayed request the private gRPC server must not see: close the connection."""
