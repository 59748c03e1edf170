"""HPACK's static Huffman code (RFC 7541 Appendix B): decoding only.

The code is canonical (codes of equal length are consecutive, in symbol order), so it is fully
determined by the code length of each of its 257 symbols (256 byte values + EOS), listed
below as one byte per symbol. Decoding walks a table of the code tree four bits at a time (the
shortest code is 5 bits, so a nibble completes at most one symbol); the table is built on first
use (~4k entries).

Errors (RFC 7541 §5.2): the EOS symbol inside a string, padding longer than 7 bits, or padding
that is not a prefix of EOS (all ones) raise ``HuffmanError``.
"""

from __future__ import annotations

from authsvc.h2wire._errors import HuffmanError

__all__ = ["HuffmanError", "huffman_decode"]

_LENGTHS = bytes.fromhex(
    "0d171c1c1c1c1c1c1c181e1c1c1e1c1c1c1c1c1c1c1c1e1c1c1c1c1c1c1c1c1c060a0a0c0d06080b0a0a080b"
    "080606060505050606060606060607080f060c0a0d06070707070707070707070707070707070707070707"
    "070807080d130d0e060f05060506050606060507070606060506070605050607070707070f0b0e0d1c1416"
    "14141616161716171717171718171818161718171717171516171617171816151416161717151716161815"
    "161717151516151716171714161616171616171a1a1413161716191a1a1a1b1b1a181913151a1b1b1a1b18"
    "15151a1a1c1b1b1b14181415161515171616191918181a171a1b1a1a1b1b1b1b1b1c1b1b1b1b1b1a1e"
)
EOS = 256


def _codes() -> list[tuple[int, int]]:
    """(code, length) per symbol, assigned canonically from the lengths."""
    order = sorted(range(len(_LENGTHS)), key=lambda s: (_LENGTHS[s], s))
    out = [(0, 0)] * len(_LENGTHS)
    code, previous = -1, _LENGTHS[order[0]]
    for symbol in order:
        length = _LENGTHS[symbol]
        code = (code + 1) << (length - previous)
        previous = length
        out[symbol] = (code, length)
    return out


class _Table:
    """Nibble-at-a-time decoding table over the code tree's internal nodes.

    ``step[state * 16 + nibble]`` is ``(next_state, symbol)`` with ``symbol`` -1 when none
    completed, or ``None`` when the nibble leads into EOS. ``padding_ok[state]``: the bits
    consumed since the last symbol are at most 7 ones (a valid end of string).
    """

    def __init__(self) -> None:
        left: list[int] = [-1]
        right: list[int] = [-1]
        leaf: list[int] = [-1]  # symbol at a leaf, -1 for internal nodes
        for symbol, (code, length) in enumerate(_codes()):
            node = 0
            for bit in range(length - 1, -1, -1):
                children = right if (code >> bit) & 1 else left
                if children[node] == -1:
                    children[node] = len(leaf)
                    left.append(-1)
                    right.append(-1)
                    leaf.append(-1)
                node = children[node]
            leaf[node] = symbol
        internal = [n for n in range(len(leaf)) if leaf[n] == -1]
        index = {node: i for i, node in enumerate(internal)}
        self.step: list[tuple[int, int] | None] = []
        for node in internal:
            for nibble in range(16):
                current, symbol = node, -1
                for bit in (8, 4, 2, 1):
                    current = right[current] if nibble & bit else left[current]
                    if leaf[current] != -1:
                        symbol, current = leaf[current], 0
                self.step.append(None if symbol == EOS else (index[current], symbol))
        # states on the all-ones path from the root, up to 7 bits deep, may end a string
        self.padding_ok = [False] * len(internal)
        node = 0
        for _ in range(8):
            self.padding_ok[index[node]] = True
            node = right[node]


_table: _Table | None = None


def huffman_decode(data: bytes) -> bytes:
    """Decode one Huffman-coded HPACK string. Raises ``HuffmanError`` if it is invalid."""
    global _table
    table = _table
    if table is None:
        table = _table = _Table()
    step = table.step
    out = bytearray()
    state = 0
    for byte in data:
        for nibble in (byte >> 4, byte & 15):
            entry = step[state * 16 + nibble]
            if entry is None:
                raise HuffmanError("EOS symbol inside a Huffman-coded string")
            state, symbol = entry
            if symbol >= 0:
                out.append(symbol)
    if not table.padding_ok[state]:
        raise HuffmanError("invalid padding at the end of a Huffman-coded string")
    return bytes(out)
