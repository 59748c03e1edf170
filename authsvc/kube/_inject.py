"""The pod transform shared by ``authsvc inject`` and ``authsvc webhook`` (pure: dicts in/out).

``inject_template(template, options=..., path=...)`` takes a pod template (or a whole Pod:
anything with ``metadata`` and ``spec``) and returns a new one with the sidecars, their
volumes, rewritten app probes and the ``authsvc.io/*`` annotations. It never mutates its
input. Injecting twice equals injecting once: an injected template carries
``authsvc.io/status: injected`` and is returned unchanged, as is one that opted out with
``authsvc.io/inject: "false"`` (annotation or label).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authsvc._version import __version__
from authsvc.kube._app import bind_loopback, is_litellm, litellm_port
from authsvc.kube._errors import InjectError
from authsvc.kube._keysources import StreamObjects, key_sources
from authsvc.kube._options import (
    ANNOTATION_APP_PORT,
    ANNOTATION_INJECT,
    ANNOTATION_ORIGINAL_PROBES,
    ANNOTATION_STATUS,
    ANNOTATION_VERSION,
    BOOTSTRAP_CONTAINER,
    ENVOY_CONTAINER,
    OPT_OUT_VALUES,
    PROXY_PORT_NAME,
    REDIRECT_CONTAINER,
    SIDECAR_CONTAINER,
    STATUS_INJECTED,
    STATUS_PORT_NAME,
    InjectOptions,
    check_app_port,
    reserved_ports,
)
from authsvc.kube._probes import rewrite_probes, to_json
from authsvc.kube._sidecars import (
    authsvc_container,
    bootstrap_container,
    envoy_container,
    redirect_container,
    volumes,
)

__all__ = ["PodResult", "inject_pod", "inject_template", "skip_reason"]

Obj = dict[str, Any]
_OURS = (SIDECAR_CONTAINER, BOOTSTRAP_CONTAINER, ENVOY_CONTAINER, REDIRECT_CONTAINER)


@dataclass
class PodResult:
    """An injected pod template, and what the operator must know about it."""

    template: Obj
    injected: bool = False
    app_port: int | None = None
    app_port_names: dict[str, int] = field(default_factory=dict)  # the app's named ports
    notes: list[str] = field(default_factory=list)  # what was changed in the app container
    warnings: list[str] = field(default_factory=list)  # what the operator must still do


def _field(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def skip_reason(metadata: object) -> str | None:
    """Why a pod template is left as it is (already injected, opted out), or None."""
    if not isinstance(metadata, Mapping):
        return None
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    if not isinstance(annotations, Mapping) or not isinstance(labels, Mapping):
        return None  # inject_template reports the malformed field
    if annotations.get(ANNOTATION_STATUS) == STATUS_INJECTED:
        version = annotations.get(ANNOTATION_VERSION, "?")
        return f"already injected (authsvc {version})"
    for kind, source in (("annotation", annotations), ("label", labels)):
        value = source.get(ANNOTATION_INJECT)
        if isinstance(value, str | bool) and str(value).lower() in OPT_OUT_VALUES:
            return f"opted out ({kind} {ANNOTATION_INJECT}: {value!r})"
    return None


def _mapping(parent: Mapping[str, Any], key: str, field: str, *, required: bool) -> Obj:
    value = parent.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise InjectError(field, "missing" if value is None else "must be a mapping")
    return dict(value)


def _named_list(spec: Mapping[str, Any], key: str, field: str) -> list[Obj]:
    items = spec.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise InjectError(field, "must be a list")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise InjectError(f"{field}[{i}]", "must be a mapping with a name")
    return [dict(item) for item in items]


def _check_conflicts(
    containers: list[Obj], init: list[Obj], vols: list[Obj], ours: list[Obj], spec_path: str
) -> None:
    reserved = reserved_ports()
    our_port_names = {STATUS_PORT_NAME, PROXY_PORT_NAME}
    for key, items in (("containers", containers), ("initContainers", init)):
        for i, c in enumerate(items):
            field = _field(spec_path, f"{key}[{i}]")
            if c["name"] in _OURS:
                raise InjectError(
                    f"{field}.name",
                    f"a container named {c['name']!r} already exists but the pod is not "
                    f"annotated {ANNOTATION_STATUS}: {STATUS_INJECTED}; remove it or add "
                    f"{ANNOTATION_INJECT}: 'false'",
                )
            for j, port in enumerate(c.get("ports") or []):
                if not isinstance(port, Mapping):
                    continue
                number, name = port.get("containerPort"), port.get("name")
                if number in reserved:
                    raise InjectError(
                        f"{field}.ports[{j}].containerPort",
                        f"{number} is used by {reserved[number]}",
                    )
                if name in our_port_names:
                    raise InjectError(f"{field}.ports[{j}].name", f"{name!r} is used by authsvc")
    taken = {v["name"] for v in vols}
    for vol in ours:
        if vol["name"] in taken:
            raise InjectError(
                _field(spec_path, "volumes"), f"a volume named {vol['name']!r} already exists"
            )


def _app_port(
    annotations: Mapping[str, Any],
    options: InjectOptions,
    meta_path: str,
    detected: int | None = None,
) -> int:
    value = annotations.get(ANNOTATION_APP_PORT)
    if value is None:
        return detected if detected is not None else options.app_port
    try:
        return check_app_port(value, "value")
    except Exception as exc:  # ConfigError: re-raised with the field
        raise InjectError(
            _field(meta_path, f"annotations[{ANNOTATION_APP_PORT}]"), str(exc)
        ) from exc


def inject_template(template: Mapping[str, Any], *, options: InjectOptions, path: str = "") -> Obj:
    """Return ``template`` with Envoy + authsvc injected (a new dict; the input is untouched).

    ``path`` is where the template sits in its document (``spec.template`` for a Deployment,
    ``""`` for a Pod); error fields start with it. Raises InjectError naming the field.
    """
    return inject_pod(template, options=options, path=path).template


def _app_index(containers: list[Obj], app_port: int) -> int:
    """The container serving the app port: the one declaring it, a LiteLLM one, else the first."""
    for i, c in enumerate(containers):
        for port in c.get("ports") or []:
            if isinstance(port, Mapping) and port.get("containerPort") == app_port:
                return i
    return next((i for i, c in enumerate(containers) if is_litellm(c)), 0)


def inject_pod(
    template: Mapping[str, Any],
    *,
    options: InjectOptions,
    path: str = "",
    namespace: str | None = None,
    stream: StreamObjects | None = None,
) -> PodResult:
    """``inject_template`` with its findings: the app port, the changes made to the app
    container (LiteLLM bound to 127.0.0.1) and the warnings (an app authsvc cannot close).
    ``stream``: the input's ConfigMaps/Secrets (inject), or nothing (the webhook)."""
    if not isinstance(template, Mapping):
        raise InjectError(path or "(document)", "a pod template must be a mapping")
    meta_path, spec_path = _field(path, "metadata"), _field(path, "spec")
    if skip_reason(template.get("metadata")) is not None:
        return PodResult(copy.deepcopy(dict(template)))
    metadata = _mapping(template, "metadata", meta_path, required=False)
    annotations = _mapping(
        metadata, "annotations", _field(meta_path, "annotations"), required=False
    )
    for key, value in annotations.items():
        if not isinstance(value, str):
            raise InjectError(_field(meta_path, f"annotations[{key}]"), "must be a string")
    spec = _mapping(template, "spec", spec_path, required=True)
    if spec.get("hostNetwork") is True:
        raise InjectError(
            _field(spec_path, "hostNetwork"),
            "hostNetwork pods cannot be injected: the sidecars' ports would open on the node",
        )
    containers = _named_list(spec, "containers", _field(spec_path, "containers"))
    if not containers:
        raise InjectError(_field(spec_path, "containers"), "a pod needs at least one container")
    init = _named_list(spec, "initContainers", _field(spec_path, "initContainers"))
    vols = _named_list(spec, "volumes", _field(spec_path, "volumes"))
    litellm = [i for i, c in enumerate(containers) if is_litellm(c)]
    detected = litellm_port(containers[litellm[0]]) if litellm else None
    app_port = _app_port(annotations, options, meta_path, detected)
    app_index = _app_index(containers, app_port)
    app = containers[app_index]
    sources = key_sources(
        app,
        vols,
        namespace=namespace,
        stream=stream or StreamObjects(),
        litellm=app_index in litellm,
        own_config=options.config_map is not None,
        extra_names=options.key_env,
    )
    # The app's own sources are the chain when authsvc has no config of its own (LiteLLM mode,
    # or its env): the separate Secret would only shadow them.
    use_secret = options.config_map is not None or not sources.found
    ours = volumes(options, use_secret=use_secret)
    _check_conflicts(containers, init, vols, ours, spec_path)

    result = PodResult({}, injected=True, app_port=app_port)
    result.warnings += sources.warnings
    for port in app.get("ports") or []:
        named = isinstance(port, Mapping) and isinstance(port.get("name"), str)
        if named and isinstance(port.get("containerPort"), int):
            result.app_port_names[port["name"]] = port["containerPort"]
    for i in litellm:
        containers[i], change = bind_loopback(containers[i])
        if change is not None:
            result.notes.append(f"container {containers[i]['name']}: {change}")
    if app_index not in litellm and not (options.network_policy or options.inbound_redirect):
        result.warnings.append(
            f"container {app['name']!r} is not LiteLLM: authsvc cannot change where it "
            f"listens. Make it listen on 127.0.0.1:{app_port} only, or inject with "
            "--inbound-redirect (or --network-policy); otherwise anyone reaching the pod IP "
            "skips Envoy (authsvc's bypass detector reports it at run time)"
        )

    rewritten, targets, originals = rewrite_probes(containers, _field(spec_path, "containers"))
    sidecars = [
        authsvc_container(
            options,
            to_json(targets) if targets else None,
            app_port=app_port,
            key_env=sources.env,
            key_mounts=sources.mounts,
            use_secret=use_secret,
        ),
        bootstrap_container(options, app_port),
        envoy_container(options),
    ]
    if options.inbound_redirect:
        sidecars.insert(0, redirect_container(options, app_port))
    new_spec = copy.deepcopy(spec)
    new_spec["containers"] = rewritten
    new_spec["initContainers"] = sidecars + copy.deepcopy(init)
    new_spec["volumes"] = copy.deepcopy(vols) + ours

    annotations[ANNOTATION_STATUS] = STATUS_INJECTED
    annotations[ANNOTATION_VERSION] = __version__
    if originals:
        annotations[ANNOTATION_ORIGINAL_PROBES] = to_json(originals)
    new_meta = copy.deepcopy(metadata)
    new_meta["annotations"] = annotations

    out = copy.deepcopy(dict(template))
    out["metadata"] = new_meta
    out["spec"] = new_spec
    result.template = out
    return result
