"""Dry-run through a real Envoy (issue 17): a wrong key reaches the app marked
``x-authsvc-dry-run``, the decision log and the metrics record the would-deny, and ``/readyz``,
``verify`` and ``explain`` say dry-run is on. A missing master key is still a 503."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from authsvc.health._verify_plan import DRY_RUN_BANNER
from authsvc.keys._explain import DRY_RUN_ON
from authsvc.server._cli import DRY_RUN_NOTE
from tests.e2e._harness import (
    HOST,
    Launcher,
    Stack,
    eventually,
    http_request,
    new_key,
    run_authsvc,
)

DRY = "x-authsvc-dry-run"


def metric(stack: Stack, name: str, **labels: str) -> float | None:
    body = http_request(stack.authz.status_port, "GET", "/metrics").body.decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name + (f"{{{want}}}" if want else "")) + r" ([0-9.e+-]+)$"
    found = re.search(pattern, body, re.MULTILINE)
    return float(found.group(1)) if found else None


def would_deny_lines(stack: Stack) -> list[dict[str, Any]]:
    return [r for r in stack.authz.log_records() if r.get("would_deny")]


def test_dry_run_flag_lets_a_wrong_key_through_marked_and_recorded(procs: Launcher) -> None:
    stack = procs.stack("tcp", authsvc_args=["--dry-run"])
    assert stack.key is not None

    # a wrong key reaches the app, which sees why authsvc would have denied it
    r = stack.get("/v1/models", {"authorization": f"Bearer {new_key('dry-wrong')}"})
    assert r.reached_upstream, r.body[:300]
    assert r.echo["headers"][DRY] == ["unknown_key"]
    assert "x-authsvc-key-name" not in r.echo["headers"]
    assert r.headers[DRY] == "unknown_key"  # and so does the client (verify reads it)
    # no key at all: the same
    r = stack.get("/v1/models")
    assert r.reached_upstream and r.echo["headers"][DRY] == ["missing_credential"]
    # a valid key is a normal allow: no dry-run mark, and a forged one never reaches the app
    r = stack.get("/v1/models", {"authorization": f"Bearer {stack.key}", DRY: "forged"})
    assert r.status == 200 and r.echo["authorized"] is True
    assert DRY not in r.echo["headers"] and DRY not in r.headers
    assert r.echo["headers"]["x-authsvc-key-name"] == ["master"]

    # decision log: one INFO line per would-deny, allow + would_deny + reason
    lines = eventually(lambda: would_deny_lines(stack)[:2] or None, "would-deny log lines")
    first = lines[0]
    assert first["level"] == "info" and first["decision"] == "allow"
    assert first["reason"] == "dry_run" and first["would_deny"] == "unknown_key"
    assert first["would_status"] == 401
    assert {line["would_deny"] for line in would_deny_lines(stack)} == {
        "unknown_key",
        "missing_credential",
    }
    start = [r for r in stack.authz.log_records() if "DRY-RUN IS ON" in str(r.get("message"))]
    assert start and start[0]["level"] == "warning"

    # metrics: the would-deny by reason, the answer as allow/dry_run, the mode itself
    assert metric(stack, "authsvc_dry_run_would_deny_total", reason="unknown_key") == 1
    assert metric(stack, "authsvc_dry_run_would_deny_total", reason="missing_credential") == 1
    assert metric(stack, "authsvc_checks_total", decision="allow", reason="dry_run") == 2
    assert metric(stack, "authsvc_checks_total", decision="deny", reason="unknown_key") == 0
    assert metric(stack, "authsvc_dry_run_enabled") == 1

    # /readyz says so (and stays ready)
    ready = http_request(stack.authz.status_port, "GET", "/readyz")
    assert ready.status == 200 and DRY_RUN_NOTE in ready.body.decode()
    ready = http_request(stack.authz.status_port, "GET", "/readyz", {"accept": "application/json"})
    assert ready.json()["notes"] == [DRY_RUN_NOTE]

    # verify through Envoy: passes, and says dry-run is on
    key_file = procs.key_file(stack.key, "verify.key")
    url = f"http://{HOST}:{stack.port}"
    done = run_authsvc("verify", "--url", url, "--master-key-file", str(key_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert DRY_RUN_BANNER in done.stdout
    assert "let through by dry-run (would deny: unknown_key)" in done.stdout
    rows = json.loads(
        run_authsvc("verify", "--url", url, "--master-key-file", str(key_file), "--json").stdout
    )
    assert {row.get("dry_run") for row in rows} == {None, "missing_credential", "unknown_key"}


def test_dry_run_from_the_config_and_explain_says_so(procs: Launcher, tmp_path: Path) -> None:
    key = new_key("dry-config")
    key_file = procs.key_file(key, "config-master.key")
    config = tmp_path / "authsvc.yaml"
    config.write_text(
        f"master_key:\n  sources:\n    - file: {key_file}\ndry_run: true\n", encoding="utf-8"
    )
    stack = procs.config_stack(config, app_key=key)
    r = stack.get("/v1/models", {"x-api-key": new_key("dry-wrong2")})
    assert r.reached_upstream and r.echo["headers"][DRY] == ["unknown_key"]
    explained = run_authsvc("explain", "--config", str(config))
    assert explained.returncode == 0 and DRY_RUN_ON in explained.stdout
    report = json.loads(run_authsvc("explain", "--config", str(config), "--json").stdout)
    assert report["dry_run"] is True

    # turned off by rewriting the config (atomically, as kubelet does): enforced, no restart
    staged = tmp_path / "authsvc.yaml.new"
    staged.write_text(config.read_text(encoding="utf-8").replace("true", "false"), "utf-8")
    staged.replace(config)
    eventually(
        lambda: (
            stack.get("/v1/models", {"x-api-key": new_key("dry-wrong3")}).deny_reason
            == "unknown_key"
        ),
        "the reload to enforce again",
        timeout=20,
    )
    assert metric(stack, "authsvc_dry_run_enabled") == 0
    assert (
        "dry-run: ON" not in http_request(stack.authz.status_port, "GET", "/readyz").body.decode()
    )


def test_dry_run_never_turns_a_missing_master_key_into_an_allow(procs: Launcher) -> None:
    stack = procs.stack("tcp", with_key=False, authsvc_args=["--dry-run"])
    r = stack.get("/v1/models", {"authorization": f"Bearer {new_key('dry-nokey')}"})
    assert r.status == 503 and r.deny_reason == "no_master_key"
    assert not r.reached_upstream and DRY not in r.headers
