"""``authsvc envoy-config``: flags → file, errors → exit 2 with a clear message."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from authsvc.cli import main
from authsvc.envoy import EnvoyOptions, build_bootstrap, render_yaml


def _endpoints(path: Path) -> list[dict[str, object]]:
    boot = yaml.safe_load(path.read_text())
    cluster = boot["static_resources"]["clusters"][0]
    return [
        e["endpoint"]["address"] for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]


def test_defaults_match_the_library(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "envoy.yaml"
    assert main(["envoy-config", "-o", str(out)]) == 0
    assert out.read_text() == render_yaml(build_bootstrap(EnvoyOptions()))
    assert not list(out.parent.glob(".*.tmp")), "temporary file left behind"


def test_stdout_when_no_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envoy-config", "--listen", "127.0.0.1:8080"]) == 0
    assert "port_value: 8080" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--authz", "unix:/w/0.sock", "unix:/w/1.sock"],
        ["--authz", "unix:/w/0.sock", "--authz", "unix:/w/1.sock"],
    ],
)
def test_several_authz_endpoints(argv: list[str], tmp_path: Path) -> None:
    out = tmp_path / "e.yaml"
    assert main(["envoy-config", *argv, "-o", str(out)]) == 0
    assert _endpoints(out) == [{"pipe": {"path": "/w/0.sock"}}, {"pipe": {"path": "/w/1.sock"}}]


def test_all_flags(tmp_path: Path) -> None:
    out = tmp_path / "e.yaml"
    argv = ["--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:2", "--authz", "127.0.0.1:3"]
    argv += ["--admin", "127.0.0.1:4", "--timeout", "0.5", "-o", str(out)]
    assert main(["envoy-config", *argv]) == 0
    expected = EnvoyOptions(
        listen="127.0.0.1:1",
        upstream="127.0.0.1:2",
        authz=("127.0.0.1:3",),
        admin="127.0.0.1:4",
        authz_timeout=0.5,
    )
    assert out.read_text() == render_yaml(build_bootstrap(expected))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--admin", "0.0.0.0:9901"], "not a loopback address"),
        (["--authz", "unix:relative.sock"], "must be absolute"),
        (["--timeout", "0"], "--timeout"),
        (["--listen", "10000"], "listen"),
    ],
)
def test_errors_exit_2_with_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "never.yaml"
    assert main(["envoy-config", *argv, "-o", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(
    importlib.util.find_spec("authsvc.config") is not None, reason="config support has landed"
)
def test_config_flag_without_config_support_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["envoy-config", "--config", str(tmp_path / "c.yaml")]) == 2
    assert "config" in capsys.readouterr().err
