"""``make bench-floods``: each attack of issue 20 against ``authsvc serve`` behind a real Envoy,
while a legitimate checker sends valid requests through Envoy at a fixed rate.

Per attack (``_attacks``, a separate process from 127.0.0.2, so per-peer caps treat it as
another host than Envoy): the checker's success rate and p50/p99 latency, authsvc's peak RSS,
whether ``/livez`` answered every second, how long authsvc took to exit on SIGTERM
afterwards, and how much CPU authsvc used during the attack (% of one core). The "done when" of issue 20: >= 99 % success, p99 <= 50 ms, RSS < 200 MB,
/livez answers, exit within the grace period. Not a test: the numbers depend on the machine
(record them in docs/performance.md with the load they were taken under).
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from authsvc.bench._procstat import peak_rss_mb
from authsvc.bench._stack import HOST, Bench, free_port, serving
from authsvc.h2wire import PREFACE
from authsvc.stack import Child, ChildFailed, http_status

GRACE = 5.0


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Checker(threading.Thread):
    """Valid requests through Envoy at ``rate`` per second on one keep-alive connection."""

    def __init__(self, port: int, header: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.port, self.rate = port, rate
        name, _, value = header.partition(": ")
        self.headers = {name: value}
        self.latencies: list[float] = []
        self.failures = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
        interval, next_at = 1 / self.rate, time.monotonic()
        while not self.stopped.is_set():
            next_at += interval
            started = time.monotonic()
            try:
                conn.request("GET", "/v1/models", headers=self.headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
            if ok:
                self.latencies.append(time.monotonic() - started)
            else:
                self.failures += 1
            time.sleep(max(0.0, next_at - time.monotonic()))

    def summary(self) -> tuple[int, float, float, float]:
        total = len(self.latencies) + self.failures
        lat = sorted(self.latencies) or [float("nan")]

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

        return total, 100 * len(self.latencies) / max(total, 1), pct(0.5), pct(0.99)


def _serve(bench: Bench, tree: str | None) -> tuple[Child, int, int]:
    """``authsvc serve`` (from ``tree``, else this checkout): the child, its port, status port."""
    env = dict(bench._env)
    if tree is not None:  # measure another checkout's authsvc (e.g. main, for "before")
        env["PYTHONPATH"] = tree
    port, status_port = free_port(), free_port()
    argv = [sys.executable, "-m", "authsvc", "serve", "--listen", f"{HOST}:{port}"]
    argv += ["--master-key-file", str(bench.key_file), "--status-listen"]
    argv += [f"0.0.0.0:{status_port}", "--no-deep-health", "--log-level", "warning"]
    argv += ["--grace", str(GRACE)]
    log_path = bench.dir / "logs" / "authsvc.log"
    cwd = Path(tree) if tree is not None else None  # python -m puts the cwd first
    child = Child("authsvc", argv, log_path, env=env, cwd=cwd)
    bench._children.append(child)
    child.start()
    child.wait_ready(lambda: serving(f"{HOST}:{port}"), timeout=60)
    return child, port, status_port


def refusal_cost(attempts: int, tree: str | None = None) -> str:
    """authsvc's CPU per connection refused at the per-peer cap: 512 idle connections from
    127.0.0.2 take the peer's slots, then ``attempts`` more connect, send the preface and
    wait to be reset, one after another."""
    with Bench() as bench:
        child, port, _ = _serve(bench, tree)
        hold = [socket.create_connection((HOST, port), source_address=("127.0.0.2", 0))]
        hold += [
            socket.create_connection((HOST, port), source_address=("127.0.0.2", 0))
            for _ in range(511)
        ]
        time.sleep(0.5)
        before, started, refused = _cpu_s(child.pid), time.monotonic(), 0
        for _ in range(attempts):
            with socket.socket() as sock:
                sock.settimeout(2)
                try:
                    sock.bind(("127.0.0.2", 0))
                    sock.connect((HOST, port))
                    sock.sendall(PREFACE)
                    refused += sock.recv(64) == b""
                except ConnectionResetError:
                    refused += 1
                except OSError:
                    pass
        cpu, wall = _cpu_s(child.pid) - before, time.monotonic() - started
        for sock in hold:
            sock.close()
        return (
            f"{refused} of {attempts} refused in {wall:.1f} s; authsvc CPU {cpu:.2f} s = "
            f"{1e6 * cpu / max(refused, 1):.0f} µs per refusal"
        )


def run_one(attack: str, seconds: float, rate: float, tree: str | None = None) -> dict[str, object]:
    with Bench() as bench:
        child, port, status_port = _serve(bench, tree)
        envoy = bench.envoy("envoy", "authz", (f"{HOST}:{port}",))
        checker = Checker(envoy.port, bench.header, rate)
        checker.start()
        time.sleep(1.0)  # the checker's connection (and Envoy's to authsvc) is established
        target = status_port if attack == "status-slowloris" else port
        hostile = subprocess.Popen(
            [sys.executable, "-m", "authsvc.bench._attacks", attack, HOST, str(target)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if attack == "check-flood":  # item 8: Envoy's *new* connection arrives mid-flood
            time.sleep(1.0)
            bench.stop(envoy.child)
            envoy = bench.envoy("envoy2", "authz", (f"{HOST}:{port}",))
            checker.stopped.set()
            checker = Checker(envoy.port, bench.header, rate)
            checker.start()
        livez_ok = livez_total = threads = 0
        peak = 0.0
        cpu_before, cpu_since = _cpu_s(child.pid), time.monotonic()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            livez_total += 1
            livez_ok += http_status(HOST, status_port, "/livez") == 200
            peak = max(peak, _rss_mb(child.pid))
            threads = max(threads, len(os.listdir(f"/proc/{child.pid}/task")))
            time.sleep(1.0)
        cpu_pct = 100 * (_cpu_s(child.pid) - cpu_before) / (time.monotonic() - cpu_since)
        checker.stopped.set()
        checker.join(3)
        hostile.send_signal(signal.SIGKILL)
        hostile.wait()
        started = time.monotonic()
        child.signal(signal.SIGTERM)
        assert child.proc is not None
        try:
            child.proc.wait(GRACE + 10)
            exit_s = time.monotonic() - started
        except subprocess.TimeoutExpired:
            exit_s = float("inf")
        total, ok, p50, p99 = checker.summary()
        return {
            "attack": attack,
            "checks": total,
            "success_pct": round(ok, 2),
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "peak_rss_mb": round(
                max(peak, peak_rss_mb(child.pid) if child.proc.poll() is None else peak), 1
            ),
            "livez": f"{livez_ok}/{livez_total}",
            "peak_threads": threads,
            "cpu_pct": round(cpu_pct),
            "sigterm_exit_s": round(exit_s, 2),
        }


def main(argv: list[str] | None = None) -> int:
    from authsvc.bench._attacks import ATTACKS

    parser = argparse.ArgumentParser(prog="python -m authsvc.bench._floods")
    parser.add_argument("--only", default=",".join(ATTACKS))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--tree", help="run authsvc from this checkout (PYTHONPATH)")
    parser.add_argument(
        "--refusal-cost", type=int, metavar="N", help="only measure N per-peer-cap refusals"
    )
    args = parser.parse_args(argv)
    if args.refusal_cost:
        print(refusal_cost(args.refusal_cost, args.tree))
        return 0
    print(
        f"{'attack':18} {'checks':>6} {'ok %':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'RSS MB':>7} {'livez':>6} {'thr':>5} {'exit s':>6} {'cpu %':>5}"
    )
    for attack in args.only.split(","):
        for attempt in range(3):  # a free port can be taken before authsvc binds it
            try:
                r = run_one(attack, args.seconds, args.rate, args.tree)
                break
            except ChildFailed:
                if attempt == 2:
                    raise
                time.sleep(2.0)
        print(
            f"{attack:18} {r['checks']:>6} {r['success_pct']:>7} {r['p50_ms']:>7} "
            f"{r['p99_ms']:>7} {r['peak_rss_mb']:>7} {r['livez']:>6} "
            f"{r['peak_threads']:>5} {r['sigterm_exit_s']:>6} {r['cpu_pct']:>5}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
