"""Start the processes a bench scenario needs (Envoy, ``authsvc serve``) and always stop them.

``Bench`` owns a private temporary directory (the key file, bootstraps, Unix sockets, logs) and
every child it started; ``close()`` stops them all and removes the directory. authsvc runs
exactly as a user runs it (``python -m authsvc serve``), with its status port and deep health
off and logging at ``warning``, so only checks are measured.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from authsvc._worker_addresses import worker_addresses
from authsvc.bench._envoy import Variant, bench_bootstrap
from authsvc.envoy import envoy_binary, render_yaml
from authsvc.stack import Child, http_status, tcp_open

__all__ = ["Authsvc", "Bench", "Envoy", "free_port", "serving"]

HOST = "127.0.0.1"
_KEY_ENV = ("AUTHSVC_MASTER_KEY", "LITELLM_MASTER_KEY")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def serving(address: str, timeout: float = 0.5) -> bool:
    """True when gRPC health at ``address`` answers SERVING (a ready key ring)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@dataclass
class Authsvc:
    child: Child
    addresses: tuple[str, ...]  # what Envoy connects to (one per worker)
    start_to_serving: float  # seconds from spawn until every address answered SERVING

    @property
    def pid(self) -> int:
        return self.child.pid


@dataclass
class Envoy:
    child: Child
    port: int
    admin_port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1/models"

    def counter(self, name: str) -> int:
        """One counter from Envoy's admin ``/stats`` (0 when absent)."""
        import http.client

        conn = http.client.HTTPConnection(HOST, self.admin_port, timeout=5)
        try:
            conn.request("GET", f"/stats?filter=^{name}$")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        for line in text.splitlines():
            stat, _, value = line.partition(": ")
            if stat == name and value.strip().isdigit():
                return int(value)
        return 0


class Bench:
    """Scratch directory + children. Use as a context manager."""

    def __init__(self, *, keep_logs: Path | None = None, pythonpath: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="authsvc-bench-", dir="/tmp"))
        self.key = "sk-bench-" + secrets.token_urlsafe(24)
        self.key_file = self.dir / "master.key"
        self.key_file.write_text(self.key + "\n", encoding="utf-8")
        self.key_file.chmod(0o600)
        self._keep_logs = keep_logs
        self._children: list[Child] = []
        self._env = {
            k: v
            for k, v in os.environ.items()
            if k not in _KEY_ENV and not k.startswith("AUTHSVC_") and "proxy" not in k.lower()
        }
        if pythonpath is not None:  # authsvc children run from another source tree (A/B)
            self._env["PYTHONPATH"] = os.path.abspath(pythonpath)

    @property
    def header(self) -> str:
        return f"authorization: Bearer {self.key}"

    def child_env(self) -> dict[str, str]:
        """The environment every child gets (for a short-lived helper run of the bench)."""
        return dict(self._env)

    def _child(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        child = Child(
            name, argv, self.dir / "logs" / f"{name}.log", env={**self._env, **(env or {})}
        )
        self._children.append(child)
        return child.start()

    def authsvc(
        self,
        name: str,
        listen: str,
        *,
        workers: int = 1,
        config: Path | None = None,
        extra: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Authsvc:
        argv = [sys.executable, "-m", "authsvc", "serve", "--listen", listen]
        argv += ["--master-key-file", str(self.key_file), "--status-listen", "off"]
        argv += ["--no-deep-health", "--log-level", "warning"]
        if workers != 1:
            argv += ["--workers", str(workers)]
        if config is not None:
            argv += ["--config", str(config)]
        argv += list(extra)
        addresses = worker_addresses([listen], workers)
        started = time.monotonic()
        child = self._child(name, argv, env)
        child.wait_ready(lambda: all(serving(a) for a in addresses), timeout=60)
        return Authsvc(child, addresses, time.monotonic() - started)

    def floor(self, name: str, listen: str) -> Authsvc:
        """The do-nothing ext_authz server (``_floor``): Envoy's own ext_authz ceiling."""
        started = time.monotonic()
        child = self._child(name, [sys.executable, "-m", "authsvc.bench._floor", listen])
        child.wait_ready(lambda: serving(listen), timeout=30)
        return Authsvc(child, (listen,), time.monotonic() - started)

    def socket(self, name: str = "authz.sock") -> str:
        return f"unix:{self.dir}/{name}"

    def envoy(self, name: str, variant: Variant, authz: Sequence[str] = ()) -> Envoy:
        port, admin_port = free_port(), free_port()
        bootstrap = bench_bootstrap(
            variant,
            listen=f"{HOST}:{port}",
            admin=f"{HOST}:{admin_port}",
            authz=tuple(authz) or (f"{HOST}:9",),  # unused unless variant == "authz"
            key=self.key,
        )
        path = self.dir / f"{name}.yaml"
        path.write_text(render_yaml(bootstrap), encoding="utf-8")
        path.chmod(0o600)  # the native variant holds the key
        argv = [envoy_binary(), "-c", str(path), "--concurrency", "1"]
        argv += ["--log-level", "warn", "--disable-hot-restart"]
        child = self._child(name, argv)
        child.wait_ready(
            lambda: http_status(HOST, admin_port, "/ready") == 200 and tcp_open(f"{HOST}:{port}"),
            timeout=30,
        )
        return Envoy(child, port, admin_port)

    def stop(self, *children: Child) -> None:
        for child in children:
            child.stop()

    def close(self) -> None:
        for child in reversed(self._children):
            child.stop()
        self._children.clear()
        if self._keep_logs is not None and (self.dir / "logs").is_dir():
            shutil.rmtree(self._keep_logs, ignore_errors=True)
            shutil.copytree(self.dir / "logs", self._keep_logs)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
