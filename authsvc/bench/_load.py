"""Load generators (``wrk`` for throughput, ``hey`` for a fixed rate) and their output parsers.

The parsers are pure (text in, numbers out) and unit-tested on canned output; the runners only
build the command line and call the tool. The key is passed in a header on the command line of
a short-lived local process and is never printed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

__all__ = [
    "INSTALL_HINT",
    "LoadResult",
    "RateResult",
    "merge_loads",
    "missing_tools",
    "parse_hey",
    "parse_wrk",
    "run_hey",
    "run_wrk",
]

INSTALL_HINT = "install them with: apt-get update && apt-get install -y wrk hey"

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_LAT = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKERR = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One ``wrk`` run. Latencies in milliseconds."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


@dataclass(frozen=True, slots=True)
class RateResult:
    """One fixed-rate ``hey`` run. Latencies in milliseconds."""

    rps: float
    p50_ms: float
    p99_ms: float
    responses: int
    non_2xx: int
    errors: int
    max_ms: float = 0.0  # the slowest request


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(text: str) -> LoadResult:
    """Parse ``wrk --latency`` output. Raises ``ValueError`` naming what is missing."""
    lat = {m.group(1): _ms(m.group(2), m.group(3)) for m in _LAT.finditer(text)}
    total = _TOTAL.search(text)
    rps = _RPS.search(text)
    if total is None or rps is None or "50" not in lat or "99" not in lat:
        raise ValueError("not wrk --latency output (no request total, Requests/sec or 50%/99%)")
    non2xx = _NON2XX.search(text)
    sockerr = _SOCKERR.search(text)
    return LoadResult(
        requests=int(total.group(1)),
        seconds=_ms(total.group(2), total.group(3)) / 1000.0,
        rps=float(rps.group(1)),
        p50_ms=lat["50"],
        p99_ms=lat["99"],
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(g) for g in sockerr.groups()) if sockerr else 0,
    )


_HEY_RPS = re.compile(r"^\s*Requests/sec:\s+([\d.]+)", re.MULTILINE)
_HEY_LAT = re.compile(r"^\s*(50|99)%+ in ([\d.]+) secs", re.MULTILINE)
_HEY_SLOWEST = re.compile(r"^\s*Slowest:\s+([\d.]+) secs", re.MULTILINE)
_HEY_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+) responses", re.MULTILINE)
_HEY_ERRORS = re.compile(r"^Error distribution:\s*\n((?:\s+\[\d+\].*\n?)*)", re.MULTILINE)


def parse_hey(text: str) -> RateResult:
    """Parse ``hey`` output. Raises ``ValueError`` when there is no latency distribution."""
    rps = _HEY_RPS.search(text)
    lat = {m.group(1): float(m.group(2)) * 1000.0 for m in _HEY_LAT.finditer(text)}
    if rps is None or "50" not in lat or "99" not in lat:
        raise ValueError("not hey output with a latency distribution (did every request fail?)")
    statuses = {int(code): int(n) for code, n in _HEY_STATUS.findall(text)}
    errors = 0
    block = _HEY_ERRORS.search(text)
    if block:
        errors = sum(int(n) for n in re.findall(r"\[(\d+)\]", block.group(1)))
    slowest = _HEY_SLOWEST.search(text)
    return RateResult(
        rps=float(rps.group(1)),
        p50_ms=lat["50"],
        p99_ms=lat["99"],
        responses=sum(statuses.values()),
        non_2xx=sum(n for code, n in statuses.items() if not 200 <= code < 300),
        errors=errors,
        max_ms=float(slowest.group(1)) * 1000.0 if slowest else 0.0,
    )


def merge_loads(loads: list[LoadResult]) -> LoadResult:
    """Several runs of one scenario as one: totals for counts and rate, the mean percentiles."""
    if not loads:
        raise ValueError("no runs to merge")
    requests = sum(r.requests for r in loads)
    seconds = sum(r.seconds for r in loads)
    return LoadResult(
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=sum(r.p50_ms for r in loads) / len(loads),
        p99_ms=sum(r.p99_ms for r in loads) / len(loads),
        non_2xx=sum(r.non_2xx for r in loads),
        socket_errors=sum(r.socket_errors for r in loads),
    )


def missing_tools(*names: str) -> list[str]:
    return [name for name in names if shutil.which(name) is None]


def _run(argv: list[str], timeout: float) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout


def run_wrk(
    url: str, header: str, *, seconds: float, connections: int, threads: int = 1
) -> LoadResult:
    """``wrk`` for ``seconds`` (whole seconds, at least 1: wrk's resolution) with
    ``connections`` keep-alive connections."""
    whole = max(1, round(seconds))
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{whole}s", "--latency"]
    argv += ["-H", header, url]
    return parse_wrk(_run(argv, timeout=whole + 30))


def run_hey(url: str, header: str, *, seconds: float, rate: int, clients: int = 2) -> RateResult:
    """``hey`` holding ``rate`` requests/s in total (``clients`` workers at rate/clients each)."""
    per_client = max(1, rate // clients)
    argv = ["hey", "-z", f"{max(1, round(seconds))}s", "-q", str(per_client), "-c", str(clients)]
    argv += ["-H", header, url]
    return parse_hey(_run(argv, timeout=seconds + 30))
