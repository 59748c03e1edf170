"""Credential extraction at its edges: empty and whitespace-only values in every location.

The documented rule (``extract_credential``, LiteLLM 1.110.2's): a **header** whose value is
empty or only ASCII space/tab counts as absent, so the next location may decide; any other
character (CR, LF, VT, NBSP) makes it present, and unusable. The default ``?key=`` is read only
on generateContent routes, and an empty value there is no key (Starlette's ``query_params``,
the last value counting); an explicitly configured ``query:NAME`` keeps the strict rule: a
present parameter (``?key=``, ``?key``) is present, and its empty value is malformed. The
expected outcomes below are written out by hand from those rules, not computed by the code.
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
from authsvc.authz._credentials import DEFAULT_WS_LOCATIONS, custom_header_location, is_websocket
from authsvc.keys import KeyRecord, KeyRing, digest, fingerprint

KEY = "sk-credential-edge-0123456789"
NOW = 1_800_000_000.0
RING = KeyRing(master=KeyRecord("master", "test", fingerprint(KEY), digest(KEY)))

HEADERS = [
    "x-litellm-api-key",
    "authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "ocp-apim-subscription-key",
]
BLANKS = ["", " ", "   ", "\t", " \t "]
GC = "/v1beta/models/gemini-2.0:generateContent"  # a route where LiteLLM reads ?key=
SCHEME = "the value needs a scheme prefix (Bearer, Basic or AWS SigV4)"
ODD = "the credential contains control or non-ASCII characters"
EDGES = "the credential has leading or trailing whitespace"


def test_the_default_locations_are_the_documented_ones() -> None:
    # written out by hand: every header location below, then the query parameter "key"
    assert [loc.label for loc in DEFAULT_LOCATIONS] == [f"header:{h}" for h in HEADERS] + [
        "query:key"
    ]
    assert [loc.generate_content_only for loc in DEFAULT_LOCATIONS] == [False] * 6 + [True]


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
    found = extract_credential(f"{GC}?key={KEY}", {header: blank})
    assert found == Credential(KEY, "query:key")
    view = RequestView("GET", f"{GC}?key={KEY}", {header: blank})
    d = decide(view, Policy.build(), RING, NOW)
    assert d.reason is Reason.KEY_VALID and d.credential_location == "query:key"


@pytest.mark.parametrize("blank", BLANKS)
def test_every_blank_header_at_once_is_still_missing(blank: str) -> None:
    headers = dict.fromkeys(HEADERS, blank)
    assert extract_credential("/v1/models", headers) is None
    assert extract_credential("/v1/models?other=1", headers) is None
    assert extract_credential(f"{GC}?key=", headers) is None


@pytest.mark.parametrize(
    ("value", "raw_detail"),
    [("\r\n", ODD), ("\x0b", ODD), ("\u00a0", ODD), (" \x0c ", ODD), ("\u2003", ODD)],
)
@pytest.mark.parametrize("header", HEADERS)
def test_only_space_and_tab_make_a_header_blank(header: str, value: str, raw_detail: str) -> None:
    """CR, LF, VT, FF, NBSP, EM SPACE are not trimmed: the header is present and unusable, and
    the valid key behind it is never reached."""
    found = extract_credential(f"{GC}?key={KEY}", {header: value})
    detail = SCHEME if header == "authorization" else raw_detail
    assert found == CredentialError(f"header:{header}", detail)
    d = decide(RequestView("GET", f"{GC}?key={KEY}", {header: value}), Policy.build(), RING, NOW)
    assert d.reason is Reason.MALFORMED_CREDENTIAL and d.credential_location == f"header:{header}"


@pytest.mark.parametrize(
    "target",
    [f"{GC}?key=", f"{GC}?key", f"{GC}?a=1&key=&b=2", f"{GC}?key={KEY}&key="],
)
def test_an_empty_default_query_key_is_no_key(target: str) -> None:
    """LiteLLM: ``query_params.get("key")`` (the last value) is falsy, so no key was sent."""
    assert extract_credential(target, {}) is None
    d = decide(RequestView("GET", target, {}), Policy.build(), RING, NOW)
    assert d.reason is Reason.MISSING_CREDENTIAL and d.credential_location is None


def test_a_blank_default_query_key_is_present_and_malformed() -> None:
    assert extract_credential(f"{GC}?key=%20", {}) == CredentialError("query:key", EDGES)
    assert extract_credential(f"{GC}?key=+", {}) == CredentialError("query:key", EDGES)  # '+'=' '
    assert extract_credential(f"{GC}?key=%09{KEY}", {}) == CredentialError("query:key", ODD)


@pytest.mark.parametrize(
    "target",
    ["/v1/models?key=", "/v1/models?key", "/v1/models?key=%20", "/v1/models?a=1&key=&b=2"],
)
def test_a_present_but_empty_configured_query_key_is_malformed(target: str) -> None:
    locations = (parse_location("query:key"),)  # explicit: every route, the strict rule
    empty = CredentialError("query:key", "the credential is empty")
    expected = CredentialError("query:key", EDGES) if "%20" in target else empty
    assert extract_credential(target, {}, locations) == expected
    d = decide(RequestView("GET", target, {}), Policy.build(locations=locations), RING, NOW)
    assert d.reason is Reason.MALFORMED_CREDENTIAL and d.credential_location == "query:key"


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("authorization", "Bearer", SCHEME),  # "Bearer" alone: no "Bearer " prefix
        ("authorization", "bearer   ", SCHEME),  # trailing spaces trimmed first
        ("authorization", "Bearer  ,Bearer ", EDGES),  # key " ,Bearer"
        ("authorization", "AWS4-HMAC-SHA256", "the credential is empty"),
        ("authorization", "AWS4-HMAC-SHA256 Credential=/20260101/us", "the credential is empty"),
        ("x-litellm-api-key", "AWS4-HMAC-SHA256 SignedHeaders=host", "the credential is empty"),
        ("x-litellm-api-key", "Bearer", "Bearer"),  # no prefix: the value itself is the key
        ("x-litellm-api-key", "BEARER ", "BEARER"),
    ],
)
def test_a_scheme_without_a_key_is_present(header: str, value: str, expected: str) -> None:
    """Not blank (the scheme is there): present, so it decides and does not fall through."""
    found = extract_credential(f"{GC}?key={KEY}", {header: value})
    label = f"header:{header}"
    if expected.startswith(("Bearer", "BEARER")):
        assert found == Credential(expected, label)
    else:
        assert found == CredentialError(label, expected)


@pytest.mark.parametrize("header", ["api-key", "x-api-key", "x-goog-api-key", "x-litellm-api-key"])
def test_a_blank_repeated_value_beside_a_key(header: str) -> None:
    """``K, `` (a key, then an empty repeat): the whole value is tried, then its first value K.
    `` ,K`` (an empty first value): only the whole value — the second value is never taken."""
    label = f"header:{header}"
    assert extract_credential("/", {header: f"{KEY}, "}) == Credential(f"{KEY},", label, KEY)
    assert extract_credential("/", {header: f" ,{KEY}"}) == Credential(f",{KEY}", label)


@pytest.mark.parametrize("header", HEADERS)
def test_surrounding_whitespace_is_trimmed_inside_a_present_header(header: str) -> None:
    value = f"  Bearer {KEY}  " if header == "authorization" else f" \t {KEY}\t "
    assert extract_credential("/", {header: value}) == Credential(KEY, f"header:{header}")


def test_the_custom_key_header_overrides_and_decides_even_when_blank() -> None:
    """``litellm_key_header_name``: present (even empty) → it decides, before every other."""
    custom = custom_header_location("X-My-Key")
    locs = (*DEFAULT_LOCATIONS, custom)
    good = {"x-api-key": KEY}
    assert extract_credential("/", {**good, "x-my-key": f"Bearer {KEY}"}, locs) == Credential(
        KEY, "header:x-my-key"
    )
    assert extract_credential("/", {**good, "x-my-key": ""}, locs) == CredentialError(
        "header:x-my-key", SCHEME
    )
    assert extract_credential("/", {**good, "x-my-key": KEY}, locs) == CredentialError(
        "header:x-my-key", SCHEME
    )
    assert extract_credential("/", good, locs) == Credential(KEY, "header:x-api-key")


# -- parse_location: the config-file form -------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "name", "bearer"),
    [
        ("header:X-Custom", "header", "x-custom", Bearer.NEVER),
        ("header:Authorization", "header", "authorization", Bearer.REQUIRED),
        ("header:authorization", "header", "authorization", Bearer.REQUIRED),
        ("header:X-LiteLLM-API-Key", "header", "x-litellm-api-key", Bearer.OPTIONAL),
        ("header:api-key", "header", "api-key", Bearer.NEVER),
        ("header:Ocp-Apim-Subscription-Key", "header", "ocp-apim-subscription-key", Bearer.NEVER),
        ("header:Sec-WebSocket-Protocol", "header", "sec-websocket-protocol", Bearer.PROTOCOL),
        ("query:key", "query", "key", Bearer.NEVER),
        ("query:Key", "query", "Key", Bearer.NEVER),  # query names are case-sensitive
        ("query:authorization", "query", "authorization", Bearer.NEVER),
        ("query:a:b", "query", "a:b", Bearer.NEVER),  # split at the first colon
    ],
)
def test_parse_location(spec: str, kind: str, name: str, bearer: Bearer) -> None:
    loc = parse_location(spec)
    assert (loc.kind, loc.name, loc.bearer) == (kind, name, bearer)
    assert not loc.generate_content_only and not loc.overrides  # explicit: every route
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
    ("value", "expected"),
    [
        ("sk-\u00e9-0123456789abcdef", ODD),
        ("sk-\x80-0123456789abcdef", ODD),  # first non-ASCII code point
        ("sk-\x7f-0123456789abcd", ODD),  # DEL
        ("sk-\x1f-0123456789abcd", ODD),  # last control character
        ("sk-\x01-0123456789abcd", ODD),
        ("sk-a\tb-0123456789ab", ODD),  # a tab inside is a control character
        ("sk-\x7e-0123456789abcd", "sk-\x7e-0123456789abcd"),  # '~' is printable ASCII
        ("sk-a b-0123456789abc", "sk-a b-0123456789abc"),  # LiteLLM: a space inside is kept
    ],
)
def test_unusable_tokens_name_the_rule(value: str, expected: str) -> None:
    got = extract_credential("/", {"x-api-key": value})
    if expected.startswith("sk-"):
        assert got == Credential(expected, "header:x-api-key")
    else:
        assert got == CredentialError("header:x-api-key", expected)


@pytest.mark.parametrize("code", range(0x81))
def test_every_ascii_character_inside_a_token(code: int) -> None:
    """Refused exactly when it is a C0 control (0x00-0x1F), DEL (0x7F) or not ASCII (0x80):
    the table of ASCII, not the code's own rule."""
    value = f"sk-a{chr(code)}b-0123456789abcd"
    got = extract_credential("/", {"x-api-key": value})
    if code <= 0x1F or code >= 0x7F:
        assert got == CredentialError("header:x-api-key", ODD)
    elif code == ord(","):  # a comma splits the values: the whole and the first are offered
        assert got == Credential(value, "header:x-api-key", "sk-a")
    else:
        assert got == Credential(value, "header:x-api-key")


def test_two_values_joined_with_a_comma_offer_the_first() -> None:
    got = extract_credential("/", {"x-api-key": "sk-one,sk-two"})
    assert got == Credential("sk-one,sk-two", "header:x-api-key", "sk-one")


def test_the_length_limit_is_inclusive() -> None:
    at_limit, over = "k" * 16, "k" * 17
    assert extract_credential("/", {"api-key": at_limit}, max_length=16) == Credential(
        at_limit, "header:api-key"
    )
    assert extract_credential("/", {"api-key": over}, max_length=16) == CredentialError(
        "header:api-key", "the credential is longer than 16 characters"
    )
    default_limit = "k" * 65536
    assert extract_credential("/", {"api-key": default_limit}) == Credential(
        default_limit, "header:api-key"
    )
    assert extract_credential("/", {"api-key": default_limit + "k"}) == CredentialError(
        "header:api-key", "the credential is longer than 65536 characters"
    )
    # the limit holds in the query too
    assert extract_credential(f"{GC}?key={over}", {}, max_length=16) == CredentialError(
        "query:key", "the credential is longer than 16 characters"
    )


@pytest.mark.parametrize(
    ("header", "value", "found"),
    [
        ("authorization", f"Bearer {KEY}", KEY),
        ("authorization", f"bearer {KEY}", KEY),
        ("authorization", f"Basic {KEY}", KEY),  # the value after "Basic " (not decoded)
        ("authorization", f"Bearer Bearer {KEY}", KEY),  # str.replace: every "Bearer " goes
        ("authorization", f"AWS4-HMAC-SHA256 Credential=Bearer {KEY}/20260101/us/bedrock", KEY),
        ("authorization", f"AWS4-HMAC-SHA256 Credential={KEY}/20260101/us, Signature=ab", KEY),
        ("authorization", f"bEaReR {KEY}", SCHEME),
        ("authorization", f"BEARER {KEY}", SCHEME),
        ("authorization", f"Bearer    {KEY}   ", EDGES),  # the token is never trimmed
        ("authorization", KEY, SCHEME),
        ("authorization", f"Bearer{KEY}", SCHEME),
        ("authorization", f"Token {KEY}", SCHEME),
        ("authorization", "BEARER", SCHEME),
        ("x-litellm-api-key", KEY, KEY),
        ("x-litellm-api-key", f"Bearer {KEY}", KEY),
        ("x-litellm-api-key", f"Basic {KEY}", KEY),
        ("x-litellm-api-key", f"BEARER {KEY}", f"BEARER {KEY}"),  # no prefix: the value
        ("x-litellm-api-key", "bearer", "bearer"),
        ("x-litellm-api-key", f"Bearer{KEY}", f"Bearer{KEY}"),  # not the scheme: the value
        ("x-api-key", f"Bearer {KEY}", f"Bearer {KEY}"),  # no scheme here: the raw value
        ("x-api-key", "bearer", "bearer"),
        ("ocp-apim-subscription-key", f"Basic {KEY}", f"Basic {KEY}"),
    ],
)
def test_the_bearer_rule_of_each_location(header: str, value: str, found: str) -> None:
    got = extract_credential("/", {header: value})
    label = f"header:{header}"
    if found in (SCHEME, EDGES):
        assert got == CredentialError(label, found)
    else:
        assert got == Credential(found, label)


def test_repeated_values_offer_the_first_after_the_whole() -> None:
    for header, value, whole in [
        ("x-api-key", f"{KEY},{KEY}", f"{KEY},{KEY}"),
        ("x-api-key", f"{KEY}, {KEY} ,{KEY}", f"{KEY}, {KEY} ,{KEY}"),
        ("authorization", f"Bearer {KEY},bearer {KEY}", f"{KEY},bearer {KEY}"),
        ("authorization", f"Bearer {KEY},Basic x", f"{KEY},Basic x"),
        ("x-litellm-api-key", f"Bearer {KEY},{KEY}", f"{KEY},{KEY}"),
    ]:
        got = extract_credential("/", {header: value})
        assert got == Credential(whole, f"header:{header}", KEY), (header, value)
    # the whole value unusable: the first value alone decides
    assert extract_credential("/", {"authorization": f"Bearer {KEY},\x01"}) == Credential(
        KEY, "header:authorization"
    )
    assert extract_credential("/", {"authorization": f"Token x,Bearer {KEY}"}) == CredentialError(
        "header:authorization", SCHEME
    )  # the second value is never taken
    # the default ?key=: only on generateContent routes, the last value counts
    assert extract_credential(f"/?key={KEY}&key={KEY}", {}) is None
    assert extract_credential(f"{GC}?key=other&key={KEY}", {}) == Credential(KEY, "query:key")
    assert extract_credential(f"{GC}?key={KEY}&key=other", {}) == Credential("other", "query:key")
    # an explicit query:key: equal repeats are one key, different ones a conflict
    strict = (parse_location("query:key"),)
    assert extract_credential(f"/?key={KEY}&key={KEY}", {}, strict) == Credential(KEY, "query:key")
    assert extract_credential(f"/?key={KEY}&key=other", {}, strict) == CredentialError(
        "query:key", "sent more than once with different values"
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


# -- websocket upgrades (LiteLLM's realtime rule) -------------------------------------------


def test_the_websocket_authorization_needs_exactly_bearer() -> None:
    ws = DEFAULT_WS_LOCATIONS
    label = "header:authorization"
    assert extract_credential("/", {"authorization": f"Bearer {KEY}"}, ws) == Credential(KEY, label)
    # the rest is trimmed here (space/tab), then every "Bearer " removed
    assert extract_credential("/", {"authorization": f"Bearer   {KEY}"}, ws) == Credential(
        KEY, label
    )
    assert extract_credential("/", {"authorization": f"Bearer Bearer {KEY}"}, ws) == Credential(
        KEY, label
    )
    strict = CredentialError(label, "the value needs a scheme prefix (exactly 'Bearer ')")
    for value in (f"bearer {KEY}", f"Basic {KEY}", f"BEARER {KEY}", KEY):
        assert extract_credential("/", {"authorization": value}, ws) == strict, value


def test_the_websocket_subprotocol_entry() -> None:
    ws = DEFAULT_WS_LOCATIONS
    label = "header:sec-websocket-protocol"
    for value in (
        f"realtime, openai-insecure-api-key.{KEY}",
        f"openai-insecure-api-key.{KEY},realtime",
        f" openai-insecure-api-key.{KEY}\t, realtime",
    ):
        got = extract_credential("/", {"sec-websocket-protocol": value}, ws)
        assert got == Credential(KEY, label), value
    # the prefix only inside another entry: present, but no entry carries a key
    got = extract_credential(
        "/", {"sec-websocket-protocol": f"x-openai-insecure-api-key.{KEY}"}, ws
    )
    assert got == CredentialError(label, "the credential is empty")
    # other subprotocols only: no key here, the next location decides
    order = (DEFAULT_WS_LOCATIONS[2], DEFAULT_WS_LOCATIONS[1])
    headers = {"sec-websocket-protocol": "realtime", "api-key": KEY}
    assert extract_credential("/", headers, order) == Credential(KEY, "header:api-key")
    assert extract_credential("/", {"sec-websocket-protocol": "realtime"}, ws) is None


def test_is_websocket() -> None:
    assert is_websocket({"upgrade": "websocket"})
    assert is_websocket({"upgrade": " WebSocket\t"})
    assert not is_websocket({"upgrade": "h2c"})
    assert not is_websocket({"connection": "upgrade"})


def test_an_overriding_location_anywhere_in_the_order_only_decides_when_present() -> None:
    custom = custom_header_location("x-my-key")
    locs = (custom, *DEFAULT_LOCATIONS)
    assert extract_credential("/", {"x-api-key": KEY}, locs) == Credential(KEY, "header:x-api-key")
