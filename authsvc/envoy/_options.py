"""What the generated Envoy bootstrap is built from: one frozen, validated value.

``EnvoyOptions`` holds plain strings and numbers (what a flag or config file gives); its
validation runs at construction, so ``build_bootstrap`` never sees a bad value and every error
names the field. Defaults are the hardened ones documented in docs/envoy.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from authsvc import _defaults
from authsvc._address import Address, parse_address
from authsvc._errors import ConfigError
from authsvc.authz import (
    DEFAULT_LOCATIONS,
    DEFAULT_PUBLIC_METHODS,
    DEFAULT_PUBLIC_PATHS,
    DEFAULT_WS_LOCATIONS,
    is_canonical,
)

__all__ = [
    "DEFAULT_CREDENTIAL_HEADERS",
    "ERROR_STATUSES",
    "EnvoyOptions",
    "EscapedSlashes",
    "RouteOptions",
]

DEFAULT_CREDENTIAL_HEADERS: tuple[str, ...] = tuple(
    dict.fromkeys(
        loc.name for loc in (*DEFAULT_LOCATIONS, *DEFAULT_WS_LOCATIONS) if loc.kind == "header"
    )
)
"""Headers that carry a key (LiteLLM's set): the only headers Envoy sends to authsvc, and stripped
upstream when ``forward_credentials`` is off."""

ERROR_STATUSES: Mapping[int, str] = {
    403: "Forbidden",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
"""``status_on_error`` values we allow, with Envoy's ``type.v3.StatusCode`` enum names."""

EscapedSlashes = Literal["REJECT_REQUEST", "UNESCAPE_AND_REDIRECT", "UNESCAPE_AND_FORWARD"]
_ESCAPED_SLASHES = ("REJECT_REQUEST", "UNESCAPE_AND_REDIRECT", "UNESCAPE_AND_FORWARD")

_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
_CONTEXT_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_ROUTE_PREFIX = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$")


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """Extra settings for requests under a path ``prefix`` (the check still always runs).

    ``timeout`` is the upstream request timeout in seconds (0 = none; ``None`` = the global
    ``upstream_timeout``). ``context_extensions`` reach authsvc in every CheckRequest of that
    route (``attributes.context_extensions``), e.g. ``{"route": "chat"}``.
    """

    prefix: str
    timeout: float | None = None
    context_extensions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        what = f"route {self.prefix!r}"
        if not _ROUTE_PREFIX.match(self.prefix) or not is_canonical(self.prefix):
            raise ConfigError(
                f"{what}: a route prefix must be an absolute path in normal form "
                "(no '..', '//', %-escapes, query or fragment)"
            )
        if self.timeout is not None and not 0 <= self.timeout <= 86400:
            raise ConfigError(f"{what}: timeout must be between 0 and 86400 seconds")
        for key, value in self.context_extensions:
            if not _CONTEXT_KEY.match(key) or not value.isprintable():
                raise ConfigError(f"{what}: bad context extension {key!r}")


@dataclass(frozen=True, slots=True)
class EnvoyOptions:
    """Everything the bootstrap depends on. Addresses: ``host:port`` or ``unix:/path``.

    ``authz`` lists one or more authsvc endpoints (one per worker); Envoy spreads checks over
    them. ``public_paths`` are matched exactly (GET/HEAD only) and skip the check in Envoy;
    authsvc allows them itself too. With ``forward_credentials=False`` the
    ``credential_headers`` are removed before the request goes upstream (after the check);
    they are the only request headers Envoy sends to authsvc (``allowed_headers``).
    """

    listen: str = _defaults.ENVOY_LISTEN
    upstream: str = f"127.0.0.1:{_defaults.APP_PORT}"
    authz: tuple[str, ...] = (_defaults.AUTHZ_LISTEN,)
    admin: str = _defaults.ENVOY_ADMIN
    authz_timeout: float = 1.0
    public_paths: tuple[str, ...] = DEFAULT_PUBLIC_PATHS
    public_methods: tuple[str, ...] = DEFAULT_PUBLIC_METHODS
    forward_credentials: bool = True
    credential_headers: tuple[str, ...] = DEFAULT_CREDENTIAL_HEADERS
    session_cookie: bool = False  # LiteLLM mode: Cookie goes to authsvc (the UI's token cookie)
    status_on_error: int = 503
    escaped_slashes: EscapedSlashes = "REJECT_REQUEST"
    upstream_timeout: float = 600.0
    routes: tuple[RouteOptions, ...] = ()
    access_log: bool = True
    authz_cluster: str = _defaults.AUTHZ_CLUSTER
    max_authz_requests: int = 1024

    def __post_init__(self) -> None:
        self.listen_address  # noqa: B018 - parse to validate
        self.upstream_address  # noqa: B018
        if not self.admin_address.is_loopback:
            raise ConfigError(
                f"admin: {self.admin!r} is not a loopback address; Envoy's admin interface can "
                "shut Envoy down and reveal its config, so it binds to 127.0.0.1, ::1 or a "
                "unix socket only"
            )
        if isinstance(self.authz, str) or not self.authz:
            raise ConfigError("authz: give one or more addresses (a tuple of host:port / unix:)")
        authz = self.authz_addresses
        if len(set(authz)) != len(authz):
            raise ConfigError(f"authz: duplicate address in {list(self.authz)}")
        if any(a.is_unix for a in authz) and not all(a.is_ip for a in authz):
            raise ConfigError("authz: unix sockets cannot be mixed with DNS host names")
        self._check_numbers()
        self._check_paths()
        self._check_headers()

    def _check_numbers(self) -> None:
        if not 0.01 <= self.authz_timeout <= 60:
            raise ConfigError("authz timeout (--timeout) must be between 0.01 and 60 seconds")
        if not 0 <= self.upstream_timeout <= 86400:
            raise ConfigError("upstream_timeout must be between 0 and 86400 seconds (0 = none)")
        if self.status_on_error not in ERROR_STATUSES:
            raise ConfigError(
                f"status_on_error {self.status_on_error} must be one of {sorted(ERROR_STATUSES)}"
            )
        if self.escaped_slashes not in _ESCAPED_SLASHES:
            raise ConfigError(f"escaped_slashes must be one of {list(_ESCAPED_SLASHES)}")
        if not 16 <= self.max_authz_requests <= 100_000:
            raise ConfigError("max_authz_requests must be between 16 and 100000")
        if not re.fullmatch(r"[a-z0-9_.-]+", self.authz_cluster):
            raise ConfigError(f"authz_cluster {self.authz_cluster!r} must match [a-z0-9_.-]+")

    def _check_paths(self) -> None:
        for path in self.public_paths:
            if not path.startswith("/") or not is_canonical(path) or "?" in path or "#" in path:
                raise ConfigError(
                    f"public path {path!r} is not in normal form "
                    "(absolute, no query, no '.', '..', '//' or %-escapes)"
                )
        if len(set(self.public_paths)) != len(self.public_paths):
            raise ConfigError(f"public paths contain a duplicate: {list(self.public_paths)}")
        for method in self.public_methods:
            if method not in ("GET", "HEAD", "OPTIONS"):
                raise ConfigError(f"public method {method!r} must be GET, HEAD or OPTIONS")
        prefixes = [r.prefix for r in self.routes]
        if len(set(prefixes)) != len(prefixes):
            raise ConfigError(f"routes: duplicate prefix in {prefixes}")

    def _check_headers(self) -> None:
        for name in self.credential_headers:
            if not _HEADER_NAME.match(name) or name.startswith(":") or name == "host":
                raise ConfigError(
                    f"credential header {name!r} must be a lower-case HTTP header name "
                    "(not a pseudo-header or host)"
                )

    # Parsed views used by the builder (cheap; validated at construction).
    @property
    def listen_address(self) -> Address:
        return parse_address(self.listen, "listen", ip_only=True)

    @property
    def upstream_address(self) -> Address:
        return parse_address(self.upstream, "upstream")

    @property
    def admin_address(self) -> Address:
        return parse_address(self.admin, "admin", ip_only=True)

    @property
    def authz_addresses(self) -> tuple[Address, ...]:
        return tuple(parse_address(a, "authz") for a in self.authz)
