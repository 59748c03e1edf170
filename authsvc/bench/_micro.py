"""Micro-bench of ``decide()``: its cost must not grow with the number of keys in the ring.

The ring holds the master key plus ``n - 1`` extra keys of one shared record (the compact
ring of a key list, issue #14), up to 1,000,000; the request carries the
master key (a hit) or an unknown key (a miss) in ``Authorization: Bearer``, next to the headers
Envoy typically sends. Best-of-5 timing, reported in microseconds per call.
"""

from __future__ import annotations

import os
import secrets
import time
import timeit
from dataclasses import dataclass

from authsvc.authz import Policy, RequestView, decide
from authsvc.keymodel import KeyRecord, KeyRing, RingBuilder, digest, fingerprint

__all__ = ["DecideTiming", "build_ring", "time_decide"]

SIZES = (1, 1_000, 100_000, 1_000_000)


@dataclass(frozen=True, slots=True)
class DecideTiming:
    keys: int
    hit_us: float
    miss_us: float


def build_ring(size: int, master_key: str) -> KeyRing:
    """A ready ring: the master key plus ``size - 1`` random digests under one shared record."""
    master = KeyRecord("master", "bench", fingerprint(master_key), digest(master_key))
    builder = RingBuilder()
    builder.add(master)
    builder.add_shared(KeyRecord("bulk", "bench", "", b""), os.urandom(32 * (size - 1)))
    return builder.build(master=master)


def _view(key: str) -> RequestView:
    headers = {
        ":authority": "127.0.0.1:10000",
        ":method": "GET",
        ":path": "/v1/models",
        ":scheme": "http",
        "user-agent": "wrk",
        "accept": "*/*",
        "authorization": f"Bearer {key}",
        "x-forwarded-proto": "http",
        "x-request-id": "2f0c3c5e-6d2b-4c1e-9d9c-1b1f5f7e8a90",
        "x-envoy-expected-rq-timeout-ms": "600000",
    }
    return RequestView("GET", "/v1/models", headers, request_id="bench", source="127.0.0.1:5555")


def _per_call_us(func: object, number: int) -> float:
    timer = timeit.Timer(func)  # type: ignore[arg-type]
    timer.timeit(number)  # warm-up: caches, branch predictors, the first allocations
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


def time_decide(sizes: tuple[int, ...] = SIZES, number: int = 20_000) -> list[DecideTiming]:
    key = "sk-" + secrets.token_urlsafe(24)
    hit, miss = _view(key), _view("sk-" + secrets.token_urlsafe(24))
    policy = Policy.build()
    now = time.time()
    out = []
    for size in sizes:
        ring = build_ring(size, key)
        assert (
            decide(hit, policy, ring, now).allowed and not decide(miss, policy, ring, now).allowed
        )
        out.append(
            DecideTiming(
                keys=size,
                hit_us=_per_call_us(lambda ring=ring: decide(hit, policy, ring, now), number),
                miss_us=_per_call_us(lambda ring=ring: decide(miss, policy, ring, now), number),
            )
        )
    return out
