"""``authsvc envoy-config``: flags → file, errors → exit 2 with a clear message."""

from __future__ import annotations

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


def test_route_policy_comes_from_authsvc_config(tmp_path: Path) -> None:
    config = tmp_path / "authsvc.yaml"
    config.write_text(
        "public_paths: [/livez, /health/readiness]\n"
        "credentials: [header:x-api-key, header:authorization, query:key]\n"
        "forward_credentials: false\n"
    )
    out = tmp_path / "e.yaml"
    assert main(["envoy-config", "--config", str(config), "-o", str(out)]) == 0
    routes = yaml.safe_load(out.read_text())["static_resources"]["listeners"][0]["filter_chains"][
        0
    ]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    public = sorted({r["match"]["path"] for r in routes if "path" in r["match"]})
    assert public == ["/health/readiness", "/livez"]
    assert all(r["request_headers_to_remove"] == ["x-api-key", "authorization"] for r in routes)


def test_config_from_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "authsvc.yaml"
    config.write_text("public_paths: [/ping]\n")
    monkeypatch.setenv("AUTHSVC_CONFIG", str(config))
    assert main(["envoy-config"]) == 0
    assert "path: /ping" in capsys.readouterr().out


def test_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "authsvc.yaml"
    config.write_text("public_pathz: [/x]\n")
    assert main(["envoy-config", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "public_pathz" in err
    assert main(["envoy-config", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHSVC_CONFIG", raising=False)
