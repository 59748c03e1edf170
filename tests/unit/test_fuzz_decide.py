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
paths for scoped keys), never allow more.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from authsvc.authz import (
    DEFAULT_LOCATIONS,
    STATUS,
    Allow,
    Deny,
    Policy,
    Reason,
    RequestView,
    decide,
    render,
)
from authsvc.keys import KeyRecord, KeyRing, PathRule
from tests._oracle import NOW, FuzzKey, oracle, usable

SCOPES = [None, ["/v1/models"], ["/v1/chat/*"], ["*"], ["/a/b", "/c/*"], ["/"]]
FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# -- strategies ----------------------------------------------------------------------------

token_chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
any_text = st.text(st.characters(codec="utf-8"), max_size=40)
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


# -- the properties ------------------------------------------------------------------------


def check(
    view: RequestView, policy: Policy, ring: KeyRing, keys: list[FuzzKey], has_master: bool
) -> None:
    decision = decide(view, policy, ring, NOW)
    assert decision.reason in STATUS
    assert decision.status == STATUS[decision.reason]
    assert decision.allowed == (decision.reason in (Reason.PUBLIC_PATH, Reason.KEY_VALID))
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


@FUZZ
@given(data=st.data(), ring=rings(), policy=policies())
def test_decide_never_allows_without_a_public_path_or_a_valid_key(
    data: st.DataObject, ring: tuple[KeyRing, list[FuzzKey], bool], policy: Policy
) -> None:
    key_ring, keys, has_master = ring
    view = data.draw(views(keys))
    check(view, policy, key_ring, keys, has_master)


@settings(max_examples=300, deadline=None)
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


@settings(max_examples=200, deadline=None)
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
