"""SIGTERM: in-flight checks finish, the process exits 0, the socket file is gone."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from google.rpc import code_pb2

from authsvc.authz import Policy
from authsvc.keys import KeyStore
from authsvc.server import AuthzServer, serve_until_signal
from tests.server.conftest import check, master_ring, request

ROOT = Path(__file__).resolve().parents[2]

SERVER_SCRIPT = """
import asyncio, sys
from authsvc.authz import Policy
from authsvc.keys import KeyStore
from authsvc.server import AuthzServer, serve_until_signal
from tests.server.conftest import master_ring

async def slow(view, decision, seconds):  # test-only observer: makes /slow take 1.5 s
    if view.target == "/slow":
        print("in-flight", flush=True)
        await asyncio.sleep(1.5)

async def main():
    server = AuthzServer(KeyStore(master_ring()), Policy.build(), [sys.argv[1]], on_decision=slow)
    await server.start()
    print("ready", flush=True)
    sig = await serve_until_signal(server, grace=10)
    print("stopped", sig.name if sig else None, flush=True)

asyncio.run(main())
"""


class Lines:
    """stdout of a child process, line by line, with timeouts."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(
            target=lambda: [self._queue.put(line.strip()) for line in stdout], daemon=True
        ).start()

    def expect(self, want: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line == want:
                return
            seen.append(line)
        raise AssertionError(f"never printed {want!r}; got {seen}")


def test_sigterm_lets_in_flight_check_finish_and_removes_socket(short_tmp: Path) -> None:
    sock = short_tmp / "authz.sock"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, f"unix:{sock}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = Lines(proc)
        lines.expect("ready")
        result: dict[str, object] = {}

        def slow_check() -> None:
            try:
                result["response"] = check(f"unix:{sock}", request(path="/slow"))
            except Exception as exc:
                result["error"] = exc

        client = threading.Thread(target=slow_check)
        client.start()
        lines.expect("in-flight")
        proc.send_signal(signal.SIGTERM)
        client.join(20)
        assert "error" not in result, result.get("error")
        response = result["response"]
        assert response.denied_response.status.code == 401  # type: ignore[attr-defined]
        assert response.status.code == code_pb2.UNAUTHENTICATED  # type: ignore[attr-defined]
        lines.expect("stopped SIGTERM")
        assert proc.wait(20) == 0, proc.stderr.read() if proc.stderr else ""
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_failing_background_task_stops_the_server_and_raises(short_tmp: Path) -> None:
    sock = short_tmp / "authz.sock"

    async def broken_watcher() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("watcher died")

    async def scenario() -> None:
        server = AuthzServer(KeyStore(master_ring()), Policy.build(), [f"unix:{sock}"])
        await server.start()
        assert sock.is_socket()
        await serve_until_signal(server, grace=1, extra_tasks=[broken_watcher()])

    with pytest.raises(RuntimeError, match="watcher died"):
        asyncio.run(scenario())
    assert not sock.exists()


def test_sigint_returns_the_signal(short_tmp: Path) -> None:
    async def scenario() -> signal.Signals | None:
        server = AuthzServer(KeyStore(master_ring()), Policy.build(), ["127.0.0.1:0"])
        asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGINT)
        return await serve_until_signal(server, grace=1)  # starts the server itself

    assert asyncio.run(scenario()) == signal.SIGINT
