"""``authsvc serve``: parse, load, build, serve. No decisions are made here.

Start-up order: logging → config → key resolution (logged as a table) → gRPC server bound
(bind errors surface before anything else starts) → status port → key reloader and deep
health. A missing master key does not stop start-up (fail closed: health NOT_SERVING, 503s)
unless ``--strict``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping

from authsvc._defaults import AUTHZ_LISTEN, STATUS_LISTEN
from authsvc._errors import ConfigError, KeySourceError
from authsvc.config import Config, load_config
from authsvc.health import (
    DeepHealth,
    ProbeTarget,
    StatusServer,
    all_ready,
    key_header_name,
    probes_from_env,
)
from authsvc.keys import KeyStore, Reloader, Resolution, Secret, resolve
from authsvc.observability import Observer, configure_logging
from authsvc.server._grpc import AuthzServer
from authsvc.server._signals import serve_until_signal

__all__ = ["configure", "run"]


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
        "--grace", type=float, default=5.0, help="seconds in-flight checks get at shutdown"
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    parser.add_argument(
        "--log-format", choices=("json", "text"), default="json", help="log line format"
    )
    parser.add_argument(
        "--decision-log-sample-rate",
        type=float,
        default=0.0,
        metavar="RATE",
        help="fraction of ALLOWED requests to log (denials are always logged); 0..1",
    )


def run(args: argparse.Namespace) -> int:
    try:
        configure_logging(args.log_level, json=args.log_format == "json")
        if not 0.0 <= args.decision_log_sample_rate <= 1.0:
            raise ConfigError("--decision-log-sample-rate must be between 0 and 1")
        config = load_config(args.config, environ=os.environ, master_key_file=args.master_key_file)
        probes = probes_from_env(os.environ)  # validated before anything binds
        resolution = resolve(config, os.environ)
        if args.strict:
            resolution.require()
        return asyncio.run(_serve(args, config, resolution, probes))
    except KeySourceError as exc:
        print(f"authsvc serve --strict: {exc}", file=sys.stderr)
        return 3
    except ConfigError as exc:
        print(f"authsvc serve: {exc}", file=sys.stderr)
        return 2
    finally:
        logging.shutdown()


async def _serve(
    args: argparse.Namespace,
    config: Config,
    resolution: Resolution,
    probes: Mapping[str, ProbeTarget],
) -> int:
    store = KeyStore(resolution.ring)
    observer = Observer(
        locations=config.policy.locations, sample_rate=args.decision_log_sample_rate, keys=store
    )
    observer.on_startup(resolution)
    server = AuthzServer(
        store,
        config.policy,
        args.listen or [AUTHZ_LISTEN],
        on_decision=observer.on_decision,
    )
    await server.start()  # bind errors surface first (the server logs where it listens)
    try:
        return await _run_started(args, config, resolution, probes, store, observer, server)
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
) -> int:
    """Everything after the gRPC server is bound: status port, reloader, deep health."""

    latest = [resolution]  # the resolution the store serves; on_change replaces it
    deep = _deep_health(args, config, lambda: latest[0], observer)

    def on_change(new: Resolution) -> None:
        latest[0] = new
        observer.on_change(new)
        if new.config is not None:
            server.update_policy(new.config.policy)
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

    def keys_ready() -> tuple[bool, str]:
        ring = store.current
        return (True, "") if ring.ready else (False, ring.unready_reason)

    status = None
    if args.status_listen != "off":
        checks = [keys_ready] + ([deep.readiness] if deep is not None else [])
        status = StatusServer(
            args.status_listen,
            readiness=all_ready(*checks),
            metrics=observer.metrics,
            probes=probes,
        )
        status.start()
    if deep is not None:
        deep.start()
    stop = asyncio.Event()
    try:
        await serve_until_signal(server, grace=args.grace, extra_tasks=[reloader.run(stop)])
    finally:
        stop.set()
        if deep is not None:
            deep.stop()
        if status is not None:
            status.stop()
    return 0


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
