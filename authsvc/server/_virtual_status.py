"""LiteLLM virtual-key store status as Prometheus metrics (``authsvc.sources.stores()``,
counters only: no key, no hash, no DSN) and as ``/readyz`` notes (the served ring's store).

Readiness policy: a stale store (database unreachable since the last good refresh) keeps
serving the last snapshot, so ``/readyz`` stays READY — known keys still work, unknown keys
are refused, never allowed; taking every sidecar out of its Service because LiteLLM's shared
database blipped would turn a partial outage (new keys wait) into a total one. The note
``virtual keys: stale since <time> (<reason>)`` says so on ``/readyz`` (JSON ``notes``),
``authsvc_virtual_keys_stale`` is 1 and ``authsvc_virtual_keys_refresh_lag_seconds`` grows
(alert on those).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from authsvc.keys import KeyRing
from authsvc.sources import Lookup, StoreStatus, stores

__all__ = ["VirtualKeyCollector", "stale_note", "virtual_key_notes"]


def _utc(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def stale_note(status: StoreStatus) -> str | None:
    """``virtual keys: stale since <time> (<reason>); ...`` or ``None`` when fresh. The
    reason is the store's (a driver error's type or a schema problem): no DSN, no key."""
    if status.stale_since is None:
        return None
    note = f"virtual keys: stale since {_utc(status.stale_since)} ({status.error})"
    if status.last_refresh is None:
        return note + "; no snapshot yet: only keys from other sources work"
    return (
        f"{note}; known keys still work ({status.keys} in the snapshot of "
        f"{_utc(status.last_refresh)}), unknown keys are refused"
    )


def virtual_key_notes(ring: KeyRing) -> list[str]:
    """The ``/readyz`` notes of the served ring's virtual-key store (none when fresh or when
    no ``virtual_keys:`` source is configured). They never change readiness."""
    lookup = ring.unknown_lookup
    if not isinstance(lookup, Lookup):
        return []
    note = stale_note(lookup.store.status)
    return [note] if note is not None else []


class VirtualKeyCollector:
    """A custom collector: one sample per store, labelled by its index (never the DSN)."""

    def collect(self) -> Iterable[Metric]:
        now = time.time()
        gauges = {
            "keys": ("authsvc_virtual_keys_loaded", "Virtual keys in the snapshot of LiteLLM's database."),
            "deprecated": ("authsvc_virtual_keys_rotated", "Rotated-away keys still valid (revoke_at in the future)."),
            "lag": ("authsvc_virtual_keys_refresh_lag_seconds", "Seconds since the last successful refresh."),
            "stale": ("authsvc_virtual_keys_stale", "1 while the database cannot be read (the last snapshot is served)."),
        }  # fmt: skip
        counters = {
            "queries": ("authsvc_virtual_keys_queries", "Queries sent to LiteLLM's database."),
            "lookups": ("authsvc_virtual_keys_lookups", "Unknown-key lookups sent to the database."),
            "lookup_hits": ("authsvc_virtual_keys_lookup_hits", "Lookups that found a key."),
            "cap_hits": ("authsvc_virtual_keys_lookup_cap_hits", "Unknown keys refused without a lookup (rate cap)."),
            "lookup_errors": ("authsvc_virtual_keys_lookup_errors", "Lookups refused: database down or slow."),
            "refreshes": ("authsvc_virtual_keys_refreshes", "Successful refreshes of the snapshot."),
        }  # fmt: skip
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for name, (metric, help_text) in gauges.items():
            families[name] = GaugeMetricFamily(metric, help_text, labels=["store"])
        for name, (metric, help_text) in counters.items():
            families[name] = CounterMetricFamily(metric, help_text, labels=["store"])
        for i, store in enumerate(stores()):
            s, label = store.status, [str(i)]
            lag = s.lag(now)
            families["keys"].add_metric(label, s.keys)
            families["deprecated"].add_metric(label, s.deprecated)
            families["lag"].add_metric(label, lag if lag is not None else float("nan"))
            families["stale"].add_metric(label, 1 if s.stale_since is not None else 0)
            for name in counters:
                families[name].add_metric(label, getattr(s, name))
        if stores():
            yield from families.values()
