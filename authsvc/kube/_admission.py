"""AdmissionReview v1 in, AdmissionReview v1 out: the webhook's decision, pure.

``review(body, options)`` never raises. Its answer, for each kind of request:

- a Pod CREATE that can be injected: ``allowed: true`` + base64 ``JSONPatch`` (``uid`` echoed);
- already injected / opted out / not a Pod / not a CREATE: ``allowed: true``, no patch;
- a Pod that cannot be injected (e.g. a probe's named port is missing): ``allowed: false``
  with a message naming the field — the pod asked for auth, so it must not start without it;
- a malformed review (bad JSON, no request, no object): a well-formed ``allowed: true`` with
  no patch, and the reason in ``Admission.log`` (the API server never sends those; whatever
  did gets no mutation and no hint about pods).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authsvc.kube._documents import describe
from authsvc.kube._errors import InjectError
from authsvc.kube._inject import inject_pod, skip_reason
from authsvc.kube._jsonpatch import json_patch
from authsvc.kube._options import InjectOptions
from authsvc.kube._services import unseen_service_warning
from authsvc.kube._serving import not_serving_reason

__all__ = ["API_VERSION", "Admission", "review"]

API_VERSION = "admission.k8s.io/v1"
MAX_WARNINGS = 8
MAX_WARNING = 1024


@dataclass(frozen=True)
class Admission:
    """The response document, and one log line saying what happened and why."""

    response: dict[str, Any]
    log: str
    level: str = "info"  # "info" | "warning"

    def body(self) -> bytes:
        return json.dumps(self.response, separators=(",", ":")).encode()


def _answer(
    uid: str,
    *,
    allowed: bool = True,
    patch: list[dict[str, Any]] | None = None,
    message: str | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if warnings:
        # kubectl prints these to whoever created the pod (or its Deployment's events).
        response["warnings"] = [w[:MAX_WARNING] for w in warnings[:MAX_WARNINGS]]
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(
            json.dumps(patch, separators=(",", ":")).encode()
        ).decode()
    if message is not None:
        response["status"] = {"code": 400, "message": message}
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def _malformed(uid: str, why: str) -> Admission:
    return Admission(
        _answer(uid), f"malformed AdmissionReview (allowed unchanged): {why}", "warning"
    )


def review(body: bytes, options: InjectOptions) -> Admission:
    """Decide on one AdmissionReview request body."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return _malformed("", f"body is not JSON ({exc.__class__.__name__})")
    if not isinstance(doc, Mapping):
        return _malformed("", "body is not a JSON object")
    request = doc.get("request")
    uid = request.get("uid") if isinstance(request, Mapping) else None
    uid = uid if isinstance(uid, str) else ""
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "AdmissionReview":
        return _malformed(
            uid,
            f"expected {API_VERSION} AdmissionReview, got {doc.get('apiVersion')!r} {doc.get('kind')!r}",
        )
    if not isinstance(request, Mapping) or not uid:
        return _malformed(uid, "no request.uid")
    kind = request.get("kind")
    if not isinstance(kind, Mapping) or (kind.get("group"), kind.get("kind")) != ("", "Pod"):
        return Admission(_answer(uid), f"uid={uid}: not a Pod ({kind!r}); allowed unchanged")
    if request.get("operation") != "CREATE" or request.get("subResource"):
        return Admission(
            _answer(uid),
            f"uid={uid}: {request.get('operation')} is not a pod CREATE; allowed unchanged",
        )
    pod = request.get("object")
    if not isinstance(pod, Mapping) or not isinstance(pod.get("spec"), Mapping):
        return _malformed(uid, "request.object is not a Pod with a spec")
    pod = dict(pod)
    meta = pod.get("metadata") if isinstance(pod.get("metadata"), Mapping) else {}
    namespace = request.get("namespace") or (meta or {}).get("namespace")
    label = describe({"kind": "Pod", "metadata": {**(meta or {}), "namespace": namespace}})
    owners = [
        str(o.get("kind"))
        for o in (meta or {}).get("ownerReferences") or []
        if isinstance(o, Mapping)
    ]
    reason = skip_reason(pod.get("metadata")) or not_serving_reason(
        "Pod", pod.get("metadata"), pod.get("metadata"), options, owners
    )
    if reason is not None:
        return Admission(_answer(uid), f"uid={uid} {label}: {reason}; allowed unchanged")
    try:
        result = inject_pod(pod, options=options, namespace=namespace)
    except InjectError as exc:
        message = f"authsvc injection failed: {exc.at(label)}"
        return Admission(
            _answer(uid, allowed=False, message=message), f"uid={uid} {message}", "warning"
        )
    ops = json_patch(pod, result.template)
    warnings = [
        *result.notes,
        *result.warnings,
        unseen_service_warning(label, namespace, result.app_port or options.app_port),
    ]
    return Admission(
        _answer(uid, patch=ops, warnings=warnings),
        f"uid={uid} {label}: injected ({len(ops)} patch operations)"
        + "".join(f"; {w}" for w in result.warnings),
    )
