"""``authsvc inject``: the pod transform, through the real CLI and as a function."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from authsvc import _defaults
from authsvc._errors import ConfigError
from authsvc.kube import (
    InjectError,
    InjectOptions,
    inject_documents,
    inject_template,
    load_documents,
)
from tests.k8s._support import authsvc, pod_templates, validate_all

HERE = Path(__file__).parent
APP = (HERE / "testdata" / "workloads.yaml").read_text()
OURS = ["authsvc", "authsvc-bootstrap", "authsvc-envoy"]


def _inject(text: str, *args: str) -> tuple[list[Any], str]:
    done = authsvc("inject", "-f", "-", *args, stdin=text)
    assert done.returncode == 0, done.stderr
    return load_documents(done.stdout, "stdout"), done.stderr


def _by_name(docs: list[Any]) -> dict[str, dict[str, Any]]:
    return dict(pod_templates(docs))


def _container(template: dict[str, Any], name: str) -> dict[str, Any]:
    spec = template["spec"]
    (c,) = [c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == name]
    return c


def test_every_workload_kind_gets_the_sidecars_and_other_documents_stay_equal() -> None:
    before = load_documents(APP, "workloads.yaml")
    after, stderr = _inject(APP, "--include-jobs")
    assert len(after) == len(before)
    templates = _by_name(after)
    kinds = {label.split("/")[0] for label in templates}
    assert kinds == {
        "Pod",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
    }
    for label, template in templates.items():
        if label == "Deployment/opted-out":
            continue
        names = [c["name"] for c in template["spec"]["initContainers"]]
        assert names[:3] == OURS, label
        assert template["metadata"]["annotations"]["authsvc.io/status"] == "injected"
        assert f"injected {label.split('/')[0]}" in stderr
    # The job's own init container runs after the sidecars, unchanged.
    job = templates["Job/migrate"]
    assert (
        job["spec"]["initContainers"][3]
        == _by_name(before)["Job/migrate"]["spec"]["initContainers"][0]
    )
    for old, new in zip(before, after, strict=True):
        if (
            old["kind"] in ("ConfigMap", "Service", "List")
            or old["metadata"].get("name") == "opted-out"
        ):
            assert new == old, old["kind"]


def test_output_validates_against_kubernetes_1_29_strict() -> None:
    for args in ([], ["--config-map", "authsvc-config", "--secret", "other-key"]):
        after, _ = _inject(APP, *args)
        assert validate_all(after, f"inject {args}") == len(after)


def test_injecting_twice_equals_injecting_once() -> None:
    once = authsvc("inject", "-f", "-", stdin=APP)
    twice = authsvc("inject", "-f", "-", stdin=once.stdout)
    assert once.returncode == twice.returncode == 0
    assert twice.stdout == once.stdout
    assert "skipped Deployment shop/web: already injected (authsvc 0.1.0)" in twice.stderr


def test_pure_function_does_not_touch_its_input() -> None:
    docs = load_documents(APP, "workloads.yaml")
    frozen = copy.deepcopy(docs)
    inject_documents(docs, InjectOptions())
    assert docs == frozen


@pytest.mark.parametrize(
    ("where", "value"),
    [("annotations", "false"), ("labels", "disabled"), ("annotations", "False")],
)
def test_opt_out_leaves_the_pod_alone(where: str, value: str) -> None:
    template = {
        "metadata": {where: {"authsvc.io/inject": value}},
        "spec": {"containers": [{"name": "a", "image": "x"}]},
    }
    assert inject_template(template, options=InjectOptions()) == template
    _, stderr = _inject(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", **template["metadata"]},
                "spec": template["spec"],
            }
        )
    )
    assert "skipped Pod p: opted out" in stderr


def test_http_probes_are_rewritten_and_the_originals_recorded() -> None:
    after, _ = _inject(APP)
    web = _by_name(after)["Deployment/web"]
    app = _container(web, "web")
    status = _defaults.STATUS_PORT
    assert app["livenessProbe"]["httpGet"] == {
        "path": "/app-health/web/livez",
        "port": status,
        "scheme": "HTTP",
    }
    assert app["readinessProbe"]["httpGet"] == {
        "path": "/app-health/web/readyz",
        "port": status,
        "scheme": "HTTP",
    }
    assert app["livenessProbe"]["periodSeconds"] == 7  # everything but httpGet is kept
    assert app["startupProbe"] == {"tcpSocket": {"port": 4000}}  # not HTTP: left alone
    sidecar = _container(web, "sidecar")
    assert sidecar["livenessProbe"] == {"exec": {"command": ["true"]}}
    env = {e["name"]: e["value"] for e in _container(web, "authsvc")["env"] if "value" in e}
    assert json.loads(env["AUTHSVC_APP_PROBES"]) == {
        "/app-health/web/livez": {
            "port": 4000,
            "path": "/health/liveliness",
            "scheme": "HTTP",
            "timeout_seconds": 3,
        },
        "/app-health/web/readyz": {
            "port": 4000,
            "path": "/health/readiness?full=1",
            "scheme": "HTTPS",
            "host": "127.0.0.1",
            "headers": [{"name": "X-Probe", "value": "kubelet"}],
        },
    }
    originals = json.loads(web["metadata"]["annotations"]["authsvc.io/original-probes"])
    assert originals["/app-health/web/livez"] == {"path": "/health/liveliness", "port": "http"}
    assert originals["/app-health/web/readyz"]["httpHeaders"] == [
        {"name": "X-Probe", "value": "kubelet"}
    ]


def test_config_map_and_secret_options_reach_both_authsvc_containers() -> None:
    after, _ = _inject(
        APP,
        "--config-map",
        "my-config",
        "--secret",
        "my-key",
        "--secret-key",
        "k",
        "--app-port",
        "8080",
    )
    web = _by_name(after)["Deployment/web"]
    volumes = {v["name"]: v for v in web["spec"]["volumes"]}
    assert volumes["authsvc-config"] == {
        "name": "authsvc-config",
        "configMap": {"name": "my-config"},
    }
    assert volumes["authsvc-master-key"]["secret"]["secretName"] == "my-key"
    serve = _container(web, "authsvc")["args"]
    assert serve[serve.index("--config") + 1] == "/etc/authsvc/config.yaml"
    boot = _container(web, "authsvc-bootstrap")["args"]
    assert boot[boot.index("--config") + 1] == "/etc/authsvc/config.yaml"
    assert boot[boot.index("--upstream") + 1] == "127.0.0.1:8080"
    assert boot[boot.index("--authz") + 1] == _defaults.AUTHZ_SOCKET_IN_POD
    plain, _ = _inject(APP)
    sidecar = _container(_by_name(plain)["Deployment/web"], "authsvc")
    assert "--config" not in sidecar["args"] and "--master-key-file" not in sidecar["args"]
    env = {e["name"]: e["value"] for e in sidecar["env"] if "value" in e}
    assert env["AUTHSVC_MASTER_KEY_FILE"] == "/var/run/secrets/authsvc/master-key"


def test_app_port_annotation_overrides_the_flag() -> None:
    template = {
        "metadata": {"annotations": {"authsvc.io/app-port": "8081"}},
        "spec": {"containers": [{"name": "a", "image": "x"}]},
    }
    out = inject_template(template, options=InjectOptions(app_port=4000))
    boot = _container(out, "authsvc-bootstrap")["args"]
    assert boot[boot.index("--upstream") + 1] == "127.0.0.1:8081"


def test_stdin_and_output_file(tmp_path: Path) -> None:
    src = tmp_path / "in.yaml"
    src.write_text(APP)
    out = tmp_path / "out.yaml"
    done = authsvc("inject", "-f", str(src), "-o", str(out), "-q")
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    assert out.read_text() == authsvc("inject", "-f", "-", stdin=APP).stdout


def _pod(container: dict[str, Any], **spec: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [container], **spec},
        }
    )


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"


@pytest.mark.parametrize(
    ("pod", "field", "words"),
    [
        (
            _pod(
                {
                    "name": "a",
                    "image": "x",
                    "ports": [{"name": "web", "containerPort": 80}],
                    "livenessProbe": {"httpGet": {"port": "http"}},
                }
            ),
            "spec.containers[0].livenessProbe.httpGet.port",
            "named port 'http' is not among the container's ports ('web')",
        ),
        (
            _pod({"name": "a", "image": "x"}, hostNetwork=True),
            "spec.hostNetwork",
            "hostNetwork pods",
        ),
        (
            _pod({"name": "authsvc", "image": "x"}),
            "spec.containers[0].name",
            "'authsvc' already exists",
        ),
        (
            _pod({"name": "a", "image": "x", "ports": [{"containerPort": 10000}]}),
            "spec.containers[0].ports[0].containerPort",
            "used by authsvc-envoy",
        ),
        (
            _pod(
                {
                    "name": "a",
                    "image": "x",
                    "readinessProbe": {"httpGet": {"port": 80, "scheme": "FTP"}},
                }
            ),
            "spec.containers[0].readinessProbe.httpGet.scheme",
            "HTTP or HTTPS",
        ),
        (
            _pod({"name": "a", "image": "x"}, volumes=[{"name": "authsvc-socket", "emptyDir": {}}]),
            "spec.volumes",
            "'authsvc-socket' already exists",
        ),
        (
            _pod(
                {
                    "name": "a",
                    "image": "x",
                    "livenessProbe": {"httpGet": {"port": 80, "path": "/a b"}},
                }
            ),
            "spec.containers[0].livenessProbe.httpGet.path",
            "without spaces or '#'",
        ),
        (
            _pod(
                {
                    "name": "a",
                    "image": "x",
                    "livenessProbe": {"httpGet": {"port": 80, "host": "a b"}},
                }
            ),
            "spec.containers[0].livenessProbe.httpGet.host",
            "not a host name or IP address",
        ),
        (
            _pod(
                {
                    "name": "a",
                    "image": "x",
                    "startupProbe": {
                        "httpGet": {"port": 80, "httpHeaders": [{"name": "X:Y", "value": "v"}]}
                    },
                }
            ),
            "spec.containers[0].startupProbe.httpGet.httpHeaders[0].name",
            "'X:Y' is not a valid HTTP header name",
        ),
        (
            _pod(
                {
                    "name": "a",
                    "image": "x",
                    "startupProbe": {
                        "httpGet": {
                            "port": 80,
                            "httpHeaders": [{"name": "X-Token", "value": "s3cr3t\nx"}],
                        }
                    },
                }
            ),
            "spec.containers[0].startupProbe.httpGet.httpHeaders[0].value",
            "must be text without control characters",
        ),
        (
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": "p",
                        "namespace": "ns",
                        "annotations": {"authsvc.io/app-port": "9192"},
                    },
                    "spec": {"containers": [{"name": "a", "image": "x"}]},
                }
            ),
            "metadata.annotations[authsvc.io/app-port]",
            "used by authsvc",
        ),
    ],
)
def test_errors_name_the_document_and_the_field(pod: str, field: str, words: str) -> None:
    done = authsvc("inject", "-f", "-", stdin=f"{CM}---\n{pod}")
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"document 2 (Pod ns/p): {field}: " in done.stderr
    assert words in done.stderr
    assert "s3cr3t" not in done.stderr  # probe header values may be tokens: never echoed


def test_workload_errors_carry_the_template_path() -> None:
    docs = load_documents(APP, "workloads.yaml")
    cron = next(d for d in docs if d["kind"] == "CronJob")
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"] = {
        "httpGet": {"port": "nope"}
    }
    with pytest.raises(InjectError) as info:
        inject_documents(docs, InjectOptions(include_jobs=True))
    assert str(info.value).startswith(
        "document 7 (CronJob shop/report): spec.jobTemplate.spec.template.spec.containers[0].livenessProbe.httpGet.port: "
    )


def test_bad_yaml_and_bad_options_are_clear() -> None:
    done = authsvc("inject", "-f", "-", stdin="kind: Pod\nmetadata: {name: [\n")
    assert done.returncode == 1 and "<stdin>: invalid YAML at line" in done.stderr
    done = authsvc("inject", "-f", "-", "--secret", "Bad_Name", stdin=CM)
    assert (
        done.returncode == 1
        and "--secret: 'Bad_Name' is not a valid Kubernetes object name" in done.stderr
    )
    done = authsvc("inject", "-f", "/nonexistent/app.yaml")
    assert done.returncode == 1 and "/nonexistent/app.yaml: cannot read" in done.stderr
    with pytest.raises(ConfigError, match="--app-port: port 10000 is used by authsvc-envoy"):
        InjectOptions(app_port=10000)


def test_list_items_are_injected_one_by_one() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "x"}]},
    }
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    (out,), outcome = inject_documents(
        [{"apiVersion": "v1", "kind": "List", "items": [cm, pod]}], InjectOptions()
    )
    assert out["items"][0] == cm
    assert [c["name"] for c in out["items"][1]["spec"]["initContainers"]] == OURS
    assert outcome.injected == ["Pod p"]


def test_probe_timeouts_above_what_authsvc_waits_are_capped() -> None:
    template = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "x",
                    "livenessProbe": {"httpGet": {"port": 80}, "timeoutSeconds": 120},
                }
            ]
        }
    }
    out = inject_template(template, options=InjectOptions())
    env = {e["name"]: e["value"] for e in _container(out, "authsvc")["env"] if "value" in e}
    assert json.loads(env["AUTHSVC_APP_PROBES"])["/app-health/a/livez"]["timeout_seconds"] == 60
    assert _container(out, "a")["livenessProbe"]["timeoutSeconds"] == 120  # kubelet's own
