"""Prometheus metrics on a private registry (never the process-global one).

The hot path (``observe_decision``) touches two pre-bound children: no label lookup, no string
formatting. Key state (keys loaded, master key resolved, its source and fingerprint) is one
immutable snapshot read by a custom collector, so a scrape never sees a half-updated state.
No label ever carries a key, a request path or anything the client chose.
"""

from __future__ import annotations

import hashlib
import hmac
import platform
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from authsvc._version import __version__
from authsvc.authz import SHADOWED, STATUS, Decision, Reason, RequestView
from authsvc.observability._contracts import ReloadResult, ResolutionLike
from authsvc.observability._logging import BackgroundHandler
from authsvc.observability._redact import Redactor

__all__ = ["LATENCY_BUCKETS", "RELOAD_RESULTS", "FrontStats", "Metrics"]

LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.2,  # Envoy's default ext_authz timeout: anything above is an error at the proxy
)
RELOAD_RESULTS: tuple[ReloadResult, ...] = ("success", "failure", "unchanged")
_VERDICT = re.compile(r"[a-z][a-z_]{0,31}")  # a label from a small enum, never free text


def _decision_label(reason: Reason) -> str:
    return "allow" if STATUS[reason] == 200 else "deny"


@dataclass(frozen=True, slots=True)
class _KeyState:
    keys_loaded: int = 0
    resolved: bool = False
    source: str | None = None
    key_id: str | None = None  # salted per process: no bits of the key's public hash
    key_changes: int = 0
    warnings: int = 0
    deep_health_ok: bool | None = None  # None until the first deep check reports
    weak: bool = False  # the active master key breaks authsvc's stricter rules
    app_open: bool = False  # the app itself accepts requests without a key
    since: float = 0.0  # Unix time the active resolution was published (0: not yet)
    app_port_exposed: bool | None = None  # None until the bypass detector's first round


class _KeyStateCollector:
    """Yields the gauges of one ``_KeyState`` snapshot (swapped by reference, read once)."""

    def __init__(self) -> None:
        self.state = _KeyState()
        self.reload_running: Callable[[], float] | None = None  # the reloader's running_for

    def collect(self) -> Iterable[Metric]:
        s = self.state
        yield GaugeMetricFamily(
            "authsvc_keys_loaded", "Keys in the active key ring (master + extra).", s.keys_loaded
        )
        yield GaugeMetricFamily(
            "authsvc_master_key_resolved",
            "1 when a usable master key is loaded; 0 means fail closed (503 on protected paths).",
            1 if s.resolved else 0,
        )
        info = GaugeMetricFamily(
            "authsvc_master_key_info",
            "Always 1; labels say which source the active master key came from and key_id, "
            "an identifier that changes with the key (an HMAC under a random per-process salt: "
            "no bits of the key's hash). Absent while no master key resolved.",
            labels=["source", "key_id"],
        )
        if s.resolved and s.source is not None:
            info.add_metric([s.source, s.key_id or ""], 1)
        yield info
        yield CounterMetricFamily(
            "authsvc_master_key_changes",
            "Times the active master key changed to a different key since the process started.",
            s.key_changes,
        )
        yield GaugeMetricFamily(
            "authsvc_key_resolution_warnings",
            "Warnings of the active key resolution (e.g. a shadowed source holds another key).",
            s.warnings,
        )
        yield GaugeMetricFamily(
            "authsvc_master_key_weak",
            "1 when the active master key is weak by authsvc's stricter rules (short, one "
            "repeated character, a listed default...) but served (master_key.weak: warn).",
            1 if s.weak else 0,
        )
        yield GaugeMetricFamily(
            "authsvc_app_open",
            "1 when the app itself (LiteLLM) runs with no master key and accepts every request "
            "unauthenticated; authsvc stays closed.",
            1 if s.app_open else 0,
        )
        if s.since > 0:
            yield GaugeMetricFamily(
                "authsvc_key_resolution_timestamp_seconds",
                "Unix time the active key resolution was loaded (start-up or the last reload "
                "that changed something): time() minus it is the age of the active keys.",
                s.since,
            )
        yield CounterMetricFamily(
            "authsvc_log_records_dropped",
            "Log records dropped because the background log writer's queue was full.",
            BackgroundHandler.total_dropped,
        )
        running = self.reload_running
        if running is not None:
            yield GaugeMetricFamily(
                "authsvc_key_reload_running_seconds",
                "How long the running key reload attempt has taken so far (0 when none runs). "
                "Above 10 the reload is stuck and the last good keys stay active.",
                running(),
            )
        if s.deep_health_ok is not None:
            yield GaugeMetricFamily(
                "authsvc_deep_health_ok",
                "1 when the last deep health check (protected health path through Envoy with "
                "the master key) passed. Absent until the first check.",
                1 if s.deep_health_ok else 0,
            )
        if s.app_port_exposed is not None:
            yield GaugeMetricFamily(
                "authsvc_app_port_exposed",
                "1 when the app answers on the pod IP (around Envoy and authsvc), found by the "
                "bypass detector; 0 when it does not. Absent while the detector is off.",
                1 if s.app_port_exposed else 0,
            )


class FrontStats(Protocol):
    """What the fast HTTP/2 front counts (``authsvc.server._front.Front``): plain ints bumped
    on its event loop, read at scrape time (a scrape may be one event behind, never torn)."""

    @property
    def refused_counts(self) -> Mapping[str, int]: ...
    @property
    def closed_counts(self) -> Mapping[str, int]: ...
    @property
    def accept_errors(self) -> int: ...
    @property
    def open_connections(self) -> int: ...
    @property
    def accepting(self) -> bool: ...


class _FrontCollector:
    """The front's connection counters; nothing until ``source`` is set and returns a front."""

    def __init__(self) -> None:
        self.source: Callable[[], FrontStats | None] | None = None

    def collect(self) -> Iterable[Metric]:
        front = self.source() if self.source is not None else None
        if front is None:
            return
        yield _by_reason(
            "authsvc_front_refused",
            "Connections the fast front refused, by reason: peer_cap (reset right after "
            "accept: the peer has max_connections_per_peer open), memory (no budget left for "
            "a first request), internal (the private gRPC server was unreachable).",
            front.refused_counts,
        )
        yield _by_reason(
            "authsvc_front_closed",
            "Connections the fast front closed, by reason: handshake_timeout, idle_timeout, "
            "flood_limit (GOAWAY ENHANCE_YOUR_CALM), protocol_error (another HTTP/2 "
            "violation), splice_refused (a request the private gRPC server cannot survive).",
            front.closed_counts,
        )
        yield CounterMetricFamily(
            "authsvc_front_accept_errors",
            "accept() failures for want of file descriptors or memory (EMFILE, ENFILE, "
            "ENOBUFS, ENOMEM); the listeners rest 1 s after each.",
            front.accept_errors,
        )
        yield GaugeMetricFamily(
            "authsvc_front_connections",
            "Client connections open on the fast front.",
            front.open_connections,
        )
        yield GaugeMetricFamily(
            "authsvc_front_accepting",
            "1 while the fast front accepts connections; 0 while it rests: at its global "
            "connection cap (new clients wait in the kernel's backlog), after an accept() "
            "failure, or stopping.",
            1 if front.accepting else 0,
        )


def _by_reason(name: str, documentation: str, counts: Mapping[str, int]) -> CounterMetricFamily:
    """A counter with one ``reason`` label; a reason that is not a plain word is left out (the
    front names its reasons itself, but a label value is never anything else)."""
    family = CounterMetricFamily(name, documentation, labels=["reason"])
    for reason, count in counts.items():
        if _VERDICT.fullmatch(reason):
            family.add_metric([reason], count)
    return family


class Metrics:
    """Every authsvc metric, on ``self.registry``. Thread-safe; cheap on the hot path."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        checks = Counter(
            "authsvc_checks",
            "Authorization checks answered, by decision and reason code.",
            ["decision", "reason"],
            registry=r,
        )
        self._checks = {
            reason: checks.labels(_decision_label(reason), reason.value) for reason in Reason
        }
        would_deny = Counter(
            "authsvc_dry_run_would_deny",
            "Requests dry-run let through that would have been denied, by the reason they "
            "would have been denied for (counted in authsvc_checks_total as reason=dry_run).",
            ["reason"],
            registry=r,
        )
        self._would_deny = {reason: would_deny.labels(reason.value) for reason in SHADOWED}
        self._dry_run = Gauge(
            "authsvc_dry_run_enabled",
            "1 while dry-run is on: policy denials are NOT enforced, only recorded.",
            registry=r,
        )
        self._latency = Histogram(
            "authsvc_check_duration_seconds",
            "Time spent answering one check, in seconds (measured by the gRPC adapter).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        reloads = Counter(
            "authsvc_reloads",
            "Key reloads by result: success (new keys active), failure (refused, last good "
            "keys kept), unchanged (the chain changed, the active keys did not).",
            ["result"],
            registry=r,
        )
        self._reloads = {result: reloads.labels(result) for result in RELOAD_RESULTS}
        self._deep = Counter(
            "authsvc_deep_health_checks",
            "Deep health checks by result: the checker's verdict (agree, disagree, "
            "authsvc_denied, app_unhealthy, unreachable, no_key), or ok/fail.",
            ["result"],
            registry=r,
        )
        self._observer_errors = Counter(
            "authsvc_observer_errors",
            "Exceptions swallowed by the metrics/log observer (a bug: please report).",
            registry=r,
        )
        Info("authsvc_build", "authsvc build information.", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self._state = _KeyStateCollector()
        self._salt = secrets.token_bytes(32)  # never leaves the process
        self._last_key: bytes | None = None
        self._state_lock = threading.Lock()  # cold-path writers only; scrapes read lock-free
        r.register(self._state)
        self._front = _FrontCollector()
        r.register(self._front)
        if process_metrics:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)

    # -- hot path --------------------------------------------------------------------------

    def observe_decision(self, view: RequestView, decision: Decision, seconds: float) -> None:
        """Count one answered check. ``view`` is unused: no request data goes into labels."""
        self._checks[decision.reason].inc()
        if decision.would_deny is not None:
            self._would_deny[decision.would_deny].inc()
        if seconds >= 0.0:  # False for NaN too: a broken clock must not poison the sum
            self._latency.observe(seconds)

    def set_dry_run(self, on: bool) -> None:
        self._dry_run.set(1 if on else 0)

    def would_deny_counts(self) -> dict[str, int]:
        """Would-deny counts so far, by reason (cold path: the dry-run reminder)."""
        out: dict[str, int] = {}
        for reason in sorted(self._would_deny):
            value = self.registry.get_sample_value(
                "authsvc_dry_run_would_deny_total", {"reason": reason.value}
            )
            out[reason.value] = int(value or 0)
        return out

    def observe_failure(self, reason: Reason, seconds: float | None = None) -> None:
        """Count a check the adapter answered without ``decide()`` (parse/internal error)."""
        self._checks[reason].inc()
        if seconds is not None and seconds >= 0.0:
            self._latency.observe(seconds)

    def observer_error(self) -> None:
        self._observer_errors.inc()

    # -- cold path -------------------------------------------------------------------------

    def on_resolution(self, resolution: ResolutionLike) -> None:
        """Publish the key state of a (new) resolution: count, resolved, source, fingerprint."""
        ring = resolution.ring
        winner = resolution.winner if resolution.resolved else None
        source = key_id = None
        changed = False
        if winner is not None:
            # Defence in depth: a source label that *is* a key (or looks like one) is redacted.
            source = Redactor(ring=lambda: ring).text(str(winner.source), limit=200)
            master = ring.master
            fp = winner.fingerprint or ""
            identity = master.digest if master is not None else fp.encode()
            key_id = hmac.new(self._salt, identity, hashlib.sha256).hexdigest()[:12]
            changed = self._last_key is not None and identity != self._last_key
            self._last_key = identity
        report = resolution.report()
        winner_info = report.get("winner")
        weak = isinstance(winner_info, dict) and bool(winner_info.get("caution"))
        app_open = report.get("app_open") is True
        with self._state_lock:
            self._state.state = replace(
                self._state.state,
                keys_loaded=len(ring),
                resolved=bool(resolution.resolved) and ring.ready,
                source=source,
                key_id=key_id,
                key_changes=self._state.state.key_changes + int(changed),
                warnings=len(resolution.warnings),
                weak=weak and bool(resolution.resolved),
                app_open=app_open,
                since=time.time(),
            )

    def watch_reload(self, running_for: Callable[[], float]) -> None:
        """Publish ``authsvc_key_reload_running_seconds`` from the reloader's ``running_for``."""
        self._state.reload_running = running_for

    def watch_front(self, source: Callable[[], FrontStats | None]) -> None:
        """Publish the fast front's connection counters (``authsvc_front_*``) from ``source``
        (``None`` while there is no front: the metrics are absent)."""
        self._front.source = source

    def on_reload(self, result: ReloadResult) -> None:
        child = self._reloads.get(result)
        if child is None:
            raise ValueError(f"reload result {result!r} is not one of {RELOAD_RESULTS}")
        child.inc()

    def on_deep_health(self, ok: bool, result: str | None = None) -> None:
        """Record one deep health check: passed or not, and its verdict label if known."""
        label = result if result is not None and _VERDICT.fullmatch(result) else None
        self._deep.labels(label or ("ok" if ok else "fail")).inc()
        with self._state_lock:
            self._state.state = replace(self._state.state, deep_health_ok=bool(ok))

    def on_bypass(self, exposed: bool) -> None:
        """The bypass detector's latest finding: does the app answer on the pod IP?"""
        with self._state_lock:
            self._state.state = replace(self._state.state, app_port_exposed=bool(exposed))

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """Every metric as ``(body, content_type)``.

        Without ``accept`` (or with a plain one) this is the classic text format 0.0.4 that
        every Prometheus parses; a scraper's ``Accept`` header may ask for OpenMetrics.
        """
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
