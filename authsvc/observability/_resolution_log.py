"""Start-up and reload summaries of the key resolution, as structured log lines (no keys).

Logger ``authsvc.resolution``. The chain table (``resolution.report()``, the same shape as
``authsvc explain --json``) goes on the line as a ``chain`` field. It should hold no key by
contract; every string in it still goes through the redactor (a value that is a key in the
ring, or looks like one, becomes ``[REDACTED]``), because a log line cannot be taken back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from authsvc.keymodel import KeyRing
from authsvc.observability._contracts import ResolutionLike
from authsvc.observability._redact import Redactor

__all__ = ["RESOLUTION_LOGGER", "log_reload_error", "log_resolution", "scrub"]

RESOLUTION_LOGGER = "authsvc.resolution"
_MAX_DEPTH = 8


def scrub(value: object, redactor: Redactor, depth: int = 0) -> object:
    """A JSON-safe copy of ``value`` with every string redacted and escaped."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= _MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {redactor.text(str(k), 128): scrub(v, redactor, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v, redactor, depth + 1) for v in value]
    return redactor.text(str(value), 1024)


def log_resolution(
    resolution: ResolutionLike, *, phase: str = "startup", logger: logging.Logger | None = None
) -> None:
    """One line summarising a resolution: winner, keys loaded, warnings and the chain table.

    Level: INFO when a master key resolved cleanly, WARNING with warnings, ERROR when no
    master key resolved (authsvc fails closed: protected requests get 503).
    """
    log = logger if logger is not None else logging.getLogger(RESOLUTION_LOGGER)
    ring = resolution.ring
    redactor = Redactor(ring=lambda: ring)
    winner = resolution.winner if resolution.resolved else None
    source = redactor.text(str(winner.source), 200) if winner is not None else None
    fingerprint = redactor.text(str(winner.fingerprint), 64) if winner is not None else None
    warnings = [redactor.text(str(w), 512) for w in resolution.warnings]
    try:
        chain = scrub(resolution.report(), redactor)
    except Exception as exc:  # the summary must not take start-up or a reload down
        chain = f"report unavailable: {type(exc).__name__}"
    if winner is not None:
        level = logging.WARNING if warnings else logging.INFO
        message = f"master key resolved from {source} (fingerprint {fingerprint})"
    else:
        level = logging.ERROR
        message = "no usable master key resolved: failing closed (503 on protected paths)"
    if warnings:
        message += f"; {len(warnings)} warning(s)"
    log.log(
        level,
        message,
        extra={
            "event": "key_resolution",
            "phase": phase,
            "resolved": winner is not None,
            "source": source,
            "fingerprint": fingerprint,
            "keys_loaded": len(ring),
            "warnings": warnings,
            "chain": chain,
        },
    )


def log_reload_error(
    message: str, ring: KeyRing | None = None, *, logger: logging.Logger | None = None
) -> None:
    """A failed reload: say why, and that the last good keys stay active."""
    log = logger if logger is not None else logging.getLogger(RESOLUTION_LOGGER)
    error = Redactor(ring=lambda: ring).text(str(message), 1024)
    log.warning(
        "key reload failed: %s",
        error,
        extra={"event": "key_reload", "result": "failure", "error": error},
    )
