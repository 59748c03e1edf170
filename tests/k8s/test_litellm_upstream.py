"""``authsvc inject`` on LiteLLM's own manifests (testdata/litellm: our reproductions of
upstream's kub.yaml + service.yaml, performance-eks/litellm.yaml and the Helm chart rendered by
hand): schema-valid on every bundled Kubernetes version, every matching Service targets
Envoy, LiteLLM listens on 127.0.0.1, Jobs and Helm hooks are skipped, and the authsvc
container — given exactly its injected env and mounts — resolves the key the app resolves.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from authsvc.keys import fingerprint
from authsvc.kube._app import option_value
from tests.k8s._support import authsvc, load_documents

DATA = Path(__file__).parent / "testdata" / "litellm"
FIXTURES = ["kub", "eks", "helm"]
# Every Kubernetes version kubernetes-validate bundles from 1.29 on (1.29-1.37 with 1.37.0).
VERSIONS = sorted(
    {
        v.removeprefix("v").removesuffix("-local-strict")
        for v in os.listdir(Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema")
        if v.endswith("-local-strict")
    },
    key=lambda v: tuple(int(p) for p in v.split(".")),
)
VERSIONS = [v for v in VERSIONS if tuple(int(p) for p in v.split("."))[:2] >= (1, 29)]

Obj = dict[str, Any]


def _inject(name: str, *args: str) -> tuple[list[Obj], str]:
    done = authsvc("inject", "-f", str(DATA / f"{name}.yaml"), *args)
    assert done.returncode == 0, done.stderr
    return load_documents(done.stdout, name), done.stderr


def _deployment(docs: list[Obj]) -> Obj:
    (found,) = [d for d in docs if d["kind"] == "Deployment"]
    return found


def _container(template: Obj, name: str) -> Obj:
    spec = template["spec"]
    (c,) = [c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == name]
    return c


def test_the_bundled_versions_cover_1_29_to_1_37() -> None:
    assert VERSIONS[0] == "1.29.0" and VERSIONS[-1] >= "1.37.0", VERSIONS
    assert {f"1.{m}.0" for m in range(29, 38)} <= set(VERSIONS)


@pytest.mark.parametrize("name", FIXTURES)
def test_output_validates_strict_on_every_version(name: str) -> None:
    for args in ([], ["--network-policy", "--inbound-redirect"]):
        docs, _ = _inject(name, *args)
        for version in VERSIONS:
            for doc in docs:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(f"{name} {args} on {version}: {doc['kind']}: {exc.message}")


@pytest.mark.parametrize("name", FIXTURES)
def test_every_matching_service_targets_envoy_keeping_its_port(name: str) -> None:
    before = load_documents((DATA / f"{name}.yaml").read_text(), name)
    after, stderr = _inject(name)
    services = [(b, a) for b, a in zip(before, after, strict=False) if b["kind"] == "Service"]
    assert services
    for old, new in services:
        for p_old, p_new in zip(old["spec"]["ports"], new["spec"]["ports"], strict=True):
            assert p_new["port"] == p_old["port"]  # clients change nothing
            assert p_new["targetPort"] == "authsvc-proxy"
        assert f"changed Service {old['metadata']['name']}: port 4000 now targets" in stderr
    assert "no Service authsvc saw selects" not in stderr
    envoy = _container(_deployment(after)["spec"]["template"], "authsvc-envoy")
    assert envoy["ports"][0]["name"] == "authsvc-proxy"


@pytest.mark.parametrize(
    ("name", "where"),
    [("kub", ("env", "HOST")), ("eks", ("args", "--host")), ("helm", ("env", "HOST"))],
)
def test_litellm_listens_on_loopback_only(name: str, where: tuple[str, str]) -> None:
    after, stderr = _inject(name)
    app = _deployment(after)["spec"]["template"]["spec"]["containers"][0]
    if where[0] == "args":
        found = option_value(app["args"], "--host")
        assert found is not None and found[1] == "127.0.0.1"
    else:
        hosts = [e for e in app["env"] if e["name"] == "HOST"]
        assert hosts == [{"name": "HOST", "value": "127.0.0.1"}]
    assert "is not LiteLLM" not in stderr  # recognised by its image: no warning needed
    # The bypass detector is wired: pod IPs from the downward API, the app port.
    env = {
        e["name"]: e for e in _container(_deployment(after)["spec"]["template"], "authsvc")["env"]
    }
    assert env["AUTHSVC_POD_IPS"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIPs"}}
    assert env["AUTHSVC_APP_PORT"]["value"] == "4000"


def test_an_app_authsvc_cannot_rebind_is_named_in_a_warning() -> None:
    docs = load_documents((DATA / "kub.yaml").read_text(), "kub")
    app = _deployment(docs)["spec"]["template"]["spec"]["containers"][0]
    app["image"] = "example.com/other-llm-gateway:1"
    done = authsvc("inject", "-f", "-", stdin=yaml.safe_dump_all(docs))
    assert done.returncode == 0
    assert (
        "WARNING: Deployment litellm-deployment: container 'litellm-container' is not LiteLLM"
        in done.stderr
    )
    assert "127.0.0.1:4000" in done.stderr
    done = authsvc("inject", "-f", "-", "--inbound-redirect", stdin=yaml.safe_dump_all(docs))
    assert "is not LiteLLM" not in done.stderr  # closed by the redirect instead
    (injected,) = [d for d in load_documents(done.stdout, "x") if d["kind"] == "Deployment"]
    first = injected["spec"]["template"]["spec"]["initContainers"][0]
    assert first["name"] == "authsvc-redirect"
    assert first["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["NET_ADMIN", "NET_RAW"],
    }
    assert "--dport 4000 -j REDIRECT --to-ports 10000" in first["command"][2]


def test_jobs_and_helm_hooks_are_skipped_and_listed() -> None:
    before = load_documents((DATA / "helm.yaml").read_text(), "helm")
    after, stderr = _inject("helm")
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in after}
    for kind, name in (("Job", "litellm-migrations"), ("Pod", "litellm-test-connection")):
        (old,) = [d for d in before if (d["kind"], d["metadata"]["name"]) == (kind, name)]
        assert by_name[(kind, name)] == old
        assert f"skipped {kind} {name}: " in stderr
    assert "Helm hook (helm.sh/hook: test)" in stderr
    forced, stderr = _inject("helm", "--include-jobs")
    job = next(d for d in forced if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["initContainers"][0]["name"] == "authsvc"


def test_network_policy_admits_only_envoy_and_the_status_port() -> None:
    after, _ = _inject("helm", "--network-policy")
    (policy,) = [d for d in after if d["kind"] == "NetworkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "litellm",
        "app.kubernetes.io/instance": "litellm",
    }
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [
        {"ports": [{"protocol": "TCP", "port": 10000}, {"protocol": "TCP", "port": 9192}]}
    ]


@pytest.mark.parametrize("name", FIXTURES)
def test_injecting_twice_equals_once(name: str) -> None:
    once = authsvc("inject", "-f", str(DATA / f"{name}.yaml"), "--network-policy")
    twice = authsvc("inject", "-f", "-", "--network-policy", stdin=once.stdout)
    assert once.returncode == twice.returncode == 0
    assert twice.stdout == once.stdout


# ------------------------------------------------------- the key, as the app and authsvc see it


def _object_data(docs: list[Obj], kind: str, name: str) -> dict[str, str] | None:
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            raw = d.get("data") or {}
            data = (
                dict(raw)
                if kind == "ConfigMap"
                else {k: base64.b64decode(v).decode() for k, v in raw.items()}
            )
            data.update(d.get("stringData") or {})
            return data
    return None


def _container_env(container: Obj, docs: list[Obj]) -> dict[str, str]:
    """The container's environment as kubelet builds it (envFrom, then env; last one wins)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        for ref, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            if ref in source:
                data = _object_data(docs, kind, source[ref]["name"]) or {}
                env.update({source.get("prefix", "") + k: v for k, v in data.items()})
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        for ref, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            selector = entry.get("valueFrom", {}).get(ref)
            if selector is not None:
                data = _object_data(docs, kind, selector["name"]) or {}
                if selector["key"] in data:
                    env[entry["name"]] = data[selector["key"]]
    return env


def _mount(container: Obj, template: Obj, docs: list[Obj], root: Path) -> None:
    """The container's ConfigMap volumes, written under ``root`` as kubelet mounts them."""
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        if "configMap" not in volume:
            continue
        data = _object_data(docs, "ConfigMap", volume["configMap"]["name"]) or {}
        target = root / mount["mountPath"].lstrip("/")
        if "subPath" in mount:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[mount["subPath"]])
        else:
            target.mkdir(parents=True, exist_ok=True)
            for key, value in data.items():
                (target / key).write_text(value)


def _litellm_key(app: Obj, docs: list[Obj], root: Path) -> str | None:
    """The master key LiteLLM resolves (docs/configuration.md, *LiteLLM mode*): a present
    ``general_settings.master_key`` (``os.environ/NAME`` followed), else LITELLM_MASTER_KEY."""
    env = _container_env(app, docs)
    config_path = option_value(app["args"], "--config")
    assert config_path is not None
    config = yaml.safe_load((root / config_path[1].lstrip("/")).read_text())
    settings = config.get("general_settings") or {}
    if "master_key" not in settings:
        return env.get("LITELLM_MASTER_KEY")
    value = settings["master_key"]
    return env.get(value.removeprefix("os.environ/")) if value.startswith("os.environ/") else value


@pytest.mark.parametrize("name", FIXTURES)
def test_explain_with_the_injected_env_and_mounts_resolves_the_apps_key(
    name: str, tmp_path: Path
) -> None:
    docs, _ = _inject(name)
    template = _deployment(docs)["spec"]["template"]
    app = template["spec"]["containers"][0]
    sidecar = _container(template, "authsvc")
    _mount(app, template, docs, tmp_path / "app")
    _mount(sidecar, template, docs, tmp_path / "authsvc")
    expected = _litellm_key(app, docs, tmp_path / "app")
    assert expected, f"{name}: the fixture's app resolves no key"

    env = _container_env(sidecar, docs)
    for key, value in list(env.items()):
        if value.startswith("/etc/"):  # pod paths -> the rebuilt pod filesystem
            env[key] = str(tmp_path / "authsvc" / value.lstrip("/"))
    # The app's provider keys stay with the app.
    assert not {"AZURE_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"} & set(env)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSVC_", "LITELLM_"))}
    done = authsvc("explain", "--json", env={**clean, **env})
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["winner"]["fingerprint"] == fingerprint(expected)
    assert report["winner"]["source"].startswith("litellm:" if name != "kub" else "env:")
    assert expected not in done.stdout + done.stderr
