"""``decide()`` on LiteLLM virtual keys (records with a ``Standing``): LiteLLM's own refusals,
their order, their boundaries and their messages, straight on the pure function.

Expected values are LiteLLM 1.110.2's documented behaviour (docs/virtual-keys.md, "What the edge
decides, as LiteLLM does": the messages are LiteLLM's, verbatim) written out by hand here; the
dates in the expiry message were computed with ``date -u -d @1800000000``, not with the code
under test. Digests come from ``hashlib``, not from the ring's ``digest()``.
"""

from __future__ import annotations

import hashlib

import pytest

from authsvc.authz import Decision, Policy, Reason, RequestView, decide
from authsvc.keymodel import KeyRecord, KeyRing, PathRule, Standing

VKEY = "sk-virtual-0123456789abcdef"
MASTER = "sk-vk-master-0123456789abcdef"
OTHER = "sk-vk-other-0123456789abcdef"
NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
VKEY_FP = hashlib.sha256(VKEY.encode()).hexdigest()[:12]

BLOCKED = "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin."


def _record(key: str, name: str, **kw: object) -> KeyRecord:
    sha = hashlib.sha256(key.encode("utf-8"))
    return KeyRecord(name, "virtual_keys:$DATABASE_URL", sha.hexdigest()[:12], sha.digest(), **kw)  # type: ignore[arg-type]


def ring(standing: Standing | None = None, **kw: object) -> KeyRing:
    vkey = _record(VKEY, "alice", litellm=standing or Standing(), **kw)
    return KeyRing([vkey], master=_record(MASTER, "master"))


def check(
    r: KeyRing,
    now: float = NOW,
    path: str = "/v1/models",
    headers: dict[str, str] | None = None,
) -> Decision:
    view = RequestView("GET", path, headers or {"authorization": f"Bearer {VKEY}"})
    return decide(view, Policy.build(), r, now)


# -- each refusal: reason, status, message, and who it is attributed to ------------------------


def test_a_blocked_key_gets_litellms_401_under_its_own_name() -> None:
    d = check(ring(Standing(blocked=True)))
    assert (d.reason, d.status, d.message) == (Reason.BLOCKED_KEY, 401, BLOCKED)
    assert (d.key_name, d.key_fingerprint) == ("alice", VKEY_FP)
    assert d.credential_location == "header:authorization"


def test_a_key_of_a_blocked_team_gets_litellms_401_naming_the_team() -> None:
    d = check(ring(Standing(team_id="team-7", team_blocked=True)))
    assert (d.reason, d.status) == (Reason.TEAM_BLOCKED, 401)
    assert d.message == (
        "Authentication Error, Team=team-7 is blocked. Update via `/team/unblock` if you're an admin."
    )
    assert (d.key_name, d.key_fingerprint, d.credential_location) == (
        "alice",
        VKEY_FP,
        "header:authorization",
    )


def test_a_key_whose_team_is_gone_gets_litellms_404_verbatim() -> None:
    d = check(ring(Standing(team_id="team-gone", team_missing=True)))
    assert (d.reason, d.status) == (Reason.TEAM_NOT_FOUND, 404)
    # LiteLLM's str() of its HTTPException detail (a dict), as its 404 body carries it
    assert d.message == (
        "{'error': \"Team doesn't exist in db. Team=team-gone. Create team via `/team/new` call.\"}"
    )
    assert (d.key_name, d.key_fingerprint, d.credential_location) == (
        "alice",
        VKEY_FP,
        "header:authorization",
    )


def test_an_expired_virtual_key_gets_litellms_message_with_both_times() -> None:
    d = check(ring(expires_at=NOW - 1))
    assert (d.reason, d.status) == (Reason.EXPIRED_KEY, 401)
    assert d.message == (
        "Authentication Error - Expired Key. "
        "Key Expiry time 2027-01-15 07:59:59+00:00 and current time 2027-01-15 08:00:00+00:00"
    )
    assert (d.key_name, d.key_fingerprint, d.credential_location) == (
        "alice",
        VKEY_FP,
        "header:authorization",
    )
    half = check(ring(expires_at=NOW - 0.5), now=NOW)  # fractions as Python's str(datetime)
    assert half.message.endswith(
        "Key Expiry time 2027-01-15 07:59:59.500000+00:00 and current time 2027-01-15 08:00:00+00:00"
    )


def test_expiry_of_a_virtual_key_is_strict_as_litellms() -> None:
    """LiteLLM refuses when ``expires < now``: at the exact instant the key still works (an
    ordinary key of authsvc's own is expired at that instant: test_decide.py)."""
    assert check(ring(expires_at=NOW)).reason is Reason.KEY_VALID
    assert check(ring(expires_at=NOW + 0.001)).reason is Reason.KEY_VALID
    assert check(ring(expires_at=NOW - 0.001)).reason is Reason.EXPIRED_KEY
    assert check(ring(expires_at=None)).reason is Reason.KEY_VALID


def test_a_rotated_away_key_is_unknown_from_revoke_at_on() -> None:
    """LiteLLM finds a deprecated token only while ``revoke_at > now``: at ``revoke_at`` it is
    an unknown key (no name: there is no key any more), before it the key works."""
    rotated = Standing(revoke_at=NOW)
    d = check(ring(rotated))
    assert (d.reason, d.status) == (Reason.UNKNOWN_KEY, 401)
    assert d.message == "invalid api key sent in header:authorization"
    assert (d.key_name, d.key_fingerprint) == (None, None)
    assert d.credential_location == "header:authorization"
    assert check(ring(rotated), now=NOW - 0.001).reason is Reason.KEY_VALID
    assert check(ring(rotated), now=NOW + 1).reason is Reason.UNKNOWN_KEY
    located = check(ring(rotated), headers={"x-api-key": VKEY})
    assert located.message == "invalid api key sent in header:x-api-key"
    assert located.credential_location == "header:x-api-key"


def test_a_virtual_key_in_good_standing_is_valid_under_its_name() -> None:
    d = check(ring(Standing(team_id="team-7")))
    assert (d.reason, d.message) == (Reason.KEY_VALID, "key accepted")
    assert (d.key_name, d.key_fingerprint, d.credential_location) == (
        "alice",
        VKEY_FP,
        "header:authorization",
    )


# -- the order: LiteLLM's checks, first refusal wins ------------------------------------------


@pytest.mark.parametrize(
    ("standing", "expires_at", "reason"),
    [
        # rotated away: not found at all, whatever else the old row says
        (Standing(revoke_at=NOW, blocked=True), NOW - 1, Reason.UNKNOWN_KEY),
        (Standing(revoke_at=NOW, team_id="t", team_missing=True), None, Reason.UNKNOWN_KEY),
        # blocked key before expiry and the team checks
        (Standing(blocked=True), NOW - 1, Reason.BLOCKED_KEY),
        (Standing(blocked=True, team_id="t", team_blocked=True), None, Reason.BLOCKED_KEY),
        (Standing(blocked=True, team_id="t", team_missing=True), None, Reason.BLOCKED_KEY),
        # expiry before the team checks
        (Standing(team_id="t", team_missing=True), NOW - 1, Reason.EXPIRED_KEY),
        (Standing(team_id="t", team_blocked=True), NOW - 1, Reason.EXPIRED_KEY),
        # a rotated key before revoke_at is judged on its row like any other
        (Standing(revoke_at=NOW + 60, blocked=True), None, Reason.BLOCKED_KEY),
    ],
)
def test_litellms_order_first_refusal_wins(
    standing: Standing, expires_at: float | None, reason: Reason
) -> None:
    assert check(ring(standing, expires_at=expires_at)).reason is reason


# -- the later phases still apply to a virtual key in good standing ----------------------------


def test_a_valid_virtual_key_is_still_held_to_its_routes() -> None:
    scoped = ring(paths=PathRule.from_patterns(["/v1/chat/*"]))
    d = check(scoped, path="/v1/models")
    assert (d.reason, d.status) == (Reason.PATH_NOT_ALLOWED, 403)
    assert (d.key_name, d.key_fingerprint) == ("alice", VKEY_FP)
    assert check(scoped, path="/v1/chat/completions").reason is Reason.KEY_VALID
    # a refused key is refused before its routes are looked at
    blocked = ring(Standing(blocked=True), paths=PathRule.from_patterns(["/v1/chat/*"]))
    assert check(blocked, path="/v1/models").reason is Reason.BLOCKED_KEY


def test_a_refusal_applies_to_the_first_value_of_a_joined_header() -> None:
    """A virtual key found through the first value of a header sent twice (Envoy joins
    Authorization with ``,``) is judged by LiteLLM's rules, under the location it came from."""
    joined = {"authorization": f"Bearer {VKEY},Bearer {OTHER}"}
    d = check(ring(Standing(blocked=True)), headers=joined)
    assert (d.reason, d.message, d.credential_location) == (
        Reason.BLOCKED_KEY,
        BLOCKED,
        "header:authorization",
    )
    ok = check(ring(), headers=joined)
    assert ok.reason is Reason.KEY_VALID and ok.first_value_of == "authorization"


def test_the_master_key_and_ordinary_keys_keep_authsvcs_rules() -> None:
    """Only records with a Standing get LiteLLM's rules: an ordinary key expiring now is
    expired (authsvc's ``>=``), and an unknown key is unknown with authsvc's message."""
    plain = KeyRing(
        [_record(OTHER, "ci", expires_at=NOW)],
        master=_record(MASTER, "master"),
    )
    d = decide(
        RequestView("GET", "/v1/models", {"authorization": f"Bearer {OTHER}"}),
        Policy.build(),
        plain,
        NOW,
    )
    assert (d.reason, d.message) == (Reason.EXPIRED_KEY, "api key 'ci' has expired")
    unknown = check(ring(), headers={"authorization": "Bearer sk-nobody-0123456789abcdef"})
    assert (unknown.reason, unknown.key_name) == (Reason.UNKNOWN_KEY, None)
