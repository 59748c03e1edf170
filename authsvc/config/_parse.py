"""The strict parser: YAML text → validated, frozen ``Config``. All checks happen here, once.

Relative file paths resolve against the config file's directory; symlinks are *not* resolved
(a Kubernetes Secret's ``key -> ..data/key`` link must stay a link so rotations are seen).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Literal, NoReturn

import yaml

from authsvc._yaml import Reader, compose, quoted
from authsvc.authz import (
    DEFAULT_PROTECTED_HEALTH_PATH,
    DEFAULT_PUBLIC_PATHS,
    CredentialLocation,
    is_canonical,
    parse_location,
)
from authsvc.config._chain import default_sources, with_override
from authsvc.config._litellm_mode import litellm_mode, litellm_with_dotenv
from authsvc.config._model import (
    Config,
    ExtraKeySpec,
    HealthCheckConfig,
    MasterKeyConfig,
    ReloadConfig,
    SourceSpec,
)
from authsvc.config._policy_parse import build_policy
from authsvc.keymodel import KeyMeta, PathRule
from authsvc.sources import REGISTRY, KeySource, SourceRegistry

__all__ = ["SCHEMA", "parse_config", "schema"]


def schema(registry: SourceRegistry = REGISTRY) -> dict[str, tuple[str, ...]]:
    """Every section's allowed keys; a source entry's come from the registry's kinds."""
    return {
        **_SECTIONS,
        "master_key.sources[]": registry.names("chain"),
        "keys[]": ("name", *registry.names("key"), "paths", "expires"),
    }


def _known(sections: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Each key name → every ``section.name`` path it is valid at (for "did you mean")."""
    known: dict[str, tuple[str, ...]] = {}
    for section, names in sections.items():
        for name in names:
            known[name] = (*known.get(name, ()), f"{section}.{name}" if section else name)
    return known


_SECTIONS: dict[str, tuple[str, ...]] = {
    "": (
        "master_key",
        "keys",
        "public_paths",
        "protected_health_path",
        "credentials",
        "max_credential_length",
        "forward_credentials",
        "health_check",
        "reload",
        "dry_run",
        "litellm_ui",
    ),
    "master_key": ("sources", "on_conflict", "allow_weak", "weak"),
    "health_check": ("enabled", "interval", "url"),
    "reload": ("poll_interval",),
}
SCHEMA = schema()
"""The built-in schema; ``schema()`` is the live one (source kinds come from the registry)."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_OWN_PATHS = frozenset((*DEFAULT_PUBLIC_PATHS, DEFAULT_PROTECTED_HEALTH_PATH))  # may be quoted


def parse_config(
    text: str,
    filename: str,
    *,
    environ: Mapping[str, str],
    master_key_file: str | None = None,
) -> Config:
    """Validate YAML ``text`` read from ``filename`` (used in messages and to resolve paths)."""
    return _Parser(filename, environ).parse(text, master_key_file)


class _Parser:
    """The parser; also the ``ParseContext`` each source kind's parser is handed."""

    def __init__(self, filename: str, environ: Mapping[str, str]) -> None:
        self.registry = REGISTRY
        self.schema = schema(self.registry)
        self.r = Reader(filename, _known(self.schema))
        self.abspath = os.path.abspath(filename)
        self.base = os.path.dirname(self.abspath)
        self.environ = environ

    def parse(self, text: str, master_key_file: str | None) -> Config:
        r = self.r
        root = compose(text, r.filename)
        top = {} if root is None else r.mapping(root, "", self.schema[""])

        def get(name: str) -> yaml.Node | None:
            return top[name][1] if name in top else None

        master = self._master(get("master_key"), master_key_file)
        node = get("keys")
        keys = self._keys(node) if node is not None else ()
        node = get("public_paths")
        public = (
            tuple(
                self._path(n, f"public_paths[{i}]")
                for i, n in enumerate(r.sequence(node, "public_paths"))
            )
            if node is not None
            else DEFAULT_PUBLIC_PATHS
        )
        node = get("protected_health_path")
        health_path = DEFAULT_PROTECTED_HEALTH_PATH
        if node is not None:
            health_path = self._path(node, "protected_health_path")
        node = get("credentials")
        locations = self._credentials(node) if node is not None else None
        node = get("max_credential_length")
        max_len = (
            r.integer(node, "max_credential_length", low=16, high=65536)
            if node is not None
            else None
        )
        node = get("forward_credentials")
        forward = r.boolean(node, "forward_credentials") if node is not None else True
        node = get("health_check")
        health = self._health(node) if node is not None else HealthCheckConfig()
        node = get("reload")
        reload = self._reload(node) if node is not None else ReloadConfig()
        node = get("dry_run")
        dry_run = r.boolean(node, "dry_run") if node is not None else False
        master, ui = litellm_mode(r, master, top, self.environ)
        policy = build_policy(
            r, self.environ, top, public, health_path, locations, max_len, forward, master, ui
        )
        return Config(
            path=self.abspath,
            master_key=master,
            keys=keys,
            public_paths=public,
            protected_health_path=health_path,
            credentials=policy.locations,
            max_credential_length=policy.max_credential_length,
            forward_credentials=forward,
            health_check=health,
            reload=reload,
            policy=policy,
            dry_run=dry_run,
            litellm_ui=ui,
        )

    # -- small typed helpers -------------------------------------------------------------

    def _str(self, node: yaml.Node, path: str) -> str:
        value = self.r.string(node, path)
        if not value:
            self.r.fail(node, path, "must not be empty")
        return value

    def _path(self, node: yaml.Node, path: str) -> str:
        """A request path in normal form. Never quoted in errors: a key pasted here must not
        come back (the message names the entry and its line)."""
        value = self._str(node, path)
        if not is_canonical(value) or "?" in value:
            self.r.fail(
                node,
                path,
                f"{quoted(value)} is not a path in normal form "
                "(absolute, no query, no '.', '..', '//' or %-escapes)",
            )
        return value

    def _env_name(self, node: yaml.Node, path: str, value: str | None = None) -> str:
        name = self._str(node, path) if value is None else value
        if not _ENV_NAME.match(name):
            self.r.fail(
                node,
                path,
                f"{quoted(name)} is not a valid environment variable name "
                "(letters, digits and '_', not starting with a digit)",
            )
        return name

    def _file(self, node: yaml.Node, path: str) -> str:
        value = self._str(node, path)
        return os.path.normpath(os.path.join(self.base, value))

    # -- the ParseContext a source kind's parser gets (see authsvc.sources) --------------

    nonempty = _str
    env_name = _env_name
    file = _file

    @property
    def config_path(self) -> str:
        return self.abspath

    def text(self, node: yaml.Node, path: str) -> str:
        return self.r.text(node, path)

    def string(self, node: yaml.Node, path: str) -> str:
        return self.r.string(node, path)

    def fail(self, node: yaml.Node | None, path: str, message: str) -> NoReturn:
        self.r.fail(node, path, message)

    def _one_of(
        self,
        node: yaml.Node,
        path: str,
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        kinds: tuple[str, ...],
    ) -> tuple[str, yaml.Node]:
        found = [k for k in kinds if k in entries]
        if len(found) != 1:
            got = " and ".join(found) if found else "none"
            self.r.fail(node, path, f"needs exactly one of {', '.join(kinds)}; got {got}")
        return found[0], entries[found[0]][1]

    # -- sections --------------------------------------------------------------------------

    def _master(self, node: yaml.Node | None, master_key_file: str | None) -> MasterKeyConfig:
        if node is None:
            return MasterKeyConfig(default_sources(self.environ, master_key_file))
        r = self.r
        entries = r.mapping(node, "master_key", self.schema["master_key"])
        sources: tuple[SourceSpec, ...]
        if "sources" in entries:
            seq_node = entries["sources"][1]
            items = r.sequence(seq_node, "master_key.sources")
            if not items:
                r.fail(seq_node, "master_key.sources", "needs at least one source")
            sources = tuple(
                self._source(n, f"master_key.sources[{i}]") for i, n in enumerate(items)
            )
        else:
            sources = default_sources(self.environ)
        on_conflict: Literal["warn", "error"] = "warn"
        if "on_conflict" in entries:
            v_node = entries["on_conflict"][1]
            value = r.string(v_node, "master_key.on_conflict")
            if value not in ("warn", "error"):
                r.fail(
                    v_node,
                    "master_key.on_conflict",
                    f"expected 'warn' or 'error', got {quoted(value)}",
                )
            on_conflict = "error" if value == "error" else "warn"
        allow_weak = False
        if "allow_weak" in entries:
            allow_weak = r.boolean(entries["allow_weak"][1], "master_key.allow_weak")
        weak: Literal["warn", "refuse"] = "warn"
        if "weak" in entries:
            w_node = entries["weak"][1]
            value = r.string(w_node, "master_key.weak")
            if value not in ("warn", "refuse"):
                r.fail(w_node, "master_key.weak", f"expected 'warn' or 'refuse', got {value!r}")
            weak = "refuse" if value == "refuse" else "warn"
        return MasterKeyConfig(
            with_override(sources, master_key_file), on_conflict, allow_weak, weak
        )

    def _source(self, node: yaml.Node, path: str) -> SourceSpec:
        names = self.schema["master_key.sources[]"]
        entries = self.r.mapping(node, path, names)
        if "litellm_config" in entries and "dotenv" in entries:  # the .env LiteLLM loads
            return litellm_with_dotenv(self, entries, path)
        name, v_node = self._one_of(node, path, entries, names)
        kind = self.registry.get(name)
        assert kind.chain is not None  # names() lists only kinds with a chain factory
        return kind.chain(kind.parse(self, v_node, f"{path}.{name}"), path)

    def _keys(self, node: yaml.Node) -> tuple[ExtraKeySpec, ...]:
        specs: list[ExtraKeySpec] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(self.r.sequence(node, "keys")):
            spec = self._key(item, f"keys[{i}]")
            if spec.name in seen:
                self.r.fail(
                    item,
                    spec.where,
                    f"name {quoted(spec.name)} is already used by keys[{seen[spec.name]}]",
                )
            seen[spec.name] = i
            specs.append(spec)
        return tuple(specs)

    def _key(self, node: yaml.Node, path: str) -> ExtraKeySpec:
        r = self.r
        entries = r.mapping(node, path, self.schema["keys[]"])
        if "name" not in entries:
            r.fail(node, path, "needs a name")
        name_node = entries["name"][1]
        name = r.string(name_node, f"{path}.name")
        if not _KEY_NAME.match(name) or name == "master":
            r.fail(
                name_node,
                f"{path}.name",
                f"{quoted(name)} is not a valid key name (letters, digits, '.', '_', '-'; "
                "at most 64; 'master' is reserved)",
            )
        names = self.registry.names("key")
        name_of_kind, v_node = self._one_of(node, path, entries, names)
        kind = self.registry.get(name_of_kind)
        parsed = kind.parse(self, v_node, f"{path}.{name_of_kind}")
        paths = None
        if "paths" in entries:
            p_node = entries["paths"][1]
            patterns = [
                self._str(n, f"{path}.paths[{i}]")
                for i, n in enumerate(r.sequence(p_node, f"{path}.paths"))
            ]
            if not patterns:
                r.fail(
                    p_node,
                    f"{path}.paths",
                    "is empty (it would allow no path); omit it to allow all",
                )
            for i, pattern in enumerate(patterns):
                if pattern != "*" and not pattern.startswith("/"):
                    r.fail(
                        p_node,
                        f"{path}.paths[{i}]",
                        f"pattern {quoted(pattern)} must start with '/' or be '*'",
                    )
                if "*" in pattern[:-1]:
                    r.fail(
                        p_node,
                        f"{path}.paths[{i}]",
                        f"pattern {quoted(pattern)}: '*' is only allowed as a last segment",
                    )
            try:
                paths = PathRule.from_patterns(patterns)
            except ValueError:  # its message quotes the pattern: say which entry instead
                r.fail(p_node, f"{path}.paths", "a pattern is not valid")
        expires_at = None
        if "expires" in entries:
            e_node = entries["expires"][1]
            expires_at = self._timestamp(e_node, f"{path}.expires")
        assert kind.key is not None  # names("key") lists only kinds with a key factory
        source: KeySource = kind.key(parsed, KeyMeta(name, path, paths, expires_at))
        return ExtraKeySpec(name, path, source, paths, expires_at)

    def _timestamp(self, node: yaml.Node, path: str) -> float:
        raw = self.r.text(node, path)
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            self.r.fail(
                node,
                path,
                f"{quoted(raw)} is not an ISO-8601 timestamp (e.g. 2026-01-31T00:00:00Z)",
            )
        if when.tzinfo is None:  # a long one is shown re-rendered from its value, not as typed
            text = quoted(raw) if quoted(raw) != "[not shown]" else repr(when.isoformat())
            self.r.fail(node, path, f"{text} has no timezone (add Z or +01:00)")
        return when.timestamp()

    def _credentials(self, node: yaml.Node) -> tuple[CredentialLocation, ...]:
        locations: list[CredentialLocation] = []
        items = self.r.sequence(node, "credentials")
        if not items:
            self.r.fail(
                node, "credentials", "needs at least one location (header:NAME or query:NAME)"
            )
        for i, item in enumerate(items):
            spec = self.r.string(item, f"credentials[{i}]")
            try:
                locations.append(parse_location(spec))
            except ValueError:  # its message quotes the entry, which may be a pasted key
                self.r.fail(
                    item,
                    f"credentials[{i}]",
                    f"{quoted(spec)} is not a credential location: "
                    "expected 'header:NAME' or 'query:NAME'",
                )
        return tuple(locations)

    def _health(self, node: yaml.Node) -> HealthCheckConfig:
        r = self.r
        entries = r.mapping(node, "health_check", self.schema["health_check"])
        out = HealthCheckConfig()
        enabled, interval, url = out.enabled, out.interval, out.url
        if "enabled" in entries:
            enabled = r.boolean(entries["enabled"][1], "health_check.enabled")
        if "interval" in entries:
            interval = r.seconds(entries["interval"][1], "health_check.interval", low=1, high=86400)
        if "url" in entries:
            u_node = entries["url"][1]
            url = r.string(u_node, "health_check.url")
            if not url.startswith(("http://", "https://")) or len(url) < 10:
                r.fail(u_node, "health_check.url", "expected an http:// or https:// URL")
        return HealthCheckConfig(enabled, interval, url)

    def _reload(self, node: yaml.Node) -> ReloadConfig:
        entries = self.r.mapping(node, "reload", self.schema["reload"])
        if "poll_interval" not in entries:
            return ReloadConfig()
        v_node = entries["poll_interval"][1]
        return ReloadConfig(self.r.seconds(v_node, "reload.poll_interval", low=0.1, high=3600))
