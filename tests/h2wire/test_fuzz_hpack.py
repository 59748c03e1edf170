"""Fuzzing the fast path's HPACK decoder (``authsvc.h2wire._hpack``), pure and in-process.

- Hostile header blocks (arbitrary bytes; blocks assembled from HPACK representations with
  indexes out of range, huge and overlong integers, Huffman strings valid and not, dynamic
  table size updates anywhere; then truncated, bit-flipped, spliced) decode to a list of
  (str, str) or raise ``HpackError`` (the front's COMPRESSION_ERROR) — never anything else —
  with bounded memory. After an error the decoder is never used again, as the front does.
- A decoder that caches decoded blocks answers exactly like one whose caches are emptied
  before every block (the cache is keyed by table generation).
- Round trip: an independent encoder written here (its own integer and string coding, its own
  model of the dynamic table with eviction; only the static table and the RFC's Huffman code
  lengths are shared) encodes header lists as indexed fields, literals with incremental
  indexing, without indexing and never indexed, by name reference or not, with table size
  updates; the decoder returns exactly the lists, and its table matches the model.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authsvc.h2wire._hpack import STATIC_TABLE, Decoder, HpackError
from authsvc.h2wire._huffman import huffman_decode
from tests._mutate import mutate
from tests.h2wire._huffman import huffman_encode as huffman

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TABLE_LIMIT = 4096  # the front's SETTINGS_HEADER_TABLE_SIZE (the default)


# -- an independent encoder ------------------------------------------------------------------


def integer(value: int, prefix_bits: int, first: int = 0, extra_zero_groups: int = 0) -> bytes:
    """RFC 7541 §5.1, optionally overlong (values from the prefix's limit on: trailing 7-bit
    groups of zeros, still valid)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    rest = value - limit
    groups = []
    while True:
        groups.append(rest & 0x7F)
        rest >>= 7
        if not rest:
            break
    groups += [0] * extra_zero_groups
    out += bytes(g | 0x80 for g in groups[:-1]) + bytes([groups[-1]])
    return bytes(out)


def string(text: str, use_huffman: bool) -> bytes:
    raw = text.encode("latin-1")
    if use_huffman:
        coded = huffman(raw)
        return integer(len(coded), 7, 0x80) + coded
    return integer(len(raw), 7) + raw


def entry_size(name: str, value: str) -> int:
    return len(name) + len(value) + 32


@dataclass
class Encoder:
    """The encoder's side of the dynamic table (RFC 7541 §2.3.2, §4), newest entry first."""

    max_size: int = TABLE_LIMIT
    table: list[tuple[str, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(entry_size(n, v) for n, v in self.table)

    def _evict(self, room: int) -> None:
        while self.table and self.size + room > self.max_size:
            self.table.pop()

    def size_update(self, new_size: int) -> bytes:
        self.max_size = new_size
        self._evict(0)
        return integer(new_size, 5, 0x20)

    def _index(self, name: str, value: str | None) -> int:
        """1-based index over static + dynamic of (name, value), or of the name alone."""
        for i, (n, v) in enumerate([*STATIC_TABLE, *self.table]):
            if n == name and (value is None or v == value):
                return i + 1
        return 0

    def field(self, name: str, value: str, how: str, by_name: bool, use_huffman: bool) -> bytes:
        if how == "indexed":
            index = self._index(name, value)
            if index:
                return integer(index, 7, 0x80)
            how = "incremental"
        prefix, first = {"incremental": (6, 0x40), "without": (4, 0x00), "never": (4, 0x10)}[how]
        index = self._index(name, None) if by_name else 0
        head = integer(index, prefix, first)
        if not index:
            head += string(name, use_huffman)
        out = head + string(value, use_huffman)
        if how == "incremental":
            size = entry_size(name, value)
            if size > self.max_size:
                self.table.clear()
            else:
                self._evict(size)
                self.table.insert(0, (name, value))
        return out


# -- strategies ------------------------------------------------------------------------------

latin1 = st.characters(min_codepoint=0, max_codepoint=255)
names = st.one_of(
    st.sampled_from([n for n, _ in STATIC_TABLE[:20]] + ["authorization", "x-api-key", "te"]),
    st.text(latin1, max_size=12),
)
values = st.one_of(
    st.sampled_from([v for _, v in STATIC_TABLE if v] + ["application/grpc", "trailers"]),
    st.text(latin1, max_size=40),
    st.builds(lambda c, n: c * n, latin1, st.integers(0, 3000)),  # long: evicts, or clears
)
fields = st.tuples(
    names,
    values,
    st.sampled_from(["indexed", "incremental", "without", "never"]),
    st.booleans(),  # by name reference when possible
    st.booleans(),  # Huffman
)
blocks = st.tuples(
    st.lists(st.integers(0, TABLE_LIMIT), max_size=2),  # size updates at the block's start
    st.lists(fields, max_size=8),
)


@st.composite
def representation(draw: st.DrawFn) -> bytes:
    """One HPACK representation, well-formed or not."""
    kind = draw(st.integers(0, 6))
    big = st.one_of(st.integers(0, 300), st.integers(0, 2**40))
    overlong = st.integers(0, 6)
    if kind == 0:  # indexed field, any index (0, static, dynamic, beyond both)
        return integer(draw(big), 7, 0x80, draw(overlong))
    if kind == 1:  # dynamic table size update, any size, anywhere in the block
        return integer(draw(big), 5, 0x20, draw(overlong))
    if kind == 2:  # a string with a declared length that may lie (huge: no huge allocation)
        body = draw(st.binary(max_size=20))
        declared = draw(st.one_of(st.just(len(body)), big))
        return integer(declared, 7, draw(st.sampled_from([0, 0x80]))) + body
    if kind == 3:  # Huffman-coded bytes: valid, or corrupted (EOS, bad padding)
        coded = huffman(draw(st.binary(max_size=20)))
        if coded and draw(st.booleans()):
            coded = coded[:-1] + bytes([draw(st.integers(0, 255))])
        return coded + draw(st.sampled_from([b"", b"\xff", b"\xff\xff\xff\xff"]))
    if kind == 4:  # a literal, name by any index or literal
        first, prefix = draw(st.sampled_from([(0x40, 6), (0x00, 4), (0x10, 4)]))
        name = integer(draw(big), prefix, first, draw(overlong))
        return name + string(draw(st.text(latin1, max_size=10)), draw(st.booleans()))
    if kind == 5:  # a well-formed field from the encoder (name, value, how, ...)
        return Encoder().field(*draw(fields))
    return draw(st.binary(min_size=1, max_size=12))


@st.composite
def hostile_block(draw: st.DrawFn) -> bytes:
    block = b"".join(draw(st.lists(representation(), max_size=8)))
    return mutate(draw, block, edits=3, repeat=16, insert=4)


hostile_blocks = st.one_of(st.binary(max_size=300), hostile_block())


# -- properties ------------------------------------------------------------------------------


def _decode_all(decoder: Decoder, sequence: list[bytes], *, fresh_caches: bool) -> list[object]:
    """Each block's header list and the dynamic table after it, or the first error (after
    which the decoder is dropped)."""
    out: list[object] = []
    for block in sequence:
        if fresh_caches:
            decoder._cache.clear()
            decoder._strings.clear()
        try:
            out.append((decoder.decode(block), list(decoder._dynamic)))
        except HpackError as exc:
            out.append(HpackError)
            assert str(exc), "an HpackError says what is wrong"
            break
    return out


@FUZZ
@given(st.lists(hostile_blocks, min_size=1, max_size=4))
def test_hostile_blocks_decode_or_raise_hpack_error_only(sequence: list[bytes]) -> None:
    huffman_decode(b"")  # builds the decoding table (once per process) outside the measure
    tracemalloc.start()
    try:
        results = _decode_all(Decoder(), sequence, fresh_caches=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Nothing escapes but HpackError (pytest reports anything else); memory is bounded by the
    # input, never by a length or an index the input declares.
    assert peak < 256 * 1024 + 64 * sum(len(b) for b in sequence), peak
    for result in results:
        if result is not HpackError:
            assert isinstance(result, tuple)
            headers, _ = result
            assert all(isinstance(n, str) and isinstance(v, str) for n, v in headers)


# blocks that add to the dynamic table, and blocks that read it (index 62, 63)
TABLE_BLOCKS = [b"\x40\x01a\x01b", b"\x40\x01c\x01d", b"\x7e\x01e", b"\xbe", b"\xbf\xbe", b"\x82"]


@FUZZ
@given(st.lists(st.one_of(hostile_blocks, st.sampled_from(TABLE_BLOCKS)), min_size=1, max_size=6))
def test_caching_decoder_answers_like_an_uncached_one(sequence: list[bytes]) -> None:
    sequence = sequence + sequence  # repeated blocks: what the caches are for
    cached = _decode_all(Decoder(), sequence, fresh_caches=False)
    assert cached == _decode_all(Decoder(), sequence, fresh_caches=True)


@FUZZ
@given(st.lists(blocks, min_size=1, max_size=5))
def test_independently_encoded_header_lists_round_trip(
    spec: list[tuple[list[int], list[tuple[str, str, str, bool, bool]]]],
) -> None:
    encoder, decoder = Encoder(), Decoder()
    for updates, header_fields in spec:
        block = b"".join(encoder.size_update(size) for size in updates)
        block += b"".join(encoder.field(*f) for f in header_fields)
        assert list(decoder.decode(block)) == [(n, v) for n, v, *_ in header_fields]
        assert list(decoder._dynamic) == encoder.table
        assert decoder._size == encoder.size


# -- bounded work for hostile integers (examples) ---------------------------------------------


@pytest.mark.parametrize(
    "block",
    [
        b"\x00" + integer(2**35, 7),  # a literal name claiming 32 GiB
        b"\x0f\x00" + integer(2**35 - 1, 7, 0x80) + b"abc",  # a Huffman value claiming as much
        integer(2**35, 7, 0x80),  # an index far beyond both tables
        integer(2**35, 5, 0x20),  # a table size update far above the limit
        b"\xff" + b"\xff" * 100_000,  # an integer that never ends
        b"\x20" * 100_000 + b"\xbe",  # 100k size updates, then an index out of range
    ],
)
def test_hostile_integers_fail_fast_without_allocating(block: bytes) -> None:
    huffman_decode(b"")
    tracemalloc.start()
    try:
        with pytest.raises(HpackError):
            Decoder().decode(block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 + 2 * len(block), peak


def test_the_independent_encoder_reproduces_rfc7541_c3() -> None:
    """The test's encoder is pinned to the RFC too (C.3.1: a literal with indexing)."""
    encoder = Encoder()
    block = b"".join(
        [
            encoder.field(":method", "GET", "indexed", True, False),
            encoder.field(":scheme", "http", "indexed", True, False),
            encoder.field(":path", "/", "indexed", True, False),
            encoder.field(":authority", "www.example.com", "incremental", True, False),
        ]
    )
    assert block.hex() == "828684410f7777772e6578616d706c652e636f6d"
    assert encoder.size == 57
