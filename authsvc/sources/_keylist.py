"""Key lists: a file of many keys (or of their SHA-256 digests), one per line, as ONE batch.

A ``keys:`` entry naming such a file yields one ``DigestBatch`` (one shared record, 32 bytes
of digest per key) instead of a ``Reading`` per line (issue #14). Lines that cannot be used
still surface, never their value:

- ``invalid``/``empty`` lines are summed in ONE reading per file, ``<label>#lines`` (state
  ``invalid``, the first few line numbers and why): ``explain`` shows it, and a reload that
  makes a clean file broken is rejected like any source that turns ``invalid``;
- ``weak`` lines (too short, publicly known) stay one reading each, ``<label>#lineN``, so
  ``master_key.allow_weak`` can still load them (a list of weak keys is not a real case).

Which lines hash as keys is ``_keyhash``'s byte-level rule (the helper process applies it to
large lists, ``_keyhelper``); every other entry is sorted here by ``assess``.

Limits (a runaway file must not take the memory): ``MAX_LIST_BYTES`` per file and
``MAX_LIST_KEYS`` entries (lines that are neither blank nor comments, usable or not) per file,
and only the first ``_SHOWN`` unusable lines are kept by name; past either limit the file is ``invalid`` with a message that says
which limit and what to do, and nothing of it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from authsvc.keymodel import OWS, DigestBatch, ExtraKeyReadings, KeyMeta, Reading, State
from authsvc.sources import _keyhelper
from authsvc.sources._keyhash import Hashed, hash_digests, hash_keys
from authsvc.sources._keyhelper import OFFLOAD_BYTES, offload_parsing
from authsvc.sources._protocol import SourceOutput

__all__ = [
    "MAX_LIST_BYTES",
    "MAX_LIST_KEYS",
    "OFFLOAD_BYTES",
    "KeyList",
    "list_output",
    "offload_parsing",
    "parse_digest_lines",
    "parse_key_lines",
]

MAX_LIST_BYTES = 16 << 20
"""A key list (``file:`` in ``keys:``, ``sha256_file:``) larger than this is refused (16 MiB:
250,000 digests, or keys of ~60 characters)."""

MAX_LIST_KEYS = 250_000
"""Entries (keys, usable or not) per list file; more is refused (the ring holds ~180 bytes per
key)."""

_SHOWN = 5  # line numbers named in a summary


@dataclass(frozen=True, slots=True)
class KeyList:
    """What one list file held: packed digests, per-line problems, the count of entries."""

    packed: bytes
    problems: tuple[Reading, ...]
    entries: int
    bad: tuple[tuple[int, str], ...] = ()  # (line number, why) of the first unusable lines
    limited: bool = False  # past MAX_LIST_KEYS: nothing loaded
    unusable: int = 0  # lines that cannot be used (``bad`` names the first ``_SHOWN``)


def _too_many(label: str) -> KeyList:
    detail = (
        f"the file holds more than {MAX_LIST_KEYS:,} keys (the limit per key list): "
        "split it into several files"
    )
    return KeyList(b"", (Reading.without_value(label, State.INVALID, detail),), 0, (), True)


def _summary(label: str, bad: tuple[tuple[int, str], ...], unusable: int) -> Reading:
    shown = ", ".join(f"line {n} ({why})" for n, why in bad)
    more = f" and {unusable - len(bad)} more" if unusable > len(bad) else ""
    detail = f"{unusable} line(s) cannot be used and were not loaded: {shown}{more}"
    return Reading.without_value(f"{label}#lines", State.INVALID, detail)


def _lines(text: str) -> list[str]:
    """A list's lines: split at ``\n`` only (``str.splitlines`` also splits at U+0085, U+2028
    and 0x1C-0x1E, which would cut a key where a client cannot)."""
    return text.split("\n")


def _trim(line: str) -> str:
    """A line as a key: a CRLF line end removed, then only ASCII space and tab (``OWS``)."""
    return line.removesuffix("\r").strip(OWS)


def _key_list(label: str, text: str, max_length: int, hashed: Hashed) -> KeyList:
    """``hashed`` with its odd lines sorted by ``assess``: weak or flagged lines stay one
    reading each (resolution decides: refused, or served with a warning), the rest are
    unusable, summed in ONE reading that names the first few and why (never a value)."""
    packed, entries, odd, limited = hashed
    if limited:
        return _too_many(label)
    weak: list[Reading] = []
    bad: list[tuple[int, str]] = []
    unusable = 0
    lines = _lines(text) if odd else []
    for number in odd:
        reading = Reading.of_value(
            f"{label}#line{number}", _trim(lines[number - 1]), max_length=max_length, what="the key"
        )
        if reading.state is State.WEAK or reading.caution:
            weak.append(reading)
            continue
        unusable += 1
        if len(bad) < _SHOWN:
            bad.append((number, reading.detail.removeprefix("the key ")))
    return _result(label, packed, weak, tuple(bad), unusable, entries)


def _result(
    label: str,
    packed: bytes,
    weak: list[Reading],
    bad: tuple[tuple[int, str], ...],
    unusable: int,
    entries: int,
) -> KeyList:
    problems = (*weak, _summary(label, bad, unusable)) if unusable else tuple(weak)
    return KeyList(packed, problems, entries, bad, False, unusable)


def parse_key_lines(label: str, text: str, max_length: int) -> KeyList:
    """One key per line (blank lines and ``#`` comments ignored) → SHA-256 digests; large
    lists in the helper process once the reloader runs (``_keyhelper``)."""
    data = text.encode("utf-8")
    hashed = None
    if len(data) >= OFFLOAD_BYTES:
        hashed = _keyhelper.hash_elsewhere(b"k", data, max_length, MAX_LIST_KEYS)
    if hashed is None:
        hashed = hash_keys(data, max_length, MAX_LIST_KEYS)
    return _key_list(label, text, max_length, hashed)


def parse_digest_lines(label: str, text: str) -> KeyList:
    """One SHA-256 digest per line (64 hex digits; blank lines and ``#`` comments ignored)."""
    data = text.encode("utf-8")
    hashed = None
    if len(data) >= OFFLOAD_BYTES:
        hashed = _keyhelper.hash_elsewhere(b"d", data, 0, MAX_LIST_KEYS)
    if hashed is None:
        hashed = hash_digests(data, MAX_LIST_KEYS)
    packed, entries, odd, limited = hashed
    if limited:
        return _too_many(label)
    bad = tuple((n, "not 64 hexadecimal characters") for n in odd[:_SHOWN])
    return _result(label, packed, [], bad, len(odd), entries)


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
