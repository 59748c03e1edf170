"""The bypass detector: does the app answer on the pod IP, around Envoy and authsvc?

In a pod the app must listen on loopback only; Envoy (the pod's only open door) forwards to
``127.0.0.1:<app port>``. If the app also answers on the pod's own address, anyone who can
reach the pod IP skips authentication. authsvc knows the pod IPs (downward API:
``AUTHSVC_POD_IPS`` from ``status.podIPs``) and the app port (``AUTHSVC_APP_PORT``), both set
by ``authsvc inject``, and every ``interval`` seconds opens a TCP connection to
``<pod IP>:<app port>`` for each pod IP — never loopback. A completed handshake is a
*finding*; refused, timed out or unreachable is not.

Each change of the finding is logged once (error when the port opens, info when it closes),
exported as the gauge ``authsvc_app_port_exposed`` and as a line of ``/readyz`` detail.
Whether a finding also makes the pod NotReady is the operator's choice
(``serve --bypass-readiness warn|fail``; ``warn`` by default: a NotReady pod leaves the
Service's endpoints but the pod IP stays reachable, so readiness cannot close the hole).

The probe is a bare TCP connect: no bytes are sent, the socket is closed at once.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from prometheus_client.core import GaugeMetricFamily, Metric

from authsvc._errors import ConfigError

__all__ = [
    "ENV_APP_PORT",
    "ENV_POD_IPS",
    "BypassDetector",
    "BypassTarget",
    "Reach",
    "add_arguments",
    "detector_from_args",
    "probe_port",
    "target_from_env",
]

ENV_POD_IPS = "AUTHSVC_POD_IPS"  # downward API status.podIPs: "10.1.2.3" or "10.1.2.3,fd00::3"
ENV_APP_PORT = "AUTHSVC_APP_PORT"
MAX_POD_IPS = 8  # a pod has one address per IP family; more is not a pod IP list
DEFAULT_INTERVAL = 10.0
CONNECT_TIMEOUT = 1.0

log = logging.getLogger("authsvc.health.bypass")


class Reach(StrEnum):
    """What one connection attempt to ``<pod IP>:<app port>`` found."""

    OPEN = "open"  # the handshake completed: the app answers around Envoy (a finding)
    CLOSED = "closed"  # refused: nothing listens there (what we want)
    NO_ANSWER = "no_answer"  # timed out / unreachable / filtered: not a finding


@dataclass(frozen=True, slots=True)
class BypassTarget:
    """The pod's own addresses and the app port (validated: IPs only, never loopback)."""

    pod_ips: tuple[str, ...]
    app_port: int

    def __post_init__(self) -> None:
        if not self.pod_ips or len(self.pod_ips) > MAX_POD_IPS:
            raise ConfigError(f"bypass check: expected 1 to {MAX_POD_IPS} pod IPs")
        for ip in self.pod_ips:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                raise ConfigError(f"bypass check: pod IP {ip!r} is not an IP address") from None
            if address.is_loopback or address.is_unspecified:
                raise ConfigError(
                    f"bypass check: pod IP {ip} is a loopback/unspecified address; the check "
                    "must try the pod's own address, where the outside reaches it"
                )
        if isinstance(self.app_port, bool) or not 1 <= self.app_port <= 65535:
            raise ConfigError(f"bypass check: app port {self.app_port!r} is not 1-65535")

    def endpoints(self) -> list[str]:
        return [
            f"[{ip}]:{self.app_port}" if ":" in ip else f"{ip}:{self.app_port}"
            for ip in self.pod_ips
        ]


def target_from_env(
    environ: Mapping[str, str], *, pod_ips: str | None = None, app_port: int | None = None
) -> BypassTarget | None:
    """The target from flags (first) or ``AUTHSVC_POD_IPS``/``AUTHSVC_APP_PORT``; ``None``
    when either is unknown (outside Kubernetes the check is off unless asked for)."""
    ips_text = pod_ips if pod_ips is not None else environ.get(ENV_POD_IPS, "")
    port_text = str(app_port) if app_port is not None else environ.get(ENV_APP_PORT, "")
    if not ips_text.strip() or not port_text.strip():
        return None
    if len(ips_text) > 512:
        raise ConfigError(f"bypass check: {ENV_POD_IPS} is longer than 512 characters")
    if not port_text.strip().isdigit() or len(port_text.strip()) > 5:
        raise ConfigError(f"bypass check: {ENV_APP_PORT}={port_text[:16]!r} is not a port number")
    ips = tuple(part.strip() for part in ips_text.split(",") if part.strip())
    return BypassTarget(ips, int(port_text.strip()))


def probe_port(ip: str, port: int, timeout: float = CONNECT_TIMEOUT) -> Reach:
    """One TCP connect to ``ip:port``; nothing is sent."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((ip, port))
    except ConnectionRefusedError:
        return Reach.CLOSED
    except OSError:
        return Reach.NO_ANSWER
    else:
        return Reach.OPEN
    finally:
        sock.close()


class BypassDetector:
    """Tries the app port on every pod IP every ``interval`` seconds, in a daemon thread.

    ``findings()`` (cheap, no I/O) lists the endpoints that answered at the last round;
    ``readiness()`` fits ``StatusServer``'s ``all_ready`` (ready unless ``fail_readiness``
    and a finding); ``detail()`` is the ``/readyz`` detail line(s); ``on_change(exposed)`` is
    called after each round whose result differs from the previous one (and after the first).
    """

    def __init__(
        self,
        target: BypassTarget,
        *,
        interval: float = DEFAULT_INTERVAL,
        fail_readiness: bool = False,
        on_change: Callable[[bool], None] | None = None,
        probe: Callable[[str, int], Reach] = probe_port,
    ) -> None:
        if not 0.05 <= interval <= 3600:
            raise ConfigError("--bypass-interval must be between 0.05 and 3600 seconds")
        self.target = target
        self._interval = interval
        self._fail_readiness = fail_readiness
        self._on_change = on_change
        self._probe = probe
        self._findings: tuple[str, ...] | None = None  # None until the first round
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_on_change(self, on_change: Callable[[bool], None]) -> None:
        self._on_change = on_change

    def check_once(self) -> tuple[str, ...]:
        """One round: the endpoints that answered. Logs and reports a change."""
        found = tuple(
            endpoint
            for ip, endpoint in zip(self.target.pod_ips, self.target.endpoints(), strict=True)
            if self._probe(ip, self.target.app_port) is Reach.OPEN
        )
        previous, self._findings = self._findings, found
        if previous is None or set(previous) != set(found):
            if found:
                log.error(
                    "bypass: the app answers on %s, the pod's own address: anyone who reaches "
                    "the pod IP skips Envoy and authsvc. Make the app listen on 127.0.0.1 only, "
                    "or inject with --network-policy / --inbound-redirect",
                    ", ".join(found),
                )
            elif previous:
                log.info(
                    "bypass: the app port %d no longer answers on the pod IP; only Envoy is in",
                    self.target.app_port,
                )
            if self._on_change is not None:
                self._on_change(bool(found))
        return found

    def findings(self) -> tuple[str, ...]:
        return self._findings or ()

    def detail(self) -> list[str]:
        found = self._findings
        if found is None:
            return [f"bypass: app port {self.target.app_port} on the pod IP not checked yet"]
        if found:
            return [
                f"bypass: the app answers on {', '.join(found)} around Envoy and authsvc "
                "(listen on 127.0.0.1 only)"
            ]
        return [f"bypass: app port {self.target.app_port} closed on the pod IP"]

    def metric_families(self) -> list[Metric]:
        """The ``authsvc_app_port_exposed`` gauge (for a ``--workers`` supervisor's /metrics;
        a single process exports it through its Observer)."""
        if self._findings is None:
            return []
        gauge = GaugeMetricFamily(
            "authsvc_app_port_exposed",
            "1 when the app answers on the pod IP (around Envoy and authsvc), found by the "
            "bypass detector; 0 when it does not.",
        )
        gauge.add_metric([], 1 if self._findings else 0)
        return [gauge]

    def readiness(self) -> tuple[bool, str]:
        if self._fail_readiness and self._findings:
            return False, f"the app answers on {', '.join(self._findings)} around Envoy"
        return True, ""

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception:  # never let the thread die silently
                log.exception("bypass check failed")
            self._stop.wait(self._interval)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="authsvc-bypass", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve``'s bypass detector flags."""
    parser.add_argument(
        "--bypass-pod-ips",
        metavar="IP[,IP]",
        help=f"the pod's own addresses for the bypass detector (default ${ENV_POD_IPS}, "
        "set by authsvc inject from the downward API)",
    )
    parser.add_argument(
        "--bypass-app-port",
        type=int,
        metavar="N",
        help=f"the app's port for the bypass detector (default ${ENV_APP_PORT})",
    )
    parser.add_argument(
        "--bypass-interval",
        type=float,
        default=DEFAULT_INTERVAL,
        metavar="S",
        help=f"seconds between bypass checks (default {DEFAULT_INTERVAL:g})",
    )
    parser.add_argument(
        "--bypass-readiness",
        choices=("warn", "fail"),
        default="warn",
        help="when the app answers on the pod IP: 'warn' (log, metric, /readyz detail; stay "
        "ready) or 'fail' (also not ready). Default warn",
    )


def detector_from_args(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> BypassDetector | None:
    """The detector when the pod IPs and the app port are known (flags first, then env)."""
    target = target_from_env(environ, pod_ips=args.bypass_pod_ips, app_port=args.bypass_app_port)
    if target is None:
        return None
    return BypassDetector(
        target, interval=args.bypass_interval, fail_readiness=args.bypass_readiness == "fail"
    )
