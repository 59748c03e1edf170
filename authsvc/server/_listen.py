"""``--listen`` addresses: parsing, Unix socket preparation and cleanup (no gRPC here).

Accepted forms (repeatable flag):

- ``HOST:PORT`` — ``127.0.0.1:9191``, ``localhost:9191``, ``0.0.0.0:9191`` (port 0 = pick one)
- ``[V6]:PORT`` — ``[::1]:9191``, ``[::]:9191``
- ``unix:PATH`` — ``unix:/var/run/authsvc/authz.sock`` (also ``unix:///abs/path``); a relative
  path is made absolute against the working directory.

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
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from authsvc._errors import ConfigError

__all__ = [
    "MAX_UNIX_PATH_BYTES",
    "ListenAddress",
    "ListenError",
    "describe_bind_failure",
    "parse_listen",
    "prepare_unix_socket",
    "remove_unix_socket",
    "socket_identity",
]

MAX_UNIX_PATH_BYTES = 107
"""sun_path is 108 bytes on Linux, one of which is the terminating NUL."""


class ListenError(ConfigError):
    """A ``--listen`` address is invalid or cannot be bound. The message names the address."""


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """One parsed ``--listen`` value. ``host``/``port`` for TCP, ``path`` for a Unix socket."""

    spec: str  # as the user wrote it, for messages
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    @property
    def grpc_target(self) -> str:
        """The address in gRPC's syntax (``unix:/abs/path``, ``host:port``, ``[v6]:port``)."""
        if self.is_unix:
            return f"unix:{self.path}"
        return f"{_bracket(self.host)}:{self.port}"

    def bound(self, port: int) -> str:
        """How the address reads once bound (the real port when 0 was asked for)."""
        return self.grpc_target if self.is_unix else f"{_bracket(self.host)}:{port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_listen(spec: str) -> ListenAddress:
    """Parse one ``--listen`` value; raise ``ListenError`` naming it when it is not usable."""
    value = spec.strip()
    if value.startswith("unix:"):
        return _parse_unix(spec, value[len("unix:") :])
    if value.startswith(("unix-abstract:", "vsock:", "ipv4:", "ipv6:", "dns:")):
        raise ListenError(
            f"--listen {spec!r}: only HOST:PORT, [IPV6]:PORT and unix:PATH are supported"
        )
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":") or not host:
            raise ListenError(f"--listen {spec!r}: expected [IPV6]:PORT, e.g. [::1]:9191")
        port_text = rest[1:]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise ListenError(f"--listen {spec!r}: expected HOST:PORT, e.g. 127.0.0.1:9191")
        if ":" in host:
            raise ListenError(
                f"--listen {spec!r}: write IPv6 addresses in brackets, e.g. [::1]:9191"
            )
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ListenError(f"--listen {spec!r}: port {port_text!r} is not a number in 0..65535")
    return ListenAddress(spec=spec, host=host, port=int(port_text))


def _parse_unix(spec: str, raw_path: str) -> ListenAddress:
    if raw_path.startswith("//"):  # unix:///abs/path (URI form)
        raw_path = raw_path[2:]
    if not raw_path:
        raise ListenError(f"--listen {spec!r}: the Unix socket path is empty")
    path = os.path.abspath(raw_path)
    if len(os.fsencode(path)) > MAX_UNIX_PATH_BYTES:
        raise ListenError(
            f"--listen {spec!r}: Unix socket path {path!r} is longer than "
            f"{MAX_UNIX_PATH_BYTES} bytes (the kernel limit); use a shorter path"
        )
    return ListenAddress(spec=spec, path=path)


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


def prepare_unix_socket(addr: ListenAddress) -> None:
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


def describe_bind_failure(addr: ListenAddress) -> str:
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
