"""Child processes that are always cleaned up, and the readiness probes that wait for them.

Used by ``authsvc up`` and by the e2e test harness. A ``Child`` runs in its own process group
(so a terminal's Ctrl-C reaches only the parent, which then stops children in order), writes
stdout+stderr to a log file, and on Linux dies with its parent (``PR_SET_PDEATHSIG``) so an
interrupted run never leaves orphans. ``stop()`` sends SIGTERM, waits, then SIGKILLs the group.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from authsvc._errors import AuthsvcError
from authsvc.envoy import Address, parse_address

__all__ = [
    "Child",
    "ChildFailed",
    "grpc_answers",
    "http_status",
    "tcp_open",
    "wait_until",
]


class ChildFailed(AuthsvcError):
    """A child exited early or did not become ready; the message includes its log tail."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """One started command. Use as a context manager or call ``stop()`` in a ``finally``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                process_group=0,
                preexec_fn=_die_with_parent,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, what: str) -> ChildFailed:
        tail = self.log_tail()
        return ChildFailed(
            f"{self.name} {what} (log: {self.log_path})" + (f"\n--- {self.name} log ---\n{tail}")
        )

    def wait_ready(self, probe: Callable[[], bool], timeout: float = 20.0) -> Child:
        """Poll ``probe`` until it is true; fail fast if the child exits meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise self.failure(f"exited with code {self.returncode} before it was ready")
            if probe():
                return self
            if time.monotonic() > deadline:
                raise self.failure(f"was not ready after {timeout:g}s")
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL the whole process group."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its group: also any grandchildren
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        return proc.returncode

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- readiness probes -------------------------------------------------------------------------


def wait_until(probe: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def _connect(address: Address, timeout: float) -> socket.socket:
    if address.is_unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address.path)
        except OSError:
            sock.close()
            raise
        return sock
    return socket.create_connection((address.host, address.port), timeout)


def tcp_open(address: str, timeout: float = 0.5) -> bool:
    """True when something accepts connections at ``host:port`` or ``unix:/path``."""
    try:
        _connect(parse_address(address, "address"), timeout).close()
    except OSError:
        return False
    return True


def http_status(host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """Status of ``GET path`` (no proxy, no redirects), or ``None`` if nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def grpc_answers(address: str, timeout: float = 1.0) -> bool:
    """True when a gRPC server at ``address`` answers a health check (any status counts)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(parse_address(address, "address").grpc_target) as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError as exc:
            return exc.code() not in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            )
    return True
