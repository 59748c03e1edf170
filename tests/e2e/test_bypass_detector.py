"""The bypass detector end to end, without a cluster: a real ``authsvc serve`` and a real HTTP
app (``python -m http.server``) on this machine.

The "pod IP" is a non-loopback address of this machine: the first global IPv4 address of
``ip -o -4 addr`` (a CI runner or container has one on eth0). Without one, and as root, the
test adds an interface — a dummy one, or one end of a veth pair where the kernel has no dummy
module (as in this project's containers) — with an address from 198.18.0.0/15 (the
benchmarking range), and removes it afterwards; otherwise it is skipped, saying why.

App on that address → a finding (error log once, ``authsvc_app_port_exposed 1``, the
``/readyz`` detail line, not ready under ``--bypass-readiness fail``, a failed check in
``authsvc verify``); the same app on 127.0.0.1 → none. Also: the authz socket is ``0660``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._keys import make_key
from tests._leakscan import log_file

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _global_ipv4() -> str | None:
    ip = shutil.which("ip")
    if ip is None:
        return None
    done = subprocess.run(
        [ip, "-o", "-4", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    for line in done.stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            return parts[parts.index("inet") + 1].split("/")[0]
    return None


@pytest.fixture(scope="module")
def pod_ip() -> Iterator[str]:
    """A non-loopback address of this machine; ``AUTHSVC_TEST_NEW_INTERFACE=1`` forces the
    fallback (a new interface) even where one exists."""
    found = None if os.environ.get("AUTHSVC_TEST_NEW_INTERFACE") else _global_ipv4()
    if found is not None:
        yield found
        return
    ip = shutil.which("ip")
    if ip is None or os.geteuid() != 0:
        pytest.skip("no non-loopback IPv4 address, and cannot add an interface (not root)")
    name, address = f"authsvc-t{os.getpid() % 10000}", "198.18.0.77"
    # A dummy interface where the kernel has the module, else one end of a veth pair (a
    # container without the dummy module usually still has veth).
    for kind in (["dummy"], ["veth", "peer", "name", f"{name}p"]):
        made = subprocess.run(
            [ip, "link", "add", name, "type", *kind], capture_output=True, text=True, timeout=10
        )
        if made.returncode == 0:
            break
    else:
        pytest.skip(f"no non-loopback IPv4 address, and cannot add an interface: {made.stderr}")
    try:
        subprocess.run([ip, "addr", "add", f"{address}/32", "dev", name], check=True, timeout=10)
        subprocess.run([ip, "link", "set", name, "up"], check=True, timeout=10)
        if kind[0] == "veth":
            subprocess.run([ip, "link", "set", f"{name}p", "up"], check=True, timeout=10)
        yield address
    finally:
        subprocess.run([ip, "link", "del", name], check=False, timeout=10)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _app(bind: str, port: int) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", bind, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=str(ROOT / "tests"),
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(
                    (bind if bind != "0.0.0.0" else "127.0.0.1", port), 0.2
                ).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"the demo app did not start on {bind}:{port}")
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _Serve:
    def __init__(self, tmp: Path, pod_ip: str, app_port: int, *extra: str) -> None:
        self.status = _free_port()
        self.socket = tmp / "authz.sock"
        self.log = log_file("authsvc-bypass")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSVC_", "LITELLM_"))}
        env |= {
            "AUTHSVC_MASTER_KEY": make_key("bypass"),
            "AUTHSVC_POD_IPS": pod_ip,
            "AUTHSVC_APP_PORT": str(app_port),
        }
        self.env = env
        with self.log.open("w") as sink:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "authsvc", "serve",
                    "--listen", f"unix:{self.socket}",
                    "--status-listen", f"127.0.0.1:{self.status}",
                    "--no-deep-health", "--bypass-interval", "0.2", "--log-format", "text",
                    *extra,
                ],
                env=env, stdout=sink, stderr=sink, cwd=ROOT,
            )  # fmt: skip

    def get(self, path: str, accept: str = "") -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.status}{path}")
        if accept:
            request.add_header("accept", accept)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_for(self, predicate: object, what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if predicate():  # type: ignore[operator]
                    return
            if self.proc.poll() is not None:
                pytest.fail(f"authsvc serve exited: {self.log.read_text()}")
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}: {self.log.read_text()}")

    def metric(self) -> float | None:
        _, body = self.get("/metrics")
        for line in body.splitlines():
            if line.startswith("authsvc_app_port_exposed "):
                return float(line.split()[1])
        return None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


def _verify_bypass_check(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "authsvc", "verify", "--json", "--timeout", "1",
         "--url", f"http://127.0.0.1:{_free_port()}"],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    checks = json.loads(done.stdout)
    (check,) = [c for c in checks if str(c["check"]).startswith("app port on pod IP")]
    assert done.returncode == 1  # nothing listens at --url either; only the bypass check matters
    return dict(check)


def test_app_on_the_pod_ip_is_a_finding_on_loopback_it_is_not(pod_ip: str, tmp_path: Path) -> None:
    port = _free_port()
    serve = _Serve(tmp_path, pod_ip, port, "--bypass-readiness", "fail")
    try:
        serve.wait_for(lambda: serve.metric() == 0, "the first round (nothing listens)")
        assert serve.get("/readyz")[0] == 200
        assert stat.S_IMODE(serve.socket.stat().st_mode) == 0o660  # owner and group only

        with _app(pod_ip, port):  # the app on the pod's own address: traffic can skip Envoy
            serve.wait_for(lambda: serve.metric() == 1, "the finding")
            status, body = serve.get("/readyz")
            assert status == 503  # --bypass-readiness fail
            assert f"the app answers on {pod_ip}:{port} around Envoy" in body
            status, body = serve.get("/readyz", accept="application/json")
            assert any(f"{pod_ip}:{port}" in line for line in json.loads(body)["notes"])
            time.sleep(1.0)  # several more rounds: still one error line
            check = _verify_bypass_check(serve.env)
            assert check["ok"] is False and check["got"] == "answered", check
            assert "127.0.0.1 only" in str(check["hint"])

        with _app("127.0.0.1", port):  # loopback only: Envoy is the only way in
            serve.wait_for(lambda: serve.metric() == 0, "the finding to clear")
            status, body = serve.get("/readyz")
            assert status == 200
            assert f"bypass: app port {port} closed on the pod IP" in body
            check = _verify_bypass_check(serve.env)
            assert check["ok"] is True and check["got"] == "closed", check
    finally:
        serve.stop()
    log = serve.log.read_text()
    assert log.count(f"bypass: the app answers on {pod_ip}:{port}") == 1, log
    assert "no longer answers on the pod IP" in log


def test_app_on_all_interfaces_is_a_finding_and_warn_keeps_ready(
    pod_ip: str, tmp_path: Path
) -> None:
    port = _free_port()
    serve = _Serve(tmp_path, pod_ip, port, "--socket-mode", "0600")
    try:
        with _app("0.0.0.0", port):
            serve.wait_for(lambda: serve.metric() == 1, "the finding")
            status, body = serve.get("/readyz")
            assert status == 200  # --bypass-readiness warn (the default): reported, still ready
            assert f"the app answers on {pod_ip}:{port}" in body
        assert stat.S_IMODE(serve.socket.stat().st_mode) == 0o600
    finally:
        serve.stop()


def test_a_loopback_pod_ip_or_a_bad_socket_mode_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSVC_", "LITELLM_"))}
    for extra, words in (
        (["--bypass-pod-ips", "127.0.0.1", "--bypass-app-port", "4000"], "loopback"),
        (["--socket-mode", "0999"], "--socket-mode: '0999' is not an octal mode"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "authsvc", "serve", "--listen", f"unix:{tmp_path}/a.sock",
             "--status-listen", "off", *extra],
            env=env, capture_output=True, text=True, timeout=30, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 2 and words in done.stderr, done.stderr


def test_with_workers_the_supervisor_detects_and_exports_it(pod_ip: str, tmp_path: Path) -> None:
    port = _free_port()
    serve = _Serve(tmp_path, pod_ip, port, "--workers", "2")
    try:
        with _app(pod_ip, port):
            serve.wait_for(lambda: serve.metric() == 1, "the supervisor's finding")
            assert f"the app answers on {pod_ip}:{port}" in serve.get("/readyz")[1]
    finally:
        serve.stop()
    assert serve.log.read_text().count(f"bypass: the app answers on {pod_ip}:{port}") == 1
