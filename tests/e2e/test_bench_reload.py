"""The many-keys quiet-vs-reloading bench scenario (issue #14) runs and reports, at tiny sizes
through a real Envoy and a real ``authsvc serve``. No timing is asserted: benchmarks are not
timed tests; the numbers live in docs/performance.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from authsvc.bench._load import RateResult
from authsvc.bench._reload import pace
from authsvc.bench._stack import Bench


def test_the_reload_scenario_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    argv = [sys.executable, "-m", "authsvc.bench", "--reload-only", "--reload-keys", "300"]
    argv += ["--reload-files", "2", "--reload-seconds", "3", "--reload-interval", "1"]
    argv += ["--reload-rotate", "3", "--rate", "100", "--json", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    report = done.stdout
    assert "many keys, quiet vs reloading: 300 keys in 2 key files, 100 req/s" in report
    for phase in ("quiet", "reloading"):
        line = next(x for x in report.splitlines() if x.strip().startswith(phase))
        assert "p50" in line and "p99" in line and "max" in line and "req/s" in line
    assert "peak RSS" in report and "reload to effect" in report and "start to SERVING" in report
    data = json.loads(out.read_text())["reload"]
    assert data["rewrites"] >= 1 and data["reload_s"], "no rewrite took effect"
    assert data["leaks"] == 0 and data["quiet"]["responses"] > 0
    assert "peak RSS serving" in report and f"= {data['total_rss_mb']:.1f} MB" in report
    assert data["total_rss_mb"] == data["peak_rss_mb"] + data["helper_rss_mb"] > 0


def test_the_fallback_load_without_hey_holds_a_rate() -> None:
    with Bench() as bench:
        authsvc = bench.authsvc("pace-authsvc", bench.socket("pace.sock"))
        envoy = bench.envoy("pace", "authz", authsvc.addresses)
        result = pace(envoy.url, bench.header, seconds=1.5, rate=40)
    assert isinstance(result, RateResult)
    assert result.non_2xx == 0 and result.errors == 0
    assert 40 <= result.responses <= 70  # a fixed rate, not as fast as possible
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
