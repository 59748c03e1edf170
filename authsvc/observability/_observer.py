"""One object the wiring hands to every half: server, key reloader, deep health, status port.

Its callbacks never raise into the caller: an exception inside observability is counted
(``authsvc_observer_errors_total``) and logged once per exception type, by type name only.
"""

from __future__ import annotations

import logging
import random as _random
import traceback
from collections.abc import Callable, Hashable, Iterable

from authsvc.authz import DEFAULT_LOCATIONS, CredentialLocation, Decision, Reason, RequestView
from authsvc.keymodel import KeyRing, KeyStore
from authsvc.observability._contracts import ResolutionLike
from authsvc.observability._decision_log import DecisionLog
from authsvc.observability._metrics import Metrics
from authsvc.observability._resolution_log import log_reload_error, log_resolution

__all__ = ["DRY_RUN_WARNING", "Observer"]

_log = logging.getLogger("authsvc.observability")
DRY_RUN_WARNING = (
    "DRY-RUN IS ON: requests that would be denied are ALLOWED and only recorded "
    "(would_deny in the decision log, authsvc_dry_run_would_deny_total, x-authsvc-dry-run); "
    "turn it off to enforce"
)
_AGREE = "agree"  # the deep health verdict meaning "the app accepted the master key"


def _signature(resolution: ResolutionLike) -> Hashable:
    """What makes two resolutions the same set of active keys (for ``unchanged``)."""
    winner = resolution.winner if resolution.resolved else None
    return (
        bool(resolution.resolved),
        None if winner is None else (winner.source, winner.fingerprint),
        resolution.ring.content,  # every key and record, hashed while the ring was built
        tuple(str(w) for w in resolution.warnings),
    )


class Observer:
    """Metrics + decision log behind the callbacks the other halves call.

    - gRPC server: ``on_decision(view, decision, seconds)`` after every check (hot path),
      ``on_parse_error(exc, ...)`` / ``on_internal_error(exc, ...)`` when it answered without
      ``decide()``.
    - key resolution: ``on_startup(resolution)`` once; the reloader's ``on_change(resolution)``
      and ``on_error(message)``.
    - deep health: ``on_result(ok, detail)``.
    - status port: ``metrics() -> (body, content_type)`` for ``/metrics``.
    """

    def __init__(
        self,
        *,
        locations: Iterable[CredentialLocation] = DEFAULT_LOCATIONS,
        sample_rate: float = 0.0,
        keys: KeyStore | None = None,
        metrics: Metrics | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.prometheus = metrics if metrics is not None else Metrics()
        self._keys = keys
        self.decision_log = DecisionLog(
            locations=locations, sample_rate=sample_rate, random=random, ring=self._ring
        )
        self._last: Hashable = None
        self._failed_types: set[str] = set()

    def _ring(self) -> KeyRing | None:
        return self._keys.current if self._keys is not None else None

    def _swallow(self, exc: Exception) -> None:
        try:
            self.prometheus.observer_error()
            name = type(exc).__name__
            if name not in self._failed_types:
                self._failed_types.add(name)
                _log.error("observability failed (%s); the check itself was answered", name)
        except Exception:  # pragma: no cover - last line of defence
            pass

    # -- gRPC server ---------------------------------------------------------------------

    def on_decision(self, view: RequestView, decision: Decision, seconds: float) -> None:
        """Count and (if due) log one decision. Hot path; never raises."""
        try:
            self.prometheus.observe_decision(view, decision, seconds)
            self.decision_log.record(view, decision, seconds)
        except Exception as exc:
            self._swallow(exc)

    def on_parse_error(
        self,
        exc: BaseException | None = None,
        *,
        request_id: str = "",
        source: str = "",
        seconds: float | None = None,
    ) -> None:
        """A CheckRequest that could not be read (answered 400 ``malformed_request``).

        Only the exception's *type name* is logged: its message may quote request bytes.
        """
        self._failure(Reason.MALFORMED_REQUEST, exc, None, request_id, source, seconds)

    def on_internal_error(
        self,
        exc: BaseException | None = None,
        *,
        view: RequestView | None = None,
        seconds: float | None = None,
        reason: Reason = Reason.INTERNAL_ERROR,
    ) -> None:
        """The adapter failed and answered with ``reason`` (default 500 ``internal_error``)."""
        self._failure(reason, exc, view, "", "", seconds)

    def _failure(
        self,
        reason: Reason,
        exc: BaseException | None,
        view: RequestView | None,
        request_id: str,
        source: str,
        seconds: float | None,
    ) -> None:
        try:
            self.prometheus.observe_failure(reason, seconds)
            self.decision_log.record_failure(
                reason,
                type(exc).__name__ if exc is not None else reason.value,
                view=view,
                request_id=request_id,
                source=source,
                seconds=seconds,
            )
            if exc is not None and _log.isEnabledFor(logging.DEBUG):
                # Frames only: the exception's message may quote request bytes (even a key).
                frames = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
                _log.debug("%s while answering a check:\n%s", type(exc).__name__, frames)
        except Exception as err:
            self._swallow(err)

    # -- key resolution ------------------------------------------------------------------

    def on_startup(self, resolution: ResolutionLike) -> None:
        """The first resolution: publish its state and log the start-up summary."""
        try:
            self._last = _signature(resolution)
            self.prometheus.on_resolution(resolution)
            log_resolution(resolution, phase="startup")
        except Exception as exc:
            self._swallow(exc)

    def on_change(self, resolution: ResolutionLike) -> None:
        """A reload produced ``resolution`` (now active): count it, publish it, log the chain.

        Counted ``success`` when the active keys changed and ``unchanged`` when only the
        chain did (e.g. a shadowed source changed state) — the summary line is written either
        way, since the reloader only calls this when something changed.
        """
        try:
            signature = _signature(resolution)
            same_keys = signature == self._last
            self._last = signature
            self.prometheus.on_reload("unchanged" if same_keys else "success")
            self.prometheus.on_resolution(resolution)
            log_resolution(resolution, phase="reload")
        except Exception as exc:
            self._swallow(exc)

    def on_error(self, message: str) -> None:
        """A reload failed; the last good keys stay active."""
        try:
            self.prometheus.on_reload("failure")
            log_reload_error(message, self._ring())
        except Exception as exc:
            self._swallow(exc)

    # -- deep health / status port -------------------------------------------------------

    def on_result(self, result: object, detail: str = "") -> None:
        """A deep health check finished. (The health checker logs the failure line itself.)

        ``result`` is the checker's result object (its ``verdict``, a string enum, labels the
        counter; ``agree`` is a pass) or a plain bool.
        """
        try:
            verdict = getattr(result, "verdict", None)
            if verdict is None:
                self.prometheus.on_deep_health(bool(result))
            else:
                label = str(getattr(verdict, "value", verdict))
                self.prometheus.on_deep_health(label == _AGREE, label)
        except Exception as exc:
            self._swallow(exc)

    # -- dry-run -------------------------------------------------------------------------

    def on_dry_run(self, on: bool, why: str) -> None:
        """Dry-run was turned on or off (``why``: ``--dry-run``, ``config``, ``config reload``).

        Sets ``authsvc_dry_run_enabled`` and logs it: a WARNING when on (denials are not
        enforced), INFO when off.
        """
        try:
            self.prometheus.set_dry_run(on)
            if on:
                _log.warning(
                    DRY_RUN_WARNING, extra={"event": "dry_run", "dry_run": True, "by": why}
                )
            else:
                _log.info(
                    "dry-run is off: denials are enforced",
                    extra={"event": "dry_run", "dry_run": False, "by": why},
                )
        except Exception as exc:
            self._swallow(exc)

    def dry_run_reminder(self) -> None:
        """The periodic WARNING while dry-run stays on, with the would-deny counts so far."""
        try:
            counts = self.prometheus.would_deny_counts()
            _log.warning(
                DRY_RUN_WARNING + " (reminder)",
                extra={
                    "event": "dry_run",
                    "dry_run": True,
                    "would_deny": counts,
                    "would_deny_total": sum(counts.values()),
                },
            )
        except Exception as exc:
            self._swallow(exc)

    def on_bypass(self, exposed: bool) -> None:
        """The bypass detector found the app port open (or closed again) on the pod IP."""
        try:
            self.prometheus.on_bypass(exposed)
        except Exception as exc:
            self._swallow(exc)

    def metrics(self, accept: str = "") -> tuple[bytes, str]:
        """``/metrics``: ``(body, content_type)``; pass the request's ``Accept`` if you have it."""
        return self.prometheus.render(accept)
