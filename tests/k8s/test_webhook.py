"""``authsvc webhook`` over real HTTPS: its JSONPatch gives exactly what ``authsvc inject`` gives.

The serving certificate comes from k8s/webhook/make-certs.sh (the script users run), and the
client verifies it the way the API server does: against the CA bundle, for the Service's DNS
name. The server is a real ``python -m authsvc webhook`` subprocess on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests._leakscan import log_file
from tests.k8s._support import K8S, ROOT, authsvc, load_documents, pod_templates, validate

pytestmark = pytest.mark.e2e

SERVICE_DNS = "authsvc-webhook.authsvc-system.svc"
OPTIONS = ["--config-map", "authsvc-config", "--secret", "litellm-master-key", "--app-port", "4000"]
WORKLOADS = (Path(__file__).parent / "testdata" / "workloads.yaml").read_text()


@dataclass
class Webhook:
    port: int
    certs: Path
    log: Path

    def context(self, cafile: Path | None = None) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(cafile or self.certs / "ca.crt"))

    def post(self, body: bytes, *, path: str = "/inject") -> dict[str, Any]:
        status, data = self.request("POST", path, body)
        assert status == 200, data
        return dict(json.loads(data))

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        host: str = SERVICE_DNS,
        cafile: Path | None = None,
    ) -> tuple[int, bytes]:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        conn = http.client.HTTPSConnection(host, self.port, timeout=10)
        try:
            conn.sock = self.context(cafile).wrap_socket(raw, server_hostname=host)
        except ssl.SSLError:
            raw.close()
            raise
        try:
            conn.request(method, path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def _make_certs(out: Path) -> Path:
    made = subprocess.run(
        ["sh", str(K8S / "webhook" / "make-certs.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return out


@contextlib.contextmanager
def _running(certs: Path, work: Path, *extra: str) -> Iterator[Webhook]:
    """A real ``python -m authsvc webhook`` on 127.0.0.1 (port chosen by the OS)."""
    log = log_file("authsvc-webhook")
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "authsvc", "webhook",
                "--listen", "127.0.0.1:0",
                "--tls-cert", str(certs / "tls.crt"),
                "--tls-key", str(certs / "tls.key"),
                *OPTIONS,
                *extra,
            ],
            cwd=ROOT,
            stdout=sink,
            stderr=sink,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        port = None
        while port is None:
            found = re.search(r"https://127\.0\.0\.1:(\d+)/inject", log.read_text())
            if found:
                port = int(found.group(1))
            elif proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"webhook did not start: {log.read_text()}")
            else:
                time.sleep(0.05)
        yield Webhook(port, certs, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    work = tmp_path_factory.mktemp("webhook")
    with _running(_make_certs(work / "certs"), work) as running:
        yield running


def _pod() -> dict[str, Any]:
    """The Deployment's pod as the API server would send it (generated name, no namespace)."""
    docs = load_documents(WORKLOADS, "workloads.yaml")
    template = dict(pod_templates(docs))["Deployment/web"]
    metadata = {**copy.deepcopy(template["metadata"]), "generateName": "web-7d9f8-"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": copy.deepcopy(template["spec"]),
    }


def _review(
    pod: Any, *, uid: str = "5b7c0e7e-1", operation: str = "CREATE", kind: str = "Pod"
) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": kind},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "shop",
                "operation": operation,
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod,
                "dryRun": False,
            },
        }
    ).encode()


def _check_envelope(answer: dict[str, Any], uid: str) -> dict[str, Any]:
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = dict(answer["response"])
    assert response["uid"] == uid
    return response


def test_patch_applied_to_the_pod_equals_authsvc_inject(webhook: Webhook) -> None:
    pod = _pod()
    response = _check_envelope(webhook.post(_review(pod)), "5b7c0e7e-1")
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"], validate=True))
    patched = jsonpatch.apply_patch(pod, ops)

    done = authsvc("inject", "-f", "-", *OPTIONS, stdin=yaml.safe_dump(pod))
    assert done.returncode == 0, done.stderr
    (expected,) = load_documents(done.stdout, "inject")
    assert patched == expected
    assert patched != pod
    validate(patched, "webhook-patched pod")
    assert "Pod shop/web-7d9f8-: injected" in webhook.log.read_text()


def test_injected_and_opted_out_pods_are_allowed_unchanged(webhook: Webhook) -> None:
    injected = jsonpatch.apply_patch(
        _pod(), json.loads(base64.b64decode(webhook.post(_review(_pod()))["response"]["patch"]))
    )
    opted_out = _pod()
    opted_out["metadata"]["labels"]["authsvc.io/inject"] = "disabled"
    for i, pod in enumerate((injected, opted_out)):
        response = _check_envelope(webhook.post(_review(pod, uid=f"u{i}")), f"u{i}")
        assert response == {"uid": f"u{i}", "allowed": True}
    log = webhook.log.read_text()
    assert "uid=u0 Pod shop/web-7d9f8-: already injected" in log
    assert "uid=u1 Pod shop/web-7d9f8-: opted out (label authsvc.io/inject: 'disabled')" in log


def test_other_operations_and_kinds_pass(webhook: Webhook) -> None:
    assert _check_envelope(webhook.post(_review(_pod(), uid="upd", operation="UPDATE")), "upd") == {
        "uid": "upd",
        "allowed": True,
    }
    assert _check_envelope(
        webhook.post(_review({"spec": {}}, uid="svc", kind="Service")), "svc"
    ) == {"uid": "svc", "allowed": True}


@pytest.mark.parametrize(
    ("body", "uid", "why"),
    [
        (b"{not json", "", "body is not JSON"),
        (b"[1, 2]", "", "body is not a JSON object"),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1beta1",
                    "kind": "AdmissionReview",
                    "request": {"uid": "old"},
                }
            ).encode(),
            "old",
            "expected admission.k8s.io/v1 AdmissionReview",
        ),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
            "",
            "no request.uid",
        ),
        (_review("not a pod", uid="nopod"), "nopod", "request.object is not a Pod with a spec"),
    ],
)
def test_malformed_reviews_get_a_well_formed_allow_and_a_log_line(
    webhook: Webhook, body: bytes, uid: str, why: str
) -> None:
    response = _check_envelope(webhook.post(body), uid)
    assert response == {"uid": uid, "allowed": True}
    assert (
        f"WARNING authsvc.webhook malformed AdmissionReview (allowed unchanged): {why}"
        in webhook.log.read_text()
    )


def test_a_pod_that_cannot_be_injected_is_refused_with_the_field(webhook: Webhook) -> None:
    pod = _pod()
    pod["spec"]["containers"][0]["ports"] = []
    response = _check_envelope(webhook.post(_review(pod, uid="bad")), "bad")
    assert response["allowed"] is False
    assert "patch" not in response
    message = response["status"]["message"]
    assert message.startswith(
        "authsvc injection failed: Pod shop/web-7d9f8-: spec.containers[0].livenessProbe.httpGet.port: "
    )
    assert "named port 'http'" in message


def test_healthz_and_tls_are_real(webhook: Webhook) -> None:
    assert webhook.request("GET", "/healthz") == (200, b"ok\n")
    assert webhook.request("GET", "/nope")[0] == 404
    # The certificate is for the Service's DNS name only...
    with pytest.raises(ssl.SSLCertVerificationError):
        webhook.request("GET", "/healthz", host="example.com")
    # ...and only clients that trust our CA accept it.
    other = webhook.certs.parent / "other"
    subprocess.run(
        ["sh", str(K8S / "webhook" / "make-certs.sh"), str(other)], check=True, capture_output=True
    )
    raw = socket.create_connection(("127.0.0.1", webhook.port), timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        webhook.context(other / "ca.crt").wrap_socket(raw, server_hostname=SERVICE_DNS)
    raw.close()
    # Plain HTTP on the TLS port gets nothing useful and does not take the server down.
    with socket.create_connection(("127.0.0.1", webhook.port), timeout=10) as plain:
        plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"ok" not in plain.recv(1024)
    assert webhook.request("GET", "/healthz")[0] == 200


def test_make_certs_writes_a_ca_bundle_patch_kubectl_accepts(webhook: Webhook) -> None:
    patch = json.loads((webhook.certs / "ca-bundle.patch.json").read_text())
    config = K8S / "webhook" / "mutatingwebhookconfiguration.yaml"
    result = jsonpatch.apply_patch(yaml.safe_load(config.read_text()), patch)
    ca = (webhook.certs / "ca.crt").read_bytes()
    for hook in result["webhooks"]:
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca
    assert oct(os.stat(webhook.certs / "tls.key").st_mode & 0o777) == "0o600"


def _kubelet_swap(secret_dir: Path, source: Path, version: str) -> None:
    """Publish ``source``'s tls.crt/tls.key in ``secret_dir`` the way kubelet updates a Secret."""
    data = secret_dir / f"..{version}"
    data.mkdir()
    for name in ("tls.crt", "tls.key"):
        shutil.copy(source / name, data / name)
        link = secret_dir / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    tmp = secret_dir / "..data_tmp"
    tmp.symlink_to(data.name)
    os.replace(tmp, secret_dir / "..data")


def test_a_rotated_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    first, second = _make_certs(tmp_path / "first"), _make_certs(tmp_path / "second")
    secret = tmp_path / "secret"
    secret.mkdir()
    _kubelet_swap(secret, first, "2024_01")
    with _running(secret, tmp_path, "--tls-reload-seconds", "0.1") as running:
        assert running.request("GET", "/healthz", cafile=first / "ca.crt")[0] == 200
        _kubelet_swap(secret, second, "2024_02")
        deadline = time.monotonic() + 5
        while True:
            try:
                assert running.request("GET", "/healthz", cafile=second / "ca.crt")[0] == 200
                break
            except ssl.SSLCertVerificationError:
                assert time.monotonic() < deadline, running.log.read_text()
                time.sleep(0.1)
        with pytest.raises(ssl.SSLCertVerificationError):
            running.request("GET", "/healthz", cafile=first / "ca.crt")
        assert "TLS certificate reloaded" in running.log.read_text()


def test_reviews_on_a_kept_alive_connection_are_all_answered(webhook: Webhook) -> None:
    """The API server (Go) reuses connections and writes each request at once. Every review on
    one kept-alive connection gets its own complete answer. (Latency is not asserted here —
    benchmarks are not tests; with a response split over two writes it was ~40 ms per review
    through delayed ACKs, 0.5 ms with one write and TCP_NODELAY.)"""
    body = _review(_pod(), uid="fast")
    request = (
        b"POST /inject HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (SERVICE_DNS.encode(), len(body))
    ) + body
    raw = socket.create_connection(("127.0.0.1", webhook.port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Go's net does
    with webhook.context().wrap_socket(raw, server_hostname=SERVICE_DNS) as tls:
        for _ in range(20):
            tls.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += tls.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            while len(rest) < length:
                rest += tls.recv(65536)
            assert len(rest) == length  # nothing of the next answer yet: one answer per request
            assert json.loads(rest)["response"]["uid"] == "fast"


LITELLM = Path(__file__).parent / "testdata" / "litellm"


def _litellm_pod(name: str, **metadata: Any) -> dict[str, Any]:
    """The Deployment's pod in LiteLLM's own manifest shape, as the API server sends it."""
    docs = load_documents((LITELLM / f"{name}.yaml").read_text(), name)
    (template,) = [t for label, t in pod_templates(docs) if label.startswith("Deployment/")]
    meta = {**copy.deepcopy(template["metadata"]), "generateName": f"{name}-5c8d-", **metadata}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": copy.deepcopy(template["spec"]),
    }


@pytest.mark.parametrize("name", ["kub", "eks", "helm"])
def test_litellm_pods_patch_equals_inject_and_the_warnings_name_the_service_edit(
    webhook: Webhook, name: str
) -> None:
    pod = _litellm_pod(name)
    response = _check_envelope(webhook.post(_review(pod, uid=f"ll-{name}")), f"ll-{name}")
    assert response["allowed"] is True
    patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
    done = authsvc("inject", "-f", "-", *OPTIONS, stdin=yaml.safe_dump(pod))
    assert done.returncode == 0, done.stderr
    (expected,) = load_documents(done.stdout, "inject")
    assert patched == expected  # one code path: LiteLLM on 127.0.0.1, key sources, detector
    app = patched["spec"]["containers"][0]
    assert "0.0.0.0" not in json.dumps(app)
    validate(patched, f"webhook-patched {name} pod")
    warnings = response["warnings"]
    assert any(
        "targetPort: authsvc-proxy" in w and "kubectl -n shop patch service" in w for w in warnings
    )
    assert any("127.0.0.1" in w for w in warnings)  # what was changed in the app container


def test_job_and_helm_hook_pods_are_allowed_unchanged(webhook: Webhook) -> None:
    job_pod = _litellm_pod(
        "helm",
        ownerReferences=[
            {"apiVersion": "batch/v1", "kind": "Job", "name": "litellm-migrations", "uid": "j-1",
             "controller": True}
        ],
    )  # fmt: skip
    hook_pod = _litellm_pod("helm", annotations={"helm.sh/hook": "test"})
    for uid, pod in (("job", job_pod), ("hook", hook_pod)):
        assert _check_envelope(webhook.post(_review(pod, uid=uid)), uid) == {
            "uid": uid,
            "allowed": True,
        }
    log = webhook.log.read_text()
    assert "uid=job Pod shop/helm-5c8d-: created by a Job: runs to completion" in log
    assert "uid=hook Pod shop/helm-5c8d-: a Helm hook (helm.sh/hook: test) serves nothing" in log
    opted_in = _litellm_pod(
        "helm", annotations={"helm.sh/hook": "test", "authsvc.io/inject": "enabled"}
    )
    response = _check_envelope(webhook.post(_review(opted_in, uid="in")), "in")
    assert response["patchType"] == "JSONPatch"


@pytest.mark.parametrize("name", ["kub", "eks", "helm"])
@pytest.mark.parametrize("flags", [[], ["--inbound-redirect", "--include-jobs"]])
def test_review_without_a_config_map_equals_inject_too(name: str, flags: list[str]) -> None:
    """The default options (LiteLLM mode from the app's own sources, no --config-map): the
    review function the server calls, on the same pod as ``authsvc inject``."""
    from authsvc.kube import InjectOptions
    from authsvc.kube._admission import review

    options = InjectOptions(inbound_redirect=bool(flags), include_jobs=bool(flags))
    pod = _litellm_pod(name)
    response = json.loads(review(_review(pod, uid="x"), options).body())["response"]
    patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
    done = authsvc("inject", "-f", "-", *flags, stdin=yaml.safe_dump(pod))
    assert done.returncode == 0, done.stderr
    assert [patched] == load_documents(done.stdout, "inject")
    env = {e["name"] for e in patched["spec"]["initContainers"][1 if flags else 0]["env"]}
    assert "AUTHSVC_LITELLM_CONFIG" in env and "AUTHSVC_MASTER_KEY_FILE" not in env
