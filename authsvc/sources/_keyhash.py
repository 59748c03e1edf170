"""A key list's byte-level rules (which lines hash as keys), and the helper process that runs them.

This module imports nothing from authsvc, only the standard library (``hashlib``, ``re`` and
a few C modules). The serving process applies ``hash_keys``/``hash_digests`` to small lists
itself; for large ones (``_keyhelper``) it runs THIS FILE as a script
(``python -I -S _keyhash.py``), so the helper process holds an interpreter, OpenSSL's SHA-256
and one chunk of lines (14 MB idle, 19 MB at a 25,000-key list; issue #14), not authsvc's
import graph (~40 MB per process with a forkserver pool, measured; see docs/performance.md
section 7).

What a line is: split at ``\\n`` only, a CRLF end removed, then ASCII space and tab trimmed;
blank lines and ``#`` comments are not entries. A key line *hashes* when it is 16 to
``max_length`` printable ASCII characters other than space and comma and not one repeated
character (every publicly known key is shorter). Every other entry is an *odd* line: its line
number comes back and the caller (``_keylist``) asks ``assess`` why (weak, invalid), so the
exact rule lives in one place. The work goes ``CHUNK`` lines at a time: a chunk whose every
entry hashes (the common case) is checked by one regex and hashed by C-level ``map``s, and only
one chunk's lines exist at once (the transient beyond the file itself is small).

The helper's protocol (stdin → stdout, native byte order, one request at a time): a request
``REQUEST`` (kind ``k`` keys or ``d`` digests, max_length, limit, size) then ``size`` bytes of
the list; the reply ``REPLY`` (entries, limited, len(packed), len(odd)) then the packed
digests and the odd line numbers (``array('I')``). EOF on stdin, or ``idle`` seconds without a
request, ends the helper.
"""

from __future__ import annotations

import binascii
import hashlib
import io
import os
import re
import select
import struct
import sys
from array import array
from collections.abc import Iterator
from itertools import islice, repeat
from operator import eq, itemgetter, methodcaller

CHUNK = 4096
"""Lines per step: ~1-2 ms of C-level work (a parse on a thread of the serving process gives
the GIL back that often), and the most lines that exist as objects at once."""

REQUEST = struct.Struct("=cIIQ")  # kind, max_length, limit, size of the list
REPLY = struct.Struct("=Q?QQ")  # entries, limited, len(packed), len(odd line numbers)

Hashed = tuple[bytes, int, list[int], bool]
"""(packed SHA-256 digests, entries, odd line numbers, limited: more than ``limit`` entries)."""

_USABLE = re.compile(rb"[!-+\--~]{16,}")
_USABLE_LINES = re.compile(rb"[!-+\--~]{16,}(?:\n[!-+\--~]{16,})*")
_HEX_LINE = re.compile(rb"[0-9a-fA-F]{64}")
_HEX_LINES = re.compile(rb"[0-9a-fA-F]{64}(?:\n[0-9a-fA-F]{64})*")
_DIGEST = methodcaller("digest")
_NO_LF = methodcaller("removesuffix", b"\n")
_NO_CR = methodcaller("removesuffix", b"\r")
_HASH = 0x23  # '#'


def _trimmed(chunk: list[bytes]) -> list[bytes]:
    """Lines as entries: the ``\\n`` and a CRLF's ``\\r`` removed, then ASCII space and tab."""
    return list(map(bytes.strip, map(_NO_CR, map(_NO_LF, chunk)), repeat(b" \t")))


def _entries(stripped: list[bytes]) -> list[bytes]:
    return [line for line in stripped if line and line[0] != _HASH]


def _usable_chunk(stripped: list[bytes], max_length: int) -> list[bytes] | None:
    """The entries of ``stripped`` if every one hashes as a key, else None."""
    entries = _entries(stripped)
    if not entries:
        return entries
    if max(map(len, entries)) > max_length or not _USABLE_LINES.fullmatch(b"\n".join(entries)):
        return None
    firsts = map(itemgetter(0), entries)
    if any(map(eq, map(bytes.count, entries, firsts), map(len, entries))):
        return None  # a key of one repeated character
    return entries


def _chunks(data: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """(lines before it, its lines trimmed), ``CHUNK`` lines at a time: only one chunk's
    lines exist at once (``BytesIO`` shares ``data``'s buffer)."""
    lines = io.BytesIO(data)
    done = 0
    while chunk := list(islice(lines, CHUNK)):
        yield done, _trimmed(chunk)
        done += len(chunk)


def hash_keys(data: bytes, max_length: int, limit: int) -> Hashed:
    """One key per line → packed SHA-256 digests, the entries counted, the odd lines named."""
    parts: list[bytes] = []
    odd: list[int] = []
    entries = 0
    usable = _USABLE.fullmatch
    for done, stripped in _chunks(data):
        fast = _usable_chunk(stripped, max_length)
        if fast is not None:
            parts.append(b"".join(map(_DIGEST, map(hashlib.sha256, fast))))
            entries += len(fast)
        else:
            for number, line in enumerate(stripped, start=done + 1):
                if not line or line[0] == _HASH:
                    continue
                entries += 1
                if usable(line) and len(line) <= max_length and line.count(line[0]) != len(line):
                    parts.append(hashlib.sha256(line).digest())
                else:
                    odd.append(number)
        if entries > limit:
            return b"", entries, [], True
    return b"".join(parts), entries, odd, False


def hash_digests(data: bytes, limit: int) -> Hashed:
    """One SHA-256 digest per line (64 hex digits) → packed digests; other entries are odd."""
    parts: list[bytes] = []
    odd: list[int] = []
    entries = 0
    hex_line = _HEX_LINE.fullmatch
    for done, stripped in _chunks(data):
        found = _entries(stripped)
        entries += len(found)
        if found and not _HEX_LINES.fullmatch(b"\n".join(found)):
            numbered = enumerate(stripped, start=done + 1)
            odd += [n for n, line in numbered if line and line[0] != _HASH and not hex_line(line)]
            found = [line for line in found if hex_line(line)]
        parts.append(binascii.unhexlify(b"".join(found)))
        if entries > limit:
            return b"", entries, [], True
    return b"".join(parts), entries, odd, False


# -- the helper process ---------------------------------------------------------------------


def _read(stream: io.BufferedReader, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(stdin: io.BufferedReader, stdout: io.BufferedWriter, idle: float) -> None:
    """Answer requests until EOF, or until ``idle`` seconds pass without one. (``select`` on
    the buffered stdin is safe: the caller sends a request only after reading the previous
    reply, so nothing of the next request sits in the buffer.)"""
    while select.select([stdin], [], [], idle)[0]:
        head = _read(stdin, REQUEST.size)
        if head is None:
            return  # the serving process closed the pipe (or is gone)
        kind, max_length, limit, size = REQUEST.unpack(head)
        data = _read(stdin, size)
        if data is None:
            return
        if kind == b"k":
            packed, entries, odd, limited = hash_keys(data, max_length, limit)
        else:
            packed, entries, odd, limited = hash_digests(data, limit)
        del data
        stdout.write(REPLY.pack(entries, limited, len(packed), len(odd)))
        stdout.write(packed)
        stdout.write(array("I", odd).tobytes())
        stdout.flush()


def main(argv: list[str]) -> None:
    """``_keyhash.py NICE IDLE``: lower the CPU priority by NICE, then ``serve``."""
    os.nice(int(argv[1]))
    serve(sys.stdin.buffer, sys.stdout.buffer, float(argv[2]))  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv)
