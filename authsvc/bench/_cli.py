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
from dataclasses import dataclass, field
from pathlib import Path

from authsvc._errors import ConfigError
from authsvc.bench._load import (
    INSTALL_HINT,
    LoadResult,
    merge_loads,
    missing_tools,
    run_hey,
    run_wrk,
)
from authsvc.bench._micro import time_decide
from authsvc.bench._procstat import cpu_seconds, peak_rss_mb, tree
from authsvc.bench._reload import run_reload
from authsvc.bench._report import BenchResults, Scenario, format_report, to_json
from authsvc.bench._stack import Authsvc, Bench, Envoy, free_port
from authsvc.bench._vkeys import run_vkeys
from authsvc.envoy import envoy_binary

__all__ = ["main"]

RATE_SCENARIOS = ("no-auth", "authsvc-unix")
EXTRA_KEYS = 10_000
IDLE_SECONDS = 4.0  # the default reload poll is 2 s


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m authsvc.bench",
        description="Throughput and latency of authsvc through Envoy, side by side with no auth "
        "and Envoy's native api_key_auth filter (needs wrk; hey for the fixed-rate run).",
    )
    p.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per scenario (in total)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="split each scenario's measured time into this many runs, interleaved across "
        "scenarios, so a noisy moment on the machine does not fall on one scenario only",
    )
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
    p.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra 'authsvc serve' argument for every authsvc (repeatable), e.g. "
        "--serve-arg=--no-fast-path to measure the plain grpc.aio transport",
    )
    p.add_argument(
        "--reload-only",
        action="store_true",
        help="run only the many-keys quiet-vs-reloading scenario (issue 14)",
    )
    p.add_argument("--no-reload", action="store_true", help="skip that scenario")
    p.add_argument("--reload-keys", type=int, default=100_000, help="extra keys (default 100000)")
    p.add_argument("--reload-files", type=int, default=4, help="key files holding them")
    p.add_argument("--reload-seconds", type=float, default=10.0, help="seconds per phase")
    p.add_argument(
        "--reload-interval", type=float, default=2.0, help="rewrite every key file this often"
    )
    p.add_argument(
        "--reload-rotate", type=int, default=250, help="keys replaced per file per rewrite"
    )
    p.add_argument(
        "--vkeys-only",
        action="store_true",
        help="run only the virtual-key scenario (issue 15: LiteLLM's Postgres, embedded)",
    )
    p.add_argument("--no-vkeys", action="store_true", help="skip that scenario")
    p.add_argument("--vkeys-keys", type=int, default=100_000, help="virtual keys (default 100000)")
    p.add_argument(
        "--vkeys-changed", type=int, default=1000, help="rows blocked/unblocked per change"
    )
    p.add_argument("--vkeys-seconds", type=float, default=10.0, help="seconds per phase")
    p.add_argument(
        "--vkeys-interval", type=float, default=2.5, help="change the rows this often (s)"
    )
    p.add_argument(
        "--serve-pythonpath",
        metavar="DIR",
        help="run authsvc from the source tree DIR (e.g. a checkout of an older commit) for "
        "A/B numbers; the bench itself runs from this tree",
    )
    p.add_argument("--json", default=".bench/results.json", help="where to write the results")
    p.add_argument("--logs", metavar="DIR", help="keep the children's logs in DIR")
    return p


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class _Live:
    """A scenario whose processes are up; measured runs accumulate here."""

    name: str
    kind: str
    envoy: Envoy
    authsvc: Authsvc | None = None
    workers: int = 0
    loads: list[LoadResult] = field(default_factory=list)
    checks: int = 0
    authsvc_cpu: float = 0.0
    envoy_cpu: float = 0.0

    def result(self) -> Scenario:
        load = merge_loads(self.loads)
        pids = tree(self.authsvc.pid) if self.authsvc is not None else []
        return Scenario(
            name=self.name,
            kind=self.kind,
            load=load,
            workers=self.workers,
            checks=self.checks,
            authsvc_cpu_us=self.authsvc_cpu / self.checks * 1e6
            if self.authsvc and self.checks
            else None,
            envoy_cpu_us=self.envoy_cpu / max(load.requests, 1) * 1e6,
            peak_rss_mb=max(peak_rss_mb(p) for p in pids) if pids else None,
            start_to_serving_s=self.authsvc.start_to_serving if self.authsvc else None,
        )


_CHECK_STATS = ("http.ingress.ext_authz.ok", "http.ingress.ext_authz.denied")


class _Runner:
    def __init__(self, args: argparse.Namespace, bench: Bench) -> None:
        self.args = args
        self.bench = bench

    def start(self, name: str, variant: str, listen: str = "", workers: int = 1) -> _Live:
        """Start the scenario's authsvc (if any) and Envoy, and warm them up."""
        authsvc = None
        if variant == "authz":
            authsvc = self.bench.authsvc(
                name + "-authsvc", listen, workers=workers, extra=self.args.serve_arg
            )
        elif variant == "floor":
            authsvc = self.bench.floor(name + "-server", listen)
        authz = authsvc.addresses if authsvc else ()
        envoy = self.bench.envoy(name, "authz" if variant == "floor" else variant, authz)
        if self.args.warmup > 0:
            run_wrk(envoy.url, self.bench.header, seconds=self.args.warmup, connections=16)
        kind = {"authz": "authsvc", "floor": "floor"}.get(variant, variant)
        return _Live(name, kind, envoy, authsvc, workers if variant == "authz" else 0)

    def measure(self, live: _Live) -> None:
        """One measured wrk run; CPU and checks are accumulated around it."""
        a = self.args
        pids = tree(live.authsvc.pid) if live.authsvc is not None else []
        envoy = live.envoy
        checks0 = sum(envoy.counter(s) for s in _CHECK_STATS)
        cpu0, envoy0 = cpu_seconds(pids), cpu_seconds([envoy.child.pid])
        load = run_wrk(
            envoy.url,
            self.bench.header,
            seconds=a.duration / a.rounds,
            connections=a.connections,
            threads=a.threads,
        )
        live.authsvc_cpu += cpu_seconds(pids) - cpu0
        live.envoy_cpu += cpu_seconds([envoy.child.pid]) - envoy0
        live.checks += sum(envoy.counter(s) for s in _CHECK_STATS) - checks0
        live.loads.append(load)
        _say(
            f"  {live.name}: {load.rps:.0f} req/s, p50 {load.p50_ms:.2f} ms, "
            f"non-2xx {load.non_2xx + load.socket_errors}"
        )


def many_keys(runner: _Runner, how: str) -> dict[str, float]:
    """authsvc with EXTRA_KEYS extra keys — ``sha256`` entries in its config, or one key
    ``file`` holding them — after a short load: start to SERVING and peak RSS; then its CPU
    while idle (IDLE_SECONDS, two reload polls: what re-reading the config costs)."""
    bench = runner.bench
    config = bench.dir / f"many-{how}.yaml"
    if how == "sha256":
        lines = ["keys:"]
        for i in range(EXTRA_KEYS):
            lines += [f"  - name: k{i}", f"    sha256: {i:064x}"]
    else:
        keys = bench.dir / "many-keys.txt"
        keys.write_text("".join(f"sk-bench-{i:06d}-{bench.key[9:]}\n" for i in range(EXTRA_KEYS)))
        keys.chmod(0o600)
        lines = ["keys:", "  - name: bulk", f"    file: {keys}"]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    authsvc = bench.authsvc(
        f"many-{how}-authsvc",
        bench.socket(f"{how}.sock"),
        config=config,
        extra=runner.args.serve_arg,
    )
    envoy = bench.envoy(f"many-{how}", "authz", authsvc.addresses)
    try:
        run_wrk(envoy.url, bench.header, seconds=3, connections=runner.args.connections)
        rss = peak_rss_mb(authsvc.pid)
        before = cpu_seconds([authsvc.pid])
        time.sleep(IDLE_SECONDS)
        idle = cpu_seconds([authsvc.pid]) - before
        return {
            "extra_keys": float(EXTRA_KEYS),
            "start_to_serving_s": authsvc.start_to_serving,
            "peak_rss_mb": rss,
            "idle_cpu_pct": 100.0 * idle / IDLE_SECONDS,
        }
    finally:
        bench.stop(envoy.child, authsvc.child)


def _scenarios(bench: Bench, workers: int) -> list[tuple[str, str, str, int]]:
    """(name, Envoy variant, authsvc --listen, workers) per scenario, in report order."""
    return [
        ("no-auth", "none", "", 1),
        ("native", "native", "", 1),
        ("authsvc-tcp", "authz", f"127.0.0.1:{free_port()}", 1),
        ("authsvc-unix", "authz", bench.socket(), 1),
        (f"authsvc-unix-w{workers}", "authz", bench.socket("w.sock"), workers),
        ("ext_authz-floor", "floor", bench.socket("floor.sock"), 1),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        envoy_binary()
    except ConfigError as exc:
        print(f"authsvc bench: {exc}", file=sys.stderr)
        return 2
    missing = missing_tools("wrk") if not args.reload_only else []
    if args.reload_only and not args.vkeys_only:
        args.no_vkeys = True
    if args.vkeys_only:  # no other scenario; without wrk, no checks/s comparison
        args.reload_only, args.no_reload = True, True
    if missing:
        print(f"authsvc bench: {', '.join(missing)} not found; {INSTALL_HINT}", file=sys.stderr)
        return 2
    if missing_tools("hey") and not args.no_extras:
        _say(f"hey not found: the fixed-rate run is skipped ({INSTALL_HINT})")
    started = time.monotonic()
    results = BenchResults(
        settings={
            "duration_s": args.duration,
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "wrk_connections": args.connections,
            "wrk_threads": args.threads,
            "envoy_concurrency": 1,
            "workers": args.workers,
            "rate": args.rate,
            "serve_args": args.serve_arg,
        }
    )
    only = set(args.only.split(",")) if args.only else None
    if args.reload_only:
        only = set()
    with Bench(
        keep_logs=Path(args.logs) if args.logs else None, pythonpath=args.serve_pythonpath
    ) as bench:
        runner = _Runner(args, bench)
        lives = []
        for name, variant, listen, workers in _scenarios(bench, args.workers):
            if only is None or name in only:
                _say(f"starting {name} ...")
                lives.append(runner.start(name, variant, listen, workers))
        for round_ in range(args.rounds):
            _say(f"round {round_ + 1}/{args.rounds}")
            for live in lives:
                runner.measure(live)
        results.scenarios = [live.result() for live in lives]
        if not missing_tools("hey") and not args.no_extras:
            for live in lives:
                if live.name in RATE_SCENARIOS:
                    rate = run_hey(
                        live.envoy.url, bench.header, seconds=args.rate_duration, rate=args.rate
                    )
                    results.rate[live.name] = rate
                    _say(f"  {live.name} at {args.rate} req/s: p50 {rate.p50_ms:.2f} ms")
        for live in lives:
            bench.stop(live.envoy.child, *([live.authsvc.child] if live.authsvc else []))
        if not args.no_extras and not args.reload_only:
            for how in ("file", "sha256"):
                _say(f"10k extra keys ({how}) ...")
                results.many_keys[how] = many_keys(runner, how)
            _say("decide() micro-bench ...")
            results.decide = time_decide()
        if args.reload_only and not args.vkeys_only:
            _say("decide() micro-bench ...")
            results.decide = time_decide()
        if not args.no_reload:
            _say(f"many keys, quiet vs reloading ({args.reload_keys:,} keys) ...")
            results.reload = run_reload(
                bench,
                keys=args.reload_keys,
                files=args.reload_files,
                rate=args.rate,
                seconds=args.reload_seconds,
                interval=args.reload_interval,
                rotate=args.reload_rotate,
                serve_args=args.serve_arg,
                say=_say,
            )
        if not args.no_vkeys:
            _say(f"virtual keys ({args.vkeys_keys:,} keys in LiteLLM's Postgres) ...")
            results.vkeys = run_vkeys(
                bench,
                keys=args.vkeys_keys,
                changed=args.vkeys_changed,
                rate=args.rate,
                seconds=args.vkeys_seconds,
                interval=args.vkeys_interval,
                duration=args.duration,
                rounds=args.rounds,
                connections=args.connections,
                serve_args=args.serve_arg,
                say=_say,
            )
    results.settings["wall_s"] = round(time.monotonic() - started, 1)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_json(results), encoding="utf-8")
    _say(f"results written to {out} ({results.settings['wall_s']} s)")
    print(format_report(results), flush=True)
    return 0
