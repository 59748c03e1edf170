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
import multiprocessing
import os
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from operator import eq, itemgetter, methodcaller

from authsvc.keymodel import DigestBatch, ExtraKeyReadings, KeyMeta, Reading, State
from authsvc.sources._protocol import SourceOutput

__all__ = [
    "MAX_LIST_BYTES",
    "MAX_LIST_KEYS",
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
"""Keys per list file; more is refused (the ring holds ~180 bytes per key)."""

_SHOWN = 5  # line numbers named in a summary

# What ``assess`` calls ``set``, as one C-level match: printable ASCII without space or comma,
# at least 16 characters (every publicly known key is shorter). Length and "one repeated
# character" are checked next; anything else goes through ``assess`` for its exact reason.
_USABLE = re.compile(r"[!-+\--~]{16,}")
_USABLE_LINES = re.compile(r"[!-+\--~]{16,}(?:\n[!-+\--~]{16,})*")
_HEX_LINE = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class KeyList:
    """What one list file held: packed digests, per-line problems, the count of entries."""

    packed: bytes
    problems: tuple[Reading, ...]
    entries: int
    bad: tuple[tuple[int, str], ...] = ()  # (line number, why) of the unusable lines
    limited: bool = False  # past MAX_LIST_KEYS: nothing loaded


def _too_many(label: str) -> KeyList:
    detail = (
        f"the file holds more than {MAX_LIST_KEYS:,} keys (the limit per key list): "
        "split it into several files"
    )
    return KeyList(b"", (Reading.without_value(label, State.INVALID, detail),), 0, (), True)


def _result(
    label: str, packed: bytes, weak: list[Reading], bad: list[tuple[int, str]], entries: int
) -> KeyList:
    problems = (*weak, _summary(label, bad)) if bad else tuple(weak)
    return KeyList(packed, problems, entries, tuple(bad))


def _summary(label: str, bad: list[tuple[int, str]]) -> Reading:
    shown = ", ".join(f"line {n} ({why})" for n, why in bad[:_SHOWN])
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    detail = f"{len(bad)} line(s) cannot be used and were not loaded: {shown}{more}"
    return Reading.without_value(f"{label}#lines", State.INVALID, detail)


def _parse_keys_here(label: str, text: str, max_length: int) -> KeyList:
    """One key per line (blank lines and ``#`` comments ignored) → SHA-256 digests.

    Lines are taken ``CHUNK`` at a time. A chunk whose every line is blank, a comment or a
    usable key (the common case) is hashed by C-level ``map``s with no Python step per key;
    any other chunk is read line by line for the exact reason of each bad line.
    """
    lines = text.splitlines()
    keys: list[bytes] = []
    weak: list[Reading] = []
    bad: list[tuple[int, str]] = []
    count = 0
    for start in range(0, len(lines), CHUNK):
        stripped = list(map(str.strip, lines[start : start + CHUNK]))
        fast = _usable_chunk(stripped, max_length)
        if fast is not None:
            keys.append(b"".join(map(_DIGEST, map(hashlib.sha256, map(str.encode, fast)))))
            count += len(fast)
        else:
            count += _slow_chunk(label, stripped, start, max_length, keys, weak, bad)
        if count > MAX_LIST_KEYS:
            return _too_many(label)
    return _result(label, b"".join(keys), weak, bad, count + len(bad))


_DIGEST = methodcaller("digest")
CHUNK = 4096
"""Lines per step of a key list: ~1-2 ms of C-level work, so a parse on the reload thread
gives the GIL back to the serving loop that often."""


def _usable_chunk(stripped: list[str], max_length: int) -> list[str] | None:
    """The keys of ``stripped`` if every line is blank, a comment or a usable key, else None."""
    entries = [line for line in stripped if line and line[0] != "#"]
    if not entries:
        return entries
    if max(map(len, entries)) > max_length or not _USABLE_LINES.fullmatch("\n".join(entries)):
        return None
    firsts = map(itemgetter(0), entries)
    if any(map(eq, map(str.count, entries, firsts), map(len, entries))):
        return None  # a key of one repeated character: weak
    return entries


def _slow_chunk(
    label: str,
    stripped: list[str],
    start: int,
    max_length: int,
    keys: list[bytes],
    weak: list[Reading],
    bad: list[tuple[int, str]],
) -> int:
    """Line by line: usable keys hashed into ``keys``, the rest sorted into ``weak``/``bad``."""
    usable = _USABLE.fullmatch
    found = 0
    for number, line in enumerate(stripped, start=start + 1):
        if not line or line[0] == "#":
            continue
        if usable(line) and len(line) <= max_length and line.count(line[0]) != len(line):
            keys.append(hashlib.sha256(line.encode("ascii")).digest())
            found += 1
            continue
        reading = Reading.of_value(
            f"{label}#line{number}", line, max_length=max_length, what="the key"
        )
        if reading.state is State.WEAK:
            weak.append(reading)
            found += 1
        else:
            bad.append((number, reading.detail.removeprefix("the key ")))
    return found


def _parse_digests_here(label: str, text: str) -> KeyList:
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
    return _result(label, bytes.fromhex("".join(hexes)), [], bad, len(hexes) + len(bad))


# -- parsing in a helper process (the reloader's choice) -------------------------------------

OFFLOAD_BYTES = 256 << 10
"""Lists at least this large are parsed in the helper process once ``offload_parsing()`` was
called (the reloader does, when it starts): hashing 100,000 keys holds the GIL for ~0.2 s,
which a thread of the serving process cannot do without delaying checks (issue #14). Any
failure of the helper falls back to parsing here."""

HELPER_NICE = 10
"""The helper's CPU priority, relative: hashing 100,000 keys is background work."""

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()
_offload = False


def offload_parsing(files: Iterable[str] = ()) -> None:
    """From now on, parse large key lists in a helper process, started on first need. When one
    of ``files`` is already that large, the helper is started now (off the serving loop: the
    caller runs this on a thread), so the first reload does not pay for it; a deployment with
    small lists never starts one."""
    global _offload
    _offload = True
    if not any(_large(path) for path in files):
        return
    pool = _helper()
    if pool is not None:
        try:
            pool.submit(int).result(timeout=60)
        except Exception:  # no helper: parse here, as before
            _offload = False


def _large(path: str) -> bool:
    try:
        return os.stat(path).st_size >= OFFLOAD_BYTES
    except OSError:
        return False


def _helper() -> ProcessPoolExecutor | None:
    global _pool
    with _pool_lock:
        if _pool is None:
            try:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])  # this module only, never __main__
                # niced: on a busy node the kernel runs Envoy and the serving loop first
                _pool = ProcessPoolExecutor(
                    1, mp_context=context, initializer=os.nice, initargs=(HELPER_NICE,)
                )
            except (OSError, ValueError):
                return None
        return _pool


def _elsewhere(func: Callable[..., _Shipped], *args: object) -> _Shipped | None:
    if not _offload:
        return None
    pool = _helper()
    if pool is None:
        return None
    try:
        return pool.submit(func, *args).result(timeout=120)
    except Exception:  # a broken helper: parse here (and start a new helper next time)
        global _pool
        with _pool_lock:
            if _pool is pool:
                _pool = None
        pool.shutdown(wait=False, cancel_futures=True)
        return None


# What crosses the process boundary: no ``Reading`` (a weak line's ``Secret`` refuses to be
# pickled, by design); the parent rebuilds the few problem readings from the line numbers.
_Shipped = tuple[bytes, int, tuple[int, ...], tuple[tuple[int, str], ...], bool]


def _ship(parsed: KeyList) -> _Shipped:
    weak = tuple(
        int(r.source.rsplit("#line", 1)[1]) for r in parsed.problems if r.state is State.WEAK
    )
    return parsed.packed, parsed.entries, weak, parsed.bad, parsed.limited


def _keys_remote(text: str, max_length: int) -> _Shipped:
    return _ship(_parse_keys_here("", text, max_length))


def _digests_remote(text: str) -> _Shipped:
    return _ship(_parse_digests_here("", text))


def _unship(label: str, text: str, max_length: int, shipped: _Shipped) -> KeyList:
    packed, entries, weak_lines, bad, limited = shipped
    if limited:
        return _too_many(label)
    weak: list[Reading] = []
    if weak_lines:
        lines = text.splitlines()
        weak = [
            Reading.of_value(
                f"{label}#line{n}", lines[n - 1].strip(), max_length=max_length, what="the key"
            )
            for n in weak_lines
        ]
    return _result(label, packed, weak, list(bad), entries)


def parse_key_lines(label: str, text: str, max_length: int) -> KeyList:
    """One key per line (blank lines and ``#`` comments ignored) → SHA-256 digests."""
    if len(text) >= OFFLOAD_BYTES:
        shipped = _elsewhere(_keys_remote, text, max_length)
        if shipped is not None:
            return _unship(label, text, max_length, shipped)
    return _parse_keys_here(label, text, max_length)


def parse_digest_lines(label: str, text: str) -> KeyList:
    """One SHA-256 digest per line (64 hex digits; blank lines and ``#`` comments ignored)."""
    if len(text) >= OFFLOAD_BYTES:
        shipped = _elsewhere(_digests_remote, text)
        if shipped is not None:
            return _unship(label, text, 0, shipped)
    return _parse_digests_here(label, text)


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
