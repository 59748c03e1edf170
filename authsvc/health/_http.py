"""The one outbound HTTP adapter of the health package: a GET that never raises.

Probe forwarding, deep health and ``verify`` all need the same thing: send one GET, get a
status, a few headers and a bounded body back, or a short human reason why nothing came back.
Every socket/TLS/HTTP exception is converted here, so callers deal with two plain values.

Request headers may carry a key: they are never put into an ``HttpFailure`` reason, a log
line or an exception message.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

__all__ = ["MAX_BODY", "HttpAnswer", "HttpFailure", "Target", "http_get", "parse_url"]

MAX_BODY = 4096
"""Bytes of response body kept; health answers are short and we never need more."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send a GET: scheme, host, port and the request target (path + query)."""

    scheme: str  # "http" or "https"
    host: str
    port: int
    path: str

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """The server answered. ``headers`` has lower-cased names (repeats joined with ``,``)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpFailure:
    """Nothing usable came back. ``reason`` is short, human and never contains a header."""

    reason: str


def parse_url(url: str, path: str = "") -> Target:
    """``http(s)://host[:port][/base]`` plus ``path`` → a ``Target``. Raises ``ValueError``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"URL {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"URL {url!r} has no host")
    if parts.username or parts.password:
        raise ValueError(f"URL {url!r} must not carry credentials")
    if parts.query or parts.fragment:
        raise ValueError(f"URL {url!r} must not have a query or fragment")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"URL {url!r} has an invalid port") from exc
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    base = parts.path.rstrip("/")
    if path and not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with '/'")
    return Target(parts.scheme, parts.hostname, port, base + path or "/")


def _tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        # kubelet does not verify certificates of HTTPS probes; the pass-through matches it.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _failure(exc: BaseException, target: Target, timeout: float) -> HttpFailure:
    where = target.authority
    if isinstance(exc, TimeoutError | socket.timeout):
        return HttpFailure(f"timed out after {timeout:g}s waiting for {where}")
    if isinstance(exc, ConnectionRefusedError):
        return HttpFailure(f"connection refused by {where}")
    if isinstance(exc, ConnectionResetError | http.client.RemoteDisconnected):
        return HttpFailure(f"{where} closed the connection without an answer")
    if isinstance(exc, ssl.SSLError):
        return HttpFailure(f"TLS handshake with {where} failed ({exc.reason or 'ssl error'})")
    if isinstance(exc, socket.gaierror):
        return HttpFailure(f"cannot resolve host {target.host!r}")
    if isinstance(exc, http.client.HTTPException):
        return HttpFailure(f"{where} sent an invalid HTTP response ({type(exc).__name__})")
    if isinstance(exc, OSError):
        return HttpFailure(f"cannot reach {where} ({exc.strerror or type(exc).__name__})")
    return HttpFailure(f"request to {where} failed ({type(exc).__name__})")


def http_get(
    target: Target,
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float,
    verify_tls: bool = True,
    max_body: int = MAX_BODY,
) -> HttpAnswer | HttpFailure:
    """Send ``GET target`` and return the answer, or why there is none. Never raises for I/O."""
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout, context=_tls_context(verify_tls)
        )
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        send = {"user-agent": "authsvc-health", "accept": "*/*", "connection": "close"}
        send.update({name.lower(): value for name, value in (headers or {}).items()})
        conn.putrequest("GET", target.path, skip_host="host" in send, skip_accept_encoding=True)
        for name, value in send.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read(max_body)
        got: dict[str, str] = {}
        for name, value in response.getheaders():
            lower = name.lower()
            got[lower] = f"{got[lower]},{value}" if lower in got else value
        return HttpAnswer(response.status, MappingProxyType(got), body)
    except (OSError, http.client.HTTPException) as exc:
        return _failure(exc, target, timeout)
    except ValueError:
        # http.client refuses header values with CR/LF or non-Latin-1 text; never echo them.
        return HttpFailure(f"request to {target.authority} has an invalid header value")
    finally:
        conn.close()
