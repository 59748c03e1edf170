"""Every bootstrap we generate is accepted by the real Envoy (``envoy --mode validate``)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from authsvc.envoy import EnvoyOptions, RouteOptions, build_bootstrap, envoy_binary, render_yaml

ROOT = Path(__file__).resolve().parents[2]

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "unix": {"authz": ("unix:/var/run/authsvc/authz.sock",)},
    "three unix workers": {"authz": tuple(f"unix:/run/authsvc/w{i}.sock" for i in range(3))},
    "three tcp workers": {"authz": ("127.0.0.1:9191", "127.0.0.1:9193", "127.0.0.1:9194")},
    "dns names": {"authz": ("authsvc.default.svc:9191",), "upstream": "litellm:4000"},
    "ipv6": {"listen": "[::]:10000", "admin": "[::1]:9901", "authz": ("[::1]:9191",)},
    "unix admin": {"admin": "unix:/var/run/envoy-admin.sock"},
    "strip credentials": {"forward_credentials": False},
    "extra routes": {
        "routes": (
            RouteOptions("/v1/chat/completions", 0, (("route", "chat"),)),
            RouteOptions("/v1", 30),
        )
    },
    "other knobs": {
        "status_on_error": 500,
        "escaped_slashes": "UNESCAPE_AND_REDIRECT",
        "authz_timeout": 0.25,
        "upstream_timeout": 0,
        "access_log": False,
        "public_paths": ("/livez",),
        "public_methods": ("GET",),
    },
}


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_envoy_accepts_generated_bootstrap(name: str, tmp_path: Path) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(render_yaml(build_bootstrap(EnvoyOptions(**VARIANTS[name]))))
    result = _validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower()


@pytest.mark.parametrize("name", ["envoy-tcp.yaml", "envoy-unix.yaml"])
def test_envoy_accepts_committed_examples(name: str) -> None:
    result = _validate(ROOT / "envoy" / name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_envoy_rejects_a_broken_bootstrap(tmp_path: Path) -> None:
    """The validation test can fail: a misspelt field is refused."""
    boot = build_bootstrap(EnvoyOptions())
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    hcm["typed_config"]["normalise_path"] = True
    path = tmp_path / "bad.yaml"
    path.write_text(render_yaml(boot))
    assert _validate(path).returncode != 0
