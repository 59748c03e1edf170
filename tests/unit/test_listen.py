"""--listen parsing (pure)."""

from __future__ import annotations

import pytest

from authsvc.server import ListenError
from authsvc.server._listen import parse_listen


@pytest.mark.parametrize(
    ("spec", "target"),
    [
        ("127.0.0.1:9191", "127.0.0.1:9191"),
        ("localhost:0", "localhost:0"),
        ("0.0.0.0:65535", "0.0.0.0:65535"),
        ("[::1]:9191", "[::1]:9191"),
        ("[::]:80", "[::]:80"),
        ("unix:/var/run/authsvc/authz.sock", "unix:/var/run/authsvc/authz.sock"),
        ("unix:///var/run/a.sock", "unix:/var/run/a.sock"),
    ],
)
def test_valid(spec: str, target: str) -> None:
    assert parse_listen(spec).grpc_target == target


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("9191", "HOST:PORT"),
        (":9191", "HOST:PORT"),
        ("127.0.0.1", "HOST:PORT"),
        ("127.0.0.1:http", "not a number"),
        ("127.0.0.1:65536", "not a number"),
        ("::1:9191", "brackets"),
        ("[::1]9191", "[IPV6]:PORT"),
        ("[]:9191", "[IPV6]:PORT"),
        ("unix:", "empty"),
        ("unix:rel/a.sock", "must be absolute"),
        ("unix-abstract:x", "only HOST:PORT"),
        ("unix:/" + "d" * 120, "longer than 107 bytes"),
    ],
)
def test_invalid_names_the_value(spec: str, why: str) -> None:
    with pytest.raises(ListenError) as info:
        parse_listen(spec)
    assert repr(spec) in str(info.value) and why in str(info.value)
