"""Issue 20 item 10: a client cannot decide how much authsvc logs.

The attack on the code before the fix: every denial wrote one INFO line, so 3.5k wrong-key
requests/s through Envoy wrote 18.6 MiB of log in 15 s. Now, per ``(reason, route)``, the first
``burst`` (5) denials of each 10 s interval are written in full and the rest are summed up in one
``decisions_suppressed`` line when the interval ends. The flood is replayed here through the real
``decide()``, ``Observer`` and JSON formatter, with a clock stepped at 3,500 requests/s.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from authsvc.authz import Policy, Reason, RequestView, decide
from authsvc.keys import KeyStore
from authsvc.observability import DECISION_LOGGER, JsonFormatter, Observer
from authsvc.observability._throttle import OTHER, DenialThrottle, route_of
from tests._keys import MASTER, WRONG
from tests._resolution_stub import resolution

POLICY = Policy.build()
RATE = 3500  # requests/s, as in the red-team run
SECONDS = 15


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(DECISION_LOGGER)
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def observer(clock: Clock, *, sample_rate: float = 0.0) -> Observer:
    obs = Observer(keys=KeyStore(resolution(MASTER).ring), sample_rate=sample_rate)
    obs.decision_log.throttle = DenialThrottle(
        obs.decision_log._suppressed, clock=clock, timer=False
    )
    return obs


def flood(obs: Observer, clock: Clock, targets: list[str], key: str = WRONG) -> int:
    """RATE requests/s for SECONDS seconds, cycling over ``targets``; returns how many."""
    ring = obs._ring()
    assert ring is not None
    total = RATE * SECONDS
    for i in range(total):
        clock.now += 1 / RATE
        view = RequestView("GET", targets[i % len(targets)], {"x-api-key": key}, f"req-{i}")
        obs.on_decision(view, decide(view, POLICY, ring, 0.0), 0.0001)
    clock.now += 10  # the last interval ends; the next denial (or the timer) reports it
    obs.decision_log.throttle.flush()
    return total


def records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_wrong_key_flood_writes_a_bounded_log(stream: io.StringIO) -> None:
    clock = Clock()
    obs = observer(clock)
    total = flood(obs, clock, ["/v1/chat/completions"])
    size = len(stream.getvalue().encode())
    lines = records(stream)
    # Measured: 12 lines, ~5 KB for 52,500 denials (was one ~400-byte line each: ~20 MiB).
    assert size < 16_384 and len(lines) <= 2 * 6, (size, len(lines))
    written = [r for r in lines if r["message"] == "decision"]
    summaries = [r for r in lines if r.get("event") == "decisions_suppressed"]
    assert len(written) == 10  # the first 5 of each of the two 10 s intervals, in full
    first = written[0]
    assert (first["reason"], first["status"], first["path"], first["request_id"]) == (
        "unknown_key",
        401,
        "/v1/chat/completions",
        "req-0",
    )
    assert all(r["reason"] == "unknown_key" for r in summaries)
    assert summaries[0]["route"] == "/v1/chat/completions" and summaries[0]["level"] == "info"
    assert len(written) + sum(int(str(r["suppressed"])) for r in summaries) == total
    assert WRONG not in stream.getvalue()
    counted = obs.prometheus.render()[0].decode()
    assert f'authsvc_checks_total{{decision="deny",reason="unknown_key"}} {total}.0' in counted


def test_cycling_paths_does_not_buy_more_lines(stream: io.StringIO) -> None:
    clock = Clock()
    obs = observer(clock)
    total = flood(obs, clock, [f"/v1/x{i}/y?key={WRONG}" for i in range(5000)])
    lines = records(stream)
    throttle = obs.decision_log.throttle
    per_interval = (throttle.max_routes + 1) * (throttle.burst + 1)
    assert len(lines) <= 2 * per_interval, len(lines)
    assert len(stream.getvalue().encode()) < 200_000
    summaries = [r for r in lines if r.get("event") == "decisions_suppressed"]
    assert any(r["route"] == OTHER for r in summaries)
    written = sum(1 for r in lines if r["message"] == "decision")
    assert written + sum(int(str(r["suppressed"])) for r in summaries) == total
    assert WRONG not in stream.getvalue()


def test_legitimate_lines_are_untouched(stream: io.StringIO) -> None:
    """Allowed (sampled) requests are never throttled; each reason and route keeps its own
    first lines, so a new kind of denial is always seen."""
    clock = Clock()
    obs = observer(clock, sample_rate=1.0)
    ring = obs._ring()
    assert ring is not None
    for i in range(50):
        view = RequestView("GET", "/v1/models", {"x-api-key": MASTER}, f"ok-{i}")
        obs.on_decision(view, decide(view, POLICY, ring, 0.0), 0.0001)
    for i in range(20):
        for target, headers in (("/v1/models", {}), ("/v1/chat/completions", {"x-api-key": WRONG})):
            view = RequestView("GET", target, headers, f"deny-{i}")
            obs.on_decision(view, decide(view, POLICY, ring, 0.0), 0.0001)
    lines = records(stream)
    assert sum(1 for r in lines if r.get("reason") == "key_valid") == 50
    assert sum(1 for r in lines if r.get("reason") == "missing_credential") == 5
    assert sum(1 for r in lines if r.get("reason") == "unknown_key") == 5


def test_the_summary_comes_when_the_flood_stops(stream: io.StringIO) -> None:
    """A timer writes the interval's summary even when no request follows."""
    obs = Observer(keys=KeyStore(resolution(MASTER).ring))
    obs.decision_log.throttle = DenialThrottle(obs.decision_log._suppressed, interval=0.3)
    ring = obs._ring()
    assert ring is not None
    for i in range(40):
        view = RequestView("POST", "/v1/embeddings", {"x-api-key": WRONG}, f"r{i}")
        obs.on_decision(view, decide(view, POLICY, ring, 0.0), 0.0001)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        summaries = [r for r in records(stream) if r.get("event") == "decisions_suppressed"]
        if summaries:
            break
        time.sleep(0.05)
    assert [(r["route"], r["suppressed"]) for r in summaries] == [("/v1/embeddings", 35)]


def test_route_of() -> None:
    assert route_of("/v1/chat/completions?key=x") == "/v1/chat/completions"
    assert route_of("/a/b/c/d/e") == "/a/b/c"
    assert route_of("") == ""
    assert len(route_of("/" + "x" * 1000)) == 96
    with pytest.raises(ValueError):
        DenialThrottle(lambda _: None, burst=0)
    assert Reason.UNKNOWN_KEY.value == "unknown_key"
