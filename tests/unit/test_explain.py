"""``authsvc explain`` as a user runs it: a subprocess, real files, real environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._explain import EXPLAIN_JSON_KEYS

KEY = "sk-explain-test-0123456789abcdef"
OTHER = "sk-explain-other-0123456789abcdef"
WEAK = "sk-1234"


def explain(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSVC_", "LITELLM_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "authsvc", "explain", *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )
    for key in (KEY, OTHER, WEAK):  # acceptance 5: never a key in any output
        assert key not in proc.stdout and key not in proc.stderr
    return proc


def test_json_report_resolved(tmp_path: Path) -> None:
    litellm = tmp_path / "litellm.yaml"
    litellm.write_text(
        f"general_settings:\n  master_key: {KEY}\nlitellm_settings:\n  master_key: {WEAK}\n"
    )
    (tmp_path / "authsvc.yaml").write_text(
        "master_key:\n  sources:\n    - env: AUTHSVC_MASTER_KEY\n    - litellm_config: litellm.yaml\n"
    )
    proc = explain(
        "--config", str(tmp_path / "authsvc.yaml"), "--json", env={"LITELLM_MASTER_KEY": OTHER}
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert list(report) == EXPLAIN_JSON_KEYS
    assert report["resolved"] is True
    assert report["winner"]["source"] == f"litellm:{litellm}#general_settings.master_key"
    assert [(s["source"], s["state"], s["used"]) for s in report["sources"]] == [
        ("env:AUTHSVC_MASTER_KEY", "unset", False),
        (f"litellm:{litellm}#general_settings.master_key", "set", True),
        ("env:LITELLM_MASTER_KEY", "set", False),
        (f"litellm:{litellm}#litellm_settings.master_key", "weak", False),
    ]
    assert report["sources"][0]["fingerprint"] is None
    assert all(len(s["fingerprint"]) == 12 for s in report["sources"][1:])
    assert any(w.startswith("conflict: env:LITELLM_MASTER_KEY") for w in report["warnings"])
    assert any("litellm_settings" in w for w in report["warnings"])


def test_table_shows_chain_winner_shadowed_and_warnings(tmp_path: Path) -> None:
    (tmp_path / "master").write_text(KEY + "\n")
    proc = explain(
        env={
            "AUTHSVC_MASTER_KEY": "",
            "AUTHSVC_MASTER_KEY_FILE": str(tmp_path / "master"),
            "LITELLM_MASTER_KEY": OTHER,
        }
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "config: built-in defaults (no config file)" in out
    assert f"master key: resolved from file:{tmp_path / 'master'}" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[1] for row in rows] == [
        "env:AUTHSVC_MASTER_KEY",
        f"file:{tmp_path / 'master'}",
        "env:LITELLM_MASTER_KEY",
    ]
    assert rows[0][2] == "empty" and rows[1][4] == "USED"
    assert "shadowed, DIFFERENT key" in out and "warnings:" in out and "conflict:" in out


def test_no_key_exits_1_and_names_every_source(tmp_path: Path) -> None:
    proc = explain("--json", env={"LITELLM_MASTER_KEY": WEAK})
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["resolved"] is False and report["winner"] is None
    assert [s["state"] for s in report["sources"]] == ["unset", "weak"]
    proc = explain(env={"LITELLM_MASTER_KEY": WEAK})
    assert proc.returncode == 1
    assert "NOT RESOLVED (fail closed)" in proc.stdout
    assert (
        "env:AUTHSVC_MASTER_KEY (unset)" in proc.stdout
        and "env:LITELLM_MASTER_KEY (weak" in proc.stdout
    )


def test_config_error_exits_2_with_the_message_on_stderr(tmp_path: Path) -> None:
    config = tmp_path / "authsvc.yaml"
    config.write_text(f"master_key:\n  sources:\n    - value: {KEY}\n  on_confict: warn\n")
    proc = explain("--config", str(config), "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        f"{config}:4: unknown key 'on_confict' under master_key; did you mean 'on_conflict'?"
        in proc.stderr
    )
    proc = explain(env={"AUTHSVC_CONFIG": str(tmp_path / "nope.yaml")})
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_master_key_file_flag(tmp_path: Path) -> None:
    (tmp_path / "k").write_text(KEY)
    proc = explain(
        "--json", "--master-key-file", "k", cwd=tmp_path, env={"AUTHSVC_MASTER_KEY": KEY}
    )
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    assert report["winner"]["source"] == f"file:{tmp_path / 'k'}"
    assert report["sources"][1]["state"] == "set" and report["warnings"] == []


@pytest.mark.parametrize("flag", ["--help"])
def test_help(flag: str) -> None:
    proc = explain(flag)
    assert proc.returncode == 0 and "--json" in proc.stdout and "--config" in proc.stdout
