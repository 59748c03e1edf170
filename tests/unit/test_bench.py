"""The bench's parsing, report and ratio line (canned wrk/hey output), its Envoy variants (the
real Envoy validates them) and its command line. No load is generated here: benchmarks make
no timed assertions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from authsvc.bench._envoy import NATIVE, bench_bootstrap
from authsvc.bench._load import LoadResult, RateResult, parse_hey, parse_wrk
from authsvc.bench._micro import DecideTiming, time_decide
from authsvc.bench._procstat import cpu_seconds, peak_rss_mb, tree
from authsvc.bench._report import BenchResults, Scenario, format_report, ratio_line, to_json
from authsvc.envoy import envoy_binary, render_yaml

WRK = """Running 10s test @ http://127.0.0.1:40123/v1/models
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.98ms    1.64ms  30.69ms   87.35%
    Req/Sec     5.53k     1.57k    8.73k    60.00%
  Latency Distribution
     50%  812.00us
     75%    3.63ms
     90%    4.59ms
     99%    1.02s
  27530 requests in 10.00s, 3.12MB read
  Non-2xx or 3xx responses: 12
  Socket errors: connect 0, read 1, write 0, timeout 3
Requests/sec:   2753.04
Transfer/sec:    639.63KB
"""

WRK_CLEAN = """Running 5s test @ http://127.0.0.1:1/v1/models
  1 threads and 16 connections
  Latency Distribution
     50%    0.35ms
     75%    0.50ms
     90%    0.80ms
     99%    1.20ms
  200000 requests in 5.00s, 20.00MB read
Requests/sec:  40000.00
Transfer/sec:      4.00MB
"""

HEY = """
Summary:
  Total:\t10.0034 secs
  Slowest:\t0.0123 secs
  Fastest:\t0.0003 secs
  Average:\t0.0008 secs
  Requests/sec:\t499.7359

Latency distribution:
  10% in 0.0005 secs
  25% in 0.0006 secs
  50% in 0.0007 secs
  75% in 0.0008 secs
  90% in 0.0010 secs
  95% in 0.0012 secs
  99% in 0.0022 secs

Status code distribution:
  [200]\t4990 responses
  [503]\t8 responses

Error distribution:
  [2]\tGet "http://127.0.0.1:1/": EOF
"""


def test_parse_wrk_with_errors_and_mixed_units() -> None:
    r = parse_wrk(WRK)
    assert r == LoadResult(
        requests=27530,
        seconds=10.0,
        rps=2753.04,
        p50_ms=pytest.approx(0.812),
        p99_ms=pytest.approx(1020.0),
        non_2xx=12,
        socket_errors=4,
    )


def test_parse_wrk_clean_run() -> None:
    r = parse_wrk(WRK_CLEAN)
    assert (r.rps, r.p50_ms, r.p99_ms, r.non_2xx, r.socket_errors) == (40000.0, 0.35, 1.2, 0, 0)


def test_parse_wrk_refuses_other_text() -> None:
    with pytest.raises(ValueError, match="not wrk --latency output"):
        parse_wrk(WRK_CLEAN.replace("Latency Distribution", "").replace("50%", ""))


def test_parse_hey() -> None:
    r = parse_hey(HEY)
    assert r == RateResult(
        rps=499.7359,
        p50_ms=pytest.approx(0.7),
        p99_ms=pytest.approx(2.2),
        responses=4998,
        non_2xx=8,
        errors=2,
        max_ms=pytest.approx(12.3),
    )
    with pytest.raises(ValueError, match="latency distribution"):
        parse_hey("Summary:\n  Requests/sec:\t99.2\n")


def _load(rps: float) -> LoadResult:
    return LoadResult(int(rps * 10), 10.0, rps, 1.0, 2.0, 0, 0)


def _results() -> BenchResults:
    return BenchResults(
        scenarios=[
            Scenario("no-auth", "none", _load(30000)),
            Scenario("native", "native", _load(20000)),
            Scenario("authsvc-tcp", "authsvc", _load(3000), 1, 30000, 250.0, 90.0, 50.0, 0.4),
            Scenario("authsvc-unix", "authsvc", _load(4000), 1, 40000, 200.0, 80.0, 50.0, 0.3),
            Scenario("authsvc-unix-w2", "authsvc", _load(5100), 2, 51000, 180.0, 70.0, 49.0, 0.7),
        ],
        rate={
            "no-auth": RateResult(500, 0.4, 0.9, 5000, 0, 0),
            "authsvc-unix": RateResult(500, 1.1, 2.9, 5000, 0, 0),
        },
        many_keys={
            "file": {
                "extra_keys": 10000.0,
                "start_to_serving_s": 0.5,
                "peak_rss_mb": 66.0,
                "idle_cpu_pct": 0.5,
            },
            "sha256": {
                "extra_keys": 10000.0,
                "start_to_serving_s": 0.9,
                "peak_rss_mb": 70.0,
                "idle_cpu_pct": 1.5,
            },
        },
        decide=[DecideTiming(1, 3.0, 3.1), DecideTiming(100_000, 3.2, 3.3)],
    )


def test_ratio_line() -> None:
    results = _results()
    assert ratio_line(results) == "ratio authsvc_best/native=0.26 authsvc_1proc/native=0.20"
    report = format_report(results)
    assert report.splitlines()[-1] == ratio_line(results)
    assert "MISS" not in report, report
    assert "p50 added at 500 req/s  0.70 ms" in report
    assert "sha256 config entries  0.90 s  70.0 MB  idle 1.5% of a core" in report


def test_report_marks_missed_targets() -> None:
    results = _results()
    results.scenarios[-1] = Scenario("authsvc-unix-w2", "authsvc", _load(4100), 2)
    results.many_keys["sha256"]["peak_rss_mb"] = 95.0
    report = format_report(results)
    assert "MISS authsvc_best/native  0.20" in report
    assert "MISS RSS, 10000 keys (sha256 config entries) 95.0 MB" in report
    assert "ok   RSS, 10000 keys (one key file) 66.0 MB" in report
    assert report.splitlines()[-1] == "ratio authsvc_best/native=0.20 authsvc_1proc/native=0.20"


def test_ratio_line_without_native_or_authsvc_is_zero() -> None:
    results = BenchResults(scenarios=[Scenario("no-auth", "none", _load(1000))])
    assert ratio_line(results) == "ratio authsvc_best/native=0.00 authsvc_1proc/native=0.00"


def test_json_has_every_number() -> None:
    data = json.loads(to_json(_results()))
    assert data["ratios"]["authsvc_best/native"] == pytest.approx(0.255)
    assert [s["name"] for s in data["scenarios"]][:2] == ["no-auth", "native"]
    assert data["scenarios"][3]["authsvc_cpu_us"] == 200.0
    assert data["p50_added_ms"] == pytest.approx(0.7)
    assert data["decide"][1]["keys"] == 100_000
    assert data["many_keys"]["file"]["peak_rss_mb"] == 66.0


@pytest.mark.parametrize("variant", ["none", "native", "authz"])
def test_bench_bootstraps_are_valid_for_the_real_envoy(variant: str, tmp_path: Path) -> None:
    bootstrap = bench_bootstrap(
        variant,
        listen="127.0.0.1:10000",
        admin="127.0.0.1:9901",
        authz=("unix:/tmp/authz-0.sock", "unix:/tmp/authz-1.sock"),
        key="sk-bench-not-a-real-key-0000",
    )
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    names = [f["name"] for f in hcm["typed_config"]["http_filters"]]
    assert ("envoy.filters.http.ext_authz" in names) is (variant == "authz")
    assert (NATIVE in names) is (variant == "native")
    path = tmp_path / "envoy.yaml"
    path.write_text(render_yaml(bootstrap))
    done = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_procstat_reads_this_process() -> None:
    assert cpu_seconds([1 << 30]) == 0.0  # a pid that does not exist
    assert cpu_seconds(tree(os.getpid())) > 0
    assert peak_rss_mb(os.getpid()) > 1


def test_decide_microbench_runs() -> None:
    (timing,) = time_decide(sizes=(10,), number=50)
    assert timing.keys == 10 and timing.hit_us > 0 and timing.miss_us > 0


def test_bench_help_works() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "authsvc.bench", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "--duration" in done.stdout and "wrk" in done.stdout
