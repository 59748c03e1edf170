"""``authsvc serve``: parse, load, build, serve. No decisions are made here.

Start-up order: logging → ``--listen`` syntax → config → key resolution → gRPC server bound
(bind errors surface before anything else starts) → the resolution logged as a table → status
port → key reloader and deep health. A missing master key does not stop start-up (fail closed: health NOT_SERVING, 503s)
unless ``--strict``.

With ``--workers N`` (N > 1) this process becomes a supervisor: it validates the config and
key resolution exactly as above (so errors and ``--strict`` fail before anything starts), then
runs N workers — each this same command with its own ``--listen`` addresses
(``authsvc._worker_addresses``) — and serves the status port for all of them
(``_worker_status``). See ``_workers`` for restarts and shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import logging
import os
import sys
from collections.abc import Callable, Mapping

from authsvc._defaults import AUTHZ_LISTEN, STATUS_LISTEN
from authsvc._errors import ConfigError, KeySourceError, ServerDied
from authsvc._worker_addresses import MAX_WORKERS, port_clash, worker_listen
from authsvc.config import Config, load_config
from authsvc.health import (
    BypassDetector,
    DeepHealth,
    ProbeTarget,
    StatusServer,
    add_bypass_arguments,
    all_ready,
    detector_from_args,
    key_header_name,
    probes_from_env,
)
from authsvc.keys import KeyStore, Reloader, Resolution, Secret, resolve
from authsvc.observability import Observer, configure_logging
from authsvc.server._grpc import UNIX_SOCKET_MODE, AuthzServer
from authsvc.server._listen import parse_listen, parse_socket_mode
from authsvc.server._signals import serve_until_signal
from authsvc.server._virtual_status import VirtualKeyCollector, virtual_key_notes
from authsvc.server._workers import Supervisor, die_with_parent, report_ready
from authsvc.sources import set_lookup_share

__all__ = ["configure", "run", "worker_argv"]

DRY_RUN_REMINDER = 300.0
"""Seconds between the WARNINGs that say dry-run is still on."""
DRY_RUN_NOTE = (
    "dry-run: ON (denials are recorded, not enforced; see authsvc_dry_run_would_deny_total)"
)
"""The /readyz line while dry-run is on (readiness itself is unchanged)."""

WORKER_STATUS_LISTEN = "127.0.0.1:0"
"""A worker's own status port: loopback, ephemeral; only the supervisor talks to it."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $AUTHSVC_CONFIG, else built-in)")
    parser.add_argument(
        "--listen",
        action="append",
        metavar="ADDR",
        help=f"gRPC address: HOST:PORT or unix:/path; repeatable (default {AUTHZ_LISTEN})",
    )
    parser.add_argument(
        "--master-key-file",
        metavar="FILE",
        help="read the master key from FILE (placed first in the source chain)",
    )
    parser.add_argument(
        "--status-listen",
        default=STATUS_LISTEN,
        metavar="HOST:PORT",
        help=f"status port: /livez /readyz /metrics /app-health (default {STATUS_LISTEN}; "
        "'off' disables it)",
    )
    parser.add_argument(
        "--health-url",
        metavar="URL",
        help="Envoy's URL for the deep health check (overrides health_check.url)",
    )
    parser.add_argument(
        "--no-deep-health", action="store_true", help="disable the deep health check"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse to start without a usable master key (default: start, fail closed)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds in-flight checks get at shutdown (default %(default)s)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="shadow mode for a rollout: answer ALLOW for every request that would be denied "
        "(missing/malformed/unknown/expired key, path not allowed) and record it (decision log "
        "would_deny, authsvc_dry_run_would_deny_total, header x-authsvc-dry-run: REASON); no "
        "master key still denies 503. Same as 'dry_run: true' in the config. See docs/dry-run.md",
    )
    parser.add_argument(
        "--log-level", default="info", help="debug, info, warning, error (default %(default)s)"
    )
    parser.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="log line format (default %(default)s)",
    )
    parser.add_argument(
        "--decision-log-sample-rate",
        type=float,
        default=0.0,
        metavar="RATE",
        help="fraction of ALLOWED requests to log (denials are always logged); 0..1",
    )
    parser.add_argument(
        "--no-fast-path",
        action="store_true",
        help="serve every connection with the grpc.aio server itself, not with the fast "
        "HTTP/2 front that answers Envoy's Check stream (see docs/performance.md)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help=f"run N worker processes (1..{MAX_WORKERS}), each on its own address: "
        "unix:/p/authz.sock -> unix:/p/authz-0.sock, authz-1.sock, ...; HOST:PORT -> PORT, "
        "PORT+1, ... (list them all with 'authsvc envoy-config --workers N'; default 1)",
    )
    parser.add_argument(
        "--socket-mode",
        default=f"{UNIX_SOCKET_MODE:04o}",
        metavar="MODE",
        help=f"permissions of --listen unix: sockets, octal (default {UNIX_SOCKET_MODE:04o}: "
        "owner and group; whoever connects must be the owner or in the socket's group)",
    )
    add_bypass_arguments(parser)
    # Set by the supervisor on the command line of each worker; not for humans.
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--report-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-count", type=int, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    try:
        if args.supervisor_pid is not None:
            die_with_parent(args.supervisor_pid)
        if args.worker_count:  # the virtual-key lookup budget is shared by the workers
            set_lookup_share(args.worker_count)
        configure_logging(args.log_level, json=args.log_format == "json")
        if not 0.0 <= args.decision_log_sample_rate <= 1.0:
            raise ConfigError("--decision-log-sample-rate must be between 0 and 1")
        listen = worker_listen(args.listen or [AUTHZ_LISTEN], args.workers)  # validates N too
        for address in (a for addresses in listen for a in addresses):
            parse_listen(address)  # a bad --listen fails before any key is read or logged
        _check_status_port(args, listen)
        config = load_config(args.config, environ=os.environ, master_key_file=args.master_key_file)
        probes = probes_from_env(os.environ)  # validated before anything binds
        args.socket_mode_value = parse_socket_mode(args.socket_mode)
        # The supervisor's own process checks for all workers.
        bypass = None if args.worker_index is not None else detector_from_args(args, os.environ)
        resolution = resolve(config, os.environ)
        if args.strict:
            resolution.require()
        if args.workers > 1:
            return asyncio.run(_supervise(args, listen, _dry_run(args, config), bypass))
        return asyncio.run(_serve(args, config, resolution, probes, bypass))
    except KeySourceError as exc:
        print(f"authsvc serve --strict: {exc}", file=sys.stderr)
        return 3
    except ConfigError as exc:
        print(f"authsvc serve: {exc}", file=sys.stderr)
        return 2
    except ServerDied as exc:
        print(f"authsvc serve: {exc}", file=sys.stderr)
        return 1
    finally:
        logging.shutdown()


async def _serve(
    args: argparse.Namespace,
    config: Config,
    resolution: Resolution,
    probes: Mapping[str, ProbeTarget],
    bypass: BypassDetector | None = None,
) -> int:
    store = KeyStore(resolution.ring)
    observer = Observer(
        locations=config.policy.locations, sample_rate=args.decision_log_sample_rate, keys=store
    )
    observer.prometheus.registry.register(VirtualKeyCollector())  # empty without virtual_keys
    gc.collect()
    gc.freeze()  # start-up objects leave the cyclic GC: a full collection (which holds the GIL
    # for its whole run) then walks only what came later, e.g. during a 100,000-key reload
    server = AuthzServer(
        store,
        config.policy,
        args.listen or [AUTHZ_LISTEN],
        on_decision=observer.on_decision,
    )
    server.fast_path = not args.no_fast_path
    server.dry_run = _dry_run(args, config)
    server.socket_mode = args.socket_mode_value
    await server.start()  # bind errors surface first (the server logs where it listens)
    observer.on_startup(resolution)  # the key table is logged once the addresses are bound
    try:
        return await _run_started(args, config, resolution, probes, store, observer, server, bypass)
    except BaseException:
        await server.stop(0)
        raise


async def _run_started(
    args: argparse.Namespace,
    config: Config,
    resolution: Resolution,
    probes: Mapping[str, ProbeTarget],
    store: KeyStore,
    observer: Observer,
    server: AuthzServer,
    bypass: BypassDetector | None = None,
) -> int:
    """Everything after the gRPC server is bound: status port, reloader, deep health, the
    bypass detector."""

    latest = [resolution]  # the resolution the store serves; on_change replaces it
    deep = _deep_health(args, config, lambda: latest[0], observer)
    if server.dry_run:
        observer.on_dry_run(True, "--dry-run" if args.dry_run else "config dry_run")

    def on_change(new: Resolution) -> None:
        latest[0] = new
        observer.on_change(new)
        if new.config is not None:
            server.update_policy(new.config.policy)
            dry_run = _dry_run(args, new.config)
            if dry_run != server.dry_run:
                server.dry_run = dry_run
                observer.on_dry_run(dry_run, "config reload")
        server.refresh_health()
        if deep is not None:
            deep.trigger()

    reloader = Reloader(
        args.config,
        os.environ,
        store,
        master_key_file=args.master_key_file,
        initial=resolution,
        on_change=on_change,
        on_error=observer.on_error,
    )
    observer.prometheus.watch_reload(reloader.running_for)
    observer.prometheus.watch_front(server.front)

    def keys_ready() -> tuple[bool, str]:
        ring = store.current
        return (True, "") if ring.ready else (False, ring.unready_reason)

    status = None
    if args.status_listen != "off":
        checks = [keys_ready, reloader.readiness] + ([deep.readiness] if deep is not None else [])
        checks += [bypass.readiness] if bypass is not None else []
        status = StatusServer(
            args.status_listen,
            readiness=all_ready(*checks),
            metrics=observer.metrics,
            probes=probes,
            notes=lambda: _notes(server.dry_run, bypass, *virtual_key_notes(store.current)),
        )
        status.start()
    if deep is not None:
        deep.start()
    if bypass is not None:
        bypass.set_on_change(observer.on_bypass)
        bypass.start()
    on_serving = None  # a worker tells its supervisor once it serves with SIGTERM handled
    if args.report_fd is not None:
        on_serving = functools.partial(report_ready, args.report_fd, _status_address(status))
    stop = asyncio.Event()
    try:
        await serve_until_signal(
            server,
            grace=args.grace,
            extra_tasks=[reloader.run(stop), _remind_dry_run(server, observer, stop)],
            on_serving=on_serving,
        )
    finally:
        stop.set()
        if deep is not None:
            deep.stop()
        if bypass is not None:
            bypass.stop()
        if status is not None:
            status.stop()
    return 0


def _dry_run(args: argparse.Namespace, config: Config) -> bool:
    return bool(args.dry_run or config.dry_run)


async def _remind_dry_run(
    server: AuthzServer, observer: Observer, stop: asyncio.Event, every: float | None = None
) -> None:
    """While dry-run is on, a WARNING every ``DRY_RUN_REMINDER`` seconds: never forgotten."""
    interval = DRY_RUN_REMINDER if every is None else every
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            if server.dry_run:
                observer.dry_run_reminder()


def _deep_health(
    args: argparse.Namespace,
    config: Config,
    current: Callable[[], Resolution],
    observer: Observer,
) -> DeepHealth | None:
    settings = config.health_check
    if args.no_deep_health or not settings.enabled:
        return None

    def key_provider() -> tuple[Secret, str, str] | None:
        res = current()
        secret = res.master_secret()
        if secret is None or res.winner is None or res.winner.fingerprint is None:
            return None
        return secret, res.winner.source, res.winner.fingerprint

    return DeepHealth(
        args.health_url or settings.url,
        config.policy.protected_health_path,
        key_provider=key_provider,
        interval=settings.interval,
        header=key_header_name(config.policy.locations),
        on_result=observer.on_result,
    )


def _check_status_port(args: argparse.Namespace, listen: tuple[tuple[str, ...], ...]) -> None:
    if args.workers == 1 or args.status_listen == "off":
        return
    clash = port_clash([a for addresses in listen for a in addresses], args.status_listen)
    if clash is not None:
        raise ConfigError(
            f"--workers {args.workers} makes a worker listen on {clash}, the port of "
            f"--status-listen {args.status_listen}; move one of them (e.g. --listen "
            "127.0.0.1:9300, or --status-listen 127.0.0.1:9190)"
        )


def _status_address(status: StatusServer | None) -> str:
    if status is None:
        return "off"
    host, port = status.address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def worker_argv(
    args: argparse.Namespace, index: int, listen: tuple[str, ...], report_fd: int
) -> list[str]:
    """The ``authsvc serve`` command line of worker ``index``: the supervisor's own options,
    the worker's addresses, a loopback status port, and deep health in worker 0 only."""
    argv = [sys.executable, "-m", "authsvc", "serve"]
    for address in listen:
        argv += ["--listen", address]
    for flag, value in (
        ("--config", args.config),
        ("--master-key-file", args.master_key_file),
        ("--health-url", args.health_url),
    ):
        if value is not None:
            argv += [flag, value]
    argv += ["--status-listen", "off" if args.status_listen == "off" else WORKER_STATUS_LISTEN]
    if args.no_deep_health or index > 0:
        argv.append("--no-deep-health")
    if args.strict:
        argv.append("--strict")
    if args.no_fast_path:
        argv.append("--no-fast-path")
    if args.dry_run:
        argv.append("--dry-run")
    argv += ["--socket-mode", args.socket_mode]
    argv += ["--grace", repr(args.grace), "--log-level", args.log_level]
    argv += ["--log-format", args.log_format]
    argv += ["--decision-log-sample-rate", repr(args.decision_log_sample_rate)]
    argv += ["--worker-index", str(index), "--report-fd", str(report_fd)]
    argv += ["--supervisor-pid", str(os.getpid())]
    argv += ["--worker-count", str(args.workers)]
    return argv


def _notes(dry_run: bool, bypass: BypassDetector | None, *more: str) -> list[str]:
    """The /readyz notes: dry-run, the bypass detector's, ``more`` (a stale key store)."""
    return [DRY_RUN_NOTE] * dry_run + (bypass.detail() if bypass is not None else []) + list(more)


async def _supervise(
    args: argparse.Namespace,
    listen: tuple[tuple[str, ...], ...],
    dry_run: bool,
    bypass: BypassDetector | None = None,
) -> int:
    from authsvc.server._worker_status import WorkerStatus

    supervisor = Supervisor(
        lambda index, fd: worker_argv(args, index, listen[index], fd),
        args.workers,
        grace=args.grace,
    )
    status = None
    if args.status_listen != "off":
        aggregate = WorkerStatus(
            supervisor.workers, bypass.metric_families if bypass is not None else None
        )
        checks = [aggregate.readiness] + ([bypass.readiness] if bypass is not None else [])
        status = StatusServer(
            args.status_listen,
            readiness=all_ready(*checks),
            metrics=aggregate.metrics,
            probes=probes_from_env(os.environ),
            notes=lambda: aggregate.notes(_notes(dry_run, bypass)),  # + the workers' notes
        )
        status.start()  # before the workers: a busy status port fails fast
    if bypass is not None:  # the supervisor checks for all workers (log and /readyz detail)
        bypass.start()
    try:
        return await supervisor.run()
    finally:
        if bypass is not None:
            bypass.stop()
        if status is not None:
            status.stop()
