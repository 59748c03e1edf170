"""Find the pod templates in a list of Kubernetes documents and inject each (pure).

Workloads and where their pod template sits::

    Pod                                     (the object itself)
    Deployment, StatefulSet, DaemonSet,     spec.template
    ReplicaSet, ReplicationController, Job
    CronJob                                 spec.jobTemplate.spec.template
    List                                    each of items[]

Jobs, CronJobs and Helm hooks are skipped unless opted in (``_serving``). Every Service that
selects an injected template is pointed at Envoy (``_services``); with ``--network-policy``
a NetworkPolicy follows each injected workload. Every other document is returned as it came
(an equal value).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from authsvc.kube._errors import InjectError
from authsvc.kube._inject import inject_pod, skip_reason
from authsvc.kube._keysources import StreamObjects
from authsvc.kube._options import InjectOptions
from authsvc.kube._services import (
    Workload,
    network_policy,
    rewrite_service,
    unseen_service_warning,
)
from authsvc.kube._serving import not_serving_reason

__all__ = ["TEMPLATE_PATHS", "Outcome", "inject_documents"]

# (apiVersion, kind) -> path of the pod template inside the object ("" = the object itself).
TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("v1", "Pod"): (),
    ("v1", "ReplicationController"): ("spec", "template"),
    ("apps/v1", "Deployment"): ("spec", "template"),
    ("apps/v1", "StatefulSet"): ("spec", "template"),
    ("apps/v1", "DaemonSet"): ("spec", "template"),
    ("apps/v1", "ReplicaSet"): ("spec", "template"),
    ("batch/v1", "Job"): ("spec", "template"),
    ("batch/v1", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
}


@dataclass
class Outcome:
    """What happened to each pod template and Service, for the summary (stderr)."""

    injected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "Deployment/web: opted out (...)"
    changed: list[str] = field(default_factory=list)  # "Service web: port 80 now targets ..."
    warnings: list[str] = field(default_factory=list)  # what the operator must still do


def describe(obj: Mapping[str, Any]) -> str:
    """``Deployment shop/web`` — kind and namespace/name as far as they are known."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    name = meta.get("name") or meta.get("generateName") or "?"
    namespace = meta.get("namespace")
    return (
        f"{obj.get('kind', '?')} {namespace}/{name}"
        if namespace
        else f"{obj.get('kind', '?')} {name}"
    )


@dataclass
class _Run:
    options: InjectOptions
    stream: StreamObjects
    outcome: Outcome = field(default_factory=Outcome)
    workloads: list[Workload] = field(default_factory=list)


def _flatten(docs: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for doc in docs:
        if (
            isinstance(doc, Mapping)
            and doc.get("kind") == "List"
            and isinstance(doc.get("items"), list)
        ):
            out += _flatten(doc["items"])
        else:
            out.append(doc)
    return out


def _inject_object(obj: Any, where: str, run: _Run) -> list[Any]:
    """The object injected, followed by what goes with it (its NetworkPolicy, if asked)."""
    if not isinstance(obj, Mapping):
        return [copy.deepcopy(obj)]
    if obj.get("kind") == "List" and obj.get("apiVersion") == "v1":
        items = obj.get("items")
        if not isinstance(items, list):
            raise InjectError("items", "must be a list", where)
        out = copy.deepcopy(dict(obj))
        out["items"] = [
            new
            for i, item in enumerate(items)
            for new in _inject_object(
                item,
                f"{where}, items[{i}] ({describe(item) if isinstance(item, Mapping) else '?'})",
                run,
            )
        ]
        return [out]
    path = TEMPLATE_PATHS.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    if path is None:
        return [copy.deepcopy(obj)]
    out = copy.deepcopy(dict(obj))
    parent: Any = out
    walked: list[str] = []
    for key in path[:-1]:
        walked.append(key)
        parent = parent.get(key) if isinstance(parent, Mapping) else None
        if not isinstance(parent, dict):
            raise InjectError(".".join(walked), "missing or not a mapping", where)
    template = parent.get(path[-1]) if path else out
    label = describe(obj)
    template_meta = template.get("metadata") if isinstance(template, Mapping) else None
    reason = skip_reason(template_meta) or not_serving_reason(
        str(obj.get("kind")), obj.get("metadata"), template_meta, run.options
    )
    if reason is not None:
        run.outcome.skipped.append(f"{label}: {reason}")
        return [out]
    raw_meta = obj.get("metadata")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
    namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else None
    try:
        result = inject_pod(
            template,
            options=run.options,
            path=".".join(path),
            namespace=namespace,
            stream=run.stream,
        )
    except InjectError as exc:
        raise exc.at(where) from None
    run.outcome.injected.append(label)
    run.outcome.changed += [f"{label}: {note}" for note in result.notes]
    run.outcome.warnings += [f"{label}: {w}" for w in result.warnings]
    labels = (result.template.get("metadata") or {}).get("labels") or {}
    workload = Workload(
        label,
        str(meta.get("name") or "pod"),
        namespace,
        {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
        result.app_port or run.options.app_port,
        result.app_port_names,
    )
    run.workloads.append(workload)
    if path:
        parent[path[-1]] = result.template
    else:
        out = result.template
    if run.options.network_policy:
        if workload.labels:
            return [out, network_policy(workload)]
        run.outcome.warnings.append(
            f"{label}: no NetworkPolicy: the pod template has no labels to select it by"
        )
    return [out]


def _rewrite_services(doc: Any, run: _Run) -> Any:
    if not isinstance(doc, Mapping):
        return doc
    if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        out = dict(doc)
        out["items"] = [_rewrite_services(item, run) for item in doc["items"]]
        return out
    if (doc.get("apiVersion"), doc.get("kind")) != ("v1", "Service"):
        return doc
    new, changes, warnings = rewrite_service(doc, run.workloads, describe(doc))
    run.outcome.changed += changes
    run.outcome.warnings += warnings
    return new


def inject_documents(docs: Sequence[Any], options: InjectOptions) -> tuple[list[Any], Outcome]:
    """Inject every pod template in ``docs`` (documents numbered from 1 in errors), then point
    every Service selecting an injected template at Envoy."""
    run = _Run(options, StreamObjects.from_documents(_flatten(docs)))
    out: list[Any] = []
    for index, doc in enumerate(docs, start=1):
        where = f"document {index}"
        if isinstance(doc, Mapping):
            where += f" ({describe(doc)})"
        out += _inject_object(doc, where, run)
    out = [_rewrite_services(doc, run) for doc in out]
    for workload in run.workloads:
        if not workload.services:
            run.outcome.warnings.append(
                unseen_service_warning(workload.label, workload.namespace, workload.app_port)
            )
    return out, run.outcome
