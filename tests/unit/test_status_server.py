"""The status port, over real sockets: routes, readiness, metrics, and the probe pass-through
against real local app servers (200, 500, closed port, timeout)."""

from __future__ import annotations

import ast
import http.client
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import authsvc.health
from authsvc import ConfigError
from authsvc.health import ProbeTarget, StatusServer, all_ready, parse_listen
from tests.unit.test_health_http import closed_port, fixed, local_app


@contextmanager
def running(
    readiness: authsvc.health.Readiness = lambda: (True, ""),
    probes: Mapping[str, ProbeTarget] | None = None,
    metrics: authsvc.health.Metrics | None = None,
) -> Iterator[StatusServer]:
    server = StatusServer("127.0.0.1:0", readiness=readiness, metrics=metrics, probes=probes)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def request(
    server: StatusServer, path: str, method: str = "GET", headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_livez_and_unknown_paths() -> None:
    with running() as server:
        assert request(server, "/livez")[0] == 200
        assert request(server, "/livez?verbose=1")[0] == 200
        status, headers, body = request(server, "/nope")
        assert status == 404 and b"/livez" in body
        assert headers["cache-control"] == "no-store"
        assert request(server, "/app-health/app/readyz")[0] == 404  # no probes configured


def test_only_get_and_head() -> None:
    with running() as server:
        status, headers, body = request(server, "/livez", "HEAD")
        assert status == 200 and body == b"" and headers["content-length"] == "3"
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            status, headers, _ = request(server, "/livez", method)
            assert status == 405 and headers["allow"] == "GET, HEAD", method


def test_readyz_follows_the_callable_with_reason_as_text_and_json() -> None:
    state = {"ready": False, "reason": "no master key: env:LITELLM_MASTER_KEY unset"}
    with running(readiness=lambda: (bool(state["ready"]), str(state["reason"]))) as server:
        status, _, body = request(server, "/readyz")
        assert status == 503 and body == b"not ready: no master key: env:LITELLM_MASTER_KEY unset\n"
        status, headers, body = request(server, "/readyz", headers={"accept": "application/json"})
        assert status == 503 and headers["content-type"] == "application/json"
        assert json.loads(body) == {"ready": False, "reason": state["reason"]}
        state["ready"] = True
        status, _, body = request(server, "/readyz")
        assert (status, body) == (200, b"ready\n")
        status, _, body = request(server, "/readyz", headers={"accept": "application/json"})
        assert (status, json.loads(body)) == (200, {"ready": True, "reason": ""})


def test_readiness_that_raises_fails_closed() -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    with running(readiness=broken) as server:
        status, _, body = request(server, "/readyz")
    assert status == 503 and b"readiness check failed (RuntimeError)" in body


def test_all_ready_joins_every_failing_reason() -> None:
    assert all_ready(lambda: (True, ""), lambda: (True, "x"))() == (True, "")
    assert all_ready(lambda: (False, "a"), lambda: (True, ""), lambda: (False, "b"))() == (
        False,
        "a; b",
    )
    assert all_ready(lambda: (False, ""))() == (False, "not ready")


def test_metrics_from_callable_and_a_broken_callable() -> None:
    with running(metrics=lambda: (b"x_total 1\n", "text/plain; version=0.0.4")) as server:
        status, headers, body = request(server, "/metrics")
    assert (status, body) == (200, b"x_total 1\n") and headers["content-type"].startswith(
        "text/plain"
    )

    def broken() -> tuple[bytes, str]:
        raise RuntimeError("boom")

    with running(metrics=broken) as server:
        assert request(server, "/metrics")[0] == 500


def test_default_metrics_parse_and_show_readiness_and_probe_counts() -> None:
    with local_app(fixed(200, b"ok")) as app:
        probes = {"/app-health/app/livez": ProbeTarget(app.port, "/health/liveliness")}
        with running(readiness=lambda: (False, "x"), probes=probes) as server:
            request(server, "/app-health/app/livez")
            request(server, "/app-health/app/livez")
            status, _, body = request(server, "/metrics")
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("authsvc_ready", ())] == 0.0
    assert (
        samples[
            ("authsvc_app_probes_total", (("outcome", "ok"), ("probe", "/app-health/app/livez")))
        ]
        == 2.0
    )


def test_listen_parsing() -> None:
    assert parse_listen("127.0.0.1:9192") == ("127.0.0.1", 9192)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    for bad in ("9192", ":9192", "::1:80", "h:port", "h:70000", "unix:/tmp/s"):
        with pytest.raises(ConfigError, match="status listen address"):
            parse_listen(bad)


def test_port_in_use_is_a_clear_config_error() -> None:
    with running() as first:
        host, port = first.address
        second = StatusServer(f"{host}:{port}", readiness=lambda: (True, ""))
        with pytest.raises(ConfigError, match=f"cannot listen on status address 127.0.0.1:{port}"):
            second.start()


def test_stop_releases_the_port_and_is_idempotent() -> None:
    server = StatusServer("127.0.0.1:0", readiness=lambda: (True, ""))
    server.start()
    port = server.address[1]
    server.stop()
    server.stop()
    again = StatusServer(f"127.0.0.1:{port}", readiness=lambda: (True, ""))
    again.start()
    again.stop()


# ----------------------------------------------------------------------- probe pass-through


def _probe_map(
    port: int, path: str = "/health/readiness", **extra: object
) -> dict[str, ProbeTarget]:
    return {"/app-health/app/readyz": ProbeTarget(port, path, **extra)}  # type: ignore[arg-type]


def test_pass_through_returns_the_apps_200_without_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with local_app(fixed(200, b'{"status":"healthy"}', content_type="application/json")) as app:
        probes = _probe_map(app.port, headers=(("X-Probe", "kubelet"),))
        with running(probes=probes) as server:
            for _ in range(3):
                status, headers, body = request(server, "/app-health/app/readyz")
                assert (status, body) == (200, b'{"status":"healthy"}')
                assert headers["content-type"] == "application/json"
                assert headers["x-authsvc-probe"] == "ok"
    assert [s.path for s in app.seen] == ["/health/readiness"] * 3
    assert app.seen[0].headers["x-probe"] == "kubelet"
    assert "authorization" not in app.seen[0].headers
    assert not [
        r for r in caplog.records if r.levelno >= logging.INFO and r.name.endswith("probes")
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_pass_through_returns_the_apps_500_and_logs_once_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with (
        local_app(fixed(500, b"model down")) as app,
        running(probes=_probe_map(app.port)) as server,
    ):
        for _ in range(4):
            status, headers, body = request(server, "/app-health/app/readyz")
            assert (status, body, headers["x-authsvc-probe"]) == (500, b"model down", "app_failed")
    infos = [r for r in caplog.records if r.levelno == logging.INFO and r.name.endswith("probes")]
    assert len(infos) == 1 and "now app_failed" in infos[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_pass_through_closed_port_is_503_with_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = closed_port()
    with running(probes=_probe_map(port)) as server:
        for _ in range(3):
            status, headers, body = request(server, "/app-health/app/readyz")
            assert status == 503 and headers["x-authsvc-probe"] == "unreachable"
            assert f"connection refused by 127.0.0.1:{port}".encode() in body
            assert b"/health/readiness" in body
    infos = [r for r in caplog.records if r.levelno == logging.INFO and r.name.endswith("probes")]
    assert len(infos) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_pass_through_timeout_and_recovery_transitions(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with local_app(fixed(200, b"ok")) as app:
        probes = _probe_map(app.port, timeout_seconds=0.2)
        with running(probes=probes) as server:
            app.delay = 0.5
            status, _, body = request(server, "/app-health/app/readyz")
            assert status == 503 and b"timed out after 0.2s" in body
            app.delay = 0
            assert request(server, "/app-health/app/readyz")[0] == 200
            counts = server.forwarder.counts()
    messages = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO and r.name.endswith("probes")
    ]
    assert len(messages) == 2 and "now unreachable" in messages[0] and "recovered" in messages[1]
    assert sum(counts.values()) == 2


# ------------------------------------------------------------------------ structural promise

_NO_AUTH = ("authsvc.authz", "authsvc.keys", "authsvc.server", "authsvc.config", "grpc")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", ["_status.py", "_probes.py", "_http.py"])
def test_status_port_has_no_reference_to_the_decision_code(module: str) -> None:
    path = Path(authsvc.health.__file__).parent / module
    bad = {name for name in _imports(path) if name.startswith(_NO_AUTH)}
    assert not bad, f"{module} imports {bad}: the status port must not be able to run an auth check"
