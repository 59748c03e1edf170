"""decide() on the Admin UI cookie routes: what a refusal or an acceptance says and where it
points (``credential_location``), which the edge's logs and the checker read. Expected values:
the route rules of docs/virtual-keys.md (LiteLLM 1.110.2: the cookie stands in only when no
``Authorization`` header is sent; ``POST /v1/mcp/oauth/authorize`` reads the cookie alone)."""

from __future__ import annotations

import hashlib
import hmac

from authsvc.authz import Policy, Reason, RequestView, decide
from authsvc.authz._credentials import CredentialLocation
from authsvc.authz._litellm_routes import litellm_routes
from authsvc.keymodel import KeyRecord, KeyRing, RingBuilder, Standing, digest, fingerprint
from tests._keys import register
from tests._ui_cookie import mint

MASTER = "sk-ui-dec-master-0123456789abcdefABC"
SESSION = "sk-ui-dec-session-0123456789abcdefAB"
for _key, _what in ((MASTER, "ui decide master"), (SESSION, "ui decide session")):
    register(_key, _what)

NOW = 1_800_000_000.0
MCP = "/v1/mcp/server/oauth/srv1/authorize"
BYOK = "/v1/mcp/oauth/authorize"
POLICY = Policy.build(app_routes=litellm_routes())
COOKIE = "cookie:token"
ONLY = "This route accepts only the Admin UI session cookie (token)"


def claims(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "user_id": "default_user_id",
        "key": SESSION,
        "login_method": "username_password",
        "exp": NOW + 3600,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def cookie(**over: object) -> str:
    return "token=" + mint(claims(**over), MASTER, scan=False)


def ring(*records: KeyRecord, keyed: bool = True) -> KeyRing:
    out = KeyRing(records, master=KeyRecord("master", "test", fingerprint(MASTER), digest(MASTER)))
    if keyed:
        out.session_mac = hmac.new(MASTER.encode(), digestmod=hashlib.sha256)
    return out


def virtual(key: str = SESSION, **standing: object) -> KeyRecord:
    return KeyRecord(
        "ui-session",
        "virtual_keys:$DATABASE_URL",
        fingerprint(key),
        digest(key),
        litellm=Standing(**standing),  # type: ignore[arg-type]
    )


def view(path: str, method: str = "GET", **headers: str) -> RequestView:
    return RequestView(method, path, headers)


def test_byok_acceptance_names_the_session_key() -> None:
    d = decide(view(BYOK, "POST", cookie=cookie()), POLICY, ring(virtual()), NOW)
    assert d.allowed and d.reason is Reason.KEY_VALID
    assert (d.key_name, d.key_fingerprint, d.credential_location) == (
        "ui-session",
        fingerprint(SESSION),
        COOKIE,
    )
    assert d.message == "UI session accepted"


def test_byok_without_a_cookie_points_at_the_cookie() -> None:
    d = decide(view(BYOK, "POST"), POLICY, ring(virtual()), NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and d.credential_location == COOKIE
    assert d.message == f"{ONLY}: none was sent."


def test_byok_refused_session_says_why_and_points_at_the_cookie() -> None:
    d = decide(view(BYOK, "POST", cookie=cookie(type="byok_session")), POLICY, ring(virtual()), NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and d.credential_location == COOKIE
    assert d.message == f"{ONLY}: a byok_session token, not a UI session."


def test_byok_without_the_keyed_mac_says_so() -> None:
    d = decide(view(BYOK, "POST", cookie=cookie()), POLICY, ring(virtual(), keyed=False), NOW)
    assert d.message == f"{ONLY}: authsvc holds no master key to verify it with."


def test_byok_session_key_that_is_no_virtual_key_points_at_the_cookie() -> None:
    d = decide(view(BYOK, "POST", cookie=cookie(key=MASTER)), POLICY, ring(virtual()), NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and d.credential_location == COOKIE
    assert d.message == (f"{ONLY}: its session key is not a LiteLLM virtual key authsvc holds.")


def test_byok_blocked_session_key_points_at_the_cookie() -> None:
    d = decide(view(BYOK, "POST", cookie=cookie()), POLICY, ring(virtual(blocked=True)), NOW)
    assert d.reason is Reason.BLOCKED_KEY and d.credential_location == COOKIE


def test_fallback_refused_cookie_points_at_the_cookie() -> None:
    d = decide(view(MCP, cookie=cookie(login_method="api_key")), POLICY, ring(virtual()), NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and d.credential_location == COOKIE
    assert d.message.endswith(
        "The token cookie is not a usable UI session: not a UI sign-in (login_method)."
    )


def test_fallback_session_key_is_held_to_the_credential_length_bound() -> None:
    short = Policy.build(app_routes=litellm_routes(), max_credential_length=len(SESSION) - 1)
    d = decide(view(MCP, cookie=cookie()), short, ring(virtual()), NOW)
    assert d.reason is Reason.MALFORMED_CREDENTIAL and d.credential_location == COOKIE
    roomy = Policy.build(app_routes=litellm_routes(), max_credential_length=len(SESSION))
    assert decide(view(MCP, cookie=cookie()), roomy, ring(virtual()), NOW).allowed


def test_fallback_cookie_is_ignored_when_authorization_is_sent_even_if_unread() -> None:
    """With a policy that reads only x-api-key, an Authorization header still means LiteLLM
    does not fall back to the cookie: no credential is found."""
    only_api_key = Policy.build(
        app_routes=litellm_routes(), locations=[CredentialLocation("header", "x-api-key")]
    )
    keys = ring(virtual())
    assert decide(view(MCP, cookie=cookie()), only_api_key, keys, NOW).allowed
    d = decide(
        view(MCP, cookie=cookie(), authorization=f"Bearer {SESSION}"), only_api_key, keys, NOW
    )
    assert d.reason is Reason.MISSING_CREDENTIAL and d.credential_location is None


def test_a_ring_never_given_a_verifier_reads_no_cookie() -> None:
    """A ring built without the resolver (no master key to key the MAC): the cookie is
    refused, not read or crashed on."""
    builder = RingBuilder()
    builder.add(virtual())
    master = KeyRecord("master", "test", fingerprint(MASTER), digest(MASTER))
    built = builder.build(master=master)
    d = decide(view(MCP, cookie=cookie()), POLICY, built, NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and "no master key to verify" in d.message
    plain = KeyRing([virtual()], master=master)
    d = decide(view(BYOK, "POST", cookie=cookie()), POLICY, plain, NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and "no master key to verify" in d.message
