"""The processes of one setup: the real LiteLLM, ``authsvc serve``, a real Envoy from
``authsvc envoy-config``, and ``authsvc explain --json``; started with one environment and cwd,
each in its own process group with its output in a log file, always stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import grpc

HOST = "127.0.0.1"

# Keep LiteLLM off the network: the bundled model cost map, its offline switch, and a proxy
# that refuses at once for anything that still tries (loopback excluded).
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_OFFLINE_MODE": "true",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """A minimal clean environment (nothing inherited that could carry a key) plus ``extra``."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
    env["LANG"] = "C.UTF-8"
    env.update(OFFLINE_ENV)
    env.update(extra)
    return env


class Ports:
    """Free loopback ports, never the same one twice in a run (setups start in parallel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._given: set[int] = set()

    def take(self) -> int:
        with self._lock:
            while True:
                with socket.socket() as sock:
                    sock.bind((HOST, 0))
                    port = int(sock.getsockname()[1])
                if port not in self._given:
                    self._given.add(port)
                    return port


class Proc:
    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path
    ) -> None:
        self.name = name
        self.log = log
        self._out: BinaryIO = log.open("wb")
        self.popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _LIVE.add(self)

    def exited(self) -> int | None:
        return self.popen.poll()

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> str:
        """ "ready", "exited" (it stopped by itself) or "timeout"."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited() is not None:
                return "exited"
            try:
                if ready():
                    return "ready"
            except OSError:
                pass
            time.sleep(0.25)
        return "timeout"

    def terminate(self) -> None:
        """SIGTERM to its process group, without waiting (``stop()`` waits)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=8)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._out.close()
        _LIVE.discard(self)


_LIVE: set[Proc] = set()


def stop_everything() -> None:
    """Stop every process this run started (on an interrupt or an unexpected error)."""
    for proc in list(_LIVE):
        proc.stop()


# --- readiness probes ---------------------------------------------------------------------------


def http_ok(port: int, path: str) -> bool:
    with socket.create_connection((HOST, port), timeout=2) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        return sock.recv(64).startswith(b"HTTP/1.1 200")


def grpc_answers(port: int) -> bool:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{HOST}:{port}") as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError as exc:
            return exc.code() not in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            )
    return True


# --- the three processes of a setup -------------------------------------------------------------

AUTHSVC = (sys.executable, "-m", "authsvc")


@dataclass
class Started:
    litellm: Proc
    litellm_port: int
    authsvc: Proc
    authz_port: int
    envoy: Proc
    envoy_port: int


def start_litellm(venv: Path, workdir: Path, env: Mapping[str, str], port: int) -> Proc:
    argv = [str(venv / "bin" / "litellm"), "--config", "cfg.yaml", "--port", str(port)]
    argv += ["--host", HOST]
    return Proc("litellm", argv, env, workdir, workdir / "litellm.log")


def start_authsvc(workdir: Path, env: Mapping[str, str], port: int, status_port: int) -> Proc:
    argv = [*AUTHSVC, "serve", "--config", str(workdir / "authsvc.yaml")]
    argv += ["--listen", f"{HOST}:{port}", "--status-listen", f"{HOST}:{status_port}"]
    argv += ["--no-deep-health", "--grace", "1"]
    return Proc("authsvc", argv, env, workdir, workdir / "authsvc.log")


def start_envoy(
    workdir: Path, env: Mapping[str, str], ports: tuple[int, int, int, int]
) -> tuple[Proc | None, str]:
    """Envoy from ``authsvc envoy-config`` (listen, upstream, authz, admin ports); (None, why)
    when envoy-config itself fails."""
    listen, upstream, authz, admin = ports
    bootstrap = workdir / "envoy.yaml"
    argv = [*AUTHSVC, "envoy-config", "--config", str(workdir / "authsvc.yaml")]
    argv += ["--listen", f"{HOST}:{listen}", "--upstream", f"{HOST}:{upstream}"]
    argv += ["--authz", f"{HOST}:{authz}", "--admin", f"{HOST}:{admin}", "-o", str(bootstrap)]
    done = subprocess.run(argv, env=dict(env), cwd=workdir, capture_output=True, timeout=60)
    (workdir / "envoy-config.log").write_bytes(done.stdout + done.stderr)
    if done.returncode != 0:
        return None, f"envoy-config exit {done.returncode}"
    envoy = str(Path(sys.executable).parent / "envoy")
    argv = [envoy, "-c", str(bootstrap), "--concurrency", "1", "--log-level", "warn"]
    argv += ["--disable-hot-restart"]
    return Proc("envoy", argv, env, workdir, workdir / "envoy.log"), ""


def explain(workdir: Path, env: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    """``authsvc explain --json`` with the setup's env and cwd: (exit status, its JSON or {})."""
    argv = [*AUTHSVC, "explain", "--config", str(workdir / "authsvc.yaml"), "--json"]
    done = subprocess.run(argv, env=dict(env), cwd=workdir, capture_output=True, timeout=60)
    (workdir / "explain.log").write_bytes(done.stdout + done.stderr)
    try:
        data = json.loads(done.stdout)
    except ValueError:
        data = {}
    return done.returncode, data if isinstance(data, dict) else {}
