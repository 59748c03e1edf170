"""Pieces of ``authsvc up`` that need no processes: the demo key file and the check table."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from authsvc._errors import ConfigError
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


def test_default_checks_cover_the_acceptance() -> None:
    checks = default_checks(["/health/liveliness", "/health/readiness"])
    by = {(c.method, c.path, c.with_key): c.expected for c in checks if not c.spoof}
    assert by[("GET", "/v1/models", True)] == 200
    assert by[("GET", "/v1/models", False)] == 401
    assert by[("GET", "/health/liveliness", False)] == 200
    assert by[("GET", "/health", False)] == 401
    assert by[("GET", "/health", True)] == 200
    assert by[("POST", "/health/liveliness", False)] == 401


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
