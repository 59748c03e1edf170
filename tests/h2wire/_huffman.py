"""A test-side HPACK Huffman encoder (RFC 7541 Appendix B), for building header blocks.

authsvc only decodes Huffman; tests encode with the same canonical code table (the RFC's
examples in tests/h2wire/test_hpack.py pin that table), padded with ones (§5.2).
"""

from __future__ import annotations

from authsvc.h2wire._huffman import _codes

__all__ = ["huffman_encode"]


def huffman_encode(data: bytes) -> bytes:
    codes = _codes()
    bits, count = 0, 0
    for byte in data:
        code, length = codes[byte]
        bits, count = bits << length | code, count + length
    pad = -count % 8
    return (bits << pad | (1 << pad) - 1).to_bytes((count + pad) // 8, "big")
