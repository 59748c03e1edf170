"""Reading one small regular file without ever blocking: the primitive every source read uses.

A path handed to authsvc (its config, a key file, a LiteLLM config) is hostile until bounded:
a FIFO makes a plain ``open`` wait for a writer forever, a device can stream without end, a
socket cannot be opened at all. ``read_regular`` therefore

1. ``stat``s the path and refuses anything that is not a regular file *before* opening it (no
   side effect of opening a device or a FIFO);
2. opens with ``O_NONBLOCK`` (an open can never wait: a FIFO swapped in between step 1 and 2
   opens at once, with no writer) and ``O_NOCTTY``, then ``fstat``s the open descriptor and
   refuses it again unless it is a regular file (the thing read is the thing checked);
3. reads at most ``limit + 1`` bytes.

Failures are ``FileProblem`` values, not exceptions: each caller maps them to its own terms
(a reading state for key sources, a ``ConfigError`` for the config file). Messages name the
kind of file, never its content.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from dataclasses import dataclass

__all__ = ["FileProblem", "Problem", "kind_of", "read_regular"]


class Problem(enum.Enum):
    MISSING = "missing"  # no such file (or a directory on its path is missing)
    NOT_REGULAR = "not_regular"  # a directory, FIFO, socket, device: never opened for reading
    DENIED = "denied"  # permission denied
    IO_ERROR = "io_error"  # any other OS error
    TOO_LARGE = "too_large"  # more than ``limit`` bytes


@dataclass(frozen=True, slots=True)
class FileProblem:
    problem: Problem
    detail: str  # "is a FIFO (named pipe), not a regular file", "permission denied", ...


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO (named pipe)", "a directory", ...)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _not_regular(mode: int) -> FileProblem:
    return FileProblem(Problem.NOT_REGULAR, f"is {kind_of(mode)}, not a regular file")


def _os_problem(exc: OSError) -> FileProblem:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return FileProblem(Problem.MISSING, "does not exist")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FileProblem(Problem.DENIED, "cannot be read: permission denied")
    if exc.errno == errno.ENXIO:  # open() of a socket, or of a device with no driver
        return FileProblem(Problem.NOT_REGULAR, "is a socket or device, not a regular file")
    if exc.errno == errno.ELOOP:
        return FileProblem(Problem.IO_ERROR, "cannot be read: too many levels of symbolic links")
    return FileProblem(
        Problem.IO_ERROR, f"cannot be read: {exc.strerror or errno.errorcode.get(exc.errno or 0)}"
    )


_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


def read_regular(path: str, limit: int) -> bytes | FileProblem:
    """The bytes of the regular file at ``path`` (symlinks followed), or why not.

    Never blocks on the file's type: only regular files are opened for reading. More than
    ``limit`` bytes is ``TOO_LARGE`` (at most ``limit + 1`` bytes are ever read).
    """
    try:
        before = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        if isinstance(exc, ValueError):
            return FileProblem(Problem.IO_ERROR, "cannot be read: the path contains a NUL byte")
        return _os_problem(exc)
    if not stat.S_ISREG(before.st_mode):
        return _not_regular(before.st_mode)
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        return _os_problem(exc)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped after the stat above
            return _not_regular(st.st_mode)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        return _os_problem(exc)
    finally:
        os.close(fd)
    if size > limit:
        return FileProblem(Problem.TOO_LARGE, f"is larger than {limit // 1024} KiB")
    return b"".join(chunks)
