"""Probe map parsing (pure): ``AUTHSVC_APP_PROBES`` as ``authsvc inject`` writes it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from authsvc import ConfigError
from authsvc.health import PROBES_ENV, ProbeTarget, parse_probes, probes_from_env


def _one(entry: Any, probe: str = "/app-health/app/readyz") -> str:
    return json.dumps({probe: entry})


def test_minimal_entry_gets_kubelet_like_defaults() -> None:
    probes = parse_probes(_one({"port": 4000, "path": "/health/readiness"}))
    assert dict(probes) == {
        "/app-health/app/readyz": ProbeTarget(
            4000, "/health/readiness", "HTTP", "127.0.0.1", (), 1.0
        )
    }


def test_full_entry() -> None:
    text = json.dumps(
        {
            "/app-health/litellm/livez": {
                "port": 8443,
                "path": "/health/liveliness?x=1",
                "scheme": "HTTPS",
                "host": "localhost",
                "headers": [{"name": "X-Probe", "value": "kubelet"}],
                "timeout_seconds": 2.5,
            },
            "/app-health/litellm/startupz": {"port": 4000, "path": "/"},
        }
    )
    probes = parse_probes(text)
    live = probes["/app-health/litellm/livez"]
    assert live == ProbeTarget(
        8443, "/health/liveliness?x=1", "HTTPS", "localhost", (("X-Probe", "kubelet"),), 2.5
    )
    assert str(live.target()) == "https://localhost:8443/health/liveliness?x=1"
    assert set(probes) == {"/app-health/litellm/livez", "/app-health/litellm/startupz"}


def test_env_unset_or_blank_means_no_probes() -> None:
    assert dict(probes_from_env({})) == {}
    assert dict(probes_from_env({PROBES_ENV: "  "})) == {}
    assert len(probes_from_env({PROBES_ENV: _one({"port": 1, "path": "/"})})) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "AUTHSVC_APP_PROBES: invalid JSON at line 1 column 2"),
        ("[]", "expected a JSON object"),
        (
            _one({"port": 1, "path": "/"}, "/health"),
            "'/health'.*the key must be '/app-health/<container>/",
        ),
        (_one({"port": 1, "path": "/"}, "/app-health/App/readyz"), "DNS-1123"),
        (_one({"port": 1, "path": "/"}, "/app-health/app/ready"), "livez|readyz|startupz"),
        (_one({"port": 1, "path": "/"}, "/app-health/app/readyz/x"), "livez|readyz|startupz"),
        (_one([1]), "expected an object"),
        (_one({"path": "/"}), "missing required field 'port'"),
        (_one({"port": 1}), "missing required field 'path'"),
        (_one({"port": 0, "path": "/"}), "port: expected an integer 1..65535, got 0"),
        (_one({"port": "80", "path": "/"}), "port: expected an integer"),
        (_one({"port": True, "path": "/"}), "port: expected an integer"),
        (_one({"port": 70000, "path": "/"}), "port: expected an integer"),
        (_one({"port": 1, "path": "health"}), "path: expected an absolute path"),
        (_one({"port": 1, "path": "/a b"}), "path: expected an absolute path"),
        (_one({"port": 1, "path": "/", "scheme": "http"}), "scheme: expected 'HTTP' or 'HTTPS'"),
        (_one({"port": 1, "path": "/", "scheme": "TCP"}), "scheme"),
        (_one({"port": 1, "path": "/", "host": "a/b"}), "host: expected a host name"),
        (_one({"port": 1, "path": "/", "host": ""}), "host"),
        (
            _one({"port": 1, "path": "/", "timeout_seconds": 0}),
            r"timeout_seconds: expected a number in \(0, 60\]",
        ),
        (_one({"port": 1, "path": "/", "timeout_seconds": "1"}), "timeout_seconds"),
        (_one({"port": 1, "path": "/", "headers": {"a": "b"}}), "headers: expected a list"),
        (
            _one({"port": 1, "path": "/", "headers": [{"name": "a"}]}),
            r"headers\[0\]: expected exactly",
        ),
        (
            _one({"port": 1, "path": "/", "headers": [{"name": "a b", "value": "v"}]}),
            r"headers\[0\].name",
        ),
        (
            _one({"port": 1, "path": "/", "headers": [{"name": "a", "value": 1}]}),
            r"headers\[0\].value",
        ),
        (_one({"port": 1, "path": "/", "portt": 2}), "unknown field 'portt'"),
    ],
)
def test_bad_entries_name_the_entry_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_probes(text)


def test_error_names_the_offending_entry_among_several() -> None:
    text = json.dumps(
        {
            "/app-health/app/livez": {"port": 4000, "path": "/ok"},
            "/app-health/app/readyz": {"port": 4000, "path": "/ok", "timeout_seconds": -1},
        }
    )
    with pytest.raises(ConfigError) as info:
        parse_probes(text)
    assert str(info.value).startswith(
        "AUTHSVC_APP_PROBES['/app-health/app/readyz']: timeout_seconds"
    )


def test_header_value_is_never_echoed_in_errors() -> None:
    text = _one(
        {"port": 1, "path": "/", "headers": [{"name": "Authorization", "value": "Bearer sk-x\n"}]}
    )
    with pytest.raises(ConfigError) as info:
        parse_probes(text)
    assert "sk-x" not in str(info.value) and "Authorization" in str(info.value)
