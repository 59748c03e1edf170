"""Byte-level mutations for hypothesis strategies (the fuzz targets of the HTTP/2 front)."""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["mutate"]


def mutate(draw: st.DrawFn, data: bytes, *, edits: int, repeat: int, insert: int) -> bytes:
    """``data`` after up to ``edits`` random edits, each one of: flip a bit, cut the rest off,
    repeat up to ``repeat`` bytes in place, insert up to ``insert`` random bytes."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, edits))):
        if not out:
            break
        op, at = draw(st.integers(0, 3)), draw(st.integers(0, len(out) - 1))
        if op == 0:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == 1:
            del out[at:]
        elif op == 2:
            out[at:at] = out[at : at + draw(st.integers(1, repeat))]
        else:
            out[at:at] = draw(st.binary(min_size=1, max_size=insert))
    return bytes(out)
