"""How LiteLLM's proxy checks a caller's key, re-implemented for the demo upstream (pure).

LiteLLM reads the first header present in its fixed order (REFERENCE.md §3), removes a scheme
prefix where it expects one (``Bearer ``, ``bearer ``, ``Basic ``, AWS SigV4), reads ``?key=``
only on generateContent routes, has its own order for realtime websockets, and compares the
untrimmed token with ``secrets.compare_digest``. A
missing key is "No api key passed in."; a wrong one is an invalid-token error. The 401 body
is shaped like LiteLLM's (``{"error": {message, type, param, code}}``) and never echoes a key.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from authsvc.keys import fingerprint

__all__ = [
    "CREDENTIAL_HEADERS",
    "KEYLESS_PATHS",
    "KEYLESS_PREFIXES",
    "PROTECTED_HEALTH",
    "PUBLIC_PATHS",
    "AuthResult",
    "check_key",
    "error_body",
    "keyless",
    "redact_headers",
    "redact_target",
]

PUBLIC_PATHS = frozenset({"/health/liveliness", "/health/liveness", "/health/readiness"})
"""Answered by the demo's own health handlers (GET/HEAD)."""

KEYLESS_PATHS = frozenset(
    {
        "/",
        "/routes",
        "/test",
        "/openapi.json",
        "/.well-known/litellm-ui-config",
        "/litellm/.well-known/litellm-ui-config",
        "/login",
        "/v2/login",
        "/sso",
        "/ui",
        *PUBLIC_PATHS,
    }
)
KEYLESS_PREFIXES = ("/ui/", "/sso/", "/public/", "/_next/")
"""Routes LiteLLM serves without a key, whatever the method (a sample of LiteLLM 1.110.2's:
``LiteLLMRoutes.public_routes`` and the routes with no auth dependency)."""

WS_PREFIX = "openai-insecure-api-key."
PROTECTED_HEALTH = "/health"

CREDENTIAL_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-litellm-api-key", "optional"),
    ("authorization", "required"),
    ("api-key", "never"),
    ("x-api-key", "never"),
    ("x-goog-api-key", "never"),
    ("ocp-apim-subscription-key", "never"),
)
"""LiteLLM's order, with how each treats a scheme prefix."""

NO_KEY = "Authentication Error, No api key passed in."
BAD_KEY = "Authentication Error, Invalid proxy server token passed."


@dataclass(frozen=True, slots=True)
class AuthResult:
    ok: bool
    message: str
    location: str | None = None


def _scheme(value: str, mode: str) -> str:
    """LiteLLM's prefix handling (``get_bearer_token`` / ``_get_bearer_token_or_received_api_key``):
    ``Bearer ``, ``Basic ``, ``bearer `` removed with ``str.replace``; AWS SigV4's
    ``Credential=Bearer K/...``; the token itself is not trimmed."""
    if mode == "never":
        return value
    for prefix in ("Bearer ", "Basic ", "bearer "):
        if value.startswith(prefix):
            return value.replace(prefix, "")
    if value.startswith("AWS4-HMAC-SHA256"):
        match = re.search(r"Credential=Bearer\s+([^/\s,]+)", value) or re.search(
            r"Credential=([^/\s,]+)", value
        )
        return match.group(1) if match else ""
    return "" if mode == "required" else value


def _query_key(path: str, query: str) -> str | None:
    """``?key=``: only on generateContent routes; Starlette's parsing (last value, '+' = space)."""
    route = unquote(path)
    if "generateContent" not in route and "streamGenerateContent" not in route:
        return None
    found = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "key"]
    return found[-1] if found and found[-1] else None


def _websocket_key(get_header: Callable[[str], str | None]) -> tuple[str, str] | None:
    """LiteLLM's realtime websocket rule: Authorization (``Bearer `` only), API-Key, then
    ``Sec-WebSocket-Protocol: openai-insecure-api-key.K``."""
    authorization = get_header("authorization")
    if authorization:
        if not authorization.startswith("Bearer "):
            return "", "header:authorization"
        return authorization[len("Bearer ") :].strip(" \t"), "header:authorization"
    api_key = get_header("api-key")
    if api_key:
        return api_key, "header:api-key"
    for protocol in (get_header("sec-websocket-protocol") or "").split(","):
        protocol = protocol.strip()
        if protocol.startswith(WS_PREFIX):
            return protocol[len(WS_PREFIX) :], "header:sec-websocket-protocol"
    return None


def check_key(
    get_header: Callable[[str], str | None],
    query: str,
    master: str,
    path: str = "/",
    websocket: bool = False,
) -> AuthResult:
    """Check a request's key the way LiteLLM does; ``get_header`` returns the first value."""
    found: tuple[str, str] | None = None
    if websocket:
        found = _websocket_key(get_header)
    else:
        for name, mode in CREDENTIAL_HEADERS:
            raw = get_header(name)
            if raw:  # FastAPI's APIKeyHeader: an empty header is no header
                found = _scheme(raw, mode), f"header:{name}"
                break
        else:
            key = _query_key(path, query)
            if key is not None:
                found = key, "query:key"
    if found is None:
        return AuthResult(False, NO_KEY)
    presented, location = found
    if not presented:
        return AuthResult(False, NO_KEY, location)
    if secrets.compare_digest(
        presented.encode("utf-8", "surrogateescape"), master.encode("utf-8", "surrogateescape")
    ):
        return AuthResult(True, "ok", location)
    return AuthResult(False, BAD_KEY, location)


def keyless(path: str) -> bool:
    """A route LiteLLM serves without a key (the sample above)."""
    return path in KEYLESS_PATHS or (
        path.startswith(KEYLESS_PREFIXES) and "/." not in path and "//" not in path
    )


def error_body(message: str, code: int = 401, kind: str = "auth_error") -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": "None", "code": str(code)}}


def _redacted(value: str) -> str:
    return f"<redacted fp={fingerprint(value)}>"


def _looks_secret(name: str, value: str) -> bool:
    """A header the demo does not know may still carry a key (e.g. LiteLLM's configurable
    ``litellm_key_header_name``): any *key*/*auth*/*token* header or scheme-shaped value."""
    if name.startswith("x-authsvc-"):  # authsvc's own headers: a key NAME, never a key
        return False
    return any(word in name for word in ("key", "auth", "token")) or value.startswith(
        ("Bearer ", "bearer ", "Basic ", "AWS4-")
    )


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Header name (lower-cased) → every value received, in order; credential values are
    replaced by their fingerprint."""
    # cookie: LiteLLM's Admin UI session cookie (token) carries a key
    secret = {name for name, _ in CREDENTIAL_HEADERS} | {"sec-websocket-protocol", "cookie"}
    out: dict[str, list[str]] = {}
    for name, value in headers:
        low = name.lower()
        hidden = low in secret or _looks_secret(low, value)
        out.setdefault(low, []).append(_redacted(value) if hidden else value)
    return out


def redact_target(target: str) -> str:
    """The request target with every ``key=`` query value replaced by its fingerprint."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        parts.append(f"{name}={_redacted(unquote(value))}" if name == "key" and eq else part)
    return f"{path}?{'&'.join(parts)}"
