"""Pieces of ``authsvc up`` that need no processes: the demo key file and the check table."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from authsvc._errors import ConfigError
from authsvc.health._verify_plan import plan
from authsvc.stack._checks import Check, CheckResult, default_checks, format_table
from authsvc.stack._cli import ensure_master_key


def test_master_key_generated_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key, created = ensure_master_key(path)
    assert created and key.startswith("sk-") and len(key) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = ensure_master_key(path)
    assert (again, created_again) == (key, False)


def test_existing_key_file_is_tightened_to_0600(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text("sk-existing-key-0000000000\n")
    path.chmod(0o644)
    assert ensure_master_key(path) == ("sk-existing-key-0000000000", False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_empty_key_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        ensure_master_key(path)


def test_up_check_and_verify_cover_the_acceptance_once() -> None:
    paths = ["/health/liveliness", "/health/readiness"]
    up = [c for c in default_checks(paths) if not c.spoof]
    ours = {
        (c.method, c.path, "master" if c.with_key else "wrong" if c.wrong_key else "none")
        for c in up
    }
    theirs = {("GET", c.path, c.credential.value) for c in plan(paths, "/health")}
    assert not ours & theirs, f"up --check repeats verify's checks: {ours & theirs}"
    expected = {(c.method, c.path, c.with_key): c.expected for c in up}
    assert expected[("GET", "/v1/models", True)] == 200
    assert expected[("GET", "/v1/models", False)] == 401
    assert expected[("POST", "/health/liveliness", False)] == 401
    assert {("GET", p, "none") for p in paths} <= theirs  # probe paths open (verify)
    assert {("GET", "/health", k) for k in ("none", "wrong", "master")} <= theirs


def test_table_shape() -> None:
    table = format_table(
        [
            CheckResult(Check("a", "GET", "/", 200), "200", True),
            CheckResult(Check("longer name", "GET", "/", 401), "200", False),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["check", "expected", "got", "ok"]
    assert lines[1].startswith("-----")
    assert lines[2].endswith("ok") and lines[3].endswith("FAIL")
