"""HPACK header decoding (RFC 7541), and the few fixed header blocks a gRPC server sends.

``Decoder`` keeps one connection's dynamic table. Names and values are decoded as latin-1
(one character per byte: never fails, never merges two byte strings). Limits: a header list
larger than ``max_list_size`` bytes (RFC 7541 §4.1 sizes) and any malformed block raise
``HpackError``, which the connection turns into a COMPRESSION_ERROR — HPACK state cannot be
recovered after a bad block.

A proxy sends the same few headers on every check (Envoy: ``:path``, ``content-type``,
``grpc-timeout``, ...), so after the first request a block is usually all references into the
tables. Such a block decodes to the same list as long as the dynamic table is unchanged: the
decoder caches results per block, tagged with a generation that every table change bumps.
Both caches (blocks, and Huffman-decoded strings) are bounded in bytes, not only in entries:
only small blocks and strings are cached (``CACHE_BLOCK_MAX``, ``CACHE_STRING_MAX``) and each
cache is emptied when its byte total would pass its budget (``CACHE_BYTES``), so a hostile
peer cannot park large values in them for the connection's life.

We never *encode* with the dynamic table: our responses use static-table references and
literals "without indexing", so the peer's table size setting does not concern us.
"""

from __future__ import annotations

from collections import deque

from authsvc.h2wire._errors import HpackError, HuffmanError
from authsvc.h2wire._huffman import huffman_decode

__all__ = [
    "CACHE_BYTES",
    "STATIC_TABLE",
    "Decoder",
    "Headers",
    "HpackError",
    "literal",
]

STATIC_TABLE: tuple[tuple[str, str], ...] = (
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
)
"""RFC 7541 Appendix A; index ``i`` of the RFC is ``STATIC_TABLE[i - 1]``."""

_STATIC = len(STATIC_TABLE)
_ENTRY_OVERHEAD = 32  # RFC 7541 §4.1
CACHE_BYTES = 32 << 10
"""Byte budget of each decoder cache (blocks with their decoded lists; strings)."""
CACHE_BLOCK_MAX = 1 << 10  # a block larger than this is not cached (a proxy's are ~50-200 B)
CACHE_STRING_MAX = 256  # nor a Huffman string longer than this (decoded)


Headers = tuple[tuple[str, str], ...]


def _integer(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    """RFC 7541 §5.1: the integer whose prefix is in ``block[pos]``; returns (value, next)."""
    mask = (1 << prefix_bits) - 1
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(block):
            raise HpackError("truncated integer")
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
        if shift > 28:
            raise HpackError("integer too large")


class Decoder:
    """One connection's HPACK decoding state (not thread-safe; one per connection)."""

    __slots__ = (
        "_cache",
        "_cache_bytes",
        "_dynamic",
        "_generation",
        "_max_list_size",
        "_max_size",
        "_size",
        "_strings",
        "_strings_bytes",
        "_table_limit",
        "huffman_left",
    )

    def __init__(self, table_limit: int = 4096, max_list_size: int = 65536) -> None:
        self._dynamic: deque[tuple[str, str]] = deque()
        self._size = 0
        self._table_limit = table_limit  # our SETTINGS_HEADER_TABLE_SIZE
        self._max_size = table_limit  # the encoder may lower it (size update)
        self._max_list_size = max_list_size
        self._generation = 0
        self._cache: dict[bytes, tuple[int, Headers, int]] = {}
        self._cache_bytes = 0
        self._strings: dict[bytes, str] = {}
        self._strings_bytes = 0
        self.huffman_left = 1 << 62
        """Huffman-coded bytes this decoder may still decode (each costs ~1 µs of CPU per
        symbol in pure Python): the owner grants more as requests arrive; a string beyond it
        raises ``HpackError`` before any work is done on it."""

    @property
    def cached_bytes(self) -> int:
        """Bytes the caches hold (blocks, decoded lists, strings; RFC 7541 §4.1 sizes)."""
        return self._cache_bytes + self._strings_bytes

    def decode(self, block: bytes) -> Headers:
        """The (name, value) list of one complete header block. Raises ``HpackError``."""
        hit = self._cache.get(block)
        generation = self._generation
        if hit is not None and hit[0] == generation:
            return hit[1]
        headers, list_size = self._decode(block)
        if self._generation == generation and len(block) <= CACHE_BLOCK_MAX:
            cost = len(block) + list_size  # the block did not touch the table: reusable
            if hit is not None:  # a stale entry for the same block: replaced
                self._cache_bytes -= hit[2]
            if self._cache_bytes + cost > CACHE_BYTES:
                self._cache.clear()
                self._cache_bytes = 0
            if cost <= CACHE_BYTES:
                self._cache[block] = (generation, headers, cost)
                self._cache_bytes += cost
        return headers

    def _decode(self, block: bytes) -> tuple[Headers, int]:
        out: list[tuple[str, str]] = []
        pos, end, list_size = 0, len(block), 0
        seen_field = False
        while pos < end:
            byte = block[pos]
            if byte & 0x80:  # indexed field
                index, pos = _integer(block, pos, 7)
                field = self._entry(index)
            elif byte & 0x40:  # literal with incremental indexing
                field, pos = self._literal(block, pos, 6)
                self._add(field)
            elif byte & 0x20:  # dynamic table size update
                if seen_field:
                    raise HpackError("table size update after a header field")
                size, pos = _integer(block, pos, 5)
                if size > self._table_limit:
                    raise HpackError("table size update above the advertised limit")
                self._max_size = size
                self._evict(0)
                self._generation += 1
                continue
            else:  # literal without indexing (0000) / never indexed (0001)
                field, pos = self._literal(block, pos, 4)
            seen_field = True
            list_size += len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
            if list_size > self._max_list_size:
                raise HpackError("header list too large")
            out.append(field)
        return tuple(out), list_size

    def _entry(self, index: int) -> tuple[str, str]:
        if index == 0:
            raise HpackError("index 0")
        if index <= _STATIC:
            return STATIC_TABLE[index - 1]
        try:
            return self._dynamic[index - _STATIC - 1]
        except IndexError:
            raise HpackError(f"index {index} beyond the tables") from None

    def _literal(self, block: bytes, pos: int, prefix_bits: int) -> tuple[tuple[str, str], int]:
        index, pos = _integer(block, pos, prefix_bits)
        if index:
            name = self._entry(index)[0]
        else:
            name, pos = self._string(block, pos)
        value, pos = self._string(block, pos)
        return (name, value), pos

    def _string(self, block: bytes, pos: int) -> tuple[str, int]:
        if pos >= len(block):
            raise HpackError("truncated string")
        huffman = block[pos] & 0x80
        length, pos = _integer(block, pos, 7)
        end = pos + length
        if end > len(block):
            raise HpackError("truncated string")
        raw = block[pos:end]
        if not huffman:
            return raw.decode("latin-1"), end
        text = self._strings.get(raw)
        if text is None:
            if length > self.huffman_left:
                raise HpackError("too much Huffman-coded header data")
            self.huffman_left -= length
            try:
                text = huffman_decode(raw).decode("latin-1")
            except HuffmanError as exc:
                raise HpackError(str(exc)) from None
            if len(text) <= CACHE_STRING_MAX:
                cost = len(raw) + len(text) + _ENTRY_OVERHEAD
                if self._strings_bytes + cost > CACHE_BYTES:
                    self._strings.clear()
                    self._strings_bytes = 0
                self._strings[raw] = text
                self._strings_bytes += cost
        return text, end

    def _add(self, field: tuple[str, str]) -> None:
        size = len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
        self._generation += 1
        if size > self._max_size:  # RFC 7541 §4.4: empties the table, adds nothing
            self._dynamic.clear()
            self._size = 0
            return
        self._evict(size)
        self._dynamic.appendleft(field)
        self._size += size

    def _evict(self, room: int) -> None:
        while self._dynamic and self._size + room > self._max_size:
            name, value = self._dynamic.pop()
            self._size -= len(name) + len(value) + _ENTRY_OVERHEAD


def _int_bytes(value: int, prefix_bits: int, first: int) -> bytes:
    mask = (1 << prefix_bits) - 1
    if value < mask:
        return bytes([first | value])
    out = [first | mask]
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: str, value: str) -> bytes:
    """One header field as a literal without indexing (name by static index when possible)."""
    index = next((i + 1 for i, (n, _) in enumerate(STATIC_TABLE) if n == name), 0)
    raw_value = value.encode("latin-1")
    if index:
        head = _int_bytes(index, 4, 0x00)
    else:
        raw_name = name.encode("latin-1")
        head = b"\x00" + _int_bytes(len(raw_name), 7, 0x00) + raw_name
    return head + _int_bytes(len(raw_value), 7, 0x00) + raw_value
