"""Deep health and the probe pass-through, with real processes: the demo upstream, ``authsvc
serve`` and a real Envoy (issue 5, acceptance 1 and 2).

Deep health runs every second (the smallest interval the config allows) against Envoy's port,
so the stack is built in an order that knows Envoy's port before authsvc starts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from authsvc.envoy import EnvoyOptions, build_bootstrap, envoy_binary, render_yaml
from authsvc.keys import fingerprint
from authsvc.stack._children import http_status, tcp_open
from tests.e2e._harness import (
    HOST,
    AuthzServer,
    DemoServer,
    EnvoyProxy,
    Launcher,
    clean_env,
    free_port,
    http_request,
    new_key,
)
from tests.unit.test_health_http import closed_port, fixed, local_app

INTERVAL = 1.0  # health_check.interval in the config below (the config's minimum)
SLACK = 1.0  # deep request + /readyz polling + process scheduling on a 2-core machine


@dataclass
class DeepStack:
    demo: DemoServer
    authz: AuthzServer
    envoy: EnvoyProxy
    key_file: Path  # authsvc's master key file (source "file:<path>")
    config: Path

    def readyz(self) -> tuple[int, str]:
        r = http_request(self.authz.status_port, "GET", "/readyz", {"accept": "application/json"})
        return r.status, str(r.json().get("reason", "")) if r.body else ""


def envoy_on(procs: Launcher, port: int, authz: str, upstream_port: int) -> EnvoyProxy:
    """``Launcher.envoy`` on a port chosen beforehand (deep health must know it first)."""
    admin_port = free_port()
    opts = EnvoyOptions(
        listen=f"{HOST}:{port}",
        upstream=f"{HOST}:{upstream_port}",
        authz=(authz,),
        admin=f"{HOST}:{admin_port}",
    )
    bootstrap = procs.workdir / f"envoy-deep-{port}.yaml"
    bootstrap.write_text(render_yaml(build_bootstrap(opts)), encoding="utf-8")
    argv = [envoy_binary(), "-c", str(bootstrap), "--concurrency", "1"]
    argv += ["--log-level", "warn", "--disable-hot-restart"]
    proc = procs._start("envoy", argv, clean_env())
    proc.wait_ready(
        lambda: http_status(HOST, admin_port, "/ready") == 200 and tcp_open(f"{HOST}:{port}")
    )
    return EnvoyProxy(proc, port, admin_port, bootstrap, opts)


def deep_stack(procs: Launcher, sidecar_key: str, app_key: str) -> DeepStack:
    demo = procs.demo(app_key)
    envoy_port = free_port()
    config = procs.workdir / "authsvc.yaml"
    config.write_text(
        f"health_check:\n  interval: {INTERVAL:g}\nreload:\n  poll_interval: 0.5\n",
        encoding="utf-8",
    )
    key_file = procs.key_file(sidecar_key, "authsvc-deep.key")
    authz = procs.authsvc(
        "tcp",
        key_file=key_file,
        args=["--config", str(config)],
        deep_health=f"http://{HOST}:{envoy_port}",
    )
    envoy = envoy_on(procs, envoy_port, authz.address, demo.port)
    return DeepStack(demo, authz, envoy, key_file, config)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(0.05)
    return time.monotonic() - started


def rewrite(path: Path, key: str) -> None:
    """Replace a key file atomically (rename over it), as an operator or kubelet would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key + "\n", encoding="utf-8")
    tmp.replace(path)


def test_deep_health_flips_readyz_on_key_disagreement_and_back(procs: Launcher) -> None:
    key = new_key()
    stack = deep_stack(procs, key, key)
    wait_for(lambda: stack.readyz()[0] == 200, 10, "ready with a shared key")

    other = new_key()
    rewrite(stack.demo.key_file, other)  # the app now resolves a different key (demo re-reads it)
    took = wait_for(
        lambda: stack.readyz()[0] == 503, INTERVAL + SLACK, "503 after the app's key changed"
    )
    status, reason = stack.readyz()
    source = f"file:{stack.key_file}"
    assert status == 503
    assert f"app rejected the master key resolved from {source}: " in reason
    assert fingerprint(key) not in reason  # no key-derived bits on the unauthenticated port

    time.sleep(2 * INTERVAL)  # more failing checks: still one log line
    rewrite(stack.key_file, other)  # fix it on authsvc's side: a file rewrite, no restart
    wait_for(lambda: stack.readyz()[0] == 200, 2 + INTERVAL + SLACK, "ready again after the fix")

    log = stack.authz.proc.log_path.read_text(encoding="utf-8", errors="replace")
    rejected = [r for r in log_records(log) if "app rejected the master key" in r[2]]
    assert len(rejected) == 1, rejected
    assert rejected[0][0] == "ERROR"
    assert source in rejected[0][2] and fingerprint(key) in rejected[0][2]
    assert key not in log and other not in log
    print(f"readyz flipped to 503 {took:.2f}s after the app's key changed (interval {INTERVAL:g}s)")


def test_app_down_is_app_health_not_a_key_problem(procs: Launcher) -> None:
    key = new_key()
    stack = deep_stack(procs, key, key)
    wait_for(lambda: stack.readyz()[0] == 200, 10, "ready with a shared key")
    stack.demo.proc.stop()
    time.sleep(INTERVAL + SLACK)
    assert stack.readyz()[0] == 200  # the last key verdict stands
    log = stack.authz.proc.log_path.read_text(encoding="utf-8", errors="replace")
    assert "app unhealthy" in log and "app rejected" not in log


def _metric_samples(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = http_request(port, "GET", "/metrics").body.decode()
    return {
        f"{s.name}{json.dumps(s.labels, sort_keys=True)}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_probe_pass_through_never_touches_auth(procs: Launcher) -> None:
    key = new_key()
    demo = procs.demo(key)
    with local_app(fixed(500, b"model backend down")) as failing:
        dead = closed_port()
        probes = {
            "/app-health/app/livez": {"port": demo.port, "path": "/health/liveliness"},
            "/app-health/app/readyz": {"port": failing.port, "path": "/ready"},
            "/app-health/app/startupz": {"port": dead, "path": "/", "timeout_seconds": 0.5},
        }
        authz = procs.authsvc(
            "tcp",
            key_file=procs.key_file(key, "probe.key"),
            env={"AUTHSVC_APP_PROBES": json.dumps(probes)},
        )
        before = _metric_samples(authz.status_port)
        for _ in range(3):
            assert http_request(authz.status_port, "GET", "/app-health/app/livez").status == 200
            r = http_request(authz.status_port, "GET", "/app-health/app/readyz")
            assert (r.status, r.body) == (500, b"model backend down")
            r = http_request(authz.status_port, "GET", "/app-health/app/startupz")
            assert r.status == 503 and f"connection refused by 127.0.0.1:{dead}".encode() in r.body
        after = _metric_samples(authz.status_port)

    assert len(demo.requests()) >= 3 and all(r["public"] for r in demo.requests())
    auth = ("authsvc_checks", "authsvc_check_duration")
    checks = {k: v for k, v in after.items() if k.startswith(auth)}
    assert checks, f"authsvc's /metrics shows no check counters: {sorted(after)}"
    assert checks == {k: v for k, v in before.items() if k.startswith(auth)}, "a probe ran a check"
    log = authz.proc.log_path.read_text(encoding="utf-8", errors="replace")
    records = log_records(log)
    assert records, log[-2000:]
    assert not [r for r in records if r[0] in ("ERROR", "CRITICAL")], log[-2000:]
    probe_warnings = [r for r in records if r[1].startswith("authsvc.health") and r[0] == "WARNING"]
    assert not probe_warnings
    assert key not in log


def log_records(text: str) -> list[tuple[str, str, str]]:
    """``(LEVEL, logger, message)`` of every log line authsvc wrote (JSON or text format)."""
    out: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            out.append(
                (
                    str(data.get("level", "")).upper(),
                    str(data.get("logger", "")),
                    str(data.get("message", "")),
                )
            )
            continue
        parts = line.split(None, 3)  # TIME LEVEL LOGGER message
        if len(parts) == 4 and parts[1] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            out.append((parts[1], parts[2], parts[3]))
    return out
