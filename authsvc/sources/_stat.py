"""``file_signature``: what reading some files would see, as far as ``stat`` can tell."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

__all__ = ["SETTLED", "FileSignature", "file_signature"]

SETTLED = 1.0
"""A file changed less than this many seconds ago may change again within the same timestamp
tick without its signature showing it (the 'racy clean' case): it is read again."""

FileSignature = tuple[tuple[object, ...], ...]


def file_signature(paths: Iterable[str], now: float | None = None) -> FileSignature | None:
    """What a reload would read, as far as ``stat`` can tell; ``None`` when it cannot tell.

    Per path: device, inode, mode, size, mtime and ctime of what the path points to now
    (symlinks followed: kubelet's ``..data`` swap shows as a new inode), or the errno that
    ``stat`` gave. A content change moves ctime, which no tool can set back. ``None`` when a
    file's ctime is within ``SETTLED`` seconds of ``now``: a second write in the same tick
    would look identical.
    """
    now = time.time() if now is None else now
    signature: list[tuple[object, ...]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as exc:
            signature.append((path, exc.errno))
            continue
        if st.st_ctime_ns >= (now - SETTLED) * 1e9:
            return None
        signature.append(
            (path, st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        )
    return tuple(signature)
