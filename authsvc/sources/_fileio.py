"""Reading one small text file, with every failure mapped to a reading state (no exceptions).

The read itself is ``authsvc._fileio.read_regular``: never blocks, refuses anything that is
not a regular file (a FIFO, a socket, a device, a directory) before opening it.
"""

from __future__ import annotations

from authsvc._fileio import FileProblem, Problem, read_regular
from authsvc.keymodel import State

__all__ = ["MAX_FILE_BYTES", "read_text"]

MAX_FILE_BYTES = 1 << 20
"""A key file or a LiteLLM config is small; anything bigger is refused rather than read."""

_STATE = {
    Problem.MISSING: State.MISSING,
    Problem.NOT_REGULAR: State.UNREADABLE,
    Problem.DENIED: State.UNREADABLE,
    Problem.IO_ERROR: State.UNREADABLE,
    Problem.TOO_LARGE: State.INVALID,
}


def read_text(
    path: str, what: str = "the file", *, limit: int = MAX_FILE_BYTES
) -> tuple[State, str, str | None]:
    """``(state, detail, text)``: ``text`` is ``None`` unless the file was read as UTF-8.

    A missing file (or a missing directory on its path) is ``missing``; a directory, a FIFO,
    a socket, a device, a permission problem or any other I/O error is ``unreadable``;
    oversize or non-UTF-8 content is ``invalid``. Symlinks are followed (Kubernetes Secrets
    are symlinks). ``limit``: the size cap (a key list has a larger one). Never blocks: see
    ``authsvc._fileio``.
    """
    data = read_regular(path, limit)
    if isinstance(data, FileProblem):
        return _STATE[data.problem], f"{what} {data.detail}", None
    try:
        return State.SET, "", data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return State.INVALID, f"{what} is not UTF-8 text (byte {exc.start})", None
