"""``authsvc verify`` as a command: config + key resolution as ``serve`` does them, exit codes,
output without keys. The "Envoy" here is the in-process stand-in of test_verify_http (real
``decide()``); the same command runs through a real Envoy in tests/e2e/test_verify_e2e.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from authsvc.authz import Policy
from authsvc.keys import fingerprint
from tests._keys import make_key
from tests._leakscan import log_file
from tests.unit.test_health_http import local_app
from tests.unit.test_verify_http import EnvoyAuthsvcApp

KEY = make_key("verify-cli")
OTHER = make_key("verify-cli-other")


def verify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if "MASTER_KEY" not in k and not k.startswith("AUTHSVC_")
    }
    done = subprocess.run(
        [sys.executable, "-m", "authsvc", "verify", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    log_file("verify-cli").write_text(done.stdout + done.stderr)  # for the no-key-leak scan
    return done


def test_passes_with_the_key_from_the_environment() -> None:
    with local_app(EnvoyAuthsvcApp(KEY, KEY)) as server:
        done = verify("--url", server.url, "--json", env={"LITELLM_MASTER_KEY": KEY})
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 6 and all(r["ok"] for r in rows)
    assert KEY not in done.stdout + done.stderr


def test_mismatch_exits_1_and_names_source_and_fingerprint() -> None:
    with local_app(EnvoyAuthsvcApp(KEY, OTHER)) as server:
        done = verify("--url", server.url, env={"LITELLM_MASTER_KEY": KEY})
    assert done.returncode == 1
    assert (
        f"hint: app rejected the master key resolved from env:LITELLM_MASTER_KEY (fp {fingerprint(KEY)})"
        in done.stdout
    )
    assert "1 of 6 checks failed" in done.stdout
    assert KEY not in done.stdout + done.stderr and OTHER not in done.stdout + done.stderr


def test_config_sets_paths_header_and_default_url(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text(KEY + "\n")
    policy = Policy.build(["/healthz"], protected_health_path="/v1/models")
    with local_app(EnvoyAuthsvcApp(KEY, KEY, policy)) as server:
        config = tmp_path / "authsvc.yaml"
        config.write_text(
            f"master_key:\n  sources:\n    - file: {key_file}\n"
            "public_paths: [/healthz]\n"
            "protected_health_path: /v1/models\n"
            f"health_check:\n  url: {server.url}\n"
        )
        done = verify("--config", str(config), "--json")
    checks = [r["check"] for r in json.loads(done.stdout)]
    assert checks == [
        "GET /healthz without a key",
        "GET /v1/models without a key",
        "GET /v1/models with a wrong key",
        "GET /v1/models with the master key",
    ]
    assert done.returncode == 0, done.stdout + done.stderr
    assert [s.path for s in server.seen] == ["/healthz", "/v1/models", "/v1/models", "/v1/models"]
    assert server.seen[-1].headers["authorization"] == f"Bearer {KEY}"


def test_no_key_resolved_is_a_failed_check_not_a_crash() -> None:
    with local_app(EnvoyAuthsvcApp(KEY, KEY)) as server:
        done = verify("--url", server.url, "--json")
    assert done.returncode == 1
    last = json.loads(done.stdout)[-1]
    assert (
        last["got"] == "not run: no usable master key resolved"
        and "authsvc explain" in last["hint"]
    )


def test_bad_config_and_bad_url_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("health_chek:\n  interval: 5\n")
    done = verify("--config", str(config))
    assert done.returncode == 2 and "health_chek" in done.stderr
    done = verify("--url", "127.0.0.1:10000", env={"LITELLM_MASTER_KEY": KEY})
    assert done.returncode == 2 and "must start with http://" in done.stderr
