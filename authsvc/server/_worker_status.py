"""The status port of ``authsvc serve --workers N``: served by the supervisor, fed by the workers.

Each worker runs its own status port on an ephemeral loopback port (``127.0.0.1:0``) and
reports it to the supervisor when it is ready. The supervisor serves the configured
``--status-listen`` with:

- ``/livez``   200 while the supervisor runs (it restarts workers itself);
- ``/readyz``  ready iff every worker is running and its own ``/readyz`` is ready (key ring
  loaded, and — in worker 0, the only one that runs it — deep health passing); the reason
  names the worker(s) that are not;
- ``/metrics`` every worker's metrics with a ``worker="<i>"`` label added, plus the
  supervisor's ``authsvc_workers``, ``authsvc_workers_serving`` and
  ``authsvc_worker_restarts_total{worker}``;
- ``/app-health/...`` forwarded by the supervisor itself (it needs no key state).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from authsvc.server._workers import Worker

__all__ = ["WorkerStatus"]

_TIMEOUT = 2.0
_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _get(status: str, path: str, accept: str = "") -> tuple[int, bytes]:
    host, _, port = status.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=_TIMEOUT)
    try:
        conn.request("GET", path, headers={"accept": accept} if accept else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class WorkerStatus:
    """``readiness()`` and ``metrics()`` callables for ``StatusServer`` over live workers."""

    def __init__(
        self, workers: Sequence[Worker], extra: Callable[[], list[Metric]] | None = None
    ) -> None:
        self._workers = workers
        self._extra = extra  # the supervisor's own metrics (the bypass detector's gauge)
        self._notes: list[str] = []  # the workers' /readyz notes, as the last readiness saw them

    def readiness(self) -> tuple[bool, str]:
        reasons: list[str] = []
        notes: list[str] = []
        for worker in self._workers:
            status = worker.status if worker.running else None
            if status is None:
                reasons.append(f"worker {worker.index} is not running (restarting)")
                continue
            try:
                code, body = _get(status, "/readyz", "application/json")
                doc = json.loads(body)
                reason = str(doc.get("reason", "")) if code != 200 else ""
                found = doc.get("notes", [])
                if isinstance(found, list):
                    notes += [f"worker {worker.index}: {str(n)[:500]}" for n in found[:10]]
            except (OSError, http.client.HTTPException, ValueError) as exc:
                code, reason = 0, f"its status port does not answer ({type(exc).__name__})"
            if code != 200:
                reasons.append(f"worker {worker.index}: {reason or 'not ready'}")
        self._notes = notes
        return (not reasons, "; ".join(reasons))

    def notes(self, own: Sequence[str] = ()) -> list[str]:
        """The supervisor's own ``/readyz`` notes, then its workers' (e.g. a stale virtual-key
        store) as the last ``readiness()`` saw them (``/readyz`` asks it first), bounded; a
        worker's note the supervisor shows itself (``own``, e.g. dry-run) is not repeated."""
        return [*own, *(n for n in self._notes if n.partition(": ")[2] not in own)]

    def metrics(self) -> tuple[bytes, str]:
        families: dict[str, Metric] = {}
        for worker in self._workers:
            status = worker.status if worker.running else None
            if status is None:
                continue
            try:
                code, body = _get(status, "/metrics")
            except (OSError, http.client.HTTPException):
                continue
            if code == 200:
                _merge(families, body.decode("utf-8", "replace"), str(worker.index))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed([*families.values(), *self._own()]))
        return generate_latest(registry), _CONTENT_TYPE

    def _own(self) -> list[Metric]:
        configured = GaugeMetricFamily("authsvc_workers", "Worker processes configured.")
        configured.add_metric([], len(self._workers))
        serving = GaugeMetricFamily(
            "authsvc_workers_serving", "Worker processes running and past their start-up."
        )
        serving.add_metric([], sum(1 for w in self._workers if w.running))
        restarts = CounterMetricFamily(
            "authsvc_worker_restarts",
            "Times the supervisor restarted a worker that had died.",
            labels=["worker"],
        )
        for worker in self._workers:
            restarts.add_metric([str(worker.index)], worker.restarts)
        return [configured, serving, restarts, *(self._extra() if self._extra else [])]


def _merge(families: dict[str, Metric], text: str, worker: str) -> None:
    """Add ``text``'s families to ``families``, each sample labelled ``worker=<worker>``."""
    for family in text_string_to_metric_families(text):
        merged = families.get(family.name)
        if merged is None:
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            families[family.name] = merged
        for s in family.samples:
            labels = {**s.labels, "worker": worker}
            merged.samples.append(Sample(s.name, labels, s.value, s.timestamp, s.exemplar))


class _Fixed:
    """A collector yielding a fixed list of families (one scrape's worth)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families
