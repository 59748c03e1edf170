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
    Credential,
    CredentialError,
    Policy,
    Reason,
    RequestView,
    decide,
    extract_credential,
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
