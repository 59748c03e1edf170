"""Where a caller's key is read from, and the rule that picks one.

Combining rule: the locations are tried in order and the **first location that is present
decides** (LiteLLM's own order, so the sidecar checks the key the app would check). A present
but malformed credential denies; it never falls through to the next location.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from authsvc.authz._paths import query_values, split_target

__all__ = [
    "DEFAULT_LOCATIONS",
    "Bearer",
    "Credential",
    "CredentialError",
    "CredentialLocation",
    "extract_credential",
    "parse_location",
]

MAX_CREDENTIAL_LENGTH = 1024
"""Longer values are refused as malformed before any hashing (a key is tens of characters)."""


class Bearer(StrEnum):
    """How a location treats a ``Bearer`` scheme prefix."""

    REQUIRED = "required"  # Authorization: only "Bearer <key>" is a credential
    OPTIONAL = "optional"  # x-litellm-api-key: "Bearer <key>" or "<key>"
    NEVER = "never"  # the whole value is the key


@dataclass(frozen=True, slots=True)
class CredentialLocation:
    kind: str  # "header" or "query"
    name: str  # lower-cased header name, or query parameter name
    bearer: Bearer = Bearer.NEVER

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


DEFAULT_LOCATIONS: tuple[CredentialLocation, ...] = (
    CredentialLocation("header", "x-litellm-api-key", Bearer.OPTIONAL),
    CredentialLocation("header", "authorization", Bearer.REQUIRED),
    CredentialLocation("header", "api-key"),
    CredentialLocation("header", "x-api-key"),
    CredentialLocation("header", "x-goog-api-key"),
    CredentialLocation("query", "key"),
)


def parse_location(spec: str) -> CredentialLocation:
    """Parse ``header:NAME`` or ``query:NAME`` (the config-file form) into a location.

    ``header:authorization`` requires the Bearer scheme and ``header:x-litellm-api-key``
    accepts it optionally, as LiteLLM does; every other location takes the raw value.
    """
    kind, sep, name = spec.partition(":")
    if not sep or kind not in ("header", "query") or not name:
        raise ValueError(f"credential location {spec!r} must be 'header:NAME' or 'query:NAME'")
    if kind == "header":
        name = name.lower()
        bearer = {"authorization": Bearer.REQUIRED, "x-litellm-api-key": Bearer.OPTIONAL}.get(
            name, Bearer.NEVER
        )
        return CredentialLocation(kind, name, bearer)
    return CredentialLocation(kind, name)


@dataclass(frozen=True, slots=True)
class Credential:
    key: str
    location: str  # e.g. "header:authorization"


@dataclass(frozen=True, slots=True)
class CredentialError:
    """A credential was present but unusable. ``detail`` never contains the value."""

    location: str
    detail: str


def _strip_bearer(value: str, bearer: Bearer) -> str | None:
    if bearer is Bearer.NEVER:
        return value
    if value.lower() == "bearer":
        return ""
    scheme, sep, rest = value.partition(" ")
    if sep and scheme.lower() == "bearer":
        return rest.strip()
    return None if bearer is Bearer.REQUIRED else value


def _check_token(token: str, location: str, max_length: int) -> Credential | CredentialError:
    if not token:
        return CredentialError(location, "the credential is empty")
    if len(token) > max_length:
        return CredentialError(location, f"the credential is longer than {max_length} characters")
    if not token.isascii() or not token.isprintable() or " " in token:
        return CredentialError(
            location, "the credential contains whitespace, control or non-ASCII characters"
        )
    return Credential(token, location)


def _from_values(
    values: list[str], loc: CredentialLocation, max_length: int
) -> Credential | CredentialError:
    label = loc.label
    tokens: set[str] = set()
    for raw in values:
        token = _strip_bearer(raw.strip(), loc.bearer)
        if token is None:
            return CredentialError(label, "only the Bearer scheme is accepted")
        tokens.add(token)
    if len(tokens) > 1:
        return CredentialError(label, "sent more than once with different values")
    return _check_token(tokens.pop(), label, max_length)


def extract_credential(
    target: str,
    headers: Mapping[str, str],
    locations: tuple[CredentialLocation, ...] = DEFAULT_LOCATIONS,
    max_length: int = MAX_CREDENTIAL_LENGTH,
) -> Credential | CredentialError | None:
    """The caller's credential, a reason it is unusable, or ``None`` when none was sent.

    A header whose value is empty counts as absent. Repeated headers reach us joined with
    ``,`` (keys never contain commas), so ``a,a`` is one key and ``a,b`` is a conflict.
    """
    get = headers.get
    query: str | None = None
    for loc in locations:
        if loc.kind == "header":
            raw = get(loc.name)
            if raw is None or not raw.strip():
                continue
            return _from_values(raw.split(","), loc, max_length)
        if query is None:
            query = split_target(target)[1]
        values = query_values(query, loc.name)
        if not values:
            continue
        return _from_values(values, loc, max_length)
    return None
