"""Services and NetworkPolicies around injected workloads (pure).

``rewrite_service``: a Service whose selector matches an injected pod template keeps its own
``port`` (clients change nothing) and targets Envoy by name (``targetPort: authsvc-proxy``)
for every port that targeted the app port (its number, its name, or no ``targetPort`` at all,
which means ``port``). A port that targets something else is left alone and reported.

``unseen_service_warning``: what to run for Services inject cannot see (another file, the
webhook, which sees one Pod).

``network_policy``: the opt-in NetworkPolicy admitting only Envoy's and the status port.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authsvc import _defaults
from authsvc.kube._options import PROXY_PORT_NAME, STATUS_PORT_NAME

__all__ = ["Workload", "network_policy", "rewrite_service", "unseen_service_warning"]

Obj = dict[str, Any]


@dataclass
class Workload:
    """An injected pod template, as Services and policies see it."""

    label: str  # "Deployment shop/web"
    name: str
    namespace: str | None
    labels: Mapping[str, str]
    app_port: int
    port_names: Mapping[str, int] = field(default_factory=dict)
    services: list[str] = field(default_factory=list)  # Services found selecting it


def _same_namespace(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b


def selects(service: Mapping[str, Any], workload: Workload) -> bool:
    spec = service.get("spec")
    meta = service.get("metadata")
    selector = spec.get("selector") if isinstance(spec, Mapping) else None
    namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
    if not isinstance(selector, Mapping) or not selector:
        return False  # no selector: endpoints managed by hand, not ours to rewrite
    return _same_namespace(namespace, workload.namespace) and all(
        workload.labels.get(k) == v for k, v in selector.items()
    )


def _target_number(target: object, workload: Workload) -> int | None:
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if isinstance(target, str):
        if target.isdigit():
            return int(target)
        return workload.port_names.get(target)
    return None


def rewrite_service(
    service: Mapping[str, Any], workloads: list[Workload], label: str
) -> tuple[Obj, list[str], list[str]]:
    """The Service targeting Envoy, the changes made (summary lines) and warnings."""
    matching = [w for w in workloads if selects(service, w)]
    out = copy.deepcopy(dict(service))
    if not matching:
        return out, [], []
    for w in matching:
        w.services.append(label)
    changes: list[str] = []
    warnings: list[str] = []
    spec = out.get("spec")
    ports = spec.get("ports") if isinstance(spec, dict) else None
    for i, port in enumerate(ports if isinstance(ports, list) else []):
        if not isinstance(port, dict):
            continue
        target = port.get("targetPort", port.get("port"))
        if target in (PROXY_PORT_NAME, _defaults.ENVOY_PORT, str(_defaults.ENVOY_PORT)):
            continue
        numbers = {_target_number(target, w) for w in matching}
        app_ports = {w.app_port for w in matching}
        if numbers <= app_ports and None not in numbers:
            port["targetPort"] = PROXY_PORT_NAME
            changes.append(
                f"{label}: port {port.get('port')} now targets {PROXY_PORT_NAME} "
                f"(Envoy, {_defaults.ENVOY_PORT}; was {target})"
            )
        elif target in (STATUS_PORT_NAME, _defaults.STATUS_PORT):
            warnings.append(
                f"{label}: spec.ports[{i}] targets authsvc's status port; keep it out of Services"
            )
        else:
            warnings.append(
                f"{label}: spec.ports[{i}] (port {port.get('port')}) targets {target!r}, not "
                f"the app port of {', '.join(w.label for w in matching)}: left as it is; "
                "traffic to it does not pass Envoy and authsvc"
            )
    return out, changes, warnings


def unseen_service_warning(label: str, namespace: str | None, app_port: int) -> str:
    """The exact edit for a Service authsvc did not see."""
    patch = json.dumps(
        [{"op": "replace", "path": "/spec/ports/0/targetPort", "value": PROXY_PORT_NAME}],
        separators=(",", ":"),
    )
    ns = f"-n {namespace} " if namespace else ""
    return (
        f"no Service authsvc saw selects {label}: every Service that does must target "
        f"Envoy, keeping its own port — for each of its ports whose targetPort is {app_port} "
        f"(or the app's port name), set targetPort: {PROXY_PORT_NAME}, e.g. "
        f"kubectl {ns}patch service <name> --type=json -p '{patch}'"
    )


def network_policy(workload: Workload) -> Obj:
    """Ingress to the pod only on Envoy's port and the status port (kubelet's probes)."""
    metadata: Obj = {"name": f"{workload.name}-authsvc"[:253]}
    if workload.namespace:
        metadata["namespace"] = workload.namespace
    metadata["labels"] = {"app.kubernetes.io/managed-by": "authsvc-inject"}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {
            "podSelector": {"matchLabels": dict(workload.labels)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "ports": [
                        {"protocol": "TCP", "port": _defaults.ENVOY_PORT},
                        {"protocol": "TCP", "port": _defaults.STATUS_PORT},
                    ]
                }
            ],
        },
    }
