"""Acceptance 4: ``/metrics`` on the real status port, fed by the real gRPC server.

The production ``AuthzServer`` (with the ``Observer`` attached) answers real Check RPCs; the
production ``StatusServer`` serves ``observer.metrics``. A scrape over HTTP parses with
prometheus_client's own parser and the counters move by exactly the checks sent. Each scrape
is also written to the session log directory for the no-key-leak scan.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from authsvc import health
from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2 as ext
from authsvc.keys import KeyRecord, KeyRing, digest, fingerprint
from authsvc.observability import Observer
from tests._authz_server import Server
from tests._keys import MASTER, WRONG
from tests._leakscan import log_file
from tests._resolution_stub import resolution


@pytest.fixture
def stack() -> Iterator[tuple[Server, str, Observer]]:
    observer = Observer()
    ring = KeyRing(master=KeyRecord("master", "test", fingerprint(MASTER), digest(MASTER)))
    observer.on_startup(resolution(MASTER))
    authz = Server(observer, ring)
    status = health.StatusServer(
        "127.0.0.1:0", readiness=lambda: (True, ""), metrics=observer.metrics
    )
    status.start()
    try:
        yield authz, status.url, observer
    finally:
        status.stop()
        authz.close()


def scrape(url: str) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], str]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        body = resp.read()
        content_type = resp.headers["Content-Type"]
    log_file("metrics-scrape").write_bytes(body)
    out = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out, content_type


def check(authz: Server, path: str, headers: dict[str, str]) -> int:
    req = ext.CheckRequest()
    req.attributes.request.http.method = "GET"
    req.attributes.request.http.path = path
    req.attributes.request.http.headers.update(headers)
    resp = ext.CheckResponse.FromString(authz.check(req.SerializeToString(), timeout=5))
    return int(resp.status.code)


def total(s: dict, reason: str) -> float:  # type: ignore[type-arg]
    decision = "allow" if reason in ("key_valid", "public_path") else "deny"
    return s[("authsvc_checks_total", (("decision", decision), ("reason", reason)))]


def test_metrics_on_the_status_port_move_with_real_checks(
    stack: tuple[Server, str, Observer],
) -> None:
    authz, url, _ = stack
    before, content_type = scrape(url)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert before[("authsvc_master_key_resolved", ())] == 1
    assert before[("authsvc_keys_loaded", ())] == 1

    for _ in range(3):
        assert check(authz, "/v1/models", {"authorization": f"Bearer {MASTER}"}) == 0
    for _ in range(2):
        assert check(authz, f"/v1/models:generateContent?key={WRONG}", {}) != 0
    assert check(authz, "/v1/models", {}) != 0
    assert check(authz, "/health/liveliness", {}) == 0
    authz.check(b"\xff\xff\xff", timeout=5)  # malformed

    after, _ = scrape(url)
    moved = {
        r: total(after, r) - total(before, r)
        for r in (
            "key_valid",
            "unknown_key",
            "missing_credential",
            "public_path",
            "malformed_request",
        )
    }
    assert moved == {
        "key_valid": 3,
        "unknown_key": 2,
        "missing_credential": 1,
        "public_path": 1,
        "malformed_request": 1,
    }
    count = ("authsvc_check_duration_seconds_count", ())
    assert after[count] - before[count] == 8
    assert after[("authsvc_observer_errors_total", ())] == 0
