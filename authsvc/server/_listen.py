"""``--listen`` addresses: Unix socket preparation and cleanup, bind diagnostics (no gRPC here).

The grammar is ``authsvc._address`` — the one ``envoy-config --authz`` uses, so both halves read
an address alike; ``serve --listen`` alone may also ask for port 0 (the kernel picks one, and
the server reports it). Forms (repeatable flag): ``HOST:PORT`` (``127.0.0.1:9191``,
``localhost:9191``, ``0.0.0.0:0``), ``[V6]:PORT`` (``[::1]:9191``), ``unix:/PATH`` (also
``unix:///PATH``; absolute).

Unix sockets: the parent directory is created when missing; an existing *socket* file at the
path is removed before binding when nothing answers on it (a stale leftover), but never when a
live server is listening there, and a path that exists and is *not* a socket (a regular file, a
directory, a symlink) is refused. The socket file is removed again at shutdown: gRPC unlinks
it itself when a started server stops, and we remove it when start-up fails half-way (gRPC does
not) — in our case only if it is still the file this process bound.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import stat
import sys
import tempfile
from pathlib import Path

from authsvc._address import Address, parse_address
from authsvc._errors import ConfigError

__all__ = [
    "ListenError",
    "describe_bind_failure",
    "internal_address",
    "parse_listen",
    "parse_socket_mode",
    "prepare_unix_socket",
    "remove_unix_socket",
    "socket_identity",
]


class ListenError(ConfigError):
    """A ``--listen`` address is invalid or cannot be bound. The message names the address."""


def parse_listen(spec: str) -> Address:
    """One ``--listen`` value by the shared grammar, port 0 allowed; ``ListenError`` if bad."""
    try:
        return parse_address(spec, "--listen", any_port=True)
    except ConfigError as exc:
        raise ListenError(str(exc)) from None


def parse_socket_mode(text: str) -> int:
    """``--socket-mode``: octal permission bits (``0660``, ``660``, ``0o600``), at most 0777."""
    digits = text.strip().lower().removeprefix("0o")
    if not digits or len(digits) > 4 or any(c not in "01234567" for c in digits):
        raise ListenError(f"--socket-mode: {text!r} is not an octal mode like 0660")
    mode = int(digits, 8)
    if mode > 0o777:
        raise ListenError(f"--socket-mode: {text!r} sets bits above 0777")
    return mode


def _someone_listens(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(path)
    except OSError:
        return False
    else:
        return True
    finally:
        probe.close()


def prepare_unix_socket(addr: Address) -> None:
    """Make ``addr.path`` bindable: create the parent directory, clear a stale socket file."""
    path = Path(addr.path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ListenError(
            f"--listen {addr.spec!r}: cannot create directory {str(path.parent)!r}: {exc.strerror}"
        ) from exc
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ListenError(
            f"--listen {addr.spec!r}: {addr.path!r} exists and is not a socket; "
            "refusing to replace it (remove it or choose another path)"
        )
    if _someone_listens(addr.path):
        raise ListenError(
            f"--listen {addr.spec!r}: another process is already listening on {addr.path!r}"
        )
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ListenError(
            f"--listen {addr.spec!r}: cannot remove stale socket {addr.path!r}: {exc.strerror}"
        ) from exc


def socket_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the socket file at ``path``, or None when there is none."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISSOCK(info.st_mode):
        return None
    return info.st_dev, info.st_ino


def remove_unix_socket(path: str, identity: tuple[int, int] | None) -> None:
    """Remove the socket file we bound, unless something else has replaced it since."""
    if identity is None or socket_identity(path) != identity:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def describe_bind_failure(addr: Address) -> str:
    """A best guess at why gRPC could not bind ``addr`` (gRPC itself only says 'failed')."""
    if addr.is_unix:
        return "check the directory's permissions"
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, family, socket.SOCK_STREAM)
    except socket.gaierror:
        return f"the host {addr.host!r} does not resolve"
    for *_, sockaddr in infos:
        probe = socket.socket(family, socket.SOCK_STREAM)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {addr.port} is already in use"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{addr.host!r} is not an address of this machine"
            if exc.errno == errno.EACCES:
                return f"no permission to bind port {addr.port}"
            return exc.strerror or str(exc)
        finally:
            probe.close()
    return "the gRPC runtime refused the address"


def internal_address() -> tuple[str, str, str | None]:
    """(gRPC target, asyncio connect path, directory to remove) for the private gRPC server
    behind the fast front."""
    name = f"authsvc-{os.getpid()}-{secrets.token_hex(8)}"
    if sys.platform.startswith("linux"):
        return f"unix-abstract:{name}", "\0" + name, None
    directory = tempfile.mkdtemp(prefix="authsvc-")
    path = os.path.join(directory, "grpc.sock")
    return f"unix:{path}", path, directory
