"""``serve --workers N``: the supervisor's ``/readyz`` relays its workers' notes (a stale
virtual-key store in a worker), stays ready, and does not repeat its own notes (dry-run).
Real status servers on loopback, as the workers run them."""

from __future__ import annotations

import json

from authsvc.health import StatusServer
from authsvc.server._cli import DRY_RUN_NOTE
from authsvc.server._worker_status import WorkerStatus
from authsvc.server._workers import Worker

STALE = "virtual keys: stale since 2026-12-05T12:00:00Z (database unavailable (OperationalError))"


class _Alive:
    returncode = None
    pid = 1


def _worker(index: int, notes: list[str]) -> tuple[Worker, StatusServer]:
    server = StatusServer("127.0.0.1:0", readiness=lambda: (True, ""), notes=lambda: notes)
    server.start()
    host, port = server.address
    worker = Worker(index, status=f"{host}:{port}")
    worker.proc = _Alive()  # type: ignore[assignment]
    return worker, server


def test_the_supervisor_relays_a_workers_stale_note() -> None:
    w0, s0 = _worker(0, [DRY_RUN_NOTE])
    w1, s1 = _worker(1, [DRY_RUN_NOTE, STALE])
    aggregate = WorkerStatus([w0, w1])
    top = StatusServer(
        "127.0.0.1:0",
        readiness=aggregate.readiness,
        notes=lambda: aggregate.notes([DRY_RUN_NOTE]),  # as _supervise wires it
    )
    try:
        status, _, body, _ = top.route("/readyz", "application/json")
        doc = json.loads(body)
        assert status == 200 and doc["ready"] is True
        assert doc["notes"] == [DRY_RUN_NOTE, f"worker 1: {STALE}"]
        status, _, text, _ = top.route("/readyz")
        assert text.decode().splitlines() == ["ready", DRY_RUN_NOTE, f"worker 1: {STALE}"]
    finally:
        s0.stop()
        s1.stop()
