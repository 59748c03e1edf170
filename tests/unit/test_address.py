"""One address grammar: ``serve --listen X`` and ``envoy-config --authz X`` name the same
endpoint, or both refuse X for the same reason.

The serve side is ``parse_listen`` (what ``AuthzServer`` parses each ``--listen`` with) and
``worker_listen`` (what ``serve --workers N`` hands its workers); the Envoy side is the real
``authsvc envoy-config`` command and the endpoints it writes into the bootstrap.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from authsvc import _defaults
from authsvc._address import Address, parse_address
from authsvc._errors import ConfigError
from authsvc._worker_addresses import worker_address, worker_listen
from authsvc.cli import main
from authsvc.server import ListenError
from authsvc.server._listen import parse_listen

Endpoint = tuple[str, int] | str  # (host, port) or a Unix socket path

BOTH_ACCEPT: list[tuple[str, Endpoint]] = [
    ("127.0.0.1:9191", ("127.0.0.1", 9191)),
    ("  127.0.0.1:9191\n", ("127.0.0.1", 9191)),
    ("127.0.0.1:09191", ("127.0.0.1", 9191)),
    ("0.0.0.0:7000", ("0.0.0.0", 7000)),
    ("[::1]:9191", ("::1", 9191)),
    ("localhost:9191", ("localhost", 9191)),
    ("authsvc.default.svc:9191", ("authsvc.default.svc", 9191)),
    ("unix:/run/authsvc/authz.sock", "/run/authsvc/authz.sock"),
    ("unix:///run/authsvc/authz.sock", "/run/authsvc/authz.sock"),
    ("unix:/run//authsvc/authz.sock", "/run/authsvc/authz.sock"),
    ("unix:/run/x/../authz.sock", "/run/x/../authz.sock"),  # the kernel resolves '..', alike
    ("unix:/run/authz", "/run/authz"),
]

BOTH_REFUSE: list[tuple[str, str]] = [
    ("9191", "expected HOST:PORT"),
    (":9191", "expected HOST:PORT"),
    ("127.0.0.1", "expected HOST:PORT"),
    ("127.0.0.1:", "not a number"),
    ("127.0.0.1:http", "not a number"),
    ("127.0.0.1:65536", "not a number"),
    ("127.0.0.1:\u0663", "not a number"),  # a digit, but not an ASCII one
    ("127.0.0.1:\u00b2", "not a number"),  # isdigit() but not int(): no traceback
    ("::1:9191", "brackets"),
    ("[::1]9191", "[IPV6]:PORT"),
    ("[]:9191", "[IPV6]:PORT"),
    ("[127.0.0.1]:9191", "[IPV6]:PORT"),
    ("[authsvc]:9191", "[IPV6]:PORT"),
    ("bad host:9191", "neither an IP address nor a host name"),
    ("a..b:9191", "neither an IP address nor a host name"),
    ("my_svc:9191", "neither an IP address nor a host name"),
    ("dns:9191", "only HOST:PORT"),
    ("unix-abstract:authz", "only HOST:PORT"),
    ("vsock:3:9191", "only HOST:PORT"),
    ("UNIX:/run/authz.sock", "lower case"),
    ("unix:", "empty"),
    ("unix:authz.sock", "must be absolute"),
    ("unix:@authz", "must be absolute"),
    ("unix://authz.sock", "unix:///PATH"),
    ("unix:/run/authsvc/", "must end with a file name"),
    ("unix:/run/..", "must end with a file name"),
    ("unix:/run/a\x00b.sock", "control character"),
    ("unix:/run/a\nb.sock", "control character"),
    ("unix:/" + "d" * 120, "longer than 107 bytes"),
]


def _serve(spec: str) -> Endpoint:
    addr = parse_listen(spec)
    return addr.path if addr.is_unix else (addr.host, addr.port)


def _envoy(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[Endpoint]:
    """The authz endpoints ``authsvc envoy-config ARGV`` writes; ConfigError with its stderr."""
    out = tmp_path / "envoy.yaml"
    out.unlink(missing_ok=True)
    capsys.readouterr()
    if main(["envoy-config", *argv, "-o", str(out)]) != 0:
        raise ConfigError(capsys.readouterr().err)
    clusters = yaml.safe_load(out.read_text())["static_resources"]["clusters"]
    (authz,) = [c for c in clusters if c["name"] == _defaults.AUTHZ_CLUSTER]
    found: list[Endpoint] = []
    for lb in authz["load_assignment"]["endpoints"][0]["lb_endpoints"]:
        address = lb["endpoint"]["address"]
        tcp = address.get("socket_address")
        found.append(
            address["pipe"]["path"] if tcp is None else (tcp["address"], tcp["port_value"])
        )
    return found


@pytest.mark.parametrize(("spec", "endpoint"), BOTH_ACCEPT)
def test_serve_and_envoy_config_name_the_same_endpoint(
    spec: str, endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _serve(spec) == endpoint
    assert _envoy(["--authz", spec], tmp_path, capsys) == [endpoint]


@pytest.mark.parametrize(("spec", "endpoint"), BOTH_ACCEPT)
def test_with_workers_too(
    spec: str, endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served = [_serve(a) for (a,) in worker_listen([spec], 3)]
    assert _envoy(["--authz", spec, "--workers", "3"], tmp_path, capsys) == served
    assert len(set(served)) == 3


@pytest.mark.parametrize(("spec", "why"), BOTH_REFUSE)
def test_serve_and_envoy_config_refuse_alike(
    spec: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ListenError) as served:
        parse_listen(spec)
    with pytest.raises(ConfigError) as envoy:
        _envoy(["--authz", spec], tmp_path, capsys)
    for message in (str(served.value), str(envoy.value)):
        assert f"{spec!r}: " in message and why in message, message


def test_port_zero_is_for_serve_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The one deliberate difference: serve may let the kernel pick a port (it reports the
    port it bound); Envoy must know the port, and so must it with --workers."""
    assert _serve("127.0.0.1:0") == ("127.0.0.1", 0)
    with pytest.raises(ConfigError, match="port 0"):
        _envoy(["--authz", "127.0.0.1:0"], tmp_path, capsys)
    with pytest.raises(ConfigError, match="port 0 cannot be used with --workers 2"):
        worker_listen(["127.0.0.1:0"], 2)
    with pytest.raises(ConfigError, match="port 0 cannot be used with --workers 2"):
        _envoy(["--authz", "127.0.0.1:0", "--workers", "2"], tmp_path, capsys)


def test_spellings_of_one_endpoint_are_equal() -> None:
    a = parse_address("unix:///run/a.sock", "x")
    b = parse_address("unix:/run//a.sock", "x")
    assert a == b and hash(a) == hash(b) and a.spec != b.spec
    assert str(a) == a.grpc_target == "unix:/run/a.sock"
    assert str(parse_address("[::1]:80", "x")) == "[::1]:80"
    assert parse_address("[::1]:0", "x", any_port=True).bound(4321) == "[::1]:4321"
    assert Address(path="/s").envoy() == {"pipe": {"path": "/s"}}


def test_envoy_config_refuses_duplicate_spellings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        _envoy(["--authz", "unix:/run/a.sock", "unix:///run/a.sock"], tmp_path, capsys)


def test_a_derived_worker_address_is_checked_too() -> None:
    spec = "unix:/" + "d" * 98 + "/a.sock"  # 107 bytes: fits; worker 10's "-10" does not
    assert parse_listen(spec).path == spec[len("unix:") :]
    with pytest.raises(ConfigError, match=r"worker 10's address .* longer than 107 bytes"):
        worker_address(spec, 10, 11)
