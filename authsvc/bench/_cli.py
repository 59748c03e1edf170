"""``python -m authsvc.bench`` (``make bench``): authsvc side by side with Envoy's native filter.

One run, one machine, the same Envoy bootstrap with only the auth step swapped (see
``_envoy``): no auth, native ``api_key_auth``, authsvc over TCP, over a Unix socket, and with
``--workers``. Each scenario gets a warm-up, then a fixed-duration ``wrk`` run while CPU time of
authsvc and Envoy is sampled from ``/proc``. Then: latency at a fixed 500 req/s (``hey``),
memory with 10,000 extra hashed keys, and a ``decide()`` micro-bench. The report ends with the
ratio line; the same numbers go to a JSON file.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from authsvc.bench._load import INSTALL_HINT, missing_tools, run_hey, run_wrk
from authsvc.bench._micro import time_decide
from authsvc.bench._procstat import cpu_seconds, peak_rss_mb, tree
from authsvc.bench._report import BenchResults, Scenario, format_report, to_json
from authsvc.bench._stack import Authsvc, Bench, Envoy, free_port

__all__ = ["main"]

RATE_SCENARIOS = ("no-auth", "authsvc-unix")
EXTRA_KEYS = 10_000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m authsvc.bench",
        description="Throughput and latency of authsvc through Envoy, side by side with no auth "
        "and Envoy's native api_key_auth filter (needs wrk; hey for the fixed-rate run).",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per scenario")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: 2 cores)")
    p.add_argument("--workers", type=int, default=2, help="workers of the --workers scenario")
    p.add_argument("--rate", type=int, default=500, help="requests/s of the fixed-rate run")
    p.add_argument("--rate-duration", type=float, default=10.0, help="seconds of that run")
    p.add_argument(
        "--only", metavar="NAMES", help="comma-separated scenario names to run (default: all)"
    )
    p.add_argument(
        "--no-extras", action="store_true", help="skip fixed-rate, 10k-key and decide() runs"
    )
    p.add_argument("--json", default=".bench/results.json", help="where to write the results")
    p.add_argument("--logs", metavar="DIR", help="keep the children's logs in DIR")
    return p


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Runner:
    def __init__(self, args: argparse.Namespace, bench: Bench, results: BenchResults) -> None:
        self.args = args
        self.bench = bench
        self.results = results
        self.rate_ok = not missing_tools("hey") and not args.no_extras

    def _measure(
        self, name: str, kind: str, envoy: Envoy, authsvc: Authsvc | None, workers: int
    ) -> Scenario:
        a, b = self.args, self.bench
        if a.warmup > 0:
            run_wrk(envoy.url, b.header, seconds=a.warmup, connections=a.connections)
        pids = tree(authsvc.pid) if authsvc is not None else []
        stats = ("http.ingress.ext_authz.ok", "http.ingress.ext_authz.denied")
        checks0 = sum(envoy.counter(s) for s in stats)
        cpu0, envoy0 = cpu_seconds(pids), cpu_seconds([envoy.child.pid])
        load = run_wrk(
            envoy.url, b.header, seconds=a.duration, connections=a.connections, threads=a.threads
        )
        cpu1, envoy1 = cpu_seconds(pids), cpu_seconds([envoy.child.pid])
        checks = sum(envoy.counter(s) for s in stats) - checks0
        scenario = Scenario(
            name=name,
            kind=kind,
            load=load,
            workers=workers,
            checks=checks,
            authsvc_cpu_us=(cpu1 - cpu0) / checks * 1e6 if authsvc and checks else None,
            envoy_cpu_us=(envoy1 - envoy0) / max(load.requests, 1) * 1e6,
            peak_rss_mb=max(peak_rss_mb(p) for p in pids) if pids else None,
            start_to_serving_s=authsvc.start_to_serving if authsvc else None,
        )
        _say(
            f"  {name}: {load.rps:.0f} req/s, p50 {load.p50_ms:.2f} ms, "
            f"non-2xx {load.non_2xx + load.socket_errors}"
        )
        if self.rate_ok and name in RATE_SCENARIOS:
            self.results.rate[name] = run_hey(
                envoy.url, b.header, seconds=a.rate_duration, rate=a.rate
            )
            _say(f"  {name} at {a.rate} req/s: p50 {self.results.rate[name].p50_ms:.2f} ms")
        return scenario

    def envoy_only(self, name: str, variant: str) -> Scenario:
        envoy = self.bench.envoy(name, variant)
        try:
            return self._measure(name, variant, envoy, None, 0)
        finally:
            self.bench.stop(envoy.child)

    def with_authsvc(self, name: str, listen: str, workers: int = 1) -> Scenario:
        authsvc = self.bench.authsvc(name + "-authsvc", listen, workers=workers)
        envoy = self.bench.envoy(name, "authz", authsvc.addresses)
        try:
            return self._measure(name, "authsvc", envoy, authsvc, workers)
        finally:
            self.bench.stop(envoy.child, authsvc.child)

    def many_keys(self, baseline_rss: float | None) -> dict[str, float]:
        """Start with EXTRA_KEYS sha256 keys in the config, serve a short load, read VmHWM."""
        config = self.bench.dir / "many-keys.yaml"
        lines = ["keys:"]
        for i in range(EXTRA_KEYS):
            lines.append(f"  - name: k{i}")
            lines.append(f"    sha256: {i:064x}")
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        authsvc = self.bench.authsvc(
            "many-keys-authsvc", self.bench.socket("many.sock"), config=config
        )
        envoy = self.bench.envoy("many-keys", "authz", authsvc.addresses)
        try:
            run_wrk(envoy.url, self.bench.header, seconds=3, connections=self.args.connections)
            out = {
                "extra_keys": float(EXTRA_KEYS),
                "start_to_serving_s": authsvc.start_to_serving,
                "peak_rss_mb": peak_rss_mb(authsvc.pid),
            }
        finally:
            self.bench.stop(envoy.child, authsvc.child)
        out["baseline_rss_mb"] = baseline_rss or 0.0
        return out


def _scenarios(runner: _Runner, workers: int) -> list[tuple[str, Callable[[], Scenario]]]:
    b = runner.bench
    return [
        ("no-auth", lambda: runner.envoy_only("no-auth", "none")),
        ("native", lambda: runner.envoy_only("native", "native")),
        ("authsvc-tcp", lambda: runner.with_authsvc("authsvc-tcp", f"127.0.0.1:{free_port()}")),
        ("authsvc-unix", lambda: runner.with_authsvc("authsvc-unix", b.socket())),
        (
            f"authsvc-unix-w{workers}",
            lambda: runner.with_authsvc(f"authsvc-unix-w{workers}", b.socket("w.sock"), workers),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    missing = missing_tools("wrk")
    if missing:
        print(f"authsvc bench: {', '.join(missing)} not found; {INSTALL_HINT}", file=sys.stderr)
        return 2
    if missing_tools("hey") and not args.no_extras:
        _say(f"hey not found: the fixed-rate run is skipped ({INSTALL_HINT})")
    started = time.monotonic()
    results = BenchResults(
        settings={
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "wrk_connections": args.connections,
            "wrk_threads": args.threads,
            "envoy_concurrency": 1,
            "workers": args.workers,
            "rate": args.rate,
        }
    )
    only = set(args.only.split(",")) if args.only else None
    with Bench(keep_logs=Path(args.logs) if args.logs else None) as bench:
        runner = _Runner(args, bench, results)
        for name, run in _scenarios(runner, args.workers):
            if only is None or name in only:
                _say(f"{name} ...")
                results.scenarios.append(run())
        if not args.no_extras:
            _say("10k extra keys ...")
            unix = [s for s in results.scenarios if s.name == "authsvc-unix"]
            results.rss_10k = runner.many_keys(unix[0].peak_rss_mb if unix else None)
            _say("decide() micro-bench ...")
            results.decide = time_decide()
    results.settings["wall_s"] = round(time.monotonic() - started, 1)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_json(results), encoding="utf-8")
    _say(f"results written to {out} ({results.settings['wall_s']} s)")
    print(format_report(results), flush=True)
    return 0
