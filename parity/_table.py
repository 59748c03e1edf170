"""The scenario table (parity/scenarios.yaml) as frozen data, and the keys of one run.

Keys are generated fresh for every run (``Keys.generate``) and only ever leave this process
inside the files and environments of the processes under test; labels use the placeholder
names (``A``, ``WRONG``...) or, for publicly known literals, the literal itself.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from parity._cookies import ui_cookies

PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")
GENERATED = ("A", "B", "C", "WRONG", "SHORT", "LONG", "REPEAT")
MAX_TABLE_BYTES = 1 << 20
MAX_SETUPS = 200
MAX_REQUESTS = 200
# authsvc's config for a setup: LiteLLM mode on the setup's cfg.yaml. {{CFG}} is cfg.yaml's
# absolute path, {{DOTENV}} the absolute path of the setup's .env (where LiteLLM finds it).
DEFAULT_AUTHSVC_CONFIG = "master_key:\n  sources:\n    - litellm_config: {{CFG}}\n"


class TableError(Exception):
    """The scenario table is malformed (names the setup / request and the field)."""


def fingerprint(key: str) -> str:
    """The first 12 hex characters of the key's SHA-256 (authsvc's fingerprint)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Keys:
    """Placeholder name -> value for one run: the generated keys plus the table's literals."""

    values: Mapping[str, str]
    literals: frozenset[str]

    @staticmethod
    def generate(literals: Mapping[str, str]) -> Keys:
        def token(n: int) -> str:
            alphabet = string.ascii_letters + string.digits
            return "".join(secrets.choice(alphabet) for _ in range(n))

        values = {name: "sk-" + token(32) for name in ("A", "B", "C", "WRONG")}
        values["SHORT"] = "sk-" + token(10)  # 13 characters
        values["LONG"] = "sk-" + token(1104)  # 1,107 characters
        values["REPEAT"] = secrets.choice(string.ascii_lowercase) * 24
        # the Admin UI's session cookies, signed with A (the UI setups' master key)
        values.update(ui_cookies(values["A"], values["WRONG"]))
        values.update(literals)
        return Keys(values, frozenset(literals))

    def label(self, name: str) -> str:
        """How ``name`` appears in the table: a literal as itself, a generated key by name."""
        return self.values[name] if name in self.literals else name

    def fill(self, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.values:
                raise TableError(f"unknown placeholder {{{{{name}}}}}")
            return self.values[name]

        return PLACEHOLDER.sub(one, text)

    def secrets(self) -> dict[str, str]:
        """The generated keys (name -> value): what must never be printed."""
        return {k: v for k, v in self.values.items() if k not in self.literals}

    def name_of(self, fp: str | None) -> str | None:
        """The placeholder whose fingerprint is ``fp`` (a label), if any."""
        for name, value in self.values.items():
            if fp is not None and fingerprint(value) == fp:
                return self.label(name)
        return None


@dataclass(frozen=True)
class RequestSpec:
    id: str
    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    content_type: str = "application/json"
    websocket: bool = False
    each_candidate: bool = False


@dataclass(frozen=True)
class Request:
    """One concrete request of one setup (keys filled in)."""

    label: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    content_type: str
    websocket: bool


@dataclass(frozen=True)
class Setup:
    id: str
    covers: str
    config: str
    files: tuple[tuple[str, str], ...] = ()
    dotenv_where: str | None = None  # "venv-parent" | "cwd"
    dotenv_text: str = ""
    env: tuple[tuple[str, str], ...] = ()
    candidates: tuple[str, ...] = ()
    requests: tuple[str, ...] = ("keys",)
    authsvc_config: str = DEFAULT_AUTHSVC_CONFIG


@dataclass(frozen=True)
class Table:
    literals: Mapping[str, str]
    request_sets: Mapping[str, tuple[RequestSpec, ...]]
    setups: tuple[Setup, ...]

    def requests_of(self, setup: Setup, keys: Keys) -> list[Request]:
        out: list[Request] = []
        for set_name in setup.requests:
            for spec in self.request_sets[set_name]:
                names = setup.candidates if spec.each_candidate else (None,)
                for name in names:
                    out.append(_concrete(spec, keys, name))
        return out


def _concrete(spec: RequestSpec, keys: Keys, candidate: str | None) -> Request:
    def sub(text: str) -> str:
        if candidate is not None:
            text = text.replace("{{K}}", "{{" + candidate + "}}")
        return keys.fill(text)

    label = spec.id
    if candidate is not None:
        label = label.replace("{{K}}", keys.label(candidate))
    return Request(
        label=label,
        method=spec.method,
        path=sub(spec.path),
        headers=tuple((name, sub(value)) for name, value in spec.headers),
        body=sub(spec.body).encode("utf-8") if spec.body is not None else None,
        content_type=spec.content_type,
        websocket=spec.websocket,
    )


# --- loading ----------------------------------------------------------------------------------


def _str(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TableError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TableError(f"{where}: expected a mapping")
    return value


def _spec(where: str, raw: Any) -> RequestSpec:
    data = _mapping(where, raw)
    known = {"id", "path", "method", "headers", "body", "content_type", "websocket"}
    unknown = set(data) - known - {"each_candidate"}
    if unknown:
        raise TableError(f"{where}: unknown field(s) {sorted(unknown)}")
    headers = []
    for i, pair in enumerate(data.get("headers") or []):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise TableError(f"{where}.headers[{i}]: expected [name, value]")
        headers.append((_str(f"{where}.headers[{i}]", pair[0]), _str(where, pair[1])))
    return RequestSpec(
        id=_str(f"{where}.id", data.get("id")),
        path=_str(f"{where}.path", data.get("path")),
        method=_str(f"{where}.method", data.get("method", "GET")),
        headers=tuple(headers),
        body=None if data.get("body") is None else _str(f"{where}.body", data["body"]),
        content_type=_str(where, data.get("content_type", "application/json")),
        websocket=bool(data.get("websocket", False)),
        each_candidate=bool(data.get("each_candidate", False)),
    )


def _setup(where: str, raw: Any, sets: Mapping[str, Any], literals: Mapping[str, str]) -> Setup:
    data = _mapping(where, raw)
    known = {"id", "covers", "config", "files", "dotenv", "env", "candidates", "requests"}
    known.add("authsvc_config")
    unknown = set(data) - known
    if unknown:
        raise TableError(f"{where}: unknown field(s) {sorted(unknown)}")
    dotenv = _mapping(f"{where}.dotenv", data.get("dotenv"))
    where_env = dotenv.get("where")
    if dotenv and where_env not in ("venv-parent", "cwd"):
        raise TableError(f"{where}.dotenv.where: venv-parent or cwd")
    candidates = tuple(_str(f"{where}.candidates", c) for c in data.get("candidates") or [])
    for c in candidates:
        if c not in GENERATED and c not in literals:
            raise TableError(f"{where}.candidates: unknown name {c!r}")
    requests = tuple(_str(f"{where}.requests", r) for r in data.get("requests") or ["keys"])
    for r in requests:
        if r not in sets:
            raise TableError(f"{where}.requests: unknown request set {r!r}")
    files = _mapping(f"{where}.files", data.get("files"))
    for name in files:
        if "/" in name or name.startswith(".") or name == "cfg.yaml":
            raise TableError(f"{where}.files: {name!r} must be a plain file name")
    return Setup(
        id=_str(f"{where}.id", data.get("id")),
        covers=_str(f"{where}.covers", data.get("covers", "")),
        config=_str(f"{where}.config", data.get("config")),
        files=tuple((k, _str(f"{where}.files.{k}", v)) for k, v in files.items()),
        dotenv_where=where_env if dotenv else None,
        dotenv_text=_str(f"{where}.dotenv.text", dotenv.get("text", "")),
        env=tuple(
            (k, _str(f"{where}.env.{k}", v))
            for k, v in _mapping(f"{where}.env", data.get("env")).items()
        ),
        candidates=candidates,
        requests=requests,
        authsvc_config=_str(
            f"{where}.authsvc_config", data.get("authsvc_config", DEFAULT_AUTHSVC_CONFIG)
        ),
    )


def load(path: Path) -> Table:
    raw_bytes = path.read_bytes()
    if len(raw_bytes) > MAX_TABLE_BYTES:
        raise TableError(f"{path}: larger than {MAX_TABLE_BYTES} bytes")
    raw = _mapping(str(path), yaml.safe_load(raw_bytes))
    literals = {
        k: _str(f"literals.{k}", v) for k, v in _mapping("literals", raw.get("literals")).items()
    }
    sets_raw = _mapping("request_sets", raw.get("request_sets"))
    sets = {
        name: tuple(_spec(f"request_sets.{name}[{i}]", s) for i, s in enumerate(specs or []))
        for name, specs in sets_raw.items()
    }
    setups_raw = raw.get("setups") or []
    if not isinstance(setups_raw, list) or len(setups_raw) > MAX_SETUPS:
        raise TableError(f"setups: a list of at most {MAX_SETUPS}")
    setups = tuple(_setup(f"setups[{i}]", s, sets, literals) for i, s in enumerate(setups_raw))
    ids = [s.id for s in setups]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise TableError(f"setups: duplicate id(s) {dupes}")
    table = Table(literals, sets, setups)
    keys = Keys.generate(literals)
    for setup in setups:
        reqs = table.requests_of(setup, keys)
        if len(reqs) > MAX_REQUESTS:
            raise TableError(f"setup {setup.id}: more than {MAX_REQUESTS} requests")
        labels = [r.label for r in reqs]
        if len(set(labels)) != len(labels):
            raise TableError(f"setup {setup.id}: two requests with the same id")
        keys.fill(setup.config)  # unknown placeholders fail here, not mid-run
    return table
