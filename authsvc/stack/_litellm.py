"""How LiteLLM's proxy checks a caller's key, re-implemented for the demo upstream (pure).

LiteLLM reads the first header present in its fixed order (REFERENCE.md §3), strips a
``Bearer `` prefix where it expects one, and compares with ``secrets.compare_digest``. A
missing key is "No api key passed in."; a wrong one is an invalid-token error. The 401 body
is shaped like LiteLLM's (``{"error": {message, type, param, code}}``) and never echoes a key.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from authsvc.keys import fingerprint

__all__ = [
    "CREDENTIAL_HEADERS",
    "PROTECTED_HEALTH",
    "PUBLIC_PATHS",
    "AuthResult",
    "check_key",
    "error_body",
    "redact_headers",
    "redact_target",
]

PUBLIC_PATHS = frozenset({"/health/liveliness", "/health/liveness", "/health/readiness"})
PROTECTED_HEALTH = "/health"

CREDENTIAL_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-litellm-api-key", "optional"),
    ("authorization", "required"),
    ("api-key", "never"),
    ("x-api-key", "never"),
    ("x-goog-api-key", "never"),
    ("ocp-apim-subscription-key", "never"),
)
"""LiteLLM's order, with how each treats a ``Bearer `` prefix."""

NO_KEY = "Authentication Error, No api key passed in."
BAD_KEY = "Authentication Error, Invalid proxy server token passed."


@dataclass(frozen=True, slots=True)
class AuthResult:
    ok: bool
    message: str
    location: str | None = None


def _strip_bearer(value: str, mode: str) -> str:
    if mode == "never":
        return value
    for prefix in ("Bearer ", "bearer "):
        if value.startswith(prefix):
            return value[len(prefix) :].strip()
    return "" if mode == "required" else value


def _query_key(query: str) -> str | None:
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if name == "key" and sep:
            return unquote(value)
    return None


def check_key(get_header: Callable[[str], str | None], query: str, master: str) -> AuthResult:
    """Check a request's key the way LiteLLM does; ``get_header`` returns the first value."""
    for name, mode in CREDENTIAL_HEADERS:
        raw = get_header(name)
        if raw is not None:
            presented, location = _strip_bearer(raw.strip(), mode), f"header:{name}"
            break
    else:
        found = _query_key(query)
        if found is None:
            return AuthResult(False, NO_KEY)
        presented, location = found, "query:key"
    if not presented:
        return AuthResult(False, NO_KEY, location)
    if secrets.compare_digest(presented.encode("utf-8"), master.encode("utf-8")):
        return AuthResult(True, "ok", location)
    return AuthResult(False, BAD_KEY, location)


def error_body(message: str, code: int = 401, kind: str = "auth_error") -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": "None", "code": str(code)}}


def _redacted(value: str) -> str:
    return f"<redacted fp={fingerprint(value)}>"


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Header name (lower-cased) → every value received, in order; credential values are
    replaced by their fingerprint."""
    secret = {name for name, _ in CREDENTIAL_HEADERS}
    out: dict[str, list[str]] = {}
    for name, value in headers:
        low = name.lower()
        out.setdefault(low, []).append(_redacted(value) if low in secret else value)
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
