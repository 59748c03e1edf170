"""The hand-written sidecars in k8s/ are exactly what ``authsvc inject`` adds.

Each pod of k8s/base and k8s/examples/litellm is "un-injected" (sidecars and authsvc volumes
removed, app probes restored from AUTHSVC_APP_PROBES), injected again with the same options,
and compared. The only allowed difference: Envoy's bootstrap comes from a ConfigMap there and
from the ``authsvc-bootstrap`` init container in injected pods (same file, same mount).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from authsvc.kube import InjectOptions, inject_template
from authsvc.kube._options import (
    BOOTSTRAP_CONTAINER,
    BOOTSTRAP_DIR,
    BOOTSTRAP_FILE,
    ENVOY_CONTAINER,
    SIDECAR_CONTAINER,
    VOLUME_BOOTSTRAP,
    VOLUME_CONFIG,
    VOLUME_KEY,
)
from authsvc.kube._probes import PROBES
from tests.k8s._support import K8S, kustomize, load_yaml_file, needs_kubectl, pod_templates

Obj = dict[str, Any]


def _env(container: Obj) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def _uninject(template: Obj) -> tuple[Obj, InjectOptions]:
    t = copy.deepcopy(template)
    spec = t["spec"]
    init = {c["name"]: c for c in spec["initContainers"]}
    sidecar, envoy = init[SIDECAR_CONTAINER], init[ENVOY_CONTAINER]
    volumes = {v["name"]: v for v in spec["volumes"]}
    options = InjectOptions(
        image=sidecar["image"],
        envoy_image=envoy["image"],
        secret=volumes[VOLUME_KEY]["secret"]["secretName"],
        config_map=volumes[VOLUME_CONFIG]["configMap"]["name"],
    )
    originals = json.loads(_env(sidecar)["AUTHSVC_APP_PROBES"]["value"])
    by_path = {
        f"/app-health/{c['name']}/{p}": (c, f)
        for c in spec["containers"]
        for f, p in PROBES.items()
    }
    for path, target in originals.items():
        container, field = by_path[path]
        get = {"path": target["path"], "port": target["port"], "scheme": target["scheme"]}
        assert container[field]["httpGet"]["path"] == path
        declared = {p["containerPort"] for p in container.get("ports", [])}
        assert target["port"] in declared, f"{path} forwards to a port {container['name']} lacks"
        container[field]["httpGet"] = get
    spec["initContainers"] = [
        c for c in spec["initContainers"] if c["name"] not in (SIDECAR_CONTAINER, ENVOY_CONTAINER)
    ]
    if not spec["initContainers"]:
        del spec["initContainers"]
    spec["volumes"] = [v for v in spec["volumes"] if not v["name"].startswith("authsvc-")]
    for key in ("authsvc.io/status", "authsvc.io/version"):
        del t["metadata"]["annotations"][key]
    return t, options


def _compare(name: str, template: Obj) -> None:
    plain, options = _uninject(template)
    again = inject_template(plain, options=options, path="spec.template")
    spec, new = template["spec"], again["spec"]
    assert new["containers"] == spec["containers"], f"{name}: app containers/probes differ"
    ours = {c["name"]: c for c in new["initContainers"]}
    theirs = {c["name"]: c for c in spec["initContainers"]}
    assert ours[ENVOY_CONTAINER] == theirs[ENVOY_CONTAINER], f"{name}: Envoy container differs"
    # authsvc: identical, except entries an example adds on purpose (LiteLLM's env/config).
    mine, hand = ours[SIDECAR_CONTAINER], copy.deepcopy(theirs[SIDECAR_CONTAINER])
    hand["env"] = [e for e in hand["env"] if e["name"] in _env(mine)]
    hand["volumeMounts"] = [m for m in hand["volumeMounts"] if m["name"].startswith("authsvc-")]
    # inject mounts the app's LiteLLM config volume too (the example mounts it by hand).
    mine["volumeMounts"] = [m for m in mine["volumeMounts"] if m["name"].startswith("authsvc-")]
    assert sorted(hand["env"], key=str) == sorted(mine["env"], key=str), f"{name}: authsvc env"
    hand["env"] = mine["env"]
    assert hand == mine, f"{name}: authsvc container differs"
    # Order: authsvc, then (bootstrap,) Envoy, before any init container of the app.
    assert [c["name"] for c in new["initContainers"][:3]] == [
        SIDECAR_CONTAINER,
        BOOTSTRAP_CONTAINER,
        ENVOY_CONTAINER,
    ]
    assert [c["name"] for c in spec["initContainers"][:2]] == [SIDECAR_CONTAINER, ENVOY_CONTAINER]
    # Volumes: the same, but the bootstrap is a ConfigMap holding envoy.yaml.
    mine_v = {v["name"]: v for v in new["volumes"] if v["name"].startswith("authsvc-")}
    hand_v = {v["name"]: v for v in spec["volumes"] if v["name"].startswith("authsvc-")}
    assert set(mine_v) == set(hand_v)
    for vol_name, vol in mine_v.items():
        if vol_name != VOLUME_BOOTSTRAP:
            assert hand_v[vol_name] == vol, f"{name}: volume {vol_name}"
    assert "emptyDir" in mine_v[VOLUME_BOOTSTRAP] and "configMap" in hand_v[VOLUME_BOOTSTRAP]
    assert f"{BOOTSTRAP_DIR}/envoy.yaml" == BOOTSTRAP_FILE


def test_base_deployment_is_what_inject_produces() -> None:
    (deployment,) = [
        d for d in load_yaml_file(K8S / "base" / "deployment.yaml") if d["kind"] == "Deployment"
    ]
    _compare("k8s/base", deployment["spec"]["template"])


@needs_kubectl
@pytest.mark.parametrize("name", ["base", "examples/litellm"])
def test_rendered_pods_are_what_inject_produces(name: str) -> None:
    docs = kustomize(K8S / name)
    ((label, template),) = pod_templates(docs)
    _compare(f"{name} {label}", template)
    # The Envoy ConfigMap carries the file Envoy is started with.
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    cm_name = volumes[VOLUME_BOOTSTRAP]["configMap"]["name"]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm_name]
    assert set(cm["data"]) == {"envoy.yaml"}
