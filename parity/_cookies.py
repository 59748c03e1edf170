"""The Admin UI's ``token`` cookie, minted for the parity table as LiteLLM mints it.

Facts from LiteLLM 1.110.2 (``proxy/auth/login_utils.py``, ``encode_ui_session_jwt``): every UI
sign-in sets ``token`` = an HS256 JWT signed with the master key, whose claims are the UI token
object (``user_id``, ``key`` — the session key —, ``user_email``, ``user_role``,
``login_method``, ``premium_user``, ``auth_header_name``, ...) plus a bounded ``exp``. Signing
in needs LiteLLM's database (without one ``POST /login`` answers 500 "No Database connected"),
which the parity run cannot start (see docs/virtual-keys.md), so the run mints the cookies
itself with the master key: exactly the bytes LiteLLM would set, for a session key LiteLLM holds
without a database (the master key) or does not hold (WRONG).

The variants are the ones a reader of the cookie must tell apart: valid, without ``exp``,
expired, signed with another key (forged), payload changed after signing (tampered),
``alg: none``, and a valid signature over a session key LiteLLM does not hold.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

__all__ = ["COOKIE_NAMES", "ui_cookies"]

COOKIE_NAMES = (
    "COOKIE_A",
    "COOKIE_A_NOEXP",
    "COOKIE_A_EXPIRED",
    "COOKIE_FORGED",
    "COOKIE_TAMPERED",
    "COOKIE_ALG_NONE",
    "COOKIE_KEY_WRONG",
)
SESSION_SECONDS = 24 * 3600  # LiteLLM's LITELLM_UI_SESSION_DURATION default is a day


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwt(claims: Mapping[str, object], secret: str, alg: str = "HS256") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    if alg == "none":
        return f"{header}.{payload}."
    mac = hmac.new(secret.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


def _claims(key: str, exp: float | None) -> dict[str, object]:
    claims: dict[str, object] = {
        "user_id": "default_user_id",
        "key": key,
        "user_email": None,
        "user_role": "proxy_admin",
        "login_method": "username_password",
        "premium_user": False,
        "auth_header_name": "Authorization",
        "disabled_non_admin_personal_key_creation": False,
        "server_root_path": "",
    }
    if exp is not None:
        claims["exp"] = int(exp)
    return claims


def ui_cookies(master: str, wrong: str, now: float | None = None) -> dict[str, str]:
    """Placeholder name -> cookie value for a proxy whose master key is ``master``."""
    now = time.time() if now is None else now
    valid = _jwt(_claims(master, now + SESSION_SECONDS), master)
    header, _, rest = valid.partition(".")
    _, _, signature = rest.partition(".")
    tampered_payload = _b64(
        json.dumps(_claims(wrong, now + SESSION_SECONDS), separators=(",", ":")).encode()
    )
    return {
        "COOKIE_A": valid,
        "COOKIE_A_NOEXP": _jwt(_claims(master, None), master),
        "COOKIE_A_EXPIRED": _jwt(_claims(master, now - 3600), master),
        "COOKIE_FORGED": _jwt(_claims(master, now + SESSION_SECONDS), wrong),
        "COOKIE_TAMPERED": f"{header}.{tampered_payload}.{signature}",
        "COOKIE_ALG_NONE": _jwt(_claims(master, now + SESSION_SECONDS), master, alg="none"),
        "COOKIE_KEY_WRONG": _jwt(_claims(wrong, now + SESSION_SECONDS), master),
    }
