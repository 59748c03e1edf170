"""``--inbound-redirect``: the injected init container's own script, run for real.

A "pod" network namespace joined to this one by a veth pair (the "node" side), the script
from the injected ``authsvc-redirect`` container run inside it with iptables (nft backend), an
app listening on 0.0.0.0:<app port> and a listener on Envoy's port 10000 standing in for
Envoy. From the node, the app port answers with Envoy's listener; inside the pod, loopback
(Envoy's own path to the app) still reaches the app; running the script twice changes nothing.

Needs root, ``ip netns`` and ``iptables`` (Debian package ``iptables``); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from authsvc.kube import InjectOptions, inject_template

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables"),
        reason="needs root, iproute2 and iptables (apt-get install iptables)",
    ),
]

APP_PORT = 4000
NODE, POD = "10.250.77.1", "10.250.77.2"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"authsvc-pod-{os.getpid() % 100000}"
    host_if, pod_if = f"av{os.getpid() % 100000}h", f"av{os.getpid() % 100000}p"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", pod_if)
        _run("ip", "link", "set", pod_if, "netns", name)
        _run("ip", "addr", "add", f"{NODE}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        for cmd in (
            ["ip", "addr", "add", f"{POD}/30", "dev", pod_if],
            ["ip", "link", "set", pod_if, "up"],
            ["ip", "link", "set", "lo", "up"],
        ):
            _run("ip", "netns", "exec", name, *cmd)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@contextlib.contextmanager
def _listener(netns: str, port: int, who: str, tmp: Path) -> Iterator[None]:
    root = tmp / who
    root.mkdir()
    (root / "who").write_text(who)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "http.server",
         "--bind", "0.0.0.0", "--directory", str(root), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _who(url: str, netns: str | None = None) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            if netns is None:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return str(response.read().decode())
            done = subprocess.run(
                ["ip", "netns", "exec", netns, sys.executable, "-c",
                 f"import urllib.request;print(urllib.request.urlopen({url!r},timeout=2).read().decode(),end='')"],
                capture_output=True, text=True, timeout=20,
            )  # fmt: skip
            if done.returncode == 0:
                return done.stdout
            raise OSError(done.stderr)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _script() -> str:
    template = {"spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]}}
    out = inject_template(template, options=InjectOptions(inbound_redirect=True, app_port=APP_PORT))
    first = out["spec"]["initContainers"][0]
    assert first["name"] == "authsvc-redirect" and first["command"][:2] == ["/bin/sh", "-c"]
    return str(first["command"][2])


def test_the_app_port_reaches_envoy_from_outside_and_the_app_over_loopback(
    netns: str, tmp_path: Path
) -> None:
    with _listener(netns, APP_PORT, "app", tmp_path), _listener(netns, 10000, "envoy", tmp_path):
        assert _who(f"http://{POD}:{APP_PORT}/who") == "app"  # before: the door around Envoy
        for _ in range(2):  # an init container may run again: the same rules, not twice
            _run("ip", "netns", "exec", netns, "/bin/sh", "-c", _script())
        assert _who(f"http://{POD}:{APP_PORT}/who") == "envoy"
        assert _who(f"http://127.0.0.1:{APP_PORT}/who", netns) == "app"  # Envoy's upstream
    rules = _run("ip", "netns", "exec", netns, "iptables", "-t", "nat", "-S").stdout
    assert rules.count("-A PREROUTING -p tcp -j AUTHSVC_INBOUND") == 1, rules
    assert rules.count(f"--dport {APP_PORT} -j REDIRECT --to-ports 10000") == 1, rules
