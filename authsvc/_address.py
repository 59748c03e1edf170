"""Addresses as flags write them: ``HOST:PORT``, ``[IPV6]:PORT``, ``unix:/PATH``.

One grammar for every address authsvc takes — ``serve --listen``, ``envoy-config --authz`` (and
Envoy's ``--listen``, ``--upstream``, ``--admin``), the status port, the worker addresses — so
that ``serve --listen X`` and ``envoy-config --authz X`` always name the same endpoint, or are
both refused with the same reason. Pure: no DNS, no sockets, no gRPC.

- ``HOST:PORT`` — HOST is an IPv4 address or a host name (letters, digits and ``-`` in dot
  separated labels); PORT is ASCII digits, 1..65535.
- ``[IPV6]:PORT`` — an IPv6 address, always in brackets (``[::1]:9191``, ``[::]:9191``).
- ``unix:/PATH`` (or gRPC's ``unix:///PATH``) — an absolute path naming a socket file (not
  ending in ``/``, ``.`` or ``..``), at most 107 bytes, no control characters. Repeated slashes
  collapse (``unix:///a//b`` is ``unix:/a/b``); ``.`` and ``..`` components are kept as written,
  so each process hands the kernel the same path. A relative path is refused: it would name
  one file for ``serve`` and another for Envoy, which runs in another working directory.
- gRPC's other schemes (``unix-abstract:``, ``vsock:``, ``ipv4:``, ``ipv6:``, ``dns:``) are
  refused. Surrounding whitespace is ignored.

Where a use legitimately differs it says so with a keyword, never with another grammar:
``any_port`` accepts port 0 (the kernel picks a free port: only for a server that reports where
it bound, e.g. ``serve`` alone), ``ip_only`` requires an IP host (Envoy binds to IPs only),
``tcp_only`` refuses Unix sockets (the status port: kubelet probes it over TCP).
Every error is a ``ConfigError`` naming the flag and the address as written.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from authsvc._errors import ConfigError

__all__ = ["MAX_UNIX_PATH_BYTES", "Address", "parse_address"]

MAX_UNIX_PATH_BYTES = 107
"""sun_path is 108 bytes on Linux, one of which is the terminating NUL."""

_UNIX = "unix:"
_OTHER_SCHEMES = ("unix-abstract:", "vsock:", "ipv4:", "ipv6:", "dns:")
_FORMS = "expected HOST:PORT or unix:PATH, e.g. 127.0.0.1:9191, [::1]:9191 or unix:/run/a.sock"
_TCP_FORMS = "expected HOST:PORT, e.g. 127.0.0.1:9191 or [::1]:9191"


@dataclass(frozen=True, slots=True)
class Address:
    """A TCP ``host``/``port`` pair, or a Unix socket ``path`` (then ``host`` is empty).

    ``spec`` is the text as written (for messages); it takes no part in equality, so two
    spellings of one endpoint (``unix:///a``, ``unix:/a``) are equal.
    """

    host: str = ""
    port: int = 0
    path: str = ""
    spec: str = field(default="", compare=False)

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    @property
    def is_ip(self) -> bool:
        """True for a Unix socket or an IP literal: no DNS is needed to reach it."""
        return self.is_unix or _ip(self.host) is not None

    @property
    def is_loopback(self) -> bool:
        """True for a Unix socket or a loopback IP (127.0.0.0/8, ::1)."""
        ip = _ip(self.host)
        return self.is_unix or (ip is not None and ip.is_loopback)

    @property
    def grpc_target(self) -> str:
        """The address in gRPC's syntax (``unix:/abs/path``, ``host:port``, ``[v6]:port``)."""
        return str(self)

    def bound(self, port: int) -> str:
        """How the address reads once bound (the real port when 0 was asked for)."""
        return str(self) if self.is_unix else f"{_bracket(self.host)}:{port}"

    def envoy(self) -> dict[str, Any]:
        """Envoy's ``config.core.v3.Address``: ``socket_address`` or ``pipe``."""
        if self.is_unix:
            return {"pipe": {"path": self.path}}
        return {"socket_address": {"address": self.host, "port_value": self.port}}

    def __str__(self) -> str:
        return f"{_UNIX}{self.path}" if self.is_unix else f"{_bracket(self.host)}:{self.port}"


def parse_address(
    text: str, what: str, *, any_port: bool = False, ip_only: bool = False, tcp_only: bool = False
) -> Address:
    """Parse one address (see the module docstring for the grammar).

    ``what`` names the flag or field in error messages. ``any_port=True`` accepts port 0 (the
    kernel picks one). ``ip_only=True`` (an address Envoy binds) requires an IP literal host;
    ``localhost`` is accepted there and means ``127.0.0.1``. ``tcp_only=True`` refuses a Unix
    socket (an HTTP port that kubelet or a browser reaches).
    """
    value = text.strip()

    def error(why: str) -> ConfigError:
        return ConfigError(f"{what} {text!r}: {why}")

    if value.startswith(_UNIX):
        if tcp_only:
            raise error("a Unix socket cannot be used here; give HOST:PORT")
        return Address(path=_unix_path(value[len(_UNIX) :], error), spec=text)
    if value.lower().startswith(_UNIX):
        raise error("write the scheme in lower case: unix:PATH")
    if value.lower().startswith(_OTHER_SCHEMES):
        raise error("only HOST:PORT, [IPV6]:PORT and unix:PATH are supported")
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":") or not isinstance(_ip(host), ipaddress.IPv6Address):
            raise error("expected [IPV6]:PORT, e.g. [::1]:9191")
        port_text = rest[1:]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise error(_TCP_FORMS if tcp_only else _FORMS)
        if ":" in host:
            raise error("write IPv6 addresses in brackets, e.g. [::1]:9191")
        if _ip(host) is None and not _is_hostname(host):
            raise error(f"{host!r} is neither an IP address nor a host name")
    lowest = 0 if any_port else 1
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise error(f"port {port_text!r} is not a number in {lowest}..65535")
    if int(port_text) < lowest:
        raise error("port 0 (any free port) cannot be used here: the port must be known (1..65535)")
    if ip_only and host == "localhost":
        host = "127.0.0.1"
    if ip_only and _ip(host) is None:
        raise error(f"Envoy binds to IP addresses only; {host!r} is not one")
    return Address(host=host, port=int(port_text), spec=text)


def _unix_path(path: str, error: Callable[[str], ConfigError]) -> str:
    if not path:
        raise error("the Unix socket path is empty")
    if path.startswith("//") and not path.startswith("///"):
        raise error("write unix:/PATH or unix:///PATH (an absolute path)")
    if not path.startswith("/"):
        raise error(f"the Unix socket path {path!r} must be absolute (unix:/PATH)")
    if not path.isprintable():
        raise error("the Unix socket path has a control character (a NUL byte, a newline, ...)")
    path = re.sub("/{2,}", "/", path)
    if path.endswith("/") or path.rpartition("/")[2] in (".", ".."):
        raise error(f"the Unix socket path {path!r} must end with a file name")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_UNIX_PATH_BYTES:
        raise error(
            f"the Unix socket path {path!r} is longer than {MAX_UNIX_PATH_BYTES} bytes "
            "(the kernel limit); use a shorter path"
        )
    return path


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_hostname(host: str) -> bool:
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63
        and label.replace("-", "").isalnum()
        and label.isascii()
        and not label.startswith("-")
        for label in labels
    )
