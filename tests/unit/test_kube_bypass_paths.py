"""Pure parts of issue 16: LiteLLM recognition and rebinding, the app's key sources, Service
matching, which workloads serve, the bypass detector's bookkeeping and the default chain's
LiteLLM mode."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from authsvc._errors import ConfigError
from authsvc.config import LiteLLMSource, default_sources
from authsvc.health import BypassDetector, BypassTarget, Reach, target_from_env
from authsvc.health._verify_plan import bypass_outcome
from authsvc.kube import InjectOptions
from authsvc.kube._app import bind_loopback, is_litellm, litellm_port
from authsvc.kube._keysources import StreamObjects, key_sources
from authsvc.kube._services import Workload, rewrite_service
from authsvc.kube._serving import not_serving_reason

Obj = dict[str, Any]


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"image": "ghcr.io/berriai/litellm:main-stable"}, True),
        ({"image": "ghcr.io/berriai/litellm-database:main-v1.74.0-stable"}, True),
        ({"image": "docker.io/berriai/litellm-non_root@sha256:ab"}, True),
        ({"image": "python:3.11", "command": ["/usr/local/bin/litellm", "--port", "4000"]}, True),
        ({"image": "ghcr.io/berriai/litellmish-proxy:1"}, False),
        ({"image": "example.com/litellm-fork:1"}, False),
        ({"image": "python:3.11", "command": ["python", "litellm.py"]}, False),
    ],
)
def test_litellm_is_recognised_by_image_or_command(container: Obj, expected: bool) -> None:
    assert is_litellm(container) is expected


@pytest.mark.parametrize(
    ("container", "args", "host_env"),
    [
        ({"args": ["--host", "0.0.0.0", "--port", "4000"]}, ["--host", "127.0.0.1", "--port", "4000"], None),
        ({"args": ["--host=0.0.0.0"]}, ["--host=127.0.0.1"], None),
        ({"args": ["--config", "/c.yaml"], "env": [{"name": "HOST", "value": "0.0.0.0"}]}, ["--config", "/c.yaml"], "127.0.0.1"),
        ({"args": ["--config", "/c.yaml"]}, ["--config", "/c.yaml"], "127.0.0.1"),
        ({"env": [{"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}, None, "127.0.0.1"),
    ],
)  # fmt: skip
def test_litellm_is_bound_to_loopback(
    container: Obj, args: list[str] | None, host_env: str | None
) -> None:
    new, change = bind_loopback({"name": "l", "image": "ghcr.io/berriai/litellm:x", **container})
    assert change is not None
    assert new.get("args") == args
    hosts = [e for e in new.get("env", []) if e["name"] == "HOST"]
    assert hosts == ([{"name": "HOST", "value": host_env}] if host_env else [])
    again, nothing = bind_loopback(new)
    assert again == new and nothing is None


def test_litellm_port_follows_its_cli() -> None:
    assert litellm_port({"args": ["--port", "8000"]}) == 8000
    assert litellm_port({"env": [{"name": "PORT", "value": "4001"}]}) == 4001
    assert litellm_port({"args": ["--port=4002"], "env": [{"name": "PORT", "value": "1"}]}) == 4002
    assert litellm_port({}) == 4000
    assert litellm_port({"env": [{"name": "PORT", "valueFrom": {"fieldRef": {}}}]}) is None
    assert litellm_port({"args": ["--port", "$(P)"]}) is None


def _secret(name: str, **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


def _app(**fields: Any) -> Obj:
    return {"name": "litellm", "image": "ghcr.io/berriai/litellm:x", **fields}


def test_only_the_key_variables_are_passed_never_the_provider_keys() -> None:
    app = _app(
        env=[
            {"name": "OPENAI_API_KEY", "value": "p"},
            {"name": "PROXY_MASTER_KEY", "valueFrom": {"secretKeyRef": {"name": "m", "key": "k"}}},
            {"name": "PROXY_MASTER_KEY", "valueFrom": {"secretKeyRef": {"name": "m2", "key": "k"}}},
        ],
        envFrom=[{"secretRef": {"name": "all"}}, {"secretRef": {"name": "more"}, "prefix": "X_"}],
    )
    stream = StreamObjects.from_documents(
        [_secret("all", LITELLM_MASTER_KEY="a", ANTHROPIC_API_KEY="b"), _secret("more", OTHER="c")]
    )
    sources = key_sources(app, [], namespace=None, stream=stream, litellm=True)
    assert sources.env == [
        {"name": "LITELLM_MASTER_KEY", "valueFrom": {"secretKeyRef": {"name": "all", "key": "LITELLM_MASTER_KEY", "optional": True}}},
        # the last duplicate wins, as in Kubernetes; made optional: authsvc starts without it
        {"name": "PROXY_MASTER_KEY", "valueFrom": {"secretKeyRef": {"name": "m2", "key": "k", "optional": True}}},
    ]  # fmt: skip
    assert sources.warnings == []


def test_env_from_the_last_unknown_source_is_optional_and_warned_about() -> None:
    app = _app(envFrom=[{"secretRef": {"name": "a"}}, {"configMapRef": {"name": "b"}}])
    sources = key_sources(app, [], namespace="ns", stream=StreamObjects(), litellm=True)
    assert sources.env == [
        {"name": "LITELLM_MASTER_KEY", "valueFrom": {"configMapKeyRef": {"name": "b", "key": "LITELLM_MASTER_KEY", "optional": True}}}
    ]  # fmt: skip
    assert "ConfigMap b" in sources.warnings[0] and "explicit env entry" in sources.warnings[0]
    extra = key_sources(
        _app(env=[{"name": "GATEWAY_TOKEN", "value": "t"}]), [], namespace=None,
        stream=StreamObjects(), litellm=False, extra_names=("GATEWAY_TOKEN",),
    )  # fmt: skip
    assert extra.env == [{"name": "GATEWAY_TOKEN", "value": "t"}]


def test_the_litellm_config_volume_is_mounted_as_a_directory_and_its_key_variable_passed() -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"proxy.yaml": "general_settings:\n  master_key: os.environ/MY_KEY\n"},
    }
    app = _app(
        args=["--config", "/etc/litellm/config.yaml"],
        env=[{"name": "MY_KEY", "value": "k"}, {"name": "OTHER", "value": "o"}],
        volumeMounts=[
            {"name": "c", "mountPath": "/etc/litellm/config.yaml", "subPath": "config.yaml"}
        ],
    )
    volumes = [
        {
            "name": "c",
            "configMap": {"name": "cfg", "items": [{"key": "proxy.yaml", "path": "config.yaml"}]},
        }
    ]
    sources = key_sources(
        app, volumes, namespace=None, stream=StreamObjects.from_documents([config]), litellm=True
    )
    assert sources.mounts == [{"name": "c", "mountPath": "/etc/authsvc-litellm", "readOnly": True}]
    assert sources.litellm_config == "/etc/authsvc-litellm/config.yaml"
    assert [e["name"] for e in sources.env] == ["MY_KEY", "AUTHSVC_LITELLM_CONFIG"]
    own = key_sources(
        app, volumes, namespace=None, stream=StreamObjects(), litellm=True, own_config=True
    )
    assert "AUTHSVC_LITELLM_CONFIG" not in [e["name"] for e in own.env]
    baked = key_sources(
        _app(args=["-c", "/app/c.yaml"]), [], namespace=None, stream=StreamObjects(), litellm=True
    )
    assert baked.litellm_config is None and "not on a volume" in baked.warnings[0]


def _service(selector: Obj, *ports: Obj, namespace: str | None = None) -> Obj:
    meta: Obj = {"name": "s"} | ({"namespace": namespace} if namespace else {})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"selector": selector, "ports": list(ports)},
    }


WEB = Workload(
    "Deployment web",
    "web",
    "shop",
    {"app": "web", "tier": "x"},
    4000,
    {"http": 4000, "metrics": 9090},
)


@pytest.mark.parametrize(
    "port",
    [
        {"port": 4000},
        {"port": 80, "targetPort": 4000},
        {"port": 80, "targetPort": "http"},
        {"port": 80, "targetPort": "4000"},
    ],
)
def test_service_ports_on_the_app_port_target_envoy_keeping_their_port(port: Obj) -> None:
    new, changes, warnings = rewrite_service(_service({"app": "web"}, port), [WEB], "Service s")
    assert new["spec"]["ports"] == [{**port, "targetPort": "authsvc-proxy"}]
    assert changes and not warnings


def test_services_that_do_not_select_or_target_something_else() -> None:
    for service in (
        _service({"app": "other"}, {"port": 80}),
        _service({"app": "web"}, {"port": 80}, namespace="elsewhere"),
        _service({}, {"port": 4000}),
    ):
        assert rewrite_service(service, [WEB], "Service s")[1:] == ([], [])
    new, changes, warnings = rewrite_service(
        _service({"app": "web"}, {"port": 9090, "targetPort": "metrics"}), [WEB], "Service s"
    )
    assert new["spec"]["ports"][0]["targetPort"] == "metrics" and not changes
    assert "targets 'metrics', not the app port" in warnings[0]


def test_jobs_hooks_and_job_pods_do_not_serve_unless_opted_in() -> None:
    options = InjectOptions()
    assert "runs to completion" in str(not_serving_reason("CronJob", {}, {}, options))
    assert "Helm hook" in str(
        not_serving_reason("Pod", {"annotations": {"helm.sh/hook": "test"}}, {}, options)
    )
    assert "created by a Job" in str(not_serving_reason("Pod", {}, {}, options, ["Job"]))
    assert not_serving_reason("Deployment", {}, {}, options, ["ReplicaSet"]) is None
    assert (
        not_serving_reason("Job", {}, {"labels": {"authsvc.io/inject": "enabled"}}, options) is None
    )
    assert not_serving_reason("Job", {}, {}, InjectOptions(include_jobs=True)) is None


def test_bypass_target_is_never_loopback_and_comes_from_the_downward_api() -> None:
    assert target_from_env({}) is None
    target = target_from_env({"AUTHSVC_POD_IPS": "10.1.2.3,fd00::3", "AUTHSVC_APP_PORT": "4000"})
    assert target == BypassTarget(("10.1.2.3", "fd00::3"), 4000)
    assert target.endpoints() == ["10.1.2.3:4000", "[fd00::3]:4000"]
    for ips, port in (
        ("127.0.0.1", "4000"),
        ("::1", "1"),
        ("0.0.0.0", "1"),
        ("pod", "1"),
        ("10.0.0.1", "x"),
    ):
        with pytest.raises(ConfigError):
            target_from_env({"AUTHSVC_POD_IPS": ips, "AUTHSVC_APP_PORT": port})


def test_the_detector_logs_once_per_change_and_reports_readiness(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter([Reach.CLOSED, Reach.OPEN, Reach.OPEN, Reach.NO_ANSWER, Reach.CLOSED])
    changes: list[bool] = []
    detector = BypassDetector(
        BypassTarget(("10.1.2.3",), 4000), fail_readiness=True, on_change=changes.append,
        probe=lambda ip, port: next(answers),
    )  # fmt: skip
    assert "not checked yet" in detector.detail()[0]
    with caplog.at_level(logging.INFO, "authsvc.health.bypass"):
        results = [detector.check_once() for _ in range(5)]
    assert results == [(), ("10.1.2.3:4000",), ("10.1.2.3:4000",), (), ()]
    assert changes == [False, True, False]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "10.1.2.3:4000" in errors[0].getMessage()
    assert detector.readiness() == (True, "")


def test_verify_fails_the_bypass_check_only_when_the_port_answers() -> None:
    assert bypass_outcome("10.1.2.3:4000", "open").ok is False
    assert bypass_outcome("10.1.2.3:4000", "closed").ok is True
    assert bypass_outcome("10.1.2.3:4000", "no_answer").got == "no answer"


def test_default_chain_uses_litellm_mode_when_inject_says_so() -> None:
    chain = default_sources({"AUTHSVC_LITELLM_CONFIG": "/etc/authsvc-litellm/config.yaml"})
    assert chain[-1] == LiteLLMSource("/etc/authsvc-litellm/config.yaml", "$AUTHSVC_LITELLM_CONFIG")
    assert [s.label for s in default_sources({})][-1] == "env:LITELLM_MASTER_KEY"


def test_another_apps_master_key_variables_stay_with_it_and_the_secret_stays_in_the_chain() -> None:
    from authsvc.kube import inject_template

    app = {"name": "db", "image": "postgres:16", "env": [{"name": "DB_MASTER_KEY", "value": "x"}]}
    out = inject_template({"spec": {"containers": [app]}}, options=InjectOptions())
    sidecar = out["spec"]["initContainers"][0]
    names = [e["name"] for e in sidecar["env"]]
    assert "DB_MASTER_KEY" not in names and "AUTHSVC_MASTER_KEY_FILE" in names
    assert "authsvc-master-key" in [v["name"] for v in out["spec"]["volumes"]]


def test_inject_can_make_a_bypass_a_readiness_failure() -> None:
    from authsvc.kube import inject_template

    template = {"spec": {"containers": [{"name": "a", "image": "x"}]}}
    plain = inject_template(template, options=InjectOptions())["spec"]["initContainers"][0]
    strict = inject_template(template, options=InjectOptions(bypass_readiness="fail"))
    assert "--bypass-readiness" not in plain["args"]
    assert strict["spec"]["initContainers"][0]["args"][-2:] == ["--bypass-readiness", "fail"]


def test_a_relative_litellm_config_is_taken_from_the_working_directory() -> None:
    from authsvc.kube._app import litellm_config_path

    assert litellm_config_path({"args": ["--config", "/app/../etc/c.yaml"]}) == "/etc/c.yaml"
    assert litellm_config_path({"args": ["-c", "c.yaml"], "workingDir": "/app"}) == "/app/c.yaml"
    assert litellm_config_path({"args": ["--config=c.yaml"]}) == ""
    assert litellm_config_path({"args": ["--port", "1"]}) is None
    sources = key_sources(
        _app(args=["-c", "c.yaml"]), [], namespace=None, stream=StreamObjects(), litellm=True
    )
    assert "relative path" in sources.warnings[0]


def test_readyz_detail_lines_follow_the_verdict_and_a_broken_detail_does_not_break_it() -> None:
    import json

    from authsvc.health import StatusServer

    lines = ["bypass: app port 4000 closed on the pod IP"]
    server = StatusServer("127.0.0.1:0", readiness=lambda: (False, "no key"), notes=lambda: lines)
    status, _, body, _ = server.route("/readyz")
    assert (
        status == 503 and body == b"not ready: no key\nbypass: app port 4000 closed on the pod IP\n"
    )
    status, _, body, _ = server.route("/readyz", "application/json")
    assert json.loads(body) == {"ready": False, "reason": "no key", "notes": lines}

    def broken() -> list[str]:
        raise RuntimeError("boom")

    server = StatusServer("127.0.0.1:0", readiness=lambda: (True, ""), notes=broken)
    assert server.route("/readyz")[2] == b"ready\nnotes unavailable (RuntimeError)\n"
    assert (
        StatusServer("127.0.0.1:0", readiness=lambda: (True, "")).route("/readyz")[2] == b"ready\n"
    )


def test_the_litellm_config_is_only_composed_an_alias_bomb_costs_nothing() -> None:
    from authsvc.kube._keysources import _master_key_env

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(12)
    )
    text = bomb + "general_settings:\n  master_key: os.environ/PROXY_MASTER_KEY\n"
    assert _master_key_env(text) == "PROXY_MASTER_KEY"  # 9**13 elements if constructed
    assert _master_key_env("general_settings: {master_key: sk-literal}") is None
    assert _master_key_env("general_settings: [") is None
