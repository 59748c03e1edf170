"""The LiteLLM Admin UI's ``token`` cookie, on the only routes whose auth reads it.

Facts from LiteLLM 1.110.2, measured against the real proxy (``make parity``, setup
``ui-session``; docs/virtual-keys.md): every UI sign-in sets ``token`` = an HS256 JWT signed
with the master key (``encode_ui_session_jwt``) whose ``key`` claim is the session key.
LiteLLM's general auth never reads it; two route families do:

- ``/v1/mcp/server/oauth/{server_id}/authorize`` and ``.../token``
  (``_mcp_oauth_user_api_key_auth``): when no ``Authorization`` header is sent, a cookie whose
  signature holds and whose ``login_method`` is ``sso`` or ``username_password`` stands for
  ``Authorization: Bearer <key claim>``; the key is then checked as any key. LiteLLM does not
  check ``exp`` there (``verify_exp: False``, measured: an expired cookie is accepted); authsvc
  refuses an expired one (``exp`` is still optional, as LiteLLM's older cookies lack it).
- ``GET /v1/mcp/oauth/authorize`` (``byok_authorize_get``) has no auth at all: the page the
  browser is sent to; public at the edge too.
- ``POST /v1/mcp/oauth/authorize`` (``_byok_session_auth``): the cookie alone, whatever else
  is sent; ``exp`` required and in the future, ``type`` not ``byok_session``, ``login_method``
  as above, ``user_id`` a non-empty string, and the session key still live. authsvc accepts
  only a session key it holds as a LiteLLM virtual key that passes LiteLLM's key rules (the
  caller re-checks it); without one (no ``key`` claim, a non-``sk-`` key) it refuses.

The JWT check is PyJWT's for ``algorithms=["HS256"]`` (header ``alg`` exactly ``HS256``: no
``none``, no other algorithm; signature over ``header.payload`` compared in constant time;
``nbf``/``iat`` in the future refused; ``exp`` expired when ``exp <= now``), only stricter on
malformed input: exactly three base64url segments without padding or other characters, JSON
objects, bounded sizes, numbers that are numbers. The master key is held only inside a keyed
``hmac`` object (``KeyRing.session_mac``, set by the resolver); nothing here logs or returns
the cookie or any part of it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "MAX_COOKIE_HEADER",
    "MAX_TOKEN_LENGTH",
    "CookieRoute",
    "Session",
    "cookie_route",
    "read_session",
    "token_cookie",
]

MAX_COOKIE_HEADER = 16384
"""A longer ``Cookie`` header is not searched (LiteLLM's own cookie is about 600 bytes)."""
MAX_TOKEN_LENGTH = 8192
"""A longer ``token`` cookie is not decoded."""
COOKIE_NAME = "token"
UI_LOGIN_METHODS = frozenset({"sso", "username_password"})

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_MCP_OAUTH = re.compile(r"/v1/mcp/server/oauth/[^/]+/(?:authorize|token)")
BYOK_AUTHORIZE = "/v1/mcp/oauth/authorize"


class CookieRoute(StrEnum):
    FALLBACK = "fallback"  # mcp_management: the cookie when no Authorization header is sent
    SESSION_ONLY = "session_only"  # byok POST: the cookie alone, exp required
    NO_AUTH = "no_auth"  # byok GET: the form the browser is sent to, with no auth at all


def cookie_route(method: str, path: str) -> CookieRoute | None:
    """Which cookie rule LiteLLM applies on ``path`` (normalised), if any."""
    if path == BYOK_AUTHORIZE:
        if method == "POST":
            return CookieRoute.SESSION_ONLY
        return CookieRoute.NO_AUTH if method in ("GET", "HEAD") else None
    if _MCP_OAUTH.fullmatch(path):
        return CookieRoute.FALLBACK
    return None


def token_cookie(cookie_header: str | None) -> str | None:
    """The ``token`` cookie's value, as Starlette's ``cookie_parser`` reads it (``;``-separated
    ``name=value``, surrounding spaces removed, the last one wins); ``None`` when absent or
    the header is too long. Quoted values are returned as sent (they fail the JWT check)."""
    if not cookie_header or len(cookie_header) > MAX_COOKIE_HEADER:
        return None
    found = None
    for chunk in cookie_header.split(";"):
        name, sep, value = chunk.partition("=")
        if sep and name.strip() == COOKIE_NAME:
            found = value.strip()
    return found or None


@dataclass(frozen=True, slots=True)
class Session:
    """A verified cookie: its claims (never logged: ``key`` is a key)."""

    claims: Mapping[str, object]

    @property
    def key(self) -> str | None:
        key = self.claims.get("key")
        return key if isinstance(key, str) and key else None

    def refusal(self, route: CookieRoute) -> str | None:
        """Why ``route``'s claim rule refuses this session (``None``: it holds)."""
        if self.claims.get("login_method") not in UI_LOGIN_METHODS:
            return "not a UI sign-in (login_method)"
        if route is CookieRoute.FALLBACK:
            return None if self.key is not None else "no session key (key)"
        if "exp" not in self.claims:
            return "no expiry (exp)"
        if self.claims.get("type") == "byok_session":
            return "a byok_session token, not a UI session"
        user_id = self.claims.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            return "no user (user_id)"
        if self.key is None or not self.key.startswith("sk-"):
            return "no virtual key in the session (key)"
        return None


def _segment(text: str) -> bytes | None:
    if len(text) % 4 == 1 or not _SEGMENT.fullmatch(text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _json_object(raw: bytes) -> dict[str, object] | None:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _number(value: object) -> int | None:
    """PyJWT's ``int(claim)`` for the numbers a JWT carries; ``None`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value)


def _time_refusal(claims: Mapping[str, object], now: float) -> str | None:
    for name in ("exp", "nbf", "iat"):
        if name not in claims:
            continue
        value = _number(claims[name])
        if value is None:
            return f"{name} is not a number"
        if name == "exp" and value <= now:
            return "expired (exp)"
        if name != "exp" and value > now:
            return f"not yet valid ({name})"
    return None


def read_session(token: str, mac: hmac.HMAC, now: float) -> Session | str:
    """The verified session in ``token``, or why it is refused (never quoting it).

    ``mac``: an HMAC-SHA256 keyed with the master key (copied, never updated in place).
    """
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return "malformed (size or characters)"
    parts = token.split(".")
    if len(parts) != 3:
        return "malformed (not three segments)"
    raw = [_segment(p) for p in parts]
    if any(r is None for r in raw):
        return "malformed (base64url)"
    header_raw, payload_raw, signature = (r or b"" for r in raw)
    header = _json_object(header_raw)
    if header is None or header.get("alg") != "HS256" or "crit" in header:
        return "not an HS256 token"
    check = mac.copy()
    check.update(f"{parts[0]}.{parts[1]}".encode("ascii"))
    if not hmac.compare_digest(check.digest(), signature):
        return "bad signature"
    claims = _json_object(payload_raw)
    if claims is None:
        return "malformed (claims)"
    refused = _time_refusal(claims, now)
    return refused if refused is not None else Session(claims)
