"""k8s/ as users apply it: every kustomization renders, validates (1.29, strict) and is hardened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from authsvc import _defaults
from authsvc.kube._options import KEY_DIR
from tests.k8s._support import (
    K8S,
    NO_SCHEMA_KINDS,
    kustomizations,
    kustomize,
    load_yaml_file,
    needs_kubectl,
    pod_templates,
    validate_all,
)

DIRS = kustomizations()


def test_the_expected_kustomizations_exist() -> None:
    names = {str(d.relative_to(K8S)) for d in DIRS}
    assert {"base", "examples/litellm", "webhook"} <= names


def _resource_files() -> list[Path]:
    files = []
    for directory in DIRS:
        spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
        for entry in spec.get("resources", []):
            path = (directory / entry).resolve()
            if path.is_file():
                files.append(path)
    return sorted(set(files))


@pytest.mark.parametrize("path", _resource_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_resource_file_validates_on_its_own(path: Path) -> None:
    docs = [d for d in load_yaml_file(path) if d.get("kind") not in NO_SCHEMA_KINDS]
    assert validate_all(docs, str(path.relative_to(K8S))) >= 1


@needs_kubectl
@pytest.mark.parametrize("directory", DIRS, ids=lambda d: str(d.relative_to(K8S)))
def test_every_kustomization_renders_and_validates(directory: Path) -> None:
    docs = kustomize(directory)
    assert validate_all(docs, f"kubectl kustomize {directory.relative_to(K8S)}") >= 2


def _rendered(name: str) -> list[dict[str, Any]]:
    return kustomize(K8S / name)


def _all_containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@needs_kubectl
@pytest.mark.parametrize("name", ["base", "examples/litellm", "webhook"])
def test_every_container_is_locked_down_and_bounded(name: str) -> None:
    templates = pod_templates(_rendered(name))
    assert templates
    for label, template in templates:
        pod_seccomp = template["spec"].get("securityContext", {}).get("seccompProfile")
        for c in _all_containers(template):
            where = f"{name}: {label}: container {c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert (sc.get("seccompProfile") or pod_seccomp) == {"type": "RuntimeDefault"}, where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get(kind, {})), where
            if not c["image"].startswith("ghcr.io/berriai/litellm"):  # LiteLLM's image is root
                assert sc.get("runAsNonRoot") is True, where
                assert isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, where
                assert sc.get("readOnlyRootFilesystem") is True, where
            for mount in c.get("volumeMounts", []):
                assert "subPath" not in mount and "subPathExpr" not in mount, where


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


def test_no_manifest_uses_subpath() -> None:
    for path in K8S.rglob("*.yaml"):
        keys = _keys(load_yaml_file(path))
        assert not keys & {"subPath", "subPathExpr"}, f"{path}: subPath mounts never see updates"


@needs_kubectl
@pytest.mark.parametrize("name", ["base", "examples/litellm"])
def test_sidecars_are_native_and_ordered(name: str) -> None:
    docs = _rendered(name)
    ((_, template),) = pod_templates(docs)
    spec = template["spec"]
    init = spec["initContainers"]
    assert [c["name"] for c in init[:2]] == ["authsvc", "authsvc-envoy"]
    for c in init[:2]:
        assert c["restartPolicy"] == "Always"
    authsvc, envoy = init[0], init[1]
    startup = authsvc["startupProbe"]["httpGet"]
    assert (startup["port"], startup["path"]) == (_defaults.STATUS_PORT, "/livez")
    assert authsvc["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert _defaults.AUTHZ_SOCKET_IN_POD in authsvc["args"]
    assert f"0.0.0.0:{_defaults.STATUS_PORT}" in authsvc["args"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    # The authz link: a Unix socket in one emptyDir both sidecars mount at the same path.
    socket_dir = _defaults.AUTHZ_SOCKET_IN_POD.removeprefix("unix:").rsplit("/", 1)[0]
    for c in (authsvc, envoy):
        (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == socket_dir]
        assert "emptyDir" in volumes[mount["name"]]
    # The key Secret: a directory mount, only in authsvc.
    (key_mount,) = [m for m in authsvc["volumeMounts"] if m["mountPath"] == KEY_DIR]
    assert "secret" in volumes[key_mount["name"]] and key_mount["readOnly"] is True
    assert not any(m["name"] == key_mount["name"] for m in envoy["volumeMounts"])
    # The app starts after the sidecars, and is reached only through Envoy's port.
    (service,) = [d for d in docs if d["kind"] == "Service"]
    ports = {p["name"]: p["containerPort"] for p in envoy["ports"]}
    for port in service["spec"]["ports"]:
        assert ports[port["targetPort"]] == _defaults.ENVOY_PORT
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()


@needs_kubectl
def test_litellm_app_and_sidecar_read_the_same_secret_and_key() -> None:
    docs = _rendered("examples/litellm")
    ((_, template),) = pod_templates(docs)
    spec = template["spec"]
    authsvc = spec["initContainers"][0]
    (litellm,) = spec["containers"]
    assert litellm["image"] == "ghcr.io/berriai/litellm:main-stable"
    assert "127.0.0.1" in litellm["args"], "LiteLLM must listen on loopback only"
    config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    volumes = {v["name"]: v for v in spec["volumes"]}

    def mounted_file(container: dict[str, Any], path: str) -> str:
        for m in container["volumeMounts"]:
            if path.startswith(m["mountPath"] + "/"):
                vol = volumes[m["name"]]
                assert "configMap" in vol, path
                data = config_maps[vol["configMap"]["name"]]["data"]
                return str(data[path[len(m["mountPath"]) + 1 :]])
        raise AssertionError(f"{container['name']} does not mount {path}")

    # LiteLLM: general_settings.master_key -> os.environ/LITELLM_MASTER_KEY -> the Secret.
    litellm_config_path = litellm["args"][litellm["args"].index("--config") + 1]
    litellm_config = yaml.safe_load(mounted_file(litellm, litellm_config_path))
    assert litellm_config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    env = {e["name"]: e for e in litellm["env"]}
    app_ref = env["LITELLM_MASTER_KEY"]["valueFrom"]["secretKeyRef"]

    # authsvc: its config resolves LiteLLM's config (same file, same env) and the Secret dir.
    config_path = authsvc["args"][authsvc["args"].index("--config") + 1]
    config = yaml.safe_load(mounted_file(authsvc, config_path))
    sources = config["master_key"]["sources"]
    (litellm_source,) = [s["litellm_config"] for s in sources if "litellm_config" in s]
    assert mounted_file(authsvc, litellm_source) == mounted_file(litellm, litellm_config_path)
    sidecar_env = {e["name"]: e for e in authsvc["env"]}
    sidecar_ref = sidecar_env["LITELLM_MASTER_KEY"]["valueFrom"]["secretKeyRef"]
    assert (sidecar_ref["name"], sidecar_ref["key"]) == (app_ref["name"], app_ref["key"])
    (file_source,) = [s["file"] for s in sources if "file" in s]
    (key_mount,) = [
        m for m in authsvc["volumeMounts"] if file_source.startswith(m["mountPath"] + "/")
    ]
    assert volumes[key_mount["name"]]["secret"]["secretName"] == app_ref["name"]
    assert file_source == f"{key_mount['mountPath']}/{app_ref['key']}"
    # Probes: LiteLLM's public health routes, through the pass-through.
    import json

    probes = json.loads(sidecar_env["AUTHSVC_APP_PROBES"]["value"])
    paths = {v["path"] for v in probes.values()}
    assert paths == {"/health/liveliness", "/health/readiness"}
    assert {v["port"] for v in probes.values()} == {4000}


@needs_kubectl
def test_webhook_configuration_is_explicit_and_excludes_itself() -> None:
    docs = _rendered("webhook")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    (config,) = by_kind["MutatingWebhookConfiguration"]
    (namespace,) = by_kind["Namespace"]
    own = namespace["metadata"]["name"]
    services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in by_kind["Service"]}
    (deployment,) = by_kind["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    listen_port = int(args[args.index("--listen") + 1].rsplit(":", 1)[1])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert len(config["webhooks"]) == 2
    for hook in config["webhooks"]:
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["sideEffects"] == "None"
        assert hook["failurePolicy"] in ("Fail", "Ignore")
        assert 1 <= hook["timeoutSeconds"] <= 30
        assert hook["reinvocationPolicy"] in ("Never", "IfNeeded")
        excluded = [
            e
            for e in hook["namespaceSelector"]["matchExpressions"]
            if e["key"] == "kubernetes.io/metadata.name"
        ]
        assert excluded and excluded[0]["operator"] == "NotIn"
        assert {own, "kube-system"} <= set(excluded[0]["values"])
        ref = hook["clientConfig"]["service"]
        service = services[(ref["namespace"], ref["name"])]
        (port,) = [p for p in service["spec"]["ports"] if p["port"] == ref["port"]]
        assert named[port["targetPort"]] == listen_port
        assert ref["path"] == "/inject"
        assert hook["rules"] == [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ]
