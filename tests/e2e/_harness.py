"""Shared e2e harness: start real processes (demo upstream, ``authsvc serve``, Envoy), wait
until they are ready, talk to them, and ALWAYS stop them.

Everything is started through a ``Launcher`` (fixtures ``procs`` / ``module_procs`` in
conftest.py give you one); its ``stop_all()`` runs in the fixture's teardown, SIGTERM first,
then SIGKILL. Typical use in a test::

    def test_x(procs: Launcher) -> None:
        stack = procs.stack(transport="unix")              # demo + authsvc + Envoy
        r = stack.get("/v1/models", headers={"authorization": f"Bearer {stack.key}"})
        assert r.status == 200 and stack.demo.requests()[-1]["authorized"]

Building blocks, if you need other wiring: ``procs.demo()``, ``procs.authsvc(...)``
(``config=`` for ``--config``, ``workers=N`` for ``serve --workers N``; ``authz.addresses``
lists every worker's), ``procs.envoy(...)``, ``procs.config_stack(config, app_key=...,
env=...)``, ``procs.restart_authsvc(authz)``; ``authz.log_records()`` (its JSON log lines);
``run_authsvc("explain", ...)``; ``free_port()``; ``http_request()`` (http.client; a
``Response`` says whether it ``reached_upstream`` or carries authsvc's ``deny_reason``) and
``raw_request()`` (exact bytes over a socket, for requests a client library would normalise). Ports are free
ports on 127.0.0.1, Unix sockets live in a short temp dir, authsvc runs as
``sys.executable -m authsvc``, and inherited master-key variables are removed from every
child's environment so only what a test passes in counts.

No-key-leak scan (tests/test_zz_no_key_leak.py): every child's output and the demo's request
log are written under the session log directory (``tests._leakscan.log_file``), and every key
``new_key()`` makes is registered (``tests._keys.register``); register keys you get elsewhere
(e.g. read from a file ``authsvc up`` generated) yourself, and ``keep_log()`` other output.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from authsvc._worker_addresses import worker_addresses
from authsvc.envoy import EnvoyOptions, build_bootstrap, envoy_binary, render_yaml
from authsvc.keys import fingerprint
from authsvc.stack._children import Child, grpc_answers, http_status, tcp_open
from tests._keys import register
from tests._leakscan import log_file

T = TypeVar("T")

__all__ = [
    "AUTHSVC",
    "KEY_ENV",
    "AuthzServer",
    "DemoServer",
    "EnvoyProxy",
    "Launcher",
    "Response",
    "Stack",
    "clean_env",
    "free_port",
    "free_ports",
    "http_request",
    "keep_log",
    "new_key",
    "no_key_in",
    "raw_request",
    "run_authsvc",
    "worker_pids",
]

AUTHSVC = (sys.executable, "-m", "authsvc")
KEY_ENV = ("AUTHSVC_MASTER_KEY", "LITELLM_MASTER_KEY")
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive TCP ports on 127.0.0.1 that were free a moment ago
    (``serve --workers N`` puts worker ``i`` on port + i)."""
    for _ in range(50):
        base = free_port()
        if base + n <= 65535 and all(_port_free(base + i) for i in range(1, n)):
            return base
    raise RuntimeError(f"no {n} consecutive free ports")


def eventually(
    probe: Callable[[], T | None], what: str, timeout: float = 10.0, interval: float = 0.1
) -> T:
    """What ``probe`` returns once it is truthy (polled every ``interval`` s); fails naming
    ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def new_key(label: str = "e2e") -> str:
    """A fresh random master key, registered for the no-key-leak scan."""
    return register("sk-" + secrets.token_urlsafe(24), label)


def no_key_in(text: str, keys: Mapping[str, str] | Iterable[str], where: str) -> None:
    """Fail if any of ``keys`` (name → key, or just keys) occurs in ``text``. The failure names
    the key by fingerprint only (a plain ``assert key not in text`` would print the key)."""
    named = dict(keys) if isinstance(keys, Mapping) else {str(i): k for i, k in enumerate(keys)}
    found = [f"{name} ({fingerprint(key)})" for name, key in named.items() if key in text]
    if found:
        pytest.fail(f"key(s) {', '.join(found)} found in {where}", pytrace=False)


def keep_log(name: str, content: str | bytes | Path) -> Path:
    """Put output (text, bytes or a file's content) where the no-key-leak scan reads it."""
    path = log_file(name)
    if isinstance(content, Path):
        content = content.read_bytes() if content.exists() else b""
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def run_authsvc(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run ``authsvc ARGS...`` to completion (e.g. ``explain``) in ``clean_env(env)``; its
    stdout and stderr are kept for the no-key-leak scan."""
    run = subprocess.run(
        [*AUTHSVC, *args],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    keep_log(f"authsvc-{args[0] if args else 'run'}", run.stdout + "\n" + run.stderr)
    return run


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without master-key variables (and proxies), plus ``extra``."""
    drop = {*KEY_ENV, "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("AUTHSVC_")}
    env.update(extra or {})
    return env


# --- HTTP clients -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int  # 0: the connection closed without a response
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ","
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def _payload(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def reached_upstream(self) -> bool:
        """True when the demo upstream answered (its echo is in the body), whatever its status:
        Envoy let the request through."""
        return "authsvc_demo" in self._payload()

    @property
    def deny_reason(self) -> str | None:
        """authsvc's reason code when authsvc denied the request (its JSON body), else None
        (e.g. Envoy's own 503 when authsvc cannot be reached has no such body)."""
        if self.reached_upstream:
            return None
        error = self._payload().get("error")
        reason = error.get("reason") if isinstance(error, dict) else None
        return reason if isinstance(reason, str) else None

    @property
    def echo(self) -> dict[str, Any]:
        """What the demo upstream says it received (only present if the request got there)."""
        data = self.json()
        assert isinstance(data, dict) and "authsvc_demo" in data, self.body[:300]
        echo: dict[str, Any] = data["authsvc_demo"]
        return echo


def http_request(
    port: int,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
) -> Response:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        merged: dict[str, str] = {}
        for name, value in resp.getheaders():
            low = name.lower()
            merged[low] = f"{merged[low]},{value}" if low in merged else value
        return Response(resp.status, merged, resp.read())
    finally:
        conn.close()


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> Response:
    """Send ``data`` byte for byte and parse the response (status 0 if the peer just closed).

    ``data`` is one complete request; ``Connection: close`` is added before the blank line if
    the request has no Connection header, so the read ends when the server closes.
    """
    head, sep, rest = data.partition(b"\r\n\r\n")
    if sep and b"\nconnection:" not in head.lower():
        data = head + b"\r\nConnection: close\r\n\r\n" + rest
    received = b""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        try:
            while not _complete(received, data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return Response(0, {}, received)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        low = name.strip().lower()
        headers[low] = f"{headers[low]},{value.strip()}" if low in headers else value.strip()
    return Response(int(parts[1]), headers, body)


def _complete(received: bytes, request: bytes) -> bool:
    """True once a response with a Content-Length (or HEAD/1xx/204/304) is fully read."""
    head, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    status = head[9:12]
    if request.startswith(b"HEAD ") or status in (b"204", b"304") or status.startswith(b"1"):
        return True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value)
    return False  # chunked or close-delimited: read until the server closes


# --- the processes ------------------------------------------------------------------------------


@dataclass
class DemoServer:
    """The LiteLLM-like demo upstream. ``requests()`` is its request log (the ground truth)."""

    proc: Child
    port: int
    key_file: Path
    request_log: Path

    def requests(self) -> list[dict[str, Any]]:
        try:
            text = self.request_log.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def unauthorized(self) -> list[dict[str, Any]]:
        """Requests that reached the upstream with neither the key nor a public probe path."""
        return [r for r in self.requests() if not r["authorized"] and not r["public"]]


@dataclass
class AuthzServer:
    """``authsvc serve``: ``address`` is its ``--listen`` (``host:port`` or ``unix:``);
    ``addresses`` what Envoy connects to (one per worker with ``workers`` > 1)."""

    proc: Child
    address: str
    status_port: int
    key_file: Path | None = None
    args: tuple[str, ...] = ()
    config: Path | None = None
    env: Mapping[str, str] | None = None
    workers: int = 1

    @property
    def addresses(self) -> list[str]:
        return worker_addresses([self.address], self.workers)

    def log_records(self) -> list[dict[str, Any]]:
        """Its JSON log lines so far (``--log-format json``, the default); other lines skipped."""
        out: list[dict[str, Any]] = []
        try:
            text = self.proc.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line being written right now
                if isinstance(record, dict):
                    out.append(record)
        return out


@dataclass
class EnvoyProxy:
    proc: Child
    port: int
    admin_port: int
    bootstrap: Path
    options: EnvoyOptions

    def admin(self, path: str) -> str:
        return http_request(self.admin_port, "GET", path).body.decode()

    def stats(self, prefix: str = "") -> dict[str, int]:
        """Counters and gauges whose name starts with ``prefix`` (from ``/stats``)."""
        out: dict[str, int] = {}
        for line in self.admin(f"/stats?filter=^{prefix}").splitlines():
            name, _, value = line.partition(": ")
            if name.startswith(prefix) and value.strip().isdigit():
                out[name] = int(value)
        return out


@dataclass
class Stack:
    """Demo upstream + authsvc + Envoy, wired together. ``key`` is the master key."""

    demo: DemoServer
    authz: AuthzServer
    envoy: EnvoyProxy
    key: str | None
    transport: str

    @property
    def port(self) -> int:
        return self.envoy.port

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Response:
        return http_request(self.port, "GET", path, headers)

    def request(self, method: str, path: str, **kw: Any) -> Response:
        return http_request(self.port, method, path, **kw)

    def raw(self, data: bytes) -> Response:
        return raw_request(self.port, data)


@dataclass
class Launcher:
    """Starts processes under ``workdir`` and remembers them; ``stop_all()`` stops them all."""

    workdir: Path
    started: list[Child] = field(default_factory=list)
    _sockdirs: list[str] = field(default_factory=list)

    def _start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None) -> Child:
        n = sum(1 for c in self.started if c.name.startswith(name))
        child = Child(f"{name}-{n}", argv, log_file(f"{name}-{n}"), env=env)
        self.started.append(child)
        return child.start()

    def socket_path(self, name: str = "authz.sock") -> str:
        """A short Unix socket path (pytest's tmp paths can exceed the 107-byte limit)."""
        if not self._sockdirs:
            self._sockdirs.append(tempfile.mkdtemp(prefix="authsvc-e2e-", dir="/tmp"))
        return f"unix:{self._sockdirs[0]}/{name}"

    def key_file(self, key: str, name: str = "master.key") -> Path:
        path = self.workdir / name
        path.write_text(key + "\n", encoding="utf-8")
        path.chmod(0o600)
        return path

    def demo(self, key: str) -> DemoServer:
        port = free_port()
        n = sum(1 for c in self.started if c.name.startswith("demo"))
        key_file = self.key_file(key, f"demo-{n}.key")
        log = log_file(f"demo-{n}-requests")
        argv = [*AUTHSVC, "demo-upstream", "--listen", f"{HOST}:{port}"]
        argv += ["--master-key-file", str(key_file), "--request-log", str(log)]
        proc = self._start("demo", argv, clean_env())
        proc.wait_ready(lambda: http_status(HOST, port, "/health/liveliness") == 200)
        log.write_text("", encoding="utf-8")  # forget the readiness probes
        return DemoServer(proc, port, key_file, log)

    def authsvc(
        self,
        listen: str = "tcp",
        *,
        key_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        deep_health: str | None = None,
        timeout: float = 20.0,
        config: Path | None = None,
        workers: int = 1,
    ) -> AuthzServer:
        """``authsvc serve``. ``listen``: ``"tcp"`` (a free port), ``"unix"`` (a fresh socket)
        or an explicit address. Ready when gRPC health answers (SERVING or not) on every
        worker's address (``workers`` > 1: ``serve --workers N``, TCP ports in a free block).
        ``config`` is passed as ``--config``; ``env`` is added to the clean environment.

        Deep health is off unless ``deep_health`` gives Envoy's URL: its periodic keyed
        ``/health`` requests would otherwise show up in the demo upstream's request log."""
        if listen == "tcp":
            listen = f"{HOST}:{free_ports(workers)}"
        elif listen == "unix":
            listen = self.socket_path(f"authz-{len(self.started)}.sock")
        status_port = free_port()
        argv = [*AUTHSVC, "serve", "--listen", listen, "--status-listen", f"{HOST}:{status_port}"]
        if key_file is not None:
            argv += ["--master-key-file", str(key_file)]
        if config is not None:
            argv += ["--config", str(config)]
        argv += ["--health-url", deep_health] if deep_health else ["--no-deep-health"]
        argv += [*args, "--workers", str(workers)] if workers > 1 else list(args)
        proc = self._start("authsvc", argv, clean_env(env))
        authz = AuthzServer(proc, listen, status_port, key_file, tuple(args), config, env, workers)
        proc.wait_ready(lambda: all(grpc_answers(a) for a in authz.addresses), timeout)
        return authz

    def restart_authsvc(self, authz: AuthzServer, timeout: float = 20.0) -> AuthzServer:
        """A new ``authsvc serve`` on the same address with the same key file, config,
        environment and arguments (after ``authz`` was stopped or killed)."""
        return self.authsvc(
            authz.address,
            key_file=authz.key_file,
            env=authz.env,
            args=authz.args,
            timeout=timeout,
            config=authz.config,
            workers=authz.workers,
        )

    def envoy(self, authz: Sequence[str], upstream_port: int, **options: Any) -> EnvoyProxy:
        """Envoy from a bootstrap generated by ``build_bootstrap`` (one worker thread)."""
        port, admin_port = free_port(), free_port()
        opts = EnvoyOptions(
            listen=f"{HOST}:{port}",
            upstream=f"{HOST}:{upstream_port}",
            authz=tuple(authz),
            admin=f"{HOST}:{admin_port}",
            **options,
        )
        n = sum(1 for c in self.started if c.name.startswith("envoy"))
        bootstrap = self.workdir / f"envoy-{n}.yaml"
        bootstrap.write_text(render_yaml(build_bootstrap(opts)), encoding="utf-8")
        argv = [envoy_binary(), "-c", str(bootstrap), "--concurrency", "1"]
        argv += ["--log-level", "warn", "--disable-hot-restart"]
        proc = self._start("envoy", argv, clean_env())
        proc.wait_ready(
            lambda: http_status(HOST, admin_port, "/ready") == 200 and tcp_open(f"{HOST}:{port}")
        )
        return EnvoyProxy(proc, port, admin_port, bootstrap, opts)

    def stack(
        self,
        transport: str = "tcp",
        *,
        with_key: bool = True,
        authsvc_args: Sequence[str] = (),
        authsvc_env: Mapping[str, str] | None = None,
        workers: int = 1,
        **envoy_options: Any,
    ) -> Stack:
        """Demo upstream + authsvc (``transport`` "tcp" or "unix"; ``workers``) + Envoy
        (listing every worker). Without ``with_key``, authsvc gets no master key (fail
        closed: 503); the demo still has one."""
        key = new_key()
        demo = self.demo(key)
        key_file = self.key_file(key, f"authsvc-{len(self.started)}.key") if with_key else None
        authz = self.authsvc(
            transport, key_file=key_file, env=authsvc_env, args=authsvc_args, workers=workers
        )
        envoy = self.envoy(authz.addresses, demo.port, **envoy_options)
        return Stack(demo, authz, envoy, key if with_key else None, transport)

    def config_stack(
        self,
        config: Path,
        *,
        app_key: str | None,
        env: Mapping[str, str] | None = None,
        transport: str = "tcp",
        authsvc_args: Sequence[str] = (),
        workers: int = 1,
        **envoy_options: Any,
    ) -> Stack:
        """Demo upstream + ``authsvc serve --config CONFIG`` (``env`` added to its clean
        environment) + Envoy. ``app_key`` is the key the app itself accepts (what LiteLLM would
        resolve; ``None``: the app has no master key and answers 503); it is ``Stack.key``."""
        demo = self.demo(app_key or "")
        authz = self.authsvc(transport, config=config, env=env, args=authsvc_args, workers=workers)
        envoy = self.envoy(authz.addresses, demo.port, **envoy_options)
        return Stack(demo, authz, envoy, app_key, transport)

    def logs(self) -> str:
        """Every child's log tail (attach to an assertion message when debugging)."""
        return "\n".join(f"--- {c.name} ---\n{c.log_tail(30)}" for c in self.started)

    def stop_all(self) -> None:
        for child in reversed(self.started):
            child.stop()
        self.started.clear()
        for path in self._sockdirs:
            shutil.rmtree(path, ignore_errors=True)
        self._sockdirs.clear()


def worker_pids(supervisor: Child) -> list[int]:
    """The live children of ``serve --workers N``'s supervisor (its workers), from ``ps``."""
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(supervisor.pid)], capture_output=True, text=True
    )
    return sorted(int(p) for p in out.stdout.split())


def request_flow(stack: Stack, stop: threading.Event, seen: list[tuple[float, str, int]]) -> None:
    """Until ``stop``: GET /v1/models with no key, a wrong key and the valid key, in turn,
    recording ``(monotonic time, kind, status)`` (-1: the connection failed)."""
    assert stack.key is not None
    kinds = {
        "none": {},
        "wrong": {"authorization": "Bearer sk-wrong-key-00000000000"},
        "valid": {"authorization": f"Bearer {stack.key}"},
    }
    while not stop.is_set():
        for kind, headers in kinds.items():
            try:
                status = http_request(stack.port, "GET", "/v1/models", headers, timeout=5).status
            except OSError:
                status = -1
            seen.append((time.monotonic(), kind, status))
