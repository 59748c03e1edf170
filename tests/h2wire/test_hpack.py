"""HPACK decoding and its Huffman code, against RFC 7541's own examples (Appendix C)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authsvc.h2wire._errors import HuffmanError
from authsvc.h2wire._hpack import STATIC_TABLE, Decoder, HpackError, literal
from authsvc.h2wire._huffman import _codes, huffman_decode
from tests.h2wire._huffman import huffman_encode

REQUEST = [(":method", "GET"), (":scheme", "http"), (":path", "/")]
AUTHORITY = (":authority", "www.example.com")

# RFC 7541 C.3 (no Huffman) and C.4 (Huffman): three requests on one connection
C3 = ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865"]
C3 += ["828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"]
C4 = ["828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf"]
C4 += ["828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"]
HTTPS = [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), AUTHORITY]
REQUESTS = [
    ([*REQUEST, AUTHORITY], 57),
    ([*REQUEST, AUTHORITY, ("cache-control", "no-cache")], 110),
    ([*HTTPS, ("custom-key", "custom-value")], 164),
]

# RFC 7541 C.6: three responses, Huffman, a 256-byte table: entries get evicted
C6 = [
    "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f"
    "0b97c8e9ae82ae43d3",
    "4883640effc1c0bf",
    "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335df"
    "dfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
]
LOCATION = ("location", "https://www.example.com")
PRIVATE = ("cache-control", "private")
DATE_21 = ("date", "Mon, 21 Oct 2013 20:13:21 GMT")
DATE_22 = ("date", "Mon, 21 Oct 2013 20:13:22 GMT")
COOKIE = ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")
RESPONSES = [
    ([(":status", "302"), PRIVATE, DATE_21, LOCATION], 222),
    ([(":status", "307"), PRIVATE, DATE_21, LOCATION], 222),
    ([(":status", "200"), PRIVATE, DATE_22, LOCATION, ("content-encoding", "gzip"), COOKIE], 215),
]


@pytest.mark.parametrize("blocks", [C3, C4], ids=["plain", "huffman"])
def test_rfc7541_request_examples(blocks: list[str]) -> None:
    decoder = Decoder()
    for block, (headers, size) in zip(blocks, REQUESTS, strict=True):
        assert list(decoder.decode(bytes.fromhex(block))) == headers
        assert decoder._size == size


def test_rfc7541_response_examples_with_eviction() -> None:
    decoder = Decoder(table_limit=256)
    for block, (headers, size) in zip(C6, RESPONSES, strict=True):
        assert list(decoder.decode(bytes.fromhex(block))) == headers
        assert decoder._size == size
    assert [name for name, _ in decoder._dynamic] == ["set-cookie", "content-encoding", "date"]


def test_cached_blocks_follow_the_table() -> None:
    """An all-indexed block is cached; a table change must not serve a stale result."""
    decoder = Decoder()
    decoder.decode(bytes.fromhex(C4[0]))  # ':authority: www.example.com' is entry 62
    again = bytes.fromhex("828684be")
    assert list(decoder.decode(again)) == [*REQUEST, AUTHORITY]
    assert decoder.decode(again) is decoder.decode(again)  # cached
    decoder.decode(bytes.fromhex("4002" + "6162" + "01" + "63"))  # inserts 'ab: c' at 62
    assert list(decoder.decode(again)) == [*REQUEST, ("ab", "c")]


def test_static_table_is_rfc7541_appendix_a() -> None:
    assert len(STATIC_TABLE) == 61
    assert STATIC_TABLE[0] == (":authority", "")
    assert STATIC_TABLE[7] == (":status", "200")
    assert STATIC_TABLE[30] == ("content-type", "")
    assert STATIC_TABLE[60] == ("www-authenticate", "")


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("80", "index 0"),
        ("be", "beyond the tables"),
        ("3fe21f", "above the advertised limit"),  # size update to 4096 + 31 + 4096
        ("82ff", "truncated integer"),
        ("8220", "table size update after a header field"),
        ("0085ff", "truncated string"),
        ("4085ffffffffff00", "EOS symbol"),
        ("ff8080808080", "integer too large"),
    ],
)
def test_malformed_blocks_raise_hpack_error(block: str, problem: str) -> None:
    with pytest.raises(HpackError, match=problem):
        Decoder().decode(bytes.fromhex(block))


def test_header_list_size_is_limited() -> None:
    big = literal("x-big", "v" * 2000)
    with pytest.raises(HpackError, match="header list too large"):
        Decoder(max_list_size=4000).decode(big + big)


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_hpack_error(block: bytes) -> None:
    try:
        headers = Decoder().decode(block)
    except HpackError:
        return
    assert all(isinstance(n, str) and isinstance(v, str) for n, v in headers)


def test_literal_encoding_round_trips() -> None:
    block = literal("content-type", "application/grpc") + literal("grpc-status", "0")
    assert (
        block.hex() == "0f10106170706c69636174696f6e2f67727063" + "000b677270632d7374617475730130"
    )
    assert list(Decoder().decode(block)) == [
        ("content-type", "application/grpc"),
        ("grpc-status", "0"),
    ]


# --- Huffman ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coded", "text"),
    [
        ("f1e3c2e5f23a6ba0ab90f4ff", "www.example.com"),
        ("a8eb10649cbf", "no-cache"),
        ("25a849e95ba97d7f", "custom-key"),
        ("25a849e95bb8e8b4bf", "custom-value"),
        ("6402", "302"),
        ("aec3771a4b", "private"),
        ("d07abe941054d444a8200595040b8166e082a62d1bff", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("9d29ad171863c78f0b97c8e9ae82ae43d3", "https://www.example.com"),
    ],
)
def test_huffman_rfc7541_examples(coded: str, text: str) -> None:
    assert huffman_decode(bytes.fromhex(coded)) == text.encode()


@given(st.binary(max_size=64))
def test_huffman_round_trips_every_byte_value(data: bytes) -> None:
    assert huffman_decode(huffman_encode(data)) == data


def test_huffman_code_is_complete() -> None:
    codes = _codes()
    assert len(codes) == 257 and codes[256] == ((1 << 30) - 1, 30)  # EOS: thirty 1 bits
    assert sum(2.0**-length for _, length in codes) == 1.0  # a full prefix code


@pytest.mark.parametrize(
    ("coded", "problem"),
    [
        ("ffffffff", "EOS"),  # the EOS code inside a string
        ("f1e3c2e5f23a6ba0ab90f4ffff", "padding"),  # 8+ bits of padding
        ("fe", "padding"),  # padding that is not all ones (a prefix of EOS)
    ],
)
def test_huffman_errors(coded: str, problem: str) -> None:
    with pytest.raises(HuffmanError, match=problem):
        huffman_decode(bytes.fromhex(coded))
