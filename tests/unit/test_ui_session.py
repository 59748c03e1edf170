"""The LiteLLM Admin UI's ``token`` cookie (authz/_ui_session.py, decide's cookie routes).

Cookies are minted here as LiteLLM 1.110.2's ``encode_ui_session_jwt`` mints them (HS256 over
the UI token object, signed with the master key); the rules are the ones measured against the
real LiteLLM in ``make parity`` (setup ``ui-session``, docs/virtual-keys.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from authsvc.authz import Policy, Reason, RequestView, decide
from authsvc.authz._litellm_routes import litellm_routes
from authsvc.authz._ui_session import (
    MAX_COOKIE_HEADER,
    MAX_TOKEN_LENGTH,
    CookieRoute,
    Session,
    cookie_route,
    read_session,
    token_cookie,
)
from authsvc.config import parse_config
from authsvc.keymodel import KeyRecord, KeyRing, Standing, digest, fingerprint
from authsvc.keys import resolve
from tests._keys import register
from tests._ui_cookie import mint

MASTER = "sk-ui-master-0123456789abcdefABCDEF"
SESSION = "sk-ui-session-0123456789abcdefABCD"
OTHER = "sk-ui-other-0123456789abcdefABCDEF"
for _key, _what in ((MASTER, "ui master"), (SESSION, "ui session"), (OTHER, "ui other")):
    register(_key, _what)

NOW = 1_800_000_000.0
MCP = "/v1/mcp/server/oauth/srv1/authorize"
BYOK = "/v1/mcp/oauth/authorize"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: object, secret: str = MASTER, header: object = None) -> str:
    return mint(claims, secret, header, scan=False)  # never leaves this process


def claims(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "user_id": "default_user_id",
        "key": SESSION,
        "user_role": "proxy_admin",
        "login_method": "username_password",
        "exp": NOW + 3600,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def mac(secret: str = MASTER) -> hmac.HMAC:
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


# -- the JWT check ---------------------------------------------------------------------------


def test_a_cookie_litellm_mints_is_read() -> None:
    session = read_session(jwt(claims()), mac(), NOW)
    assert isinstance(session, Session) and session.key == SESSION


def test_the_keyed_mac_is_not_consumed_by_a_check() -> None:
    keyed = mac()
    token = jwt(claims())
    for _ in range(3):
        assert isinstance(read_session(token, keyed, NOW), Session)


@pytest.mark.parametrize(
    ("exp", "ok"),
    [
        (NOW + 1, True),
        (NOW, False),  # PyJWT: expired when exp <= now
        (NOW - 1, False),
        (NOW + 0.5, False),  # int(exp) as PyJWT: truncated to NOW
        (NOW + 1.5, True),
    ],
)
def test_exp_boundary(exp: float, ok: bool) -> None:
    found = read_session(jwt(claims(exp=exp)), mac(), NOW)
    assert isinstance(found, Session) is ok
    if not ok:
        assert found == "expired (exp)"


@pytest.mark.parametrize("name", ["nbf", "iat"])
@pytest.mark.parametrize(("delta", "ok"), [(0, True), (-5, True), (1, False)])
def test_nbf_and_iat_in_the_future_are_refused(name: str, delta: int, ok: bool) -> None:
    found = read_session(jwt(claims(**{name: NOW + delta})), mac(), NOW)
    assert isinstance(found, Session) is ok
    if not ok:
        assert found == f"not yet valid ({name})"


@pytest.mark.parametrize("value", [True, "1900000000", None, [1], float("inf"), float("nan")])
def test_a_time_claim_that_is_not_a_number_is_refused(value: object) -> None:
    raw = claims()
    raw["exp"] = value
    found = read_session(jwt(raw), mac(), NOW)
    assert found == "exp is not a number"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none", "typ": "JWT"},
        {"alg": "HS512", "typ": "JWT"},
        {"alg": "hs256", "typ": "JWT"},
        {"typ": "JWT"},
        {"alg": "HS256", "crit": ["b64"]},
        ["HS256"],
    ],
)
def test_only_hs256_is_accepted(header: object) -> None:
    assert read_session(jwt(claims(), header=header), mac(), NOW) == "not an HS256 token"


def test_alg_none_with_an_empty_signature_is_refused() -> None:
    head = _b64(json.dumps({"alg": "none"}).encode())
    body = _b64(json.dumps(claims()).encode())
    assert read_session(f"{head}.{body}.", mac(), NOW) == "not an HS256 token"


def test_signed_with_another_key_is_refused() -> None:
    assert read_session(jwt(claims(), secret=OTHER), mac(), NOW) == "bad signature"


def test_a_changed_payload_is_refused() -> None:
    head, _, sig = jwt(claims()).split(".")
    body = _b64(json.dumps(claims(key=OTHER)).encode())
    assert read_session(f"{head}.{body}.{sig}", mac(), NOW) == "bad signature"


def test_a_changed_signature_is_refused() -> None:
    token = jwt(claims())
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[-1] ^= 1
    assert read_session(f"{head}.{body}.{_b64(bytes(raw))}", mac(), NOW) == "bad signature"
    assert read_session(f"{head}.{body}.{sig[:-4]}", mac(), NOW) == "bad signature"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t + ".",  # four segments
        lambda t: t.rsplit(".", 1)[0],  # two
        lambda t: t.replace(".", "=.", 1),  # padding
        lambda t: t.replace(".", "+.", 1),  # not base64url
        lambda t: "A" + t,  # length 1 mod 4 header
        lambda t: t + "é",
    ],
)
def test_malformed_tokens_are_refused(mangle: object) -> None:
    assert callable(mangle)
    found = read_session(mangle(jwt(claims())), mac(), NOW)
    assert isinstance(found, str) and found.startswith(("malformed", "bad signature"))


def test_claims_that_are_not_an_object_are_refused() -> None:
    assert read_session(jwt(["key", SESSION]), mac(), NOW) == "malformed (claims)"


def test_size_bound() -> None:
    by_length = {}
    for n in range(5800, 6400):
        token = jwt(claims(pad="x" * n))
        by_length[len(token)] = token
    at_bound = by_length[MAX_TOKEN_LENGTH]  # exactly at the bound: still read
    assert isinstance(read_session(at_bound, mac(), NOW), Session)
    over = min(t for n, t in by_length.items() if n > MAX_TOKEN_LENGTH)
    assert read_session(over, mac(), NOW) == "malformed (size or characters)"
    assert read_session("a" * MAX_TOKEN_LENGTH, mac(), NOW) == "malformed (not three segments)"


# -- the cookie header -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("token=abc", "abc"),
        ("theme=dark; token=abc; x=1", "abc"),
        ("  token = abc  ", "abc"),
        ("token=first; token=last", "last"),  # Starlette's dict: the last one wins
        ("tokens=abc", None),
        ("token", None),
        ("token=", None),
        ("", None),
        (None, None),
        ("xtoken=abc;atoken=b", None),
    ],
)
def test_token_cookie(header: str | None, value: str | None) -> None:
    assert token_cookie(header) == value


def test_cookie_header_bound() -> None:
    fill = "a=" + "b" * (MAX_COOKIE_HEADER - len("a=; token=abc"))
    assert token_cookie(f"{fill}; token=abc") == "abc"
    assert token_cookie(f"{fill}b; token=abc") is None


# -- routes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "rule"),
    [
        ("GET", MCP, CookieRoute.FALLBACK),
        ("POST", "/v1/mcp/server/oauth/srv1/token", CookieRoute.FALLBACK),
        ("GET", "/v1/mcp/server/oauth/srv1/other", None),
        ("GET", "/v1/mcp/server/oauth//authorize", None),
        ("GET", "/v1/mcp/server/oauth/a/b/authorize", None),
        ("GET", MCP + "/", None),
        ("POST", BYOK, CookieRoute.SESSION_ONLY),
        ("GET", BYOK, CookieRoute.NO_AUTH),
        ("HEAD", BYOK, CookieRoute.NO_AUTH),
        ("PUT", BYOK, None),
        ("POST", BYOK + "/", None),
        ("GET", "/key/list", None),
    ],
)
def test_cookie_routes(method: str, path: str, rule: CookieRoute | None) -> None:
    assert cookie_route(method, path) is rule


@pytest.mark.parametrize(
    ("over", "fallback", "session_only"),
    [
        ({}, None, None),
        ({"login_method": "sso"}, None, None),
        ({"login_method": "api_key"}, "not a UI sign-in (login_method)", "not a UI sign-in"),
        ({"login_method": None}, "not a UI sign-in (login_method)", "not a UI sign-in"),
        ({"key": None}, "no session key (key)", "no virtual key"),
        ({"key": 12}, "no session key (key)", "no virtual key"),
        ({"key": ""}, "no session key (key)", "no virtual key"),
        ({"key": "blob-not-sk"}, None, "no virtual key"),
        ({"exp": None}, None, "no expiry (exp)"),
        ({"type": "byok_session"}, None, "a byok_session token"),
        ({"type": "other"}, None, None),
        ({"user_id": ""}, None, "no user (user_id)"),
        ({"user_id": 7}, None, "no user (user_id)"),
        ({"user_id": None}, None, "no user (user_id)"),
    ],
)
def test_claim_rules(
    over: dict[str, object], fallback: str | None, session_only: str | None
) -> None:
    session = Session(claims(**over))  # a None value: the claim is left out
    assert session.refusal(CookieRoute.FALLBACK) == fallback
    got = session.refusal(CookieRoute.SESSION_ONLY)
    assert (got is None) if session_only is None else (got or "").startswith(session_only)


# -- decide ----------------------------------------------------------------------------------

POLICY = Policy.build(app_routes=litellm_routes())


def virtual(key: str, **standing: object) -> KeyRecord:
    return KeyRecord(
        "ui-session",
        "virtual_keys:$DATABASE_URL",
        fingerprint(key),
        digest(key),
        litellm=Standing(**standing),  # type: ignore[arg-type]
    )


def ring(*records: KeyRecord, signer: hmac.HMAC | None = None) -> KeyRing:
    out = KeyRing(records, master=KeyRecord("master", "test", fingerprint(MASTER), digest(MASTER)))
    out.session_mac = signer if signer is not None else mac()
    return out


def view(path: str, cookie: str | None, method: str = "GET", **headers: str) -> RequestView:
    all_headers = dict(headers)
    if cookie is not None:
        all_headers["cookie"] = cookie
    return RequestView(method, path, all_headers)


def test_fallback_route_accepts_the_session_key_of_a_valid_cookie() -> None:
    d = decide(view(MCP, f"token={jwt(claims())}"), POLICY, ring(virtual(SESSION)), NOW)
    assert d.reason is Reason.KEY_VALID and d.credential_location == "cookie:token"
    assert d.key_fingerprint == fingerprint(SESSION)


def test_fallback_session_key_must_be_known() -> None:
    d = decide(view(MCP, f"token={jwt(claims(key=OTHER))}"), POLICY, ring(virtual(SESSION)), NOW)
    assert d.reason is Reason.UNKNOWN_KEY and d.credential_location == "cookie:token"


def test_fallback_session_key_rules_are_litellms() -> None:
    d = decide(
        view(MCP, f"token={jwt(claims())}"), POLICY, ring(virtual(SESSION, blocked=True)), NOW
    )
    assert d.reason is Reason.BLOCKED_KEY


def test_fallback_exp_is_optional_but_enforced_when_present() -> None:
    keys = ring(virtual(SESSION))
    assert decide(view(MCP, f"token={jwt(claims(exp=None))}"), POLICY, keys, NOW).allowed
    d = decide(view(MCP, f"token={jwt(claims(exp=NOW - 1))}"), POLICY, keys, NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and "expired (exp)" in d.message


def test_an_authorization_header_wins_over_the_cookie() -> None:
    cookie = f"token={jwt(claims())}"
    d = decide(
        view(MCP, cookie, authorization=f"Bearer {OTHER}"), POLICY, ring(virtual(SESSION)), NOW
    )
    assert d.reason is Reason.UNKNOWN_KEY and d.credential_location == "header:authorization"


def test_the_cookie_is_read_nowhere_else() -> None:
    cookie = f"token={jwt(claims())}"
    keys = ring(virtual(SESSION))
    assert decide(view("/key/list", cookie), POLICY, keys, NOW).reason is Reason.MISSING_CREDENTIAL
    plain = Policy.build()  # not LiteLLM mode: no app routes, no cookie
    assert decide(view(MCP, cookie), plain, keys, NOW).reason is Reason.MISSING_CREDENTIAL
    odd = "/v1/mcp/server/oauth/x/../srv1/authorize"
    assert decide(view(odd, cookie), POLICY, keys, NOW).reason is Reason.MISSING_CREDENTIAL


def test_without_the_keyed_mac_no_cookie_is_accepted() -> None:
    keys = ring(virtual(SESSION))
    keys.session_mac = None
    d = decide(view(MCP, f"token={jwt(claims())}"), POLICY, keys, NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and "no master key" in d.message


def test_a_forged_cookie_is_a_missing_credential_that_says_why() -> None:
    token = jwt(claims(), secret=OTHER)
    d = decide(view(MCP, f"token={token}"), POLICY, ring(virtual(SESSION)), NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and "bad signature" in d.message
    assert token not in d.message and SESSION not in d.message
    assert token.split(".")[2] not in d.message


def test_byok_accepts_a_live_virtual_session_key_only() -> None:
    cookie = f"token={jwt(claims())}"
    d = decide(view(BYOK, cookie, "POST"), POLICY, ring(virtual(SESSION)), NOW)
    assert d.reason is Reason.KEY_VALID and d.credential_location == "cookie:token"
    # the master key is no virtual key: LiteLLM with a database would not find it either
    master_cookie = f"token={jwt(claims(key=MASTER))}"
    d = decide(view(BYOK, master_cookie, "POST"), POLICY, ring(virtual(SESSION)), NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and "not a LiteLLM virtual key" in d.message
    d = decide(view(BYOK, cookie, "POST"), POLICY, ring(virtual(SESSION, blocked=True)), NOW)
    assert d.reason is Reason.BLOCKED_KEY


def test_byok_never_hands_a_revoked_session_key_to_the_lookup() -> None:
    """A session key rotated past revoke_at is unknown; on the BYOK route that must not be
    UNKNOWN_KEY (the checker's database lookup would then try the other credentials)."""
    cookie = f"token={jwt(claims())}"
    keys = ring(virtual(SESSION, revoke_at=NOW))
    d = decide(view(BYOK, cookie, "POST", authorization=f"Bearer {OTHER}"), POLICY, keys, NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and "not a LiteLLM virtual key" in d.message
    live = ring(virtual(SESSION, revoke_at=NOW + 1))
    assert decide(view(BYOK, cookie, "POST"), POLICY, live, NOW).reason is Reason.KEY_VALID


def test_byok_ignores_every_other_credential() -> None:
    keys = ring(virtual(SESSION))
    d = decide(view(BYOK, None, "POST", authorization=f"Bearer {SESSION}"), POLICY, keys, NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and "none was sent" in d.message
    no_exp = f"token={jwt(claims(exp=None))}"
    d = decide(view(BYOK, no_exp, "POST", authorization=f"Bearer {SESSION}"), POLICY, keys, NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and "no expiry" in d.message


def test_byok_form_is_public_but_only_for_get() -> None:
    keys = ring()
    assert decide(view(BYOK, None), POLICY, keys, NOW).reason is Reason.PUBLIC_PATH
    assert decide(view(BYOK, None, "PUT"), POLICY, keys, NOW).reason is Reason.MISSING_CREDENTIAL
    assert decide(view(BYOK, None), Policy.build(), keys, NOW).reason is Reason.MISSING_CREDENTIAL


def test_the_resolver_keys_the_mac_with_litellms_master_key(tmp_path: Path) -> None:
    (tmp_path / "litellm.yaml").write_text(f"general_settings:\n  master_key: {MASTER}\n")
    config = parse_config(
        "master_key:\n  sources:\n    - litellm_config: litellm.yaml\n      dotenv: 'off'\n",
        str(tmp_path / "authsvc.yaml"),
        environ={},
    )
    res = resolve(config, {})
    assert res.ring.session_mac is not None
    cookie = f"token={jwt(claims(key=MASTER))}"
    assert decide(view(MCP, cookie), POLICY, res.ring, NOW).reason is Reason.KEY_VALID
    forged = f"token={jwt(claims(key=MASTER), secret=OTHER)}"
    assert decide(view(MCP, forged), POLICY, res.ring, NOW).reason is Reason.MISSING_CREDENTIAL
    assert MASTER not in repr(res.ring.session_mac)
