"""Addresses as the command line writes them (``host:port``, ``[v6]:port``, ``unix:/path``).

One parser for every address the Envoy half takes, so a typo fails here with a message naming
the flag, not later inside Envoy. Pure: no DNS, no sockets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from authsvc._errors import ConfigError

__all__ = ["Address", "parse_address"]

_UNIX = "unix:"


@dataclass(frozen=True, slots=True)
class Address:
    """A TCP ``host``/``port`` pair, or a Unix socket ``path`` (then ``host`` is empty)."""

    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    @property
    def is_ip(self) -> bool:
        """True for a Unix socket or an IP literal: no DNS is needed to reach it."""
        if self.is_unix:
            return True
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def is_loopback(self) -> bool:
        """True for a Unix socket or a loopback IP (127.0.0.0/8, ::1)."""
        if self.is_unix:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def envoy(self) -> dict[str, Any]:
        """Envoy's ``config.core.v3.Address``: ``socket_address`` or ``pipe``."""
        if self.is_unix:
            return {"pipe": {"path": self.path}}
        return {"socket_address": {"address": self.host, "port_value": self.port}}

    def __str__(self) -> str:
        if self.is_unix:
            return f"{_UNIX}{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str, what: str, *, bind: bool = False) -> Address:
    """Parse ``host:port``, ``[v6]:port`` or ``unix:/absolute/path``.

    ``what`` names the flag or field in error messages. With ``bind=True`` (an address Envoy
    listens on) the host must be an IP literal, as Envoy requires; ``localhost`` is accepted
    and means ``127.0.0.1``.
    """
    text = text.strip()
    if text.startswith(_UNIX):
        path = text[len(_UNIX) :]
        if not path.startswith("/"):
            raise ConfigError(f"{what}: unix socket path {path!r} must be absolute (unix:/path)")
        if "\x00" in path or len(path.encode()) > 107:
            raise ConfigError(f"{what}: unix socket path {path!r} is too long or has a NUL byte")
        return Address(path=path)
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{what}: {text!r} is not HOST:PORT or unix:/path")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"{what}: write an IPv6 address in brackets, e.g. [::1]:{port_text}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{what}: port {port_text!r} in {text!r} must be 1-65535")
    if bind and host == "localhost":
        host = "127.0.0.1"
    address = Address(host=host, port=int(port_text))
    if bind and not address.is_ip:
        raise ConfigError(f"{what}: Envoy binds to IP addresses only; {host!r} is not one")
    if not address.is_ip and not _is_hostname(host):
        raise ConfigError(f"{what}: {host!r} is neither an IP address nor a host name")
    return address


def _is_hostname(host: str) -> bool:
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63
        and label.replace("-", "").isalnum()
        and label.isascii()
        and not label.startswith("-")
        for label in labels
    )
