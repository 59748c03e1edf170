"""Reading one small text file, with every failure mapped to a reading state (no exceptions)."""

from __future__ import annotations

from authsvc.keymodel import State

__all__ = ["MAX_FILE_BYTES", "read_text"]

MAX_FILE_BYTES = 1 << 20
"""A key file or a LiteLLM config is small; anything bigger is refused rather than read."""


def read_text(path: str, what: str = "the file") -> tuple[State, str, str | None]:
    """``(state, detail, text)``: ``text`` is ``None`` unless the file was read as UTF-8.

    A missing file (or a missing directory on its path) is ``missing``; a directory, a
    permission problem or any other I/O error is ``unreadable``; oversize or non-UTF-8 content
    is ``invalid``. Symlinks are followed (Kubernetes Secrets are symlinks).
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return State.MISSING, f"{what} does not exist", None
    except IsADirectoryError:
        return State.UNREADABLE, f"{what} is a directory", None
    except PermissionError:
        return State.UNREADABLE, f"{what} cannot be read: permission denied", None
    except OSError as exc:
        return (
            State.UNREADABLE,
            f"{what} cannot be read: {exc.strerror or type(exc).__name__}",
            None,
        )
    if len(data) > MAX_FILE_BYTES:
        return State.INVALID, f"{what} is larger than {MAX_FILE_BYTES // 1024} KiB", None
    try:
        return State.SET, "", data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return State.INVALID, f"{what} is not UTF-8 text (byte {exc.start})", None
