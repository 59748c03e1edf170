"""Where a caller's key is read from, and the rule that picks one — LiteLLM's rule by default.

Combining rule: the locations are tried in order and the **first location that is present
decides** (LiteLLM's own order, so the sidecar checks the key the app would check). A present
but malformed credential denies; it never falls through to the next location. A location marked
``overrides`` (LiteLLM's ``general_settings.litellm_key_header_name``) decides whenever it is
present, before all others.

The parsing follows LiteLLM 1.110.2 (``proxy/auth/user_api_key_auth.py``: ``get_api_key``,
``get_bearer_token``, ``_get_bearer_token_or_received_api_key``, the realtime websocket path):

- ``Authorization`` needs a scheme: ``Bearer K``, ``bearer K``, ``Basic K`` (the value is the
  key, not base64 decoded), or AWS SigV4 ``AWS4-HMAC-SHA256 Credential=Bearer K/...``
  (``Credential=K/...``). ``BEARER K`` or ``Token K`` is malformed. Like LiteLLM the token is not
  trimmed: ``Bearer  K`` presents `` K``, which is refused.
- ``x-litellm-api-key`` takes the same prefixes optionally, else the raw value.
- ``API-Key``, ``x-api-key``, ``x-goog-api-key``, ``Ocp-Apim-Subscription-Key``: the raw value.
- ``?key=`` only on routes whose decoded path contains ``generateContent`` or
  ``streamGenerateContent`` (LiteLLM's ``is_generate_content_route``); the last ``key`` parameter counts, ``+`` is a space (Starlette).
- A header sent several times: its **first** value (Starlette's ``headers.get``). The gRPC
  adapter passes first values when Envoy sends raw headers; a value holding a ``,`` (repeats
  joined by Envoy — always so for ``Authorization`` — or the map form) is tried whole, then up
  to the first ``,`` (``Credential.first``).
- Websocket upgrades (``Upgrade: websocket``, realtime): ``Authorization`` (only ``Bearer ``),
  then ``API-Key``, then ``Sec-WebSocket-Protocol: openai-insecure-api-key.K``.

Header values lose only surrounding ASCII space and tab (HTTP's optional whitespace, what Envoy
and uvicorn drop), never any other character: an odd byte can only deny.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl, unquote

from authsvc.authz._paths import query_values, split_target

__all__ = [
    "DEFAULT_LOCATIONS",
    "DEFAULT_WS_LOCATIONS",
    "Bearer",
    "Credential",
    "CredentialError",
    "CredentialLocation",
    "custom_header_location",
    "extract_credential",
    "is_websocket",
    "parse_location",
    "plain_credential",
    "strip_ows",
]

MAX_CREDENTIAL_LENGTH = 65536
"""Longer values are refused as malformed before any hashing. Envoy's whole request-header
block is limited to 60 KiB by default, so any key a client can send in a header fits."""

OWS = " \t"
"""The only characters ever trimmed from a header value or a key: ASCII space and tab."""

WS_PROTOCOL_PREFIX = "openai-insecure-api-key."


def strip_ows(value: str) -> str:
    """``value`` without surrounding ASCII spaces and tabs (and nothing else)."""
    return value.strip(OWS)


class Bearer(StrEnum):
    """How a location treats a scheme prefix (``Bearer ``, ``Basic ``, AWS SigV4)."""

    REQUIRED = "required"  # Authorization: a scheme is needed (LiteLLM get_bearer_token)
    OPTIONAL = "optional"  # x-litellm-api-key: a scheme is removed when present
    NEVER = "never"  # the whole value is the key
    STRICT = "strict"  # websocket Authorization: exactly "Bearer " (then trimmed)
    PROTOCOL = "protocol"  # Sec-WebSocket-Protocol: the openai-insecure-api-key.K entry


@dataclass(frozen=True, slots=True)
class CredentialLocation:
    kind: str  # "header" or "query"
    name: str  # lower-cased header name, or query parameter name
    bearer: Bearer = Bearer.NEVER
    generate_content_only: bool = False  # LiteLLM reads ?key= only on generateContent routes
    overrides: bool = False  # present → decides, before every other location

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


DEFAULT_LOCATIONS: tuple[CredentialLocation, ...] = (
    CredentialLocation("header", "x-litellm-api-key", Bearer.OPTIONAL),
    CredentialLocation("header", "authorization", Bearer.REQUIRED),
    CredentialLocation("header", "api-key"),
    CredentialLocation("header", "x-api-key"),
    CredentialLocation("header", "x-goog-api-key"),
    CredentialLocation("header", "ocp-apim-subscription-key"),
    CredentialLocation("query", "key", generate_content_only=True),
)
"""LiteLLM's locations for HTTP requests, in its order."""

DEFAULT_WS_LOCATIONS: tuple[CredentialLocation, ...] = (
    CredentialLocation("header", "authorization", Bearer.STRICT),
    CredentialLocation("header", "api-key"),
    CredentialLocation("header", "sec-websocket-protocol", Bearer.PROTOCOL),
)
"""LiteLLM's locations for websocket upgrades (``/v1/realtime``), in its order."""


def custom_header_location(name: str) -> CredentialLocation:
    """``general_settings.litellm_key_header_name``: overrides all, needs ``Bearer K``."""
    return CredentialLocation("header", name.lower(), Bearer.REQUIRED, overrides=True)


def parse_location(spec: str) -> CredentialLocation:
    """Parse ``header:NAME`` or ``query:NAME`` (the config-file form) into a location.

    ``header:authorization`` requires a scheme and ``header:x-litellm-api-key`` accepts one
    optionally, as LiteLLM does; ``header:sec-websocket-protocol`` reads the
    ``openai-insecure-api-key.K`` entry; every other location takes the raw value. An explicit
    ``query:NAME`` applies on every route.
    """
    kind, sep, name = spec.partition(":")
    if not sep or kind not in ("header", "query") or not name:
        raise ValueError(f"credential location {spec!r} must be 'header:NAME' or 'query:NAME'")
    if kind == "header":
        name = name.lower()
        bearer = {
            "authorization": Bearer.REQUIRED,
            "x-litellm-api-key": Bearer.OPTIONAL,
            "sec-websocket-protocol": Bearer.PROTOCOL,
        }.get(name, Bearer.NEVER)
        return CredentialLocation(kind, name, bearer)
    return CredentialLocation(kind, name)


@dataclass(frozen=True, slots=True)
class Credential:
    key: str
    location: str  # e.g. "header:authorization"
    first: str | None = None
    """When the header value holds a ``,``: the key of the part before it — the first value of
    a header sent twice, which a proxy (Envoy, for ``Authorization``) joins with ``,``. The
    whole value is tried first (a key may contain a comma), then this."""


@dataclass(frozen=True, slots=True)
class CredentialError:
    """A credential was present but unusable. ``detail`` never contains the value."""

    location: str
    detail: str


_SIGV4_BEARER = re.compile(r"Credential=Bearer\s+([^/\s,]+)")
_SIGV4_ANY = re.compile(r"Credential=([^/\s,]+)")


def _scheme(value: str) -> str | None:
    """LiteLLM's prefix rule: the key after a known scheme, ``None`` when there is none.

    As in LiteLLM, ``Bearer ``/``Basic ``/``bearer `` are removed with ``str.replace`` (every
    occurrence), and a SigV4 header without a ``Credential=`` gives an empty key.
    """
    for prefix in ("Bearer ", "Basic ", "bearer "):
        if value.startswith(prefix):
            return value.replace(prefix, "")
    if value.startswith("AWS4-HMAC-SHA256"):
        match = _SIGV4_BEARER.search(value) or _SIGV4_ANY.search(value)
        return match.group(1) if match else ""
    return None


def _token(value: str, bearer: Bearer) -> str | None:
    """The key carried by a header value, ``None`` when its form is not accepted."""
    if bearer is Bearer.NEVER:
        return value
    if bearer is Bearer.STRICT:
        if not value.startswith("Bearer "):
            return None
        # LiteLLM's realtime path trims the rest (we trim only space and tab), then hands
        # "Bearer <rest>" to get_bearer_token, which removes every "Bearer ".
        return ("Bearer " + strip_ows(value[len("Bearer ") :])).replace("Bearer ", "")
    if bearer is Bearer.PROTOCOL:
        for protocol in value.split(","):
            protocol = strip_ows(protocol)  # LiteLLM: str.strip(); we trim space and tab
            if protocol.startswith(WS_PROTOCOL_PREFIX):
                return protocol[len(WS_PROTOCOL_PREFIX) :]
        return ""
    token = _scheme(value)
    if token is None:
        return None if bearer is Bearer.REQUIRED else value
    return token


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""ASCII control characters (C0 and DEL): one C-level scan, not a Python step per character."""


def _check_token(token: str, location: str, max_length: int) -> Credential | CredentialError:
    if not token:
        return CredentialError(location, "the credential is empty")
    if len(token) > max_length:
        return CredentialError(location, f"the credential is longer than {max_length} characters")
    if not token.isascii() or _CONTROL.search(token):
        return CredentialError(location, "the credential contains control or non-ASCII characters")
    if token != strip_ows(token):
        return CredentialError(location, "the credential has leading or trailing whitespace")
    return Credential(token, location)


def plain_credential(
    key: str, location: str, max_length: int = MAX_CREDENTIAL_LENGTH
) -> Credential | CredentialError:
    """A key read whole from somewhere else (the UI session cookie's ``key`` claim), held to
    the same rules as a header's: non-empty, bounded, printable ASCII, no surrounding space."""
    return _check_token(key, location, max_length)


def _from_value(raw: str, loc: CredentialLocation, max_length: int) -> Credential | CredentialError:
    value = strip_ows(raw)
    token = _token(value, loc.bearer)
    first = None
    if "," in value and loc.bearer is not Bearer.PROTOCOL:
        head = _token(strip_ows(value.split(",", 1)[0]), loc.bearer)
        if head and isinstance(_check_token(head, loc.label, max_length), Credential):
            first = head
    if token is None:
        if first is not None:  # "Bearer A,WRONG" joined by a proxy: the first value decides
            return Credential(first, loc.label)
        what = "exactly 'Bearer '" if loc.bearer is Bearer.STRICT else "Bearer, Basic or AWS SigV4"
        return CredentialError(loc.label, f"the value needs a scheme prefix ({what})")
    found = _check_token(token, loc.label, max_length)
    if first is not None and first != token:
        if isinstance(found, CredentialError):
            return Credential(first, loc.label)
        return Credential(found.key, found.location, first)
    return found


def is_generate_content(path: str) -> bool:
    """LiteLLM's ``is_generate_content_route`` on the decoded path."""
    route = unquote(path)
    return "generateContent" in route or "streamGenerateContent" in route


def is_websocket(headers: Mapping[str, str]) -> bool:
    """A websocket upgrade (``Upgrade: websocket``, any case)."""
    return strip_ows(headers.get("upgrade", "")).lower() == "websocket"


def _query_value(query: str, loc: CredentialLocation) -> str | None:
    if loc.generate_content_only:  # Starlette's query_params: '+' is a space, last one wins
        found = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == loc.name]
        return found[-1] if found and found[-1] else None
    values = query_values(query, loc.name)
    if not values:
        return None
    if len(set(values)) > 1:
        return "\x00"  # different values: refused as malformed below
    return values[0]


def extract_credential(
    target: str,
    headers: Mapping[str, str],
    locations: tuple[CredentialLocation, ...] = DEFAULT_LOCATIONS,
    max_length: int = MAX_CREDENTIAL_LENGTH,
) -> Credential | CredentialError | None:
    """The caller's credential, a reason it is unusable, or ``None`` when none was sent.

    ``headers`` holds one value per name: the first one sent (see the module docstring). A
    header whose value is empty counts as absent, except an ``overrides`` location, which
    decides as soon as it is present.
    """
    get = headers.get
    for loc in locations:
        if loc.overrides and loc.kind == "header" and loc.name in headers:
            return _from_value(headers[loc.name], loc, max_length)
    path: str | None = None
    query: str | None = None
    for loc in locations:
        if loc.overrides:
            continue
        if loc.kind == "header":
            raw = get(loc.name)
            if raw is None or not strip_ows(raw):
                continue
            if loc.bearer is Bearer.PROTOCOL and WS_PROTOCOL_PREFIX not in raw:
                continue  # other subprotocols only: no key here
            return _from_value(raw, loc, max_length)
        if query is None or path is None:
            path, query = split_target(target)
        if loc.generate_content_only and not is_generate_content(path):
            continue
        value = _query_value(query, loc)
        if value is None:
            continue
        if value == "\x00":
            return CredentialError(loc.label, "sent more than once with different values")
        return _check_token(value, loc.label, max_length)
    return None
