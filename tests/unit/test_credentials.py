"""Credential extraction at its edges: empty and whitespace-only values in every location.

The documented rule (``extract_credential``): a **header** whose value is empty or only
whitespace counts as absent, so the next location may decide; a **query** parameter that is
present (``?key=``, ``?key``, ``?key=%20``) is present, and its empty value is malformed. The
expected outcomes below are written out by hand from that rule, not computed by the code.
"""

from __future__ import annotations

import pytest

from authsvc.authz import (
    DEFAULT_LOCATIONS,
    Bearer,
    Credential,
    CredentialError,
    Policy,
    Reason,
    RequestView,
    decide,
    extract_credential,
    parse_location,
)
from authsvc.keys import KeyRecord, KeyRing, digest, fingerprint

KEY = "sk-credential-edge-0123456789"
NOW = 1_800_000_000.0
RING = KeyRing(master=KeyRecord("master", "test", fingerprint(KEY), digest(KEY)))

HEADERS = ["x-litellm-api-key", "authorization", "api-key", "x-api-key", "x-goog-api-key"]
BLANKS = ["", " ", "   ", "\t", " \t ", "\r\n"]


def test_the_default_locations_are_the_documented_ones() -> None:
    # written out by hand: every header location below, then the query parameter "key"
    assert [loc.label for loc in DEFAULT_LOCATIONS] == [f"header:{h}" for h in HEADERS] + [
        "query:key"
    ]


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("header", HEADERS)
def test_a_blank_header_is_absent(header: str, blank: str) -> None:
    assert extract_credential("/v1/models", {header: blank}) is None
    d = decide(RequestView("GET", "/v1/models", {header: blank}), Policy.build(), RING, NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and d.status == 401
    assert d.credential_location is None


@pytest.mark.parametrize("blank", BLANKS)
@pytest.mark.parametrize("header", HEADERS)
def test_a_blank_header_lets_the_next_location_decide(header: str, blank: str) -> None:
    """Absent, not present-and-empty: a valid key in the query behind it is accepted."""
    found = extract_credential(f"/v1/models?key={KEY}", {header: blank})
    assert found == Credential(KEY, "query:key")
    view = RequestView("GET", f"/v1/models?key={KEY}", {header: blank})
    d = decide(view, Policy.build(), RING, NOW)
    assert d.reason is Reason.KEY_VALID and d.credential_location == "query:key"


@pytest.mark.parametrize("blank", BLANKS)
def test_every_blank_header_at_once_is_still_missing(blank: str) -> None:
    headers = dict.fromkeys(HEADERS, blank)
    assert extract_credential("/v1/models", headers) is None
    assert extract_credential("/v1/models?other=1", headers) is None


@pytest.mark.parametrize(
    "target",
    ["/v1/models?key=", "/v1/models?key", "/v1/models?key=%20", "/v1/models?a=1&key=&b=2"],
)
def test_a_present_but_empty_query_key_is_malformed(target: str) -> None:
    assert extract_credential(target, {}) == CredentialError("query:key", "the credential is empty")
    d = decide(RequestView("GET", target, {}), Policy.build(), RING, NOW)
    assert d.reason is Reason.MALFORMED_CREDENTIAL and d.credential_location == "query:key"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("authorization", "Bearer"),
        ("authorization", "bearer   "),
        ("authorization", "Bearer  ,Bearer "),
        ("x-litellm-api-key", "Bearer"),
        ("x-litellm-api-key", "BEARER "),
    ],
)
def test_a_scheme_without_a_key_is_present_and_empty(header: str, value: str) -> None:
    """Not blank (the scheme is there): present, so malformed, and it does not fall through."""
    found = extract_credential(f"/v1/models?key={KEY}", {header: value})
    assert found == CredentialError(f"header:{header}", "the credential is empty")


@pytest.mark.parametrize("header", ["api-key", "x-api-key", "x-goog-api-key", "x-litellm-api-key"])
def test_a_blank_repeated_value_beside_a_key_is_a_conflict(header: str) -> None:
    """``a, `` (a key and an empty repeat) is two different values, never silently the key."""
    found = extract_credential("/", {header: f"{KEY}, "})
    assert found == CredentialError(f"header:{header}", "sent more than once with different values")


@pytest.mark.parametrize("header", HEADERS)
def test_surrounding_whitespace_is_trimmed_inside_a_present_header(header: str) -> None:
    value = f"  Bearer {KEY}  " if header == "authorization" else f"  {KEY}\t"
    assert extract_credential("/", {header: value}) == Credential(KEY, f"header:{header}")


# -- parse_location: the config-file form -------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "name", "bearer"),
    [
        ("header:X-Custom", "header", "x-custom", Bearer.NEVER),
        ("header:Authorization", "header", "authorization", Bearer.REQUIRED),
        ("header:authorization", "header", "authorization", Bearer.REQUIRED),
        ("header:X-LiteLLM-API-Key", "header", "x-litellm-api-key", Bearer.OPTIONAL),
        ("header:api-key", "header", "api-key", Bearer.NEVER),
        ("query:key", "query", "key", Bearer.NEVER),
        ("query:Key", "query", "Key", Bearer.NEVER),  # query names are case-sensitive
        ("query:authorization", "query", "authorization", Bearer.NEVER),
        ("query:a:b", "query", "a:b", Bearer.NEVER),  # split at the first colon
    ],
)
def test_parse_location(spec: str, kind: str, name: str, bearer: Bearer) -> None:
    loc = parse_location(spec)
    assert (loc.kind, loc.name, loc.bearer) == (kind, name, bearer)
    assert loc.label == f"{kind}:{name}"


@pytest.mark.parametrize(
    "spec", ["", "header", "header:", ":x", "cookie:x", "Header:x", "query:", "x:header"]
)
def test_parse_location_refuses(spec: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_location(spec)
    assert str(err.value) == (f"credential location {spec!r} must be 'header:NAME' or 'query:NAME'")


# -- the token rules, with their messages ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (
            "sk-é-0123456789abcdef",
            "the credential contains whitespace, control or non-ASCII characters",
        ),
        (
            "sk-\x7f-0123456789abcd",
            "the credential contains whitespace, control or non-ASCII characters",
        ),
        (
            "sk-\x01-0123456789abcd",
            "the credential contains whitespace, control or non-ASCII characters",
        ),
        (
            "sk-a b-0123456789abc",
            "the credential contains whitespace, control or non-ASCII characters",
        ),
        (
            "sk-a\tb-0123456789ab",
            "the credential contains whitespace, control or non-ASCII characters",
        ),
        ("sk-one,sk-two", "sent more than once with different values"),
    ],
)
def test_unusable_tokens_name_the_rule(value: str, detail: str) -> None:
    assert extract_credential("/", {"x-api-key": value}) == CredentialError(
        "header:x-api-key", detail
    )


def test_the_length_limit_is_inclusive() -> None:
    at_limit, over = "k" * 16, "k" * 17
    assert extract_credential("/", {"api-key": at_limit}, max_length=16) == Credential(
        at_limit, "header:api-key"
    )
    assert extract_credential("/", {"api-key": over}, max_length=16) == CredentialError(
        "header:api-key", "the credential is longer than 16 characters"
    )
    default_limit = "k" * 1024
    assert extract_credential("/", {"api-key": default_limit}) == Credential(
        default_limit, "header:api-key"
    )
    assert extract_credential("/", {"api-key": default_limit + "k"}) == CredentialError(
        "header:api-key", "the credential is longer than 1024 characters"
    )


@pytest.mark.parametrize(
    ("header", "value", "found"),
    [
        ("authorization", f"Bearer {KEY}", KEY),
        ("authorization", f"bEaReR {KEY}", KEY),
        ("authorization", f"Bearer    {KEY}   ", KEY),
        ("authorization", f"Basic {KEY}", "only the Bearer scheme is accepted"),
        ("authorization", KEY, "only the Bearer scheme is accepted"),
        ("authorization", f"Bearer{KEY}", "only the Bearer scheme is accepted"),
        ("authorization", f"Token {KEY}", "only the Bearer scheme is accepted"),
        ("authorization", "BEARER", "the credential is empty"),
        ("x-litellm-api-key", KEY, KEY),
        ("x-litellm-api-key", f"Bearer {KEY}", KEY),
        ("x-litellm-api-key", f"BEARER {KEY}", KEY),
        ("x-litellm-api-key", "bearer", "the credential is empty"),
        ("x-litellm-api-key", f"Bearer{KEY}", f"Bearer{KEY}"),  # not the scheme: the value
        (
            "x-api-key",
            f"Bearer {KEY}",
            "the credential contains whitespace, control or non-ASCII characters",
        ),
        ("x-api-key", "bearer", "bearer"),  # no scheme here: "bearer" is the value itself
    ],
)
def test_the_bearer_rule_of_each_location(header: str, value: str, found: str) -> None:
    got = extract_credential("/", {header: value})
    label = f"header:{header}"
    if found.startswith(("sk-", "Bearer", "bearer")):
        assert got == Credential(found, label)
    else:
        assert got == CredentialError(label, found)


def test_repeated_equal_values_are_one_key() -> None:
    for header, value in [
        ("x-api-key", f"{KEY},{KEY}"),
        ("x-api-key", f"{KEY}, {KEY} ,{KEY}"),
        ("authorization", f"Bearer {KEY},bearer {KEY}"),
        ("x-litellm-api-key", f"Bearer {KEY},{KEY}"),
    ]:
        assert extract_credential("/", {header: value}) == Credential(KEY, f"header:{header}")
    assert extract_credential(f"/?key={KEY}&key={KEY}", {}) == Credential(KEY, "query:key")
    assert extract_credential(f"/?key={KEY}&key=other", {}) == CredentialError(
        "query:key", "sent more than once with different values"
    )
    assert extract_credential("/", {"authorization": f"Bearer {KEY},Basic x"}) == CredentialError(
        "header:authorization", "only the Bearer scheme is accepted"
    )


def test_the_first_present_location_decides_in_the_configured_order() -> None:
    locations = (parse_location("query:token"), parse_location("header:x-api-key"))
    headers = {"x-api-key": KEY}
    assert extract_credential("/?token=abc", headers, locations) == Credential("abc", "query:token")
    assert extract_credential("/?tok=abc", headers, locations) == Credential(
        KEY, "header:x-api-key"
    )
    assert extract_credential("/?token=abc", {}, locations[1:]) is None
    # a header location not configured is never read
    assert extract_credential("/", {"authorization": f"Bearer {KEY}"}, locations) is None
