"""Key lists: a file of many keys (or of their SHA-256 digests), one per line, as ONE batch.

A ``keys:`` entry naming such a file yields one ``DigestBatch`` (one shared record, 32 bytes
of digest per key) instead of a ``Reading`` per line (issue #14). Lines that cannot be used
still surface, never their value:

- ``invalid``/``empty`` lines are summed in ONE reading per file, ``<label>#lines`` (state
  ``invalid``, the first few line numbers and why): ``explain`` shows it, and a reload that
  makes a clean file broken is rejected like any source that turns ``invalid``;
- ``weak`` lines (too short, publicly known) stay one reading each, ``<label>#lineN``, so
  ``master_key.allow_weak`` can still load them (a list of weak keys is not a real case).

Limits (a runaway file must not take the memory): ``MAX_LIST_BYTES`` per file and
``MAX_LIST_KEYS`` keys per file; past either the file is ``invalid`` with a message that says
which limit and what to do, and nothing of it is loaded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from authsvc.keymodel import DigestBatch, ExtraKeyReadings, KeyMeta, Reading, State
from authsvc.sources._protocol import SourceOutput

__all__ = [
    "MAX_LIST_BYTES",
    "MAX_LIST_KEYS",
    "KeyList",
    "list_output",
    "parse_digest_lines",
    "parse_key_lines",
]

MAX_LIST_BYTES = 16 << 20
"""A key list (``file:`` in ``keys:``, ``sha256_file:``) larger than this is refused (16 MiB:
250,000 digests, or keys of ~60 characters)."""

MAX_LIST_KEYS = 250_000
"""Keys per list file; more is refused (the ring holds ~180 bytes per key)."""

_SHOWN = 5  # line numbers named in a summary

# What ``assess`` calls ``set``, as one C-level match: printable ASCII without space or comma,
# at least 16 characters (every publicly known key is shorter). Length and "one repeated
# character" are checked next; anything else goes through ``assess`` for its exact reason.
_USABLE = re.compile(r"[!-+\--~]{16,}")
_HEX_LINE = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class KeyList:
    """What one list file held: packed digests, per-line problems, the count of entries."""

    packed: bytes
    problems: tuple[Reading, ...]
    entries: int


def _too_many(label: str) -> KeyList:
    detail = (
        f"the file holds more than {MAX_LIST_KEYS:,} keys (the limit per key list): "
        "split it into several files"
    )
    return KeyList(b"", (Reading.without_value(label, State.INVALID, detail),), 0)


def _summary(label: str, bad: list[tuple[int, str]]) -> Reading:
    shown = ", ".join(f"line {n} ({why})" for n, why in bad[:_SHOWN])
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    detail = f"{len(bad)} line(s) cannot be used and were not loaded: {shown}{more}"
    return Reading.without_value(f"{label}#lines", State.INVALID, detail)


def parse_key_lines(label: str, text: str, max_length: int) -> KeyList:
    """One key per line (blank lines and ``#`` comments ignored) → SHA-256 digests."""
    usable = _USABLE.fullmatch
    keys: list[bytes] = []
    weak: list[Reading] = []
    bad: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        if usable(line) and len(line) <= max_length and line.count(line[0]) != len(line):
            keys.append(line.encode("ascii"))
        else:
            reading = Reading.of_value(
                f"{label}#line{number}", line, max_length=max_length, what="the key"
            )
            if reading.state is State.WEAK:
                weak.append(reading)
            else:
                bad.append((number, reading.detail.removeprefix("the key ")))
        if len(keys) + len(weak) > MAX_LIST_KEYS:
            return _too_many(label)
    sha = hashlib.sha256
    packed = b"".join([sha(k).digest() for k in keys])
    problems = (*weak, _summary(label, bad)) if bad else tuple(weak)
    return KeyList(packed, problems, len(keys) + len(weak) + len(bad))


def parse_digest_lines(label: str, text: str) -> KeyList:
    """One SHA-256 digest per line (64 hex digits; blank lines and ``#`` comments ignored)."""
    hexes: list[str] = []
    bad: list[tuple[int, str]] = []
    hex_line = _HEX_LINE.fullmatch
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        if hex_line(line):
            hexes.append(line)
        else:
            bad.append((number, "not 64 hexadecimal characters"))
        if len(hexes) > MAX_LIST_KEYS:
            return _too_many(label)
    packed = bytes.fromhex("".join(hexes))
    problems = (_summary(label, bad),) if bad else ()
    return KeyList(packed, problems, len(hexes) + len(bad))


def list_output(meta: KeyMeta, label: str, parsed: KeyList) -> SourceOutput:
    """A parsed list as one batch (and its problem readings, as one named key)."""
    count = len(parsed.packed) // 32
    keys: tuple[ExtraKeyReadings, ...] = ()
    if parsed.problems:
        keys = (ExtraKeyReadings.of(meta, parsed.problems),)
    elif not count:
        empty = Reading.without_value(label, State.EMPTY, "the file holds no keys")
        keys = (ExtraKeyReadings.of(meta, (empty,)),)
    if not count:
        return SourceOutput(keys=keys)
    detail = f"{count:,} keys from {parsed.entries:,} entries"
    return SourceOutput(keys=keys, batches=(DigestBatch(meta, label, parsed.packed, detail),))
