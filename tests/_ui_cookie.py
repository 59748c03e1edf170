"""The LiteLLM Admin UI's ``token`` cookie, minted as LiteLLM 1.110.2's ``encode_ui_session_jwt``
mints it (HS256 over the UI token object, signed with the master key), for the tests. A cookie
that reaches a process is registered for the no-key-leak scan: it carries a key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from tests._keys import register

__all__ = ["mint"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims: object, secret: str, header: object = None, *, scan: bool = True) -> str:
    """An HS256 JWT over ``claims`` (``header`` replaces the standard one). ``scan``: register
    it for the leak scan (cookies that reach a process; pure-function tests mint hundreds,
    some 8 KiB long, which would only slow the scan down)."""
    head = _b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    token = f"{head}.{body}.{_b64(mac)}"
    return register(token, "UI session cookie") if scan else token
