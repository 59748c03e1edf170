"""``authsvc verify`` as a user runs it, against real Envoy + ``authsvc serve`` + the demo
upstream (issue 5, acceptance 1 and 3)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from authsvc.keys import fingerprint
from tests.e2e._harness import AUTHSVC, HOST, Launcher, clean_env, new_key

CHECKS = [
    "GET /health/liveliness without a key",
    "GET /health/liveness without a key",
    "GET /health/readiness without a key",
    "GET /health without a key",
    "GET /health with a wrong key",
    "GET /health with the master key",
]


def verify(port: int, key_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [*AUTHSVC, "verify", "--url", f"http://{HOST}:{port}"]
    argv += ["--master-key-file", str(key_file), *extra]
    return subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=60)


def test_verify_passes_when_sidecar_and_app_share_the_key(procs: Launcher) -> None:
    stack = procs.stack("tcp")
    assert stack.key is not None
    key_file = procs.key_file(stack.key, "verify.key")

    done = verify(stack.port, key_file, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert [row["check"] for row in data] == CHECKS
    assert all(set(row) == {"check", "expected", "got", "ok"} and row["ok"] for row in data)
    assert data[3]["got"] == "401 from authsvc (missing_credential)"
    assert data[4]["got"] == "401 from authsvc (unknown_key)"

    table = verify(stack.port, key_file)
    assert table.returncode == 0 and "all 6 checks passed" in table.stdout
    assert stack.key not in done.stdout + table.stdout + done.stderr + table.stderr
    assert not stack.demo.unauthorized()


def test_verify_names_the_mismatch_and_passes_after_the_fix(procs: Launcher) -> None:
    sidecar_key, app_key = new_key(), new_key()
    demo = procs.demo(app_key)  # the app resolves a different key
    sidecar_file = procs.key_file(sidecar_key, "sidecar.key")
    authz = procs.authsvc("tcp", key_file=sidecar_file)
    envoy = procs.envoy([authz.address], demo.port)

    done = verify(envoy.port, sidecar_file, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert [row["ok"] for row in data] == [True] * 5 + [False]
    assert data[-1]["got"] == "401 from app or Envoy"
    assert data[-1]["hint"] == (
        f"app rejected the master key resolved from file:{sidecar_file} "
        f"(fp {fingerprint(sidecar_key)}): the app resolves a different key; run `authsvc explain`"
    )
    table = verify(envoy.port, sidecar_file)
    assert table.returncode == 1 and "FAIL" in table.stdout and "hint: app rejected" in table.stdout
    printed = done.stdout + done.stderr + table.stdout + table.stderr
    assert sidecar_key not in printed and app_key not in printed

    demo.key_file.write_text(sidecar_key + "\n", encoding="utf-8")  # fix the app's side, no restart
    fixed = verify(envoy.port, sidecar_file)
    assert fixed.returncode == 0, fixed.stdout


def test_verify_reports_a_fail_closed_sidecar(procs: Launcher) -> None:
    stack = procs.stack("tcp", with_key=False)
    key_file = procs.key_file(new_key(), "verify.key")
    done = verify(stack.port, key_file, "--json")
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data[3]["got"] == "503 from authsvc (no_master_key)"
    assert "no usable master key" in data[3]["hint"]
