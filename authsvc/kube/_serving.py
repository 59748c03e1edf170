"""Only workloads that serve get sidecars (pure).

Jobs, CronJobs and pods a Job creates run to completion; Helm hooks (``helm.sh/hook``:
migrations, ``helm test`` pods) too. Injected, they would get an Envoy fronting a port where
nothing listens — and a Job whose pod keeps native sidecars only ends because Kubernetes stops
them. They are skipped by default, named in the summary; ``--include-jobs`` or the annotation
(or label) ``authsvc.io/inject: enabled`` on the pod template, or on the object, injects them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from authsvc.kube._options import (
    ANNOTATION_HELM_HOOK,
    ANNOTATION_INJECT,
    OPT_IN_VALUES,
    InjectOptions,
)

__all__ = ["JOB_KINDS", "not_serving_reason"]

JOB_KINDS = frozenset({"Job", "CronJob"})


def _strings(meta: object, key: str) -> Mapping[str, Any]:
    if not isinstance(meta, Mapping):
        return {}
    value = meta.get(key)
    return value if isinstance(value, Mapping) else {}


def _opted_in(*metas: object) -> bool:
    for meta in metas:
        for key in ("annotations", "labels"):
            value = _strings(meta, key).get(ANNOTATION_INJECT)
            if isinstance(value, str | bool) and str(value).lower() in OPT_IN_VALUES:
                return True
    return False


def not_serving_reason(
    kind: str,
    object_meta: object,
    template_meta: object,
    options: InjectOptions,
    owner_kinds: Iterable[str] = (),
) -> str | None:
    """Why a workload is skipped as one that serves nothing, or None (inject it)."""
    if options.include_jobs or _opted_in(template_meta, object_meta):
        return None
    how = f"opt in with {ANNOTATION_INJECT}: enabled or --include-jobs"
    if kind in JOB_KINDS:
        return f"a {kind} runs to completion and serves nothing ({how})"
    for meta in (object_meta, template_meta):
        hook = _strings(meta, "annotations").get(ANNOTATION_HELM_HOOK)
        if hook:
            return f"a Helm hook ({ANNOTATION_HELM_HOOK}: {hook}) serves nothing ({how})"
    owners = sorted(set(owner_kinds) & JOB_KINDS)
    if owners:
        return f"created by a {owners[0]}: runs to completion and serves nothing ({how})"
    return None
