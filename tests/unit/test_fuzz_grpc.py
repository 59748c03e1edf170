"""Fuzzing the real gRPC server (issue 7, acceptance 1, second half).

A real ``authsvc.server.AuthzServer`` (grpc.aio on its own loop thread, Unix socket) with the
production ``Observer`` attached gets arbitrary CheckRequests — structured ones with hostile
methods, paths and headers (map and raw ``header_map`` forms), and malformed bytes (random,
and valid requests truncated or bit-flipped) sent through a raw-bytes channel:

- every RPC succeeds (a deny is never an aborted RPC) and its answer parses as a
  ``CheckResponse`` with a status and exactly the matching ``http_response``;
- a deny carries an explicit HTTP status from the STATUS table and a JSON body with a reason;
- nothing is allowed unless the independent oracle (``tests/_oracle.py``) allows it;
- afterwards ``/metrics`` (the observer's render) parses and counted every check, with no
  observer error.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2 as ext
from authsvc.authz import DEFAULT_LOCATIONS, STATUS, Policy, Reason, RequestView
from authsvc.keys import KeyRecord, KeyRing, PathRule, digest, fingerprint
from authsvc.observability import Observer
from tests._authz_server import Server
from tests._keys import ALT, MASTER, SCOPED, WRONG
from tests._oracle import FuzzKey, oracle

DENY_STATUSES = {s for s in STATUS.values() if s != 200}
KEYS = [
    FuzzKey(MASTER, "master", None, None),
    FuzzKey(SCOPED, "scoped", ("/v1/models",), None),
    FuzzKey(ALT, "expired", None, 1000.0),
]
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
sent = {"checks": 0}


def _ring() -> KeyRing:
    def rec(k: FuzzKey) -> KeyRecord:
        paths = PathRule.from_patterns(k.patterns) if k.patterns else None
        return KeyRecord(k.name, "test", fingerprint(k.key), digest(k.key), paths, k.expires_at)

    return KeyRing([rec(k) for k in KEYS[1:]], master=rec(KEYS[0]))


@pytest.fixture(scope="module")
def observer() -> Observer:
    return Observer()


@pytest.fixture(scope="module")
def server(observer: Observer) -> Iterator[Server]:
    srv = Server(observer, _ring())
    try:
        yield srv
    finally:
        srv.close()


# -- strategies ------------------------------------------------------------------------------

junk = st.text(st.characters(codec="utf-8"), max_size=30)
lower_names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
key_values = st.sampled_from(
    [MASTER, SCOPED, ALT, WRONG, f"Bearer {MASTER}", f"bearer  {SCOPED}", f"{MASTER},{MASTER}",
     f"{MASTER},{WRONG}", f"Basic {MASTER}", f"{MASTER}\x00", "", "  ", "x" * 5000]
)  # fmt: skip
PATHS = [
    "/v1/models",
    "/v1/chat/completions",
    "/health",
    "/health/liveliness",
    "/health/readiness",
    "//health/liveliness",
    "/health%2Fliveliness",
    "/health/liveliness/../../v1/models",
    "/v1/models/../../admin",
    "/v1/models%2F..%2Fadmin",
    "*",
    "",
]


@st.composite
def structured(draw: st.DrawFn) -> Any:
    req = ext.CheckRequest()
    http = req.attributes.request.http
    http.method = draw(st.one_of(st.sampled_from(["GET", "HEAD", "POST", "get"]), junk))
    path = draw(st.one_of(st.sampled_from(PATHS), junk))
    if draw(st.booleans()):
        path += "?" + draw(
            st.sampled_from([f"key={MASTER}", f"key={WRONG}", "key", "a=1&key=", "x=%zz"])
        )
    http.path = path
    http.id = draw(junk)
    headers = draw(st.dictionaries(lower_names, junk, max_size=3))
    for loc in DEFAULT_LOCATIONS:
        if loc.kind == "header" and draw(st.integers(0, 3)) == 0:
            headers[loc.name] = draw(key_values)
    if draw(st.integers(0, 3)) == 0:  # encode_raw_headers form: raw bytes, names as sent
        for name, value in headers.items():
            entry = http.header_map.headers.add()
            entry.key = draw(st.sampled_from([name, name.upper()]))
            entry.raw_value = value.encode("utf-8")
    else:
        for name, value in headers.items():
            http.headers[name] = value
    sock = req.attributes.source.address.socket_address
    sock.address = draw(st.sampled_from(["10.0.0.1", "::1", ""]))
    sock.port_value = draw(st.integers(0, 65535))
    return req


def _view(req: Any) -> RequestView:
    """The request as the documented Envoy semantics define it (names lower-cased, repeated
    raw headers joined with ',', raw bytes read as latin-1)."""
    http = req.attributes.request.http
    if http.header_map.headers:
        headers: dict[str, str] = {}
        for entry in http.header_map.headers:
            value = entry.raw_value.decode("latin-1") if entry.raw_value else entry.value
            name = entry.key.lower()
            headers[name] = value if name not in headers else f"{headers[name]},{value}"
    else:
        headers = dict(http.headers)
    return RequestView(http.method, http.path, headers)


@st.composite
def malformed(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.binary(max_size=300))
    data = bytearray(draw(structured()).SerializeToString())
    if not data:
        return b"\xff"
    rng = random.Random(draw(st.integers(0, 2**32)))
    if choice == 1:
        return bytes(data[: rng.randrange(len(data))])  # truncated
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)  # bit flips
    return bytes(data)


# -- properties ------------------------------------------------------------------------------


def _call(server: Server, payload: bytes) -> Any:
    sent["checks"] += 1
    try:
        raw = server.check(payload, timeout=10)
    except grpc.RpcError as exc:  # pragma: no cover - the property's failure message
        pytest.fail(f"Check aborted with {exc.code()}: a deny must be a successful RPC")
    resp = ext.CheckResponse.FromString(raw)
    assert resp.HasField("status")
    kind = resp.WhichOneof("http_response")
    if resp.status.code == 0:
        assert kind == "ok_response"
    else:
        assert kind == "denied_response"
        denied = resp.denied_response
        assert denied.status.code in DENY_STATUSES, "deny without an explicit HTTP status"
        error = json.loads(denied.body)["error"]
        assert error["reason"] in {r.value for r in Reason}
        assert STATUS[Reason(error["reason"])] == denied.status.code
        for k in KEYS:
            assert k.key not in denied.body
    return resp


@FUZZ
@given(req=structured())
def test_structured_requests_get_well_formed_answers_and_no_unearned_allow(
    server: Server, req: Any
) -> None:
    resp = _call(server, req.SerializeToString())
    if resp.status.code == 0:
        assert oracle(_view(req), Policy.build(), KEYS, True) is not None, (
            "allowed without a valid key"
        )


@FUZZ
@given(payload=malformed())
def test_malformed_bytes_get_well_formed_answers(server: Server, payload: bytes) -> None:
    resp = _call(server, payload)
    if resp.status.code == 0:  # only possible if the bytes happen to parse as an allowed request
        req = ext.CheckRequest.FromString(payload)
        assert oracle(_view(req), Policy.build(), KEYS, True) is not None


def test_metrics_counted_every_fuzzed_check(server: Server, observer: Observer) -> None:
    """Acceptance 4 (in-process half): the counters moved for every check, nothing failed."""
    _call(server, b"\xff\xff")  # at least one, also when run alone
    body = observer.metrics()[0].decode()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    checks = sum(
        s.value for s in families["authsvc_checks"].samples if s.name == "authsvc_checks_total"
    )
    assert checks == sent["checks"]
    assert families["authsvc_observer_errors"].samples[0].value == 0
    malformed_count = next(
        s.value
        for s in families["authsvc_checks"].samples
        if s.name == "authsvc_checks_total" and s.labels["reason"] == "malformed_request"
    )
    assert malformed_count >= 1
    for k in KEYS:
        assert k.key not in body
