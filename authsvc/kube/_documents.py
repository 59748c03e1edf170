"""Find the pod templates in a list of Kubernetes documents and inject each (pure).

Workloads and where their pod template sits::

    Pod                                     (the object itself)
    Deployment, StatefulSet, DaemonSet,     spec.template
    ReplicaSet, ReplicationController, Job
    CronJob                                 spec.jobTemplate.spec.template
    List                                    each of items[]

Every other document is returned as it came (an equal value).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from authsvc.kube._errors import InjectError
from authsvc.kube._inject import inject_template, skip_reason
from authsvc.kube._options import InjectOptions

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
    """What happened to each pod template, for the summary line (``Deployment/web``)."""

    injected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "Deployment/web: opted out (...)"


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


def _inject_object(obj: Any, where: str, options: InjectOptions, outcome: Outcome) -> Any:
    if not isinstance(obj, Mapping):
        return copy.deepcopy(obj)
    if obj.get("kind") == "List" and obj.get("apiVersion") == "v1":
        items = obj.get("items")
        if not isinstance(items, list):
            raise InjectError("items", "must be a list", where)
        out = copy.deepcopy(dict(obj))
        out["items"] = [
            _inject_object(
                item,
                f"{where}, items[{i}] ({describe(item) if isinstance(item, Mapping) else '?'})",
                options,
                outcome,
            )
            for i, item in enumerate(items)
        ]
        return out
    path = TEMPLATE_PATHS.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    if path is None:
        return copy.deepcopy(obj)
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
    reason = skip_reason(template.get("metadata") if isinstance(template, Mapping) else None)
    try:
        injected = inject_template(template, options=options, path=".".join(path))
    except InjectError as exc:
        raise exc.at(where) from None
    if reason is not None:
        outcome.skipped.append(f"{label}: {reason}")
    else:
        outcome.injected.append(label)
    if not path:
        return injected
    parent[path[-1]] = injected
    return out


def inject_documents(docs: Sequence[Any], options: InjectOptions) -> tuple[list[Any], Outcome]:
    """Inject every pod template in ``docs`` (documents numbered from 1 in errors)."""
    outcome = Outcome()
    out = []
    for index, doc in enumerate(docs, start=1):
        where = f"document {index}"
        if isinstance(doc, Mapping):
            where += f" ({describe(doc)})"
        out.append(_inject_object(doc, where, options, outcome))
    return out, outcome
