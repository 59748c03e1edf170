"""The many-keys scenario (issue #14): 100,000 keys, quiet vs reloading, at a fixed rate.

authsvc serves a master key plus ``keys`` extra keys spread over ``files`` key files that live
in a Kubernetes-style Secret volume (``KeyVolume``: every rewrite is a new timestamped
directory and an atomic ``..data`` symlink swap, as kubelet does). Through one Envoy:

1. **quiet** (after ``SETTLE`` seconds): a fixed rate (``hey``; without it, ``pace`` below) for ``seconds``;
2. **reloading**: the same, while EVERY key file is rewritten every ``interval`` seconds, each
   rewrite replacing ``rotate`` keys per file. After each rewrite a probe asks Envoy with one
   new key until it is allowed: the time from the swap to that answer is the *reload time to
   effect* (it includes the watch's 0.4 s debounce); then one removed key must be refused
   (``leaks`` counts those allowed).

Reported: p50/p99/max and the rate held for both phases, start to SERVING, peak RSS
(``VmHWM``) of the serving process, of its list-hashing helper and their sum, and the reload
times. No target is asserted here: ``_report`` marks them.
"""

from __future__ import annotations

import http.client
import os
import random
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from authsvc.bench._load import RateResult, missing_tools, run_hey
from authsvc.bench._procstat import children, peak_rss_mb
from authsvc.bench._stack import HOST, Bench, Envoy

__all__ = ["CLIENTS", "KeyVolume", "ReloadResult", "pace", "run_reload"]

CLIENTS = 10
SETTLE = 3.0  # seconds between SERVING and the quiet run


class KeyVolume:
    """A Secret volume at ``root``, rewritten the way kubelet's AtomicWriter does it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._serial = 0

    def publish(self, files: Mapping[str, bytes]) -> None:
        data = self.root / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        self._serial += 1
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{self._serial:06d}"
        staging = self.root / stamp
        staging.mkdir(mode=0o755)
        for name, content in files.items():
            (staging / name).write_bytes(content)
            (staging / name).chmod(0o600)
        os.symlink(stamp, self.root / "..data_tmp")
        os.rename(self.root / "..data_tmp", data)  # the one atomic step
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        if old is not None:
            shutil.rmtree(self.root / old, ignore_errors=True)


class _Keys:
    """The extra keys, per file; ``rotate`` replaces some and names one new and one removed."""

    def __init__(self, count: int, files: int) -> None:
        per = max(1, count // files)
        self.files = [[_new_key() for _ in range(per)] for _ in range(files)]

    def rotate(self, per_file: int) -> tuple[str, str]:
        new = removed = ""
        for keys in self.files:
            for index in random.sample(range(len(keys)), min(per_file, len(keys))):
                fresh = _new_key()
                if not new:
                    new, removed = fresh, keys[index]
                keys[index] = fresh
        return new, removed

    def contents(self) -> dict[str, bytes]:
        return {f"keys{i}.txt": ("\n".join(k) + "\n").encode() for i, k in enumerate(self.files)}


def _new_key() -> str:
    return "sk-" + secrets.token_urlsafe(16)  # 25 characters: 25,000 fit in the old 1 MiB cap


def _status(envoy: Envoy, key: str) -> int:
    conn = http.client.HTTPConnection(HOST, envoy.port, timeout=5)
    try:
        conn.request("GET", "/v1/models", headers={"authorization": f"Bearer {key}"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def pace(url: str, header: str, *, seconds: float, rate: int, clients: int = 4) -> RateResult:
    """A small fixed-rate load (``clients`` threads, keep-alive) for machines without ``hey``."""
    name, _, value = header.partition(": ")
    host_port = url.split("/")[2]
    host, _, port = host_port.partition(":")
    path = "/" + url.split("/", 3)[3]
    latencies: list[float] = []
    failures = [0, 0]  # non-2xx, errors
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client(offset: float) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        gap = clients / rate
        due = time.monotonic() + offset
        while due < end:
            time.sleep(max(0.0, due - time.monotonic()))
            started = time.monotonic()
            try:
                conn.request("GET", path, headers={name: value})
                response = conn.getresponse()
                response.read()
                ok = 200 <= response.status < 300
                with lock:
                    latencies.append(time.monotonic() - started)
                    failures[0] += 0 if ok else 1
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                with lock:
                    failures[1] += 1
            due += gap
        conn.close()

    began = time.monotonic()
    threads = [
        threading.Thread(target=client, args=(i / rate,), daemon=True) for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - began
    ordered = sorted(latencies) or [0.0]

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000.0

    return RateResult(
        rps=len(latencies) / took,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        responses=len(latencies),
        non_2xx=failures[0],
        errors=failures[1],
        max_ms=ordered[-1] * 1000.0,
    )


def _descendants(pid: int) -> list[int]:
    found = children(pid)
    for child in list(found):
        found += _descendants(child)
    return found


@dataclass
class ReloadResult:
    keys: int
    files: int
    rate: int
    load_tool: str
    start_to_serving_s: float
    quiet: RateResult
    reloading: RateResult
    peak_rss_mb: float
    rewrites: int = 0
    reload_s: list[float] = field(default_factory=list)  # swap → new key allowed
    leaks: int = 0  # removed keys allowed after the new keys were
    helper_rss_mb: float = 0.0  # peak RSS of authsvc's helper processes (the list parser), summed

    @property
    def total_rss_mb(self) -> float:
        """Serving process + helpers: what a pod's memory limit must hold (an upper bound:
        pages both map, the interpreter's, count twice)."""
        return self.peak_rss_mb + self.helper_rss_mb

    @property
    def p99_added_ms(self) -> float:
        return self.reloading.p99_ms - self.quiet.p99_ms


def run_reload(
    bench: Bench,
    *,
    keys: int,
    files: int,
    rate: int,
    seconds: float,
    interval: float,
    rotate: int,
    serve_args: list[str],
    say: Callable[[str], None] = print,
) -> ReloadResult:
    """Run the scenario (see the module docstring) and return its numbers."""
    tool = "hey" if not missing_tools("hey") else "pace"

    def load(url: str, header: str, *, seconds: float, rate: int) -> RateResult:
        # 10 clients at rate/10 each: a slow answer delays one client, not half the rate
        if tool == "hey":
            return run_hey(url, header, seconds=seconds, rate=rate, clients=CLIENTS)
        return pace(url, header, seconds=seconds, rate=rate, clients=CLIENTS)

    state = _Keys(keys, files)
    volume = KeyVolume(bench.dir / "keyvol")
    volume.publish(state.contents())
    config = bench.dir / "many-keys-reload.yaml"  # not "reload.yaml": that is Envoy's
    lines = ["keys:"]
    for i in range(files):
        lines += [f"  - name: bulk{i}", f"    file: {volume.root / f'keys{i}.txt'}"]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    authsvc = bench.authsvc(
        "reload-authsvc", bench.socket("reload.sock"), config=config, extra=serve_args
    )
    envoy = bench.envoy("reload", "authz", authsvc.addresses)
    try:
        for _ in range(20):  # warm-up: connections, caches
            _status(envoy, bench.key)
        time.sleep(SETTLE)  # the reloader's first look at the files, its helper's start
        say(f"  quiet, {rate} req/s for {seconds:.0f} s ...")
        quiet = load(envoy.url, bench.header, seconds=seconds, rate=rate)
        say(f"  reloading (every key file rewritten every {interval:g} s) ...")
        out: dict[str, RateResult] = {}
        runner = threading.Thread(
            target=lambda: out.update(r=load(envoy.url, bench.header, seconds=seconds, rate=rate))
        )
        result = ReloadResult(keys, files, rate, tool, authsvc.start_to_serving, quiet, quiet, 0.0)
        runner.start()
        while runner.is_alive():
            began = time.monotonic()
            new, removed = state.rotate(rotate)
            volume.publish(state.contents())
            result.rewrites += 1
            while time.monotonic() - began < 4 * interval + 5:
                if _status(envoy, new) == 200:
                    result.reload_s.append(time.monotonic() - began)
                    result.leaks += _status(envoy, removed) == 200
                    break
                time.sleep(0.02)
            time.sleep(max(0.0, began + interval - time.monotonic()))
        runner.join()
        result.reloading = out["r"]
        result.peak_rss_mb = peak_rss_mb(authsvc.pid)
        result.helper_rss_mb = sum(peak_rss_mb(p) for p in _descendants(authsvc.pid))
        return result
    finally:
        bench.stop(envoy.child, authsvc.child)
