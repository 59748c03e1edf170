"""Observability: Prometheus metrics, decision logs without secrets, structured process logs.

Wiring (``authsvc serve``)::

    configure_logging(level, json=True)                       # once, first thing
    observer = Observer(locations=policy.locations, sample_rate=rate, keys=store)
    observer.on_startup(resolution)                           # start-up summary + key gauges
    server(..., on_decision=observer.on_decision)             # hot path
    Reloader(..., on_change=observer.on_change, on_error=observer.on_error)
    DeepHealth(..., on_result=observer.on_result)
    StatusServer(..., metrics=observer.metrics)               # /metrics

See docs/observability.md for the metric names, log fields and redaction rules.
"""

from authsvc.observability._contracts import ReloadResult, ResolutionLike, WinnerLike
from authsvc.observability._decision_log import DECISION_LOGGER, DecisionLog, Sampler
from authsvc.observability._logging import (
    BackgroundHandler,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    rfc3339,
)
from authsvc.observability._metrics import LATENCY_BUCKETS, Metrics
from authsvc.observability._observer import Observer
from authsvc.observability._redact import REDACTED, Redactor, escape, looks_like_key
from authsvc.observability._resolution_log import (
    RESOLUTION_LOGGER,
    log_reload_error,
    log_resolution,
)

__all__ = [
    "DECISION_LOGGER",
    "LATENCY_BUCKETS",
    "REDACTED",
    "RESOLUTION_LOGGER",
    "BackgroundHandler",
    "DecisionLog",
    "JsonFormatter",
    "Metrics",
    "Observer",
    "Redactor",
    "ReloadResult",
    "ResolutionLike",
    "Sampler",
    "TextFormatter",
    "WinnerLike",
    "configure_logging",
    "escape",
    "log_reload_error",
    "log_resolution",
    "looks_like_key",
    "rfc3339",
]
