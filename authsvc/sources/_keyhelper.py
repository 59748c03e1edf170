"""The list-hashing helper process, seen from the serving process (issue #14).

Once the reloader called ``offload_parsing()``, key lists of ``OFFLOAD_BYTES`` or more are
hashed in ONE helper process: hashing 100,000 keys holds the GIL for ~0.2 s, which a thread
of the serving process cannot do without delaying checks. The helper is ``_keyhash.py`` run
as a script with ``python -I -S`` (isolated, no site-packages): it imports no authsvc module,
so it peaks at ~19 MB, not the ~87 MB of the ``multiprocessing`` forkserver pool it replaces
(forkserver + worker both importing authsvc, plus the resource tracker; docs/performance.md
section 7). Bytes go there, packed digests and odd line numbers come back.

The helper runs at nice ``HELPER_NICE``, exits after ``IDLE`` seconds without a request (a
deployment whose lists do not change holds no second process) and when the serving process
goes (EOF on its stdin). Any failure (no interpreter, a crash, no answer within ``TIMEOUT``:
it is killed) makes the caller hash in-process, as before; the next large list starts a new
helper.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
from array import array
from collections.abc import Iterable

from authsvc.sources import _keyhash
from authsvc.sources._keyhash import REPLY, REQUEST, Hashed

__all__ = ["HELPER_NICE", "IDLE", "OFFLOAD_BYTES", "TIMEOUT", "hash_elsewhere", "offload_parsing"]

OFFLOAD_BYTES = 256 << 10
"""Lists at least this large are hashed in the helper once ``offload_parsing()`` was called."""

HELPER_NICE = 10
"""The helper's CPU priority, relative: hashing 100,000 keys is background work."""

IDLE = 60.0
"""Seconds without a request after which the helper exits (started again on the next need)."""

TIMEOUT = 120.0
"""A request without an answer after this long kills the helper (then: hash here)."""

_lock = threading.Lock()  # one request at a time; guards _proc
_proc: subprocess.Popen[bytes] | None = None
_offload = False


def offload_parsing(files: Iterable[str] = ()) -> None:
    """From now on, hash large key lists in the helper, started on first need. When one of
    ``files`` is already that large, the helper starts now (the caller runs this on a
    thread, off the serving loop), so the first reload does not pay for it."""
    global _offload
    _offload = True
    if any(_large(path) for path in files):
        with _lock:
            _running()


def _large(path: str) -> bool:
    try:
        return os.stat(path).st_size >= OFFLOAD_BYTES
    except OSError:
        return False


def _running() -> subprocess.Popen[bytes] | None:
    """The helper, started if there is none (or the last one exited). Under ``_lock``."""
    global _proc
    if _proc is not None and _proc.poll() is None:
        return _proc
    if _proc is not None:
        _drop(_proc)
    if not sys.executable:
        return None
    argv = [sys.executable, "-I", "-S", "-B", _keyhash.__file__, str(HELPER_NICE), str(IDLE)]
    try:
        _proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError:
        return None
    return _proc


def _drop(proc: subprocess.Popen[bytes]) -> None:
    """Kill and reap ``proc`` and forget it. Under ``_lock``."""
    global _proc
    if _proc is proc:
        _proc = None
    proc.kill()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()
    proc.wait()


def hash_elsewhere(kind: bytes, data: bytes, max_length: int, limit: int) -> Hashed | None:
    """``_keyhash.hash_keys`` (kind ``k``) or ``hash_digests`` (``d``) in the helper; ``None``
    when offloading is off or the helper failed (then the caller hashes here)."""
    if not _offload:
        return None
    with _lock:
        for _ in range(2):  # a helper that was there may have just exited (idle): one retry
            fresh = _proc is None or _proc.poll() is not None
            proc = _running()
            if proc is None:
                return None
            watchdog = threading.Timer(TIMEOUT, proc.kill)
            watchdog.daemon = True
            watchdog.start()
            try:
                return _exchange(proc, kind, data, max_length, limit)
            except (OSError, ValueError):
                _drop(proc)
                if fresh:
                    return None
            finally:
                watchdog.cancel()
    return None


def _exchange(
    proc: subprocess.Popen[bytes], kind: bytes, data: bytes, max_length: int, limit: int
) -> Hashed:
    """One request and its reply; ``ValueError`` for an answer that does not fit it."""
    if proc.stdin is None or proc.stdout is None:
        raise ValueError("no pipes")
    proc.stdin.write(REQUEST.pack(kind, max_length, limit, len(data)))
    proc.stdin.write(data)
    proc.stdin.flush()
    entries, limited, size, count = REPLY.unpack(_exactly(proc, REPLY.size))
    if size % 32 or size > 32 * min(entries, limit) or count > entries:
        raise ValueError("reply out of bounds")
    packed = _exactly(proc, size)
    odd = array("I")
    odd.frombytes(_exactly(proc, count * odd.itemsize))
    return packed, entries, odd.tolist(), limited


def _exactly(proc: subprocess.Popen[bytes], size: int) -> bytes:
    assert proc.stdout is not None
    data = proc.stdout.read(size)
    if len(data) != size:
        raise ValueError("the helper ended mid-reply")
    return data


@atexit.register
def _close() -> None:
    """At exit: close the helper's stdin (it exits) and reap it. A request in flight (a
    reload thread waiting for its answer) does not hold the exit up: the helper is killed."""
    proc = _proc
    if proc is None:
        return
    if not _lock.acquire(timeout=0.5):
        proc.kill()
        return
    try:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        _drop(proc)
    finally:
        _lock.release()
