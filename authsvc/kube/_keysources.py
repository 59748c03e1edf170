"""Give the authsvc container the app container's own key sources (pure).

So that authsvc resolves the key the app resolves, the authsvc container gets:

- the app's variables that hold the key, copied as they are (plain ``value`` or
  ``valueFrom``): ``LITELLM_MASTER_KEY`` (LiteLLM's fallback), every variable whose name
  contains ``MASTER_KEY`` in a LiteLLM container (the Helm chart's ``PROXY_MASTER_KEY``), the variable the LiteLLM
  config's ``general_settings.master_key: os.environ/NAME`` names (when that ConfigMap is in
  the input) and ``--key-env`` names;
- for those of them the app gets through ``envFrom``, an explicit ``secretKeyRef`` /
  ``configMapKeyRef`` for that one key — never the whole Secret (the app's provider API keys
  stay with the app). Kubernetes semantics: an explicit ``env`` entry wins over ``envFrom``;
  among ``envFrom`` sources the last one that has the key wins;
- the volume holding LiteLLM's ``--config`` file, mounted read-only **as a directory** at
  ``/etc/authsvc-litellm`` (never ``subPath``: those never see a ConfigMap update), and
  ``AUTHSVC_LITELLM_CONFIG`` pointing at the file, which puts ``litellm_config:`` in authsvc's
  default chain.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from authsvc.kube._app import litellm_config_path
from authsvc.kube._options import ENV_LITELLM_CONFIG, LITELLM_CONFIG_DIR

__all__ = ["KeySources", "StreamObjects", "key_sources"]

Obj = dict[str, Any]
LITELLM_FALLBACK = "LITELLM_MASTER_KEY"
_KEY_NAME = re.compile(r"MASTER_KEY")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OS_ENVIRON = "os.environ/"
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class StreamObjects:
    """ConfigMaps and Secrets of the input, by (namespace or None, name): their data keys,
    and LiteLLM configs found in ConfigMaps. Empty for the webhook (it sees one Pod)."""

    keys: Mapping[tuple[str, str | None, str], frozenset[str]] = field(default_factory=dict)
    config_maps: Mapping[tuple[str | None, str], Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def from_documents(cls, objects: Sequence[Any]) -> StreamObjects:
        keys: dict[tuple[str, str | None, str], frozenset[str]] = {}
        config_maps: dict[tuple[str | None, str], Mapping[str, str]] = {}
        for obj in objects:
            if not isinstance(obj, Mapping) or obj.get("apiVersion") != "v1":
                continue
            kind, meta = obj.get("kind"), obj.get("metadata")
            if kind not in ("Secret", "ConfigMap") or not isinstance(meta, Mapping):
                continue
            name, namespace = meta.get("name"), meta.get("namespace")
            if not isinstance(name, str):
                continue
            names: set[str] = set()
            for section in ("data", "stringData", "binaryData"):
                data = obj.get(section)
                if isinstance(data, Mapping):
                    names |= {k for k in data if isinstance(k, str)}
            keys[(str(kind), namespace, name)] = frozenset(names)
            data = obj.get("data")
            if kind == "ConfigMap" and isinstance(data, Mapping):
                config_maps[(namespace, name)] = {
                    k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)
                }
        return cls(keys, config_maps)

    def data_keys(self, kind: str, namespace: str | None, name: str) -> frozenset[str] | None:
        for ns in (namespace, None) if namespace else (None,):
            found = self.keys.get((kind, ns, name))
            if found is not None:
                return found
        if namespace is None:  # an un-namespaced workload matches an object in any namespace
            matches = [v for (k, _, n), v in self.keys.items() if (k, n) == (kind, name)]
            return matches[0] if len(matches) == 1 else None
        return None

    def config_map(self, namespace: str | None, name: str) -> Mapping[str, str] | None:
        return self.config_maps.get((namespace, name)) or self.config_maps.get((None, name))


@dataclass
class KeySources:
    env: list[Obj] = field(default_factory=list)
    mounts: list[Obj] = field(default_factory=list)
    litellm_config: str | None = None  # the config file as authsvc sees it
    warnings: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        """A source authsvc's default chain reads: LiteLLM's config, or its variable."""
        return self.litellm_config is not None or any(
            e.get("name") == LITELLM_FALLBACK for e in self.env
        )


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    found = None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            found = v  # the last duplicate wins, as PyYAML's loader does
    return found


def _master_key_env(config_text: str) -> str | None:
    """``NAME`` of ``general_settings.master_key: os.environ/NAME`` in a LiteLLM config.

    Only composed (the node graph: an alias is one shared node, so an alias bomb costs
    nothing) and walked two levels deep; never constructed."""
    if len(config_text) > MAX_CONFIG_BYTES:
        return None
    try:
        root = yaml.compose(config_text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    value = _child(_child(root, "general_settings"), "master_key")
    if isinstance(value, yaml.ScalarNode) and value.value.startswith(_OS_ENVIRON):
        name = str(value.value[len(_OS_ENVIRON) :])
        return name if _ENV_NAME.match(name) else None
    return None


def _config_volume(
    app: Mapping[str, Any], volumes: Sequence[Mapping[str, Any]], path: str
) -> tuple[Mapping[str, Any], str] | None:
    """The volume holding ``path`` in the app container and the file's path inside it."""
    best: tuple[Mapping[str, Any], str] | None = None
    best_len = -1
    for mount in app.get("volumeMounts") or []:
        if not isinstance(mount, Mapping) or not isinstance(mount.get("mountPath"), str):
            continue
        mount_path = posixpath.normpath(mount["mountPath"])
        if path != mount_path and not path.startswith(mount_path.rstrip("/") + "/"):
            continue
        rest = path[len(mount_path) :].lstrip("/")
        sub = mount.get("subPath") or ""
        inner = posixpath.join(sub, rest) if sub and rest else (sub or rest)
        volume = next((v for v in volumes if v.get("name") == mount.get("name")), None)
        if volume is not None and inner and len(mount_path) > best_len:
            best, best_len = (volume, posixpath.normpath(inner)), len(mount_path)
    return best


def _env_from_ref(
    app: Mapping[str, Any], name: str, namespace: str | None, stream: StreamObjects
) -> tuple[Obj | None, str | None]:
    """An explicit env entry for ``name`` taken from the app's ``envFrom`` (last one wins)."""
    sources = [s for s in app.get("envFrom") or [] if isinstance(s, Mapping)]
    for source in reversed(sources):
        prefix = source.get("prefix") or ""
        if not isinstance(prefix, str) or not name.startswith(prefix):
            continue
        for ref_key, kind, selector in (
            ("secretRef", "Secret", "secretKeyRef"),
            ("configMapRef", "ConfigMap", "configMapKeyRef"),
        ):
            ref = source.get(ref_key)
            if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
                continue
            key = name[len(prefix) :]
            known = stream.data_keys(kind, namespace, ref["name"])
            if known is not None and key not in known:
                continue
            entry = {
                "name": name,
                "valueFrom": {
                    selector: {
                        "name": ref["name"],
                        "key": key,
                        "optional": True,
                    }
                },
            }
            warning = None
            if known is None:
                earlier = [
                    s
                    for s in sources[: sources.index(source)]
                    if s.get("secretRef") or s.get("configMapRef")
                ]
                if earlier:
                    warning = (
                        f"{name} is taken from {kind} {ref['name']} (the app's last envFrom "
                        "source, not in this input; optional). If an earlier envFrom source "
                        f"holds it instead, give the app an explicit env entry for {name}: "
                        "authsvc copies that"
                    )
            return entry, warning
    return None, None


def key_sources(
    app: Mapping[str, Any],
    volumes: Sequence[Mapping[str, Any]],
    *,
    namespace: str | None,
    stream: StreamObjects,
    extra_names: Sequence[str] = (),
    litellm: bool,
    own_config: bool = False,
) -> KeySources:
    """The app's key sources for the authsvc container. ``own_config``: authsvc has its own
    config (``--config-map``), which decides the chain: no ``AUTHSVC_LITELLM_CONFIG``."""
    out = KeySources()
    names: list[str] = [LITELLM_FALLBACK, *extra_names]
    config_path = litellm_config_path(app) if litellm else None
    if config_path == "":
        out.warnings.append(
            "LiteLLM's --config is a relative path and the container sets no workingDir: "
            "authsvc cannot find the file; give --config an absolute path"
        )
    elif config_path is not None:
        located = _config_volume(app, volumes, config_path)
        if located is None:
            out.warnings.append(
                f"LiteLLM's config {config_path} is not on a volume (inside the image?): "
                "authsvc cannot read it; mount it from a ConfigMap"
            )
        else:
            volume, inner = located
            out.mounts.append(
                {"name": volume["name"], "mountPath": LITELLM_CONFIG_DIR, "readOnly": True}
            )
            out.litellm_config = f"{LITELLM_CONFIG_DIR}/{inner}"
            cm = volume.get("configMap")
            data = stream.config_map(namespace, cm["name"]) if isinstance(cm, Mapping) else None
            item_key = _item_key(volume, inner)
            if data is not None and item_key in data:
                named = _master_key_env(data[item_key])
                if named is not None:
                    names.append(named)
    explicit: dict[str, Obj] = {}
    for entry in app.get("env") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            explicit[entry["name"]] = dict(entry)  # the last duplicate wins, as in Kubernetes
    if litellm:  # another app's *MASTER_KEY* may be anything (a database's): --key-env then
        names += [n for n in explicit if _KEY_NAME.search(n)]
    seen: set[str] = set()
    for name in names:
        if name in seen or not _ENV_NAME.match(name):
            continue
        seen.add(name)
        if name in explicit:
            out.env.append(_optional(explicit[name]))
            continue
        entry, warning = _env_from_ref(app, name, namespace, stream)
        if entry is not None:
            out.env.append(entry)
        if warning is not None:
            out.warnings.append(warning)
    if out.litellm_config is not None and not own_config:
        out.env.append({"name": ENV_LITELLM_CONFIG, "value": out.litellm_config})
    return out


def _optional(entry: Obj) -> Obj:
    """The app's env entry, its Secret/ConfigMap reference made ``optional``: authsvc must
    start without it (fail closed, ``authsvc explain`` available) where the app would not."""
    source = entry.get("valueFrom")
    if not isinstance(source, Mapping):
        return dict(entry)
    out = dict(entry)
    out["valueFrom"] = {
        k: (
            {**v, "optional": True}
            if k in ("secretKeyRef", "configMapKeyRef") and isinstance(v, Mapping)
            else v
        )
        for k, v in source.items()
    }
    return out


def _item_key(volume: Mapping[str, Any], inner: str) -> str:
    """The ConfigMap key behind file ``inner`` of a configMap volume (``items`` remap paths)."""
    cm = volume.get("configMap")
    items = cm.get("items") if isinstance(cm, Mapping) else None
    if isinstance(items, list):
        for item in items:
            if isinstance(item, Mapping) and item.get("path") == inner:
                return str(item.get("key"))
    return inner
