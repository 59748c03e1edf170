"""Decision logs: one structured line per denied request, sampled allowed ones, probes at debug.

Logger ``authsvc.decisions``. Each line's fields (see docs/observability.md): ``decision``,
``status``, ``reason``, ``method``, ``path`` (redacted target), ``request_id``, ``source``,
``credential_location``, ``key_name``, ``key_fingerprint``, ``duration_ms``, ``detail``; the
formatter adds ``time`` (RFC 3339 UTC), ``level``, ``logger``, ``message``.

Hot-path cost for an allowed request that is not sampled: one dict lookup, one float compare
and, only when debug is on, the line itself.
"""

from __future__ import annotations

import logging
import random as _random
from collections.abc import Callable, Iterable

from authsvc.authz import (
    DEFAULT_LOCATIONS,
    STATUS,
    CredentialLocation,
    Decision,
    Reason,
    RequestView,
)
from authsvc.keymodel import KeyRing
from authsvc.observability._redact import Redactor
from authsvc.observability._throttle import DenialThrottle, Suppressed

__all__ = ["DECISION_LOGGER", "DecisionLog", "Sampler"]

DECISION_LOGGER = "authsvc.decisions"


def _level(reason: Reason) -> int:
    status = STATUS[reason]
    if reason is Reason.DRY_RUN:
        return logging.INFO  # a denial dry-run let through: logged like the denial it was
    if status == 200:
        return logging.DEBUG  # allowed (and probes): debug unless sampled
    if status >= 500:
        return logging.WARNING if status == 503 else logging.ERROR
    return logging.INFO


_LEVEL = {reason: _level(reason) for reason in Reason}


class Sampler:
    """Says yes for a fraction ``rate`` of calls. ``random`` is injectable for tests."""

    __slots__ = ("_random", "rate")

    def __init__(self, rate: float = 0.0, random: Callable[[], float] = _random.random) -> None:
        if not 0.0 <= rate <= 1.0:  # also refuses NaN
            raise ValueError(f"decision log sample rate {rate!r} must be between 0 and 1")
        self.rate = rate
        self._random = random

    def __call__(self) -> bool:
        if self.rate <= 0.0:
            return False
        return self.rate >= 1.0 or self._random() < self.rate


class DecisionLog:
    """Writes decision lines to the ``authsvc.decisions`` logger (or ``logger``)."""

    __slots__ = ("_detail_cache", "_log", "_redact", "_ring", "_sample", "throttle")

    def __init__(
        self,
        *,
        locations: Iterable[CredentialLocation] = DEFAULT_LOCATIONS,
        sample_rate: float = 0.0,
        random: Callable[[], float] = _random.random,
        ring: Callable[[], KeyRing | None] = lambda: None,
        logger: logging.Logger | None = None,
        throttle: DenialThrottle | None = None,
    ) -> None:
        self._log = logger if logger is not None else logging.getLogger(DECISION_LOGGER)
        # Every location's name is redacted as a query parameter, headers included: an app
        # behind Envoy may read ?x-api-key= even though authsvc does not.
        self._redact = Redactor((loc.name for loc in locations), ring)
        self._ring = ring
        # Decision messages come from a small set (one per reason and key name): their
        # redaction is cached per ring snapshot. Request-derived fields are never cached.
        self._detail_cache: tuple[KeyRing | None, dict[str, str]] = (None, {})
        self._sample = Sampler(sample_rate, random)
        # Denials are attacker-driven: the first few per (reason, route) and interval are
        # written, the rest summed up in one line (see _throttle).
        self.throttle = throttle if throttle is not None else DenialThrottle(self._suppressed)

    def record(self, view: RequestView, decision: Decision, seconds: float) -> None:
        """Log one decision at the level its reason calls for (hot path: see module doc)."""
        level = _LEVEL[decision.reason]
        if level == logging.DEBUG and decision.reason is not Reason.PUBLIC_PATH and self._sample():
            level = logging.INFO  # a sampled allowed request; probes are never sampled
        if self._log.isEnabledFor(level):
            if not decision.allowed and not self.throttle.admit(decision.reason.value, view.target):
                return
            self._log.log(level, "decision", extra=self.fields(view, decision, seconds))

    def record_failure(
        self,
        reason: Reason,
        error: str,
        *,
        view: RequestView | None = None,
        request_id: str = "",
        source: str = "",
        seconds: float | None = None,
    ) -> None:
        """Log a check the adapter answered without ``decide()`` (``error``: a type name)."""
        level = _LEVEL[reason]
        if not self._log.isEnabledFor(level):
            return
        if not self.throttle.admit(reason.value, view.target if view else ""):
            return
        text = self._redact.text
        fields: dict[str, object] = {
            "decision": "deny",
            "status": STATUS[reason],
            "reason": reason.value,
            "method": text(view.method, 32) if view else None,
            "path": self._redact.target(view.target) if view else None,
            "request_id": text(view.request_id if view else request_id, 128),
            "source": text(view.source if view else source, 256),
            "duration_ms": _ms(seconds),
            "detail": text(error, 256),
        }
        self._log.log(level, "decision", extra=fields)

    def _suppressed(self, entries: list[Suppressed]) -> None:
        """One line per (reason, route) whose denials were not all written (throttle)."""
        for entry in entries:
            reason = Reason(entry.reason)
            self._log.log(
                _LEVEL[reason],
                f"{entry.count} more denial(s) like this were not logged",
                extra={
                    "event": "decisions_suppressed",
                    "decision": "deny",
                    "status": STATUS[reason],
                    "reason": reason.value,
                    "route": self._redact.target(entry.route, 256),
                    "suppressed": entry.count,
                    "interval_s": entry.seconds,
                },
            )

    def fields(self, view: RequestView, decision: Decision, seconds: float) -> dict[str, object]:
        """The structured fields of one decision line, redacted and escaped."""
        text = self._redact.text
        return {
            "decision": "allow" if decision.allowed else "deny",
            "status": decision.status,
            "reason": decision.reason.value,
            "method": text(view.method, 32),
            "path": self._redact.target(view.target),
            "request_id": text(view.request_id, 128),
            "source": text(view.source, 256),
            "credential_location": _opt(text, decision.credential_location, 64),
            "key_name": _opt(text, decision.key_name, 128),
            "key_fingerprint": _opt(text, decision.key_fingerprint, 64),
            "duration_ms": _ms(seconds),
            "detail": self._detail(decision.message),
            **(
                {}
                if decision.would_deny is None
                else {
                    "would_deny": decision.would_deny.value,
                    "would_status": STATUS[decision.would_deny],
                }
            ),
        }

    def _detail(self, message: str) -> str:
        ring = self._ring()
        owner, cache = self._detail_cache
        if owner is not ring or len(cache) > 512:
            cache = {}
            self._detail_cache = (ring, cache)
        out = cache.get(message)
        if out is None:
            out = cache[message] = self._redact.text(message, 512)
        return out


def _opt(text: Callable[[str, int], str], value: str | None, limit: int) -> str | None:
    return None if value is None else text(value, limit)


def _ms(seconds: float | None) -> float | None:
    if seconds is None or not seconds >= 0.0:
        return None
    return round(seconds * 1000.0, 3)
