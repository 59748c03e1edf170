"""The decision table, case by case, straight on the pure function."""

from __future__ import annotations

import hashlib
import math

import pytest

from authsvc.authz import (
    Bearer,
    CredentialLocation,
    Decision,
    Policy,
    Reason,
    RequestView,
    decide,
    parse_location,
)
from authsvc.keys import KeyRecord, KeyRing, PathRule

MASTER = "sk-master-0123456789abcdef"
SCOPED = "sk-scoped-0123456789abcdef"
OLD = "sk-expired-0123456789abcdef"
NOW = 1_800_000_000.0


def record(key: str, name: str, **kw: object) -> KeyRecord:
    """A ring record made with hashlib here, not with the ring's own ``digest``/``fingerprint``."""
    sha = hashlib.sha256(key.encode("utf-8"))
    return KeyRecord(name, "test", sha.hexdigest()[:12], sha.digest(), **kw)  # type: ignore[arg-type]


RING = KeyRing(
    [
        record(SCOPED, "scoped", paths=PathRule.from_patterns(["/v1/models", "/v1/chat/*"])),
        record(OLD, "old", expires_at=NOW - 1),
    ],
    master=record(MASTER, "master"),
)
POLICY = Policy.build()


def check(method: str, target: str, headers: dict[str, str] | None = None, ring: KeyRing = RING):
    return decide(RequestView(method, target, headers or {}), POLICY, ring, NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {MASTER}"},
        {"authorization": f"bearer {MASTER}"},
        {"authorization": f"Basic {MASTER}"},  # LiteLLM: the value after "Basic " is the key
        {"authorization": f"AWS4-HMAC-SHA256 Credential=Bearer {MASTER}/20260101/us/bedrock"},
        {"x-litellm-api-key": f"Basic {MASTER}"},
        {"ocp-apim-subscription-key": MASTER},
        {"x-litellm-api-key": MASTER},
        {"x-litellm-api-key": f"Bearer {MASTER}"},
        {"api-key": MASTER},
        {"x-api-key": MASTER},
        {"x-goog-api-key": MASTER},
    ],
)
def test_every_header_location_accepts_the_master_key(headers: dict[str, str]) -> None:
    d = check("POST", "/v1/chat/completions", headers)
    assert d.allowed and d.reason is Reason.KEY_VALID and d.key_name == "master"
    assert d.key_fingerprint == hashlib.sha256(MASTER.encode()).hexdigest()[:12]
    assert d.credential_location == f"header:{next(iter(headers))}"


def test_query_key() -> None:
    d = check("POST", f"/v1beta/models/gemini-2.0:generateContent?alt=sse&key={MASTER}")
    assert d.allowed and d.credential_location == "query:key"
    d = check("POST", f"/v1beta/models/g:streamGenerateContent?key=x&key={MASTER}")
    assert d.allowed  # Starlette's query_params: the last value wins
    # LiteLLM reads ?key= only on generateContent routes: anywhere else it is no credential
    assert check("GET", f"/v1beta/models?alt=sse&key={MASTER}").reason is Reason.MISSING_CREDENTIAL


@pytest.mark.parametrize(
    ("method", "target", "headers", "reason"),
    [
        ("GET", "/v1/models", {}, Reason.MISSING_CREDENTIAL),
        ("GET", "/health", {}, Reason.MISSING_CREDENTIAL),
        ("GET", "/v1/models", {"authorization": "Basic dXNlcjpwYXNz"}, Reason.UNKNOWN_KEY),
        ("GET", "/v1/models", {"authorization": f"BEARER {MASTER}"}, Reason.MALFORMED_CREDENTIAL),
        ("GET", "/v1/models", {"authorization": f"Bearer  {MASTER}"}, Reason.MALFORMED_CREDENTIAL),
        ("GET", "/v1/models", {"authorization": "AWS4-HMAC-SHA256 x"}, Reason.MALFORMED_CREDENTIAL),
        ("GET", "/v1/models", {"authorization": MASTER}, Reason.MALFORMED_CREDENTIAL),
        ("GET", "/v1/models", {"authorization": "Bearer"}, Reason.MALFORMED_CREDENTIAL),
        ("GET", "/v1/models", {"x-api-key": f"{MASTER},other"}, Reason.KEY_VALID),  # twice
        ("GET", "/v1/models", {"x-api-key": f"other,{MASTER}"}, Reason.UNKNOWN_KEY),
        ("GET", "/v1/models", {"authorization": f"Bearer {MASTER},Bearer x"}, Reason.KEY_VALID),
        ("GET", "/v1/models", {"x-api-key": f"{MASTER}\xa0"}, Reason.MALFORMED_CREDENTIAL),
        ("GET", "/v1/models", {"x-api-key": "a" * 70000}, Reason.MALFORMED_CREDENTIAL),
        ("GET", "/v1/models", {"x-api-key": "abc\x01def"}, Reason.MALFORMED_CREDENTIAL),
        ("GET", "/v1/models", {"x-api-key": "sk-wrong-key-000000000"}, Reason.UNKNOWN_KEY),
        ("GET", f"/v1/models?key={MASTER}", {}, Reason.MISSING_CREDENTIAL),
        ("GET", "/v1/x:generateContent?key=", {}, Reason.MISSING_CREDENTIAL),
        # first present location decides: a bad x-litellm-api-key is not rescued by a good
        # Authorization header
        (
            "GET",
            "/v1/models",
            {"x-litellm-api-key": "nope-nope-nope", "authorization": f"Bearer {MASTER}"},
            Reason.UNKNOWN_KEY,
        ),
        ("POST", "/health/liveliness", {}, Reason.MISSING_CREDENTIAL),
        ("GET", "/health/liveliness/", {}, Reason.MISSING_CREDENTIAL),
        ("GET", "/health//liveliness", {}, Reason.MISSING_CREDENTIAL),
        ("GET", "/health%2Fliveliness", {}, Reason.MISSING_CREDENTIAL),
        ("GET", "/health/liveliness/../../v1/models", {}, Reason.MISSING_CREDENTIAL),
        ("GET", "/Health/Liveliness", {}, Reason.MISSING_CREDENTIAL),
        ("GET", "", {}, Reason.MALFORMED_REQUEST),
        ("GET", "/v1/models", {"x-api-key": OLD}, Reason.EXPIRED_KEY),
        ("GET", "/health", {"x-api-key": SCOPED}, Reason.PATH_NOT_ALLOWED),
        ("GET", "/v1/chat", {"x-api-key": SCOPED}, Reason.KEY_VALID),
        ("GET", "/v1/chat/completions", {"x-api-key": SCOPED}, Reason.KEY_VALID),
        ("GET", "/v1/chatx", {"x-api-key": SCOPED}, Reason.PATH_NOT_ALLOWED),
        ("GET", "/v1/models/../../health", {"x-api-key": SCOPED}, Reason.PATH_NOT_ALLOWED),
        ("GET", "/v1/chat/%2e%2e/%2e%2e/health", {"x-api-key": SCOPED}, Reason.PATH_NOT_ALLOWED),
    ],
)
def test_decision_table(method: str, target: str, headers: dict[str, str], reason: Reason) -> None:
    d = check(method, target, headers)
    assert d.reason is reason, d.message
    assert MASTER not in d.message and SCOPED not in d.message


@pytest.mark.parametrize("path", ["/health/liveliness", "/health/liveness", "/health/readiness"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_public_paths(method: str, path: str) -> None:
    assert check(method, path).reason is Reason.PUBLIC_PATH
    assert check(method, path + "?verbose=1").reason is Reason.PUBLIC_PATH


def test_fail_closed_without_master_key() -> None:
    ring = KeyRing([record(SCOPED, "scoped")], unready_reason="env:X unset; file:/k missing")
    d = check("GET", "/v1/models", {"x-api-key": SCOPED}, ring=ring)
    assert d.status == 503 and d.reason is Reason.NO_MASTER_KEY
    assert "env:X unset; file:/k missing" in d.message
    assert check("GET", "/health/readiness", ring=ring).allowed


def test_configured_locations_replace_defaults() -> None:
    policy = Policy.build(locations=[parse_location("header:X-Custom")])
    view = RequestView("GET", "/v1/models", {"authorization": f"Bearer {MASTER}"})
    assert decide(view, policy, RING, NOW).reason is Reason.MISSING_CREDENTIAL
    view = RequestView("GET", "/v1/models", {"x-custom": MASTER})
    assert decide(view, policy, RING, NOW).allowed
    assert "header:x-custom" in policy.missing_message


def test_policy_rejects_non_canonical_public_paths() -> None:
    for bad in ["/health/../x", "//a", "/a%2Fb", "relative", "/a?x=1"]:
        with pytest.raises(ValueError, match="normal form"):
            Policy.build([bad])
    with pytest.raises(ValueError, match="cannot also be a public path"):
        Policy.build(["/health"])
    with pytest.raises(ValueError, match="header:NAME"):
        parse_location("cookie:x")
    assert parse_location("header:Authorization") == CredentialLocation(
        "header", "authorization", Bearer.REQUIRED
    )


EXPIRES = 1_800_000_000.0
BOUNDARY_KEY = "sk-boundary-0123456789abcdef"


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (math.nextafter(EXPIRES, 0.0), Reason.KEY_VALID),  # the last instant before expiry
        (EXPIRES, Reason.EXPIRED_KEY),  # the exact instant: already expired (now >= expires_at)
        (math.nextafter(EXPIRES, math.inf), Reason.EXPIRED_KEY),
        (EXPIRES - 1, Reason.KEY_VALID),
        (EXPIRES + 1, Reason.EXPIRED_KEY),
    ],
)
def test_expiry_boundary_instant(now: float, reason: Reason) -> None:
    ring = KeyRing(
        [record(BOUNDARY_KEY, "boundary", expires_at=EXPIRES)], master=record(MASTER, "master")
    )
    view = RequestView("GET", "/v1/models", {"x-api-key": BOUNDARY_KEY})
    d = decide(view, POLICY, ring, now)
    assert d.reason is reason
    assert d.key_name == "boundary"
    assert d.status == (200 if reason is Reason.KEY_VALID else 401)


def _fp(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@pytest.mark.parametrize(
    ("target", "headers", "expected"),
    [  # the whole Decision, written out: reason, message, key name, fingerprint, location
        ("", {}, Decision(Reason.MALFORMED_REQUEST, "the request has no path")),
        ("?key=x", {}, Decision(Reason.MALFORMED_REQUEST, "the request has no path")),
        ("/health/readiness", {}, Decision(Reason.PUBLIC_PATH, "public path")),
        (
            "/v1/models",
            {"x-api-key": "sk-unknown-000000000000"},
            Decision(
                Reason.UNKNOWN_KEY,
                "invalid api key sent in header:x-api-key",
                credential_location="header:x-api-key",
            ),
        ),
        (
            "/v1/models",
            {"authorization": "Token abc"},  # LiteLLM: no Bearer/Basic/SigV4 prefix
            Decision(
                Reason.MALFORMED_CREDENTIAL,
                "malformed credential in header:authorization: the value needs a scheme prefix "
                "(Bearer, Basic or AWS SigV4)",
                credential_location="header:authorization",
            ),
        ),
        (
            f"/v1beta/models/g:generateContent?key={OLD}",  # ?key= counts only here
            {},
            Decision(Reason.EXPIRED_KEY, "api key 'old' has expired", "old", _fp(OLD), "query:key"),
        ),
        (
            "/health",
            {"api-key": SCOPED},
            Decision(
                Reason.PATH_NOT_ALLOWED,
                "api key 'scoped' is not allowed on this path",
                "scoped",
                _fp(SCOPED),
                "header:api-key",
            ),
        ),
        (
            "/v1/models",
            {"x-goog-api-key": SCOPED},
            Decision(
                Reason.KEY_VALID, "key accepted", "scoped", _fp(SCOPED), "header:x-goog-api-key"
            ),
        ),
        (
            "/anything",
            {"authorization": f"Bearer {MASTER}"},
            Decision(
                Reason.KEY_VALID, "key accepted", "master", _fp(MASTER), "header:authorization"
            ),
        ),
    ],
)
def test_whole_decisions(target: str, headers: dict[str, str], expected: Decision) -> None:
    assert check("GET", target, headers) == expected


def test_the_missing_message_names_every_location() -> None:
    assert check("GET", "/v1/models") == Decision(
        Reason.MISSING_CREDENTIAL,
        "No api key passed in. Send it in: header:x-litellm-api-key, header:authorization "
        "(Bearer), header:api-key, header:x-api-key, header:x-goog-api-key, "
        "header:ocp-apim-subscription-key, query:key.",
    )


def test_the_policy_credential_limit_applies() -> None:
    long_key = "sk-" + "l" * 61  # 64 characters: accepted at a limit of 64, not of 63
    ring = KeyRing([record(long_key, "long")], master=record(MASTER, "master"))
    view = RequestView("GET", "/v1/models", {"x-api-key": long_key})
    assert (
        decide(view, Policy.build(max_credential_length=64), ring, NOW).reason is Reason.KEY_VALID
    )
    tight = decide(view, Policy.build(max_credential_length=63), ring, NOW)
    assert tight.reason is Reason.MALFORMED_CREDENTIAL
    assert tight.message == (
        "malformed credential in header:x-api-key: the credential is longer than 63 characters"
    )


@pytest.mark.parametrize(
    "target",
    [
        "/v1/chat//completions",  # normalises into scope, but is not its own normal form
        "/v1/chat/./completions",
        "/v1/chat/x/../completions",
        "/v1/chat/%63ompletions",
        "/v1/models/",  # trailing slash: not the exact path /v1/models
    ],
)
def test_a_scoped_key_needs_the_path_in_normal_form(target: str) -> None:
    d = check("POST", target, {"x-api-key": SCOPED})
    assert d.reason is Reason.PATH_NOT_ALLOWED and d.key_name == "scoped"


def test_the_first_value_of_each_header_decides_as_litellm_reads_it() -> None:
    """When the adapter knows each header's first value (Envoy's raw header list), decide reads
    those, not the ``,``-joined values: an Upgrade sent twice is a websocket upgrade when its
    FIRST value is ``websocket`` (the key is then in Sec-WebSocket-Protocol), and a second
    x-api-key over the length limit does not spoil the first."""
    from authsvc.authz._litellm_routes import litellm_routes

    policy = Policy.build(app_routes=litellm_routes(ui_closed=False))
    protocol = f"openai-insecure-api-key.{MASTER}"
    ws = RequestView(
        "GET",
        "/v1/realtime",
        {"upgrade": "websocket,h2c", "sec-websocket-protocol": protocol},
        first_values={"upgrade": "websocket", "sec-websocket-protocol": protocol},
    )
    d = decide(ws, policy, RING, NOW)
    assert (d.reason, d.key_name) == (Reason.KEY_VALID, "master")
    assert d.credential_location == "header:sec-websocket-protocol"
    twice = RequestView(
        "GET",
        "/v1/models",
        {"x-api-key": f"{MASTER},{'x' * 5000}"},
        first_values={"x-api-key": MASTER},
    )
    assert decide(twice, POLICY, RING, NOW).reason is Reason.KEY_VALID


def test_closed_litellm_ui_says_where_it_is_closed() -> None:
    """An operator who sees this 403 must learn it is authsvc's setting, not LiteLLM's."""
    from authsvc.authz._litellm_routes import litellm_routes

    policy = Policy.build(app_routes=litellm_routes(ui_closed=True))
    view = RequestView("GET", "/ui/", {"authorization": f"Bearer {MASTER}"})
    d = decide(view, policy, RING, NOW)
    assert (d.reason, d.status) == (Reason.PATH_NOT_ALLOWED, 403)
    assert d.message == (
        "the LiteLLM Admin UI and sign-in routes are closed at the edge "
        "(litellm_ui: closed in authsvc's config)"
    )
    assert (d.key_name, d.credential_location) == (None, None)  # refused before any key is read
