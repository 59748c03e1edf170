"""Issue 2 acceptance 3: path and header tricks, sent as raw bytes through the real Envoy.

None may reach the upstream without a valid key. The verdict comes from the demo upstream's
request log (what actually arrived), not only from the status code. A case marked ``PUBLIC``
may arrive, but only as a GET/HEAD of an exact public probe path (Envoy normalised it there,
e.g. ``/health//liveliness``) — i.e. exactly what is open without a key anyway.

``{KEY}`` in a request is replaced by the valid master key: those cases carry the right key
in a form that must still be refused (conflicting duplicates, wrong scheme, ...).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.e2e._harness import Launcher, Stack

NONE, PUBLIC = "none", "public"


def _get(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: app.example", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


CASES: list[tuple[str, bytes, str]] = [
    # --- encoded separators (Envoy: path_with_escaped_slashes_action REJECT_REQUEST) -----
    ("encoded slash into probe", _get("/health%2Fliveliness"), NONE),
    ("lower-case encoded slash", _get("/health%2fliveliness"), NONE),
    ("encoded backslash", _get("/health%5Cliveliness"), NONE),
    ("encoded traversal out of probe", _get("/health/liveliness/..%2F..%2Fv1/models"), NONE),
    ("encoded slash in protected path", _get("/v1%2Fmodels"), NONE),
    # --- dot segments, doubled slashes, backslashes ------------------------------------------
    ("dot segments out of probe", _get("/health/liveliness/../../v1/models"), NONE),
    ("encoded dot segments", _get("/health/liveliness/%2e%2e/%2e%2e/v1/models"), NONE),
    ("dots up to protected /health", _get("/health/liveliness/.."), NONE),
    ("leading ./ then ..", _get("/./health/../v1/models"), NONE),
    ("doubled leading slash", _get("//v1/models"), NONE),
    ("doubled slash inside probe", _get("/health//liveliness"), PUBLIC),
    ("backslash separators", _get("/health\\liveliness\\..\\..\\v1\\models"), NONE),
    ("trailing dot segment on probe", _get("/health/liveliness/."), NONE),
    # --- params, fragments, case, query, trailing characters ---------------------------------
    (";params after probe", _get("/health/liveliness;x=1"), NONE),
    (";params then traversal", _get("/health/liveliness;/../../v1/models"), NONE),
    (";key= param is not a query", _get("/v1/models;key=not-the-key-value"), NONE),
    ("#fragment with traversal", _get("/health/liveliness#/../../v1/models"), PUBLIC),
    ("mixed-case probe path", _get("/Health/Liveliness"), NONE),
    ("upper-case protected path", _get("/V1/MODELS"), NONE),
    ("trailing ? on /health", _get("/health?"), NONE),
    ("trailing / on probe", _get("/health/liveliness/"), NONE),
    ("probe prefix extended", _get("/health/livelinessX"), NONE),
    ("query with traversal on probe", _get("/health/readiness?/../../v1/models"), PUBLIC),
    ("NUL escape in path", _get("/health/liveliness%00/../../v1/models"), NONE),
    ("non-UTF-8 bytes in path", b"GET /v1/models\xff\xfe HTTP/1.1\r\nHost: a\r\n\r\n", NONE),
    # --- request line tricks -----------------------------------------------------------------
    ("absolute-form target", _get("http://app.example/v1/models"), NONE),
    ("absolute-form traversal", _get("http://app.example/health/liveliness/../../health"), NONE),
    ("lower-case method on probe", b"get /health/liveliness HTTP/1.1\r\nHost: a\r\n\r\n", NONE),
    ("HTTP/1.0 without Host", b"GET /v1/models HTTP/1.0\r\n\r\n", NONE),
    ("HEAD of protected path", b"HEAD /v1/models HTTP/1.1\r\nHost: a\r\n\r\n", NONE),
    # --- credentials in the wrong shape ------------------------------------------------------
    (
        "Basic auth carrying the key",
        _get("/v1/models", f"Authorization: Basic {_basic('u', '{KEY}')}"),
        NONE,
    ),
    ("Basic auth with key as user", _get("/v1/models", "Authorization: Basic {B64KEY}"), NONE),
    ("empty Bearer", _get("/v1/models", "Authorization: Bearer "), NONE),
    ("Bearer without space", _get("/v1/models", "Authorization: Bearer"), NONE),
    ("tab instead of space", _get("/v1/models", "Authorization: Bearer\t{KEY}"), NONE),
    ("key with a suffix", _get("/v1/models", "Authorization: Bearer {KEY}x"), NONE),
    ("key prefix only", _get("/v1/models", "x-api-key: sk-"), NONE),
    ("very long key (16 KiB)", _get("/v1/models", "x-api-key: sk-" + "A" * 16384), NONE),
    ("oversized headers (70 KiB)", _get("/v1/models", "x-pad: " + "b" * 70000), NONE),
    (
        "non-UTF-8 bytes in key",
        b"GET /v1/models HTTP/1.1\r\nHost: a\r\nx-api-key: sk-\xff\xfe\xfd\r\n\r\n",
        NONE,
    ),
    # --- duplicates and conflicts (the right key is present, but so is another) ---------------
    # (a repeated header's FIRST value decides, as in LiteLLM: test_litellm_parity_e2e.py)
    (
        "wrong key then right key",
        _get("/v1/models", "Authorization: Bearer sk-other", "Authorization: Bearer {KEY}"),
        NONE,
    ),
    ("comma-joined keys, wrong first", _get("/v1/models", "x-api-key: sk-other,{KEY}"), NONE),
    (
        "higher-priority header wrong",
        _get("/v1/models", "x-litellm-api-key: sk-wrong", "Authorization: Bearer {KEY}"),
        NONE,
    ),
    (
        "Authorization wrong, x-api-key right",
        _get("/v1/models", "Authorization: Bearer sk-wrong", "x-api-key: {KEY}"),
        NONE,
    ),
    ("repeated ?key= values", _get("/v1/models?key={KEY}&key=sk-other"), NONE),
    ("?key= off generateContent routes", _get("/v1/models?key={KEY}"), NONE),
    ("BEARER in capitals", _get("/v1/models", "Authorization: BEARER {KEY}"), NONE),
    ("double space after Bearer", _get("/v1/models", "Authorization: Bearer  {KEY}"), NONE),
    ("?KEY= is another parameter", _get("/v1/models?KEY={KEY}"), NONE),
    # --- header injection and spoofing -------------------------------------------------------
    (
        "bare LF header injection",
        _get("/v1/models", "x-api-key: sk-wrong\nx-authsvc-key-name: admin"),
        NONE,
    ),
    ("NUL byte in header", _get("/v1/models", "x-api-key: sk-\x00{KEY}"), NONE),
    ("underscore twin of x-api-key", _get("/v1/models", "x_api_key: {KEY}"), NONE),
    ("spoofed x-authsvc-key-name", _get("/v1/models", "x-authsvc-key-name: master"), NONE),
    (
        "spoofed X-Envoy-Original-Path",
        _get("/v1/models", "X-Envoy-Original-Path: /health/liveliness"),
        NONE,
    ),
    (
        "spoofed x-envoy-internal",
        _get("/v1/models", "x-envoy-internal: true", "x-forwarded-for: 127.0.0.1"),
        NONE,
    ),
    ("obs-fold continuation line", _get("/v1/models", "x-api-key: sk-wrong", " {KEY}"), NONE),
    (
        "CL+TE smuggling via probe",
        b"POST /health/liveliness HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: a\r\n\r\n",
        NONE,
    ),
]


def _fill(data: bytes, key: str) -> bytes:
    b64 = base64.b64encode(f"{key}:".encode()).decode()
    return data.replace(b"{KEY}", key.encode()).replace(b"{B64KEY}", b64.encode())


@pytest.fixture(scope="module", params=["tcp", "unix"])
def tricked(module_procs: Launcher, request: pytest.FixtureRequest) -> Iterator[Stack]:
    stack = module_procs.stack(request.param)
    yield stack
    # final sweep over everything the upstream ever received in this module
    assert stack.demo.unauthorized() == [], "a request reached the upstream without a key"


def test_enough_cases() -> None:
    assert len(CASES) >= 25
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "data", "expect"), CASES, ids=[c[0] for c in CASES])
def test_trick_never_reaches_upstream_without_key(
    tricked: Stack, name: str, data: bytes, expect: str
) -> None:
    assert tricked.key is not None
    before = len(tricked.demo.requests())
    response = tricked.raw(_fill(data, tricked.key))
    arrived = tricked.demo.requests()[before:]
    leaked = [e for e in arrived if not e["public"]]
    assert leaked == [], f"{name}: reached the upstream as {leaked}"
    assert all(not e["authorized"] for e in arrived)
    if expect == NONE:
        assert arrived == [], f"{name}: reached the upstream as {arrived}"
        assert response.status != 200, f"{name}: got 200 without reaching the upstream?"
    else:
        assert response.status in (200, 400, 401), name
