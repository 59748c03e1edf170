"""Fuzzing ``decide()`` against an independent oracle (issue 7, acceptance 1, first half).

For arbitrary requests (methods, targets with unicode/control/percent junk, random headers,
valid and invalid keys at random locations) and arbitrary rings (with or without a master
key, scoped and expired keys):

- no exception escapes, every reason is in the ``STATUS`` table and agrees with ``allowed``;
- **nothing is allowed** unless (a) the raw path is exactly a public path and the method is
  GET or HEAD, or (b) a master key is loaded and the credential of the *first present*
  location is a key of the ring, unexpired, in scope, and within the credential limits.

The oracle (``tests/_oracle.py``) re-derives (a) and (b) from the documented rules, with its
own percent decoding and path resolution; it calls nothing of ``authsvc.authz`` except reading
the policy's data. It is an upper bound: the implementation may deny more (e.g. non-canonical
paths for scoped keys), never allow more. Its ``expected_reasons`` also names the reason code
the documented phases give, and the fuzz checks ``decide`` answers with one of them.

Cases are steered: each draws an *intent* (a public route, no master key, no path, no
credential, a malformed one, an unknown, expired, scoped or valid key, or plain chaos) and
builds a request for it, so every ``Reason`` is reached often; the test asserts that
distribution. Example counts and seeds come from the project's hypothesis profile
(``tests/conftest.py``: derandomized with more examples when ``CI=true``).
"""

from __future__ import annotations

import hashlib
import json
import math
import string
from collections import Counter
from dataclasses import dataclass
from urllib.parse import quote

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from authsvc.authz import (
    DEFAULT_LOCATIONS,
    Allow,
    Bearer,
    Deny,
    Policy,
    Reason,
    RequestView,
    decide,
    render,
)
from authsvc.keys import KeyRecord, KeyRing, PathRule
from tests._oracle import NOW, FuzzKey, expected_reasons, oracle, usable

SCOPES = [None, ["/v1/models"], ["/v1/chat/*"], ["*"], ["/a/b", "/c/*"], ["/"]]
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# -- strategies ----------------------------------------------------------------------------

token_chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
any_text = st.text(st.characters(codec="utf-8"), max_size=40)
clean_key = st.builds(  # LiteLLM's own alphabet: what a real key looks like
    lambda s: "sk-" + s,
    st.text(st.sampled_from(string.ascii_letters + string.digits + "-_"), min_size=13, max_size=40),
)
realistic_key = st.builds(lambda s: "sk-" + s, st.text(token_chars, min_size=13, max_size=40))
odd_key = st.one_of(
    st.text(token_chars, min_size=16, max_size=40),
    st.text(min_size=16, max_size=30),  # spaces, controls, unicode: never usable
    st.just("sk-" + "x" * 1100),  # longer than the credential limit
)


@st.composite
def rings(draw: st.DrawFn) -> tuple[KeyRing, list[FuzzKey], bool]:
    keys = draw(
        st.lists(
            st.one_of(realistic_key, realistic_key, odd_key), min_size=1, max_size=5, unique=True
        )
    )
    has_master = draw(st.booleans()) if draw(st.integers(0, 4)) == 0 else True
    out: list[FuzzKey] = []
    records: list[KeyRecord] = []
    master: KeyRecord | None = None
    for i, key in enumerate(keys):
        is_master = has_master and i == 0
        patterns = None if is_master else draw(st.sampled_from(SCOPES))
        expires = None if is_master else draw(st.sampled_from([None, NOW - 1, NOW, NOW + 60]))
        name = "master" if is_master else f"key{i}"
        rec = KeyRecord(
            name,
            "fuzz",
            hashlib.sha256(key.encode()).hexdigest()[:12],
            hashlib.sha256(key.encode()).digest(),
            PathRule.from_patterns(patterns) if patterns is not None else None,
            expires,
        )
        out.append(FuzzKey(key, name, tuple(patterns) if patterns else None, expires))
        if is_master:
            master = rec
        else:
            records.append(rec)
    ring = KeyRing(records, master=master, unready_reason="fuzz: no master")
    return ring, out, has_master


PATHS = [
    "/health/liveliness",
    "/health/liveness",
    "/health/readiness",
    "/health",
    "/health/",
    "/v1/models",
    "/v1/chat/completions",
    "/v1/chat",
    "/v1/chat/../models",
    "/v1/chat/%2e%2e/%2e%2e/admin",
    "/v1/chat%2F..%2F..%2Fadmin",
    "//health/liveliness",
    "/health%2Fliveliness",
    "/health/liveliness/",
    "/health/liveliness/.",
    "/health/liveliness/../../v1/models",
    "/HEALTH/liveliness",
    "/health/liveliness;x",
    "/health/liveliness#f",
    "/a/b",
    "/c/d/e",
    "/c",
    "*",
    "",
    "http://evil/health/liveliness",
    "/v1/\x00",
    "/%ff",
    "/v1/chat/%zz",
]


def _decorate(draw: st.DrawFn, key: str, keys: list[FuzzKey]) -> str:
    other = draw(st.sampled_from([k.key for k in keys] + ["sk-other-0000000000000"]))
    return draw(
        st.sampled_from(
            [
                key,
                f"Bearer {key}",
                f"bearer   {key}",
                f"BEARER {key} ",
                f" {key} ",
                f"{key},{key}",
                f"{key},{other}",
                f"Bearer {key}, Bearer {key}",
                f"Basic {key}",
                f"{key}\x00",
                f"Bearer\t{key}",
                "",
                "   ",
                "Bearer",
            ]
        )
    )


@st.composite
def views(draw: st.DrawFn, keys: list[FuzzKey]) -> RequestView:
    method = draw(
        st.one_of(
            st.sampled_from(["GET", "HEAD", "POST", "PUT", "get", "GET ", "OPTIONS"]), any_text
        )
    )
    path = draw(
        st.one_of(
            st.sampled_from(PATHS),
            any_text,
            st.builds(lambda a, b: a + b, st.sampled_from(PATHS), any_text),
        )
    )
    params: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.integers(0, 5))
        if kind == 0 and keys:
            key = draw(st.sampled_from(keys)).key
            params.append("key=" + draw(st.sampled_from([key, quote(key, safe=""), key + "x", ""])))
        elif kind == 1:
            params.append("key")
        else:
            params.append(draw(any_text))
    target = path + (("?" + "&".join(params)) if params or draw(st.booleans()) else "")
    headers: dict[str, str] = draw(st.dictionaries(any_text, any_text, max_size=3))
    for loc in DEFAULT_LOCATIONS:
        if loc.kind == "header" and keys and draw(st.integers(0, 3)) == 0:
            headers[loc.name] = _decorate(draw, draw(st.sampled_from(keys)).key, keys)
    return RequestView(method, target, headers, draw(any_text), draw(any_text))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    locations = draw(st.permutations(list(DEFAULT_LOCATIONS)))
    cut = draw(st.integers(1, len(locations)))
    return Policy.build(
        locations=tuple(locations[:cut]), max_credential_length=draw(st.sampled_from([1024, 64]))
    )


# -- steered cases: every reason, often -----------------------------------------------------

INTENTS = (
    "public",
    "no_master",
    "no_path",
    "missing",
    "malformed",
    "unknown",
    "expired",
    "in_scope",
    "out_of_scope",
    "valid",
    "chaos",
)
PUBLIC = ("/health/liveliness", "/health/liveness", "/health/readiness")
PROTECTED = [p for p in PATHS if p and p not in PUBLIC]
SCOPED_PATHS = ["/v1/models", "/v1/chat/completions", "/v1/chat", "/a/b", "/c", "/c/d/e", "/"]
EXPIRED_AT = [NOW - 1, NOW, math.nextafter(NOW, 0.0)]  # NOW itself: expired at that instant
UNEXPIRED_AT = [None, NOW + 60, math.nextafter(NOW, math.inf)]


@dataclass(frozen=True)
class Case:
    intent: str
    view: RequestView
    policy: Policy
    ring: KeyRing
    keys: list[FuzzKey]
    has_master: bool


def _record(key: FuzzKey) -> KeyRecord:
    raw = key.key.encode()
    rule = PathRule.from_patterns(key.patterns) if key.patterns is not None else None
    sha = hashlib.sha256(raw)
    return KeyRecord(key.name, "fuzz", sha.hexdigest()[:12], sha.digest(), rule, key.expires_at)


@st.composite
def steered_rings(draw: st.DrawFn, master: bool) -> tuple[KeyRing, list[FuzzKey]]:
    """A master (unless ``master`` is false), an expired key, a scoped one, maybe more."""
    raw = draw(st.lists(clean_key, min_size=3, max_size=3, unique=True))
    raw += draw(st.lists(st.one_of(realistic_key, odd_key), max_size=2))
    keys: list[FuzzKey] = []
    for i, key in enumerate(raw):
        if key in [k.key for k in keys]:
            continue
        if i == 0:
            keys.append(FuzzKey(key, "master" if master else "key0", None, None))
        elif i == 1:
            keys.append(FuzzKey(key, "old", None, draw(st.sampled_from(EXPIRED_AT))))
        elif i == 2:
            patterns = draw(st.sampled_from([s for s in SCOPES if s not in (None, ["*"])]))
            keys.append(
                FuzzKey(key, "scoped", tuple(patterns), draw(st.sampled_from(UNEXPIRED_AT)))
            )
        else:
            patterns = draw(st.sampled_from(SCOPES))
            expires = draw(st.sampled_from([*EXPIRED_AT, *UNEXPIRED_AT]))
            keys.append(FuzzKey(key, f"key{i}", tuple(patterns) if patterns else None, expires))
    records = [_record(k) for k in keys]
    ring = KeyRing(
        records[1:] if master else records,
        master=records[0] if master else None,
        unready_reason="fuzz: no master",
    )
    return ring, keys


def _present(draw: st.DrawFn, key: str, bearer: Bearer) -> str:
    """``key`` as a well-formed value of a location with this Bearer rule (LiteLLM's forms)."""
    if bearer is Bearer.REQUIRED:
        return draw(
            st.sampled_from(
                [
                    f"Bearer {key}",
                    f"bearer {key}",
                    f"Basic {key}",
                    f" \tBearer {key} ",
                    f"Bearer {key},bearer {key}",  # joined repeat: the first value
                    f"AWS4-HMAC-SHA256 Credential=Bearer {key}/20260101/us/bedrock",
                ]
            )
        )
    plain = [key, f" {key}\t", f"{key},{key}"]
    if bearer is Bearer.OPTIONAL:
        plain += [f"Bearer {key}", f"bearer {key}", f"Basic {key}"]
    return draw(st.sampled_from(plain))


def _malformed(draw: st.DrawFn, key: str, bearer: Bearer) -> str:
    bad = [f"{key}\x00", f"\x7f,{key}", "x" * 1100, f"sk-\u00e9{key}", f"\x0b{key}"]
    if bearer is Bearer.REQUIRED:
        bad += [key, "Bearer", f"Bearer\t{key}", f"Bearer  {key}", f"BEARER {key}"]
        bad += ["AWS4-HMAC-SHA256 Signature=00"]
    return draw(st.sampled_from(bad))


@st.composite
def steered_views(draw: st.DrawFn, intent: str, keys: list[FuzzKey], policy: Policy) -> RequestView:
    if intent == "public":
        method, path = draw(st.sampled_from(["GET", "HEAD"])), draw(st.sampled_from(PUBLIC))
    elif intent == "no_path":
        method, path = draw(st.sampled_from(["GET", "POST"])), ""
    elif intent == "in_scope":
        method, path = "POST", draw(st.sampled_from(SCOPED_PATHS))
    elif intent == "out_of_scope":
        method, path = "POST", draw(st.sampled_from(PROTECTED))
    else:
        method, path = (
            draw(st.sampled_from(["GET", "POST", "PUT"])),
            draw(st.sampled_from(PROTECTED)),
        )
    headers: dict[str, str] = {}
    params: list[str] = [
        p for p in draw(st.lists(st.sampled_from(["alt=sse", "a=1", "x"]), max_size=2))
    ]
    # where the credential goes; the locations before it are absent, or blank headers
    at = draw(st.integers(0, len(policy.locations) - 1))
    for loc in policy.locations[:at]:
        if loc.kind == "header" and draw(st.booleans()):
            headers[loc.name] = draw(st.sampled_from(["", " ", "\t"]))
    loc = policy.locations[at]
    value: str | None
    if intent in ("valid", "chaos", "no_master", "public", "no_path"):
        value = _present(draw, keys[0].key, loc.bearer)
    elif intent == "expired":
        value = _present(draw, keys[1].key, loc.bearer)
    elif intent in ("in_scope", "out_of_scope"):
        value = _present(draw, keys[2].key, loc.bearer)
    elif intent == "unknown":
        near = keys[0].key
        fresh = draw(st.sampled_from([near + "x", near[:-1], near.upper(), "sk-unknown-" + near]))
        value = _present(draw, fresh, loc.bearer)
    elif intent == "malformed":
        value = _malformed(draw, keys[0].key, loc.bearer)
    else:  # missing
        value = None
        for later in policy.locations[at:]:
            if later.kind == "header" and draw(st.booleans()):
                headers[later.name] = draw(st.sampled_from(["", "  "]))
    if value is not None:
        if loc.kind == "header":
            headers[loc.name] = value
        else:
            params.append(
                "key=" + quote(value.strip(), safe="") if "," not in value else f"key={value}"
            )
    if loc.generate_content_only and intent not in ("public", "no_path"):
        path += ":generateContent"  # LiteLLM reads ?key= only on these routes
    target = path + ("?" + "&".join(params) if params else "")
    return RequestView(method, target, headers)


@st.composite
def case_for(draw: st.DrawFn, intent: str) -> Case:
    if intent == "chaos":
        ring, keys, has_master = draw(rings())
        policy = draw(policies())
        return Case(intent, draw(views(keys)), policy, ring, keys, has_master)
    has_master = intent != "no_master"
    ring, keys = draw(steered_rings(has_master))
    policy = draw(policies())
    return Case(intent, draw(steered_views(intent, keys, policy)), policy, ring, keys, has_master)


# One example is one case of every intent: the share of each is exactly even, whatever
# hypothesis's generator favours, so the distribution assertion below cannot flake.
cases = st.tuples(*(case_for(intent) for intent in INTENTS))


# -- the properties ------------------------------------------------------------------------

EXPECTED_STATUS = {  # written out from the design (DESIGN.md), not read from authsvc.authz
    "public_path": 200,
    "key_valid": 200,
    "missing_credential": 401,
    "malformed_credential": 401,
    "unknown_key": 401,
    "expired_key": 401,
    "path_not_allowed": 403,
    "no_master_key": 503,
    "malformed_request": 400,
}


def check(
    view: RequestView, policy: Policy, ring: KeyRing, keys: list[FuzzKey], has_master: bool
) -> Reason:
    decision = decide(view, policy, ring, NOW)
    assert decision.reason.value in EXPECTED_STATUS
    assert decision.status == EXPECTED_STATUS[decision.reason.value]
    assert decision.allowed == (decision.status == 200)
    reasons = expected_reasons(view, policy, keys, has_master)
    assert decision.reason.value in reasons, (
        f"{decision.reason.value} ({decision.message}); the documented rules give {sorted(reasons)}"
    )
    expected = oracle(view, policy, keys, has_master)
    if decision.allowed:
        assert expected is not None, f"allowed without a public path or a valid key: {decision}"
        if decision.reason is Reason.KEY_VALID:
            assert isinstance(expected, FuzzKey), decision
            assert decision.key_name == expected.name
            assert (
                decision.key_fingerprint == hashlib.sha256(expected.key.encode()).hexdigest()[:12]
            )
        else:
            assert expected == "public"
    # Leak checks use the sk- keys only: hypothesis also draws keys from string constants of
    # the code (it found "application/json"), which legitimately appear in every answer.
    secrets = [k.key for k in keys if k.key.startswith("sk-")]
    for key in secrets:
        assert key not in decision.message
    answer = render(decision, view.headers)
    if isinstance(answer, Deny):
        assert not decision.allowed and answer.status == decision.status
        body = json.loads(answer.body)
        assert "\n" not in answer.body and body["error"]["reason"] == decision.reason.value
        for key in secrets:
            assert key not in answer.body
            assert all(key not in v for _, v in answer.headers)
    else:
        assert isinstance(answer, Allow) and decision.allowed
        for k in keys:
            assert all(v != k.key for _, v in answer.set_headers if k.key != k.name)
    return decision.reason


MIN_SHARE = 0.05
"""Every reason ``decide`` can give must end at least this share of the fuzz's examples."""


def test_decide_fuzz_against_the_oracle_reaches_every_reason() -> None:
    """Never allows more than the oracle, answers a documented reason, reaches every reason."""
    seen: Counter[str] = Counter()

    @settings(FUZZ, max_examples=max(10, settings.default.max_examples // 4))
    @given(batch=cases)
    def fuzz(batch: tuple[Case, ...]) -> None:
        for case in batch:
            reason = check(case.view, case.policy, case.ring, case.keys, case.has_master)
            seen[reason.value] += 1

    fuzz()
    total = sum(seen.values())
    assert total >= 10 * len(INTENTS), f"only {total} cases ran"
    reachable = set(EXPECTED_STATUS)  # every reason but internal_error (adapters only)
    assert set(seen) <= reachable
    shares = {r: seen[r] / total for r in sorted(reachable)}
    rare = {r: f"{share:.1%}" for r, share in shares.items() if share < MIN_SHARE}
    assert not rare, f"reasons reached too rarely in {total} examples: {rare}; all: {dict(seen)}"


@settings(deadline=None)
@given(
    method=st.text(),
    target=st.text(),
    headers=st.dictionaries(st.text(max_size=30), st.text(), max_size=6),
    ring=rings(),
)
def test_decide_is_total_on_arbitrary_text(
    method: str, target: str, headers: dict[str, str], ring: tuple[KeyRing, list[FuzzKey], bool]
) -> None:
    key_ring, keys, has_master = ring
    check(RequestView(method, target, headers), Policy.build(), key_ring, keys, has_master)


@settings(deadline=None)
@given(ring=rings(), data=st.data())
def test_the_oracle_is_not_vacuous(
    ring: tuple[KeyRing, list[FuzzKey], bool], data: st.DataObject
) -> None:
    """Sanity for the oracle itself: a clean master key in ``x-api-key`` is allowed by both."""
    key_ring, keys, has_master = ring
    assume(has_master and usable(keys[0].key, Policy.build()) and "," not in keys[0].key)
    view = RequestView("POST", "/v1/chat/completions", {"x-api-key": keys[0].key})
    assert oracle(view, Policy.build(), keys, has_master) == keys[0]
    assert decide(view, Policy.build(), key_ring, NOW).reason is Reason.KEY_VALID
