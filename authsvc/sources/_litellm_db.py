"""``virtual_keys:`` (``keys:`` only) — LiteLLM's virtual keys, read from LiteLLM's own Postgres.

```yaml
keys:
  - name: litellm            # the name of keys with neither alias nor team
    virtual_keys:
      database_url_env: DATABASE_URL   # default; else DATABASE_HOST/_USERNAME/_NAME/...
      refresh_interval: 2              # seconds, 0.2 .. 60 (blocked/deleted/expired seen within)
      lookup_rate: 40                  # unknown-key lookups a second (burst rate/4): <= 50 in any second
      miss_ttl: 1                      # seconds a "not in the database" answer is remembered
```

The source yields the snapshot kept by ``VirtualKeyStore`` (``_litellm_db_store``) as digest
batches: every key's record carries LiteLLM's standing (``keymodel.Standing``), and
``decide`` applies LiteLLM's rules. ``watch()`` asks to be polled every ``refresh_interval``;
``change_token()`` runs the store's watermark query, refreshes the snapshot when it moved
and returns the snapshot's version: the reloader re-resolves only when a key's record
changed (LiteLLM moves ``updated_at`` at every spend update). When the database is unset, unreachable or
lacks a column, the read adds one ``unreadable`` reading naming why: the reloader then keeps
the last good ring (known keys keep working; unknown keys are refused — never allowed).

The label names the environment variable, never the DSN (it may hold a password).
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import yaml

from authsvc.keymodel import ExtraKeyReadings, KeyMeta, Reading, State
from authsvc.sources._litellm_db_lookup import lookup_for
from authsvc.sources._litellm_db_rows import dsn_from_env
from authsvc.sources._litellm_db_store import VirtualKeyStore, store_for
from authsvc.sources._protocol import ParseContext, SourceKind, SourceOutput, Watch

__all__ = ["KIND", "VirtualKeySettings", "VirtualKeySource"]

DEFAULT_URL_ENV = "DATABASE_URL"


@dataclass(frozen=True, slots=True)
class VirtualKeySettings:
    url_env: str = DEFAULT_URL_ENV
    refresh_interval: float = 2.0
    lookup_rate: int = 40
    miss_ttl: float = 1.0


class _Cell:
    """The store found by the last ``read`` (the reloader asks ``change_token`` after it)."""

    __slots__ = ("store",)

    def __init__(self) -> None:
        self.store: VirtualKeyStore | None = None


@dataclass(frozen=True, slots=True)
class VirtualKeySource:
    """LiteLLM's virtual keys (see the module docstring)."""

    settings: VirtualKeySettings
    meta: KeyMeta
    cell: _Cell = field(default_factory=_Cell, compare=False, repr=False)

    @classmethod
    def default(cls, meta: KeyMeta) -> VirtualKeySource:
        """The source LiteLLM mode adds when ``DATABASE_URL`` (or its parts) is set."""
        return cls(VirtualKeySettings(), meta)

    @property
    def label(self) -> str:
        return f"virtual_keys:${self.settings.url_env}"

    def store(self, environ: Mapping[str, str]) -> VirtualKeyStore | None:
        dsn, schema = dsn_from_env(environ, self.settings.url_env)
        if dsn is None:
            return None
        store = store_for(dsn, schema)
        store.settings = self.settings
        store.use(self.meta, self.label)
        self.cell.store = store
        return store

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput:
        store = self.store(environ)
        if store is None:
            self.cell.store = None
            why = (
                f"${self.settings.url_env} is not set (nor DATABASE_HOST, DATABASE_USERNAME "
                "and DATABASE_NAME): no virtual key is loaded"
            )
            return self._problem(State.UNSET, why)
        if not store.take_synced():
            store.refresh()  # unless change_token just did (the reloader asks it first)
        lookup = lookup_for(store, self.meta, self.label)
        batches = store.batches(self.meta, self.label)
        if store.status.stale_since is None and store.status.last_refresh is not None:
            return SourceOutput(batches=batches, lookup=lookup)
        problem = self._problem(State.UNREADABLE, store.status.describe(time.time()))
        return SourceOutput(keys=problem.keys, batches=batches, lookup=lookup)

    def _problem(self, state: State, detail: str) -> SourceOutput:
        reading = Reading.without_value(self.label, state, detail)
        return SourceOutput(keys=(ExtraKeyReadings.of(self.meta, [reading]),))

    def watch(self) -> Watch:
        return Watch(poll=self.settings.refresh_interval)

    def change_token(self) -> Hashable | None:
        store = self.cell.store
        if store is None:
            return None  # never read, or no database configured: read (cheap when unset)
        return store.sync()


def _number(ctx: ParseContext, node: yaml.Node, path: str, low: float, high: float) -> float:
    raw = ctx.text(node, path)
    try:
        value = float(raw)
    except ValueError:
        ctx.fail(node, path, f"{raw!r} is not a number")
    if not math.isfinite(value) or not low <= value <= high:
        ctx.fail(node, path, f"{raw} is out of range ({low:g} .. {high:g})")
    return value


_FIELDS = ("database_url_env", "refresh_interval", "lookup_rate", "miss_ttl")


def _parse(ctx: ParseContext, node: yaml.Node, path: str) -> VirtualKeySettings:
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return VirtualKeySettings()
    if not isinstance(node, yaml.MappingNode):
        ctx.fail(node, path, "expected a mapping (database_url_env, refresh_interval, ...)")
    if len(node.value) > len(_FIELDS):
        ctx.fail(node, path, f"too many entries (known: {', '.join(_FIELDS)})")
    values: dict[str, object] = {}
    for k_node, v_node in node.value:
        key = ctx.text(k_node, path)
        where = f"{path}.{key}"
        if key not in _FIELDS:
            ctx.fail(k_node, where, f"unknown setting (known: {', '.join(_FIELDS)})")
        if key in values:
            ctx.fail(k_node, where, "given twice")
        if key == "database_url_env":
            values[key] = ctx.env_name(v_node, where)
        elif key == "refresh_interval":
            values[key] = _number(ctx, v_node, where, 0.2, 60)
        elif key == "lookup_rate":
            rate = _number(ctx, v_node, where, 0, 1000)
            if rate != int(rate):
                ctx.fail(v_node, where, "must be a whole number of lookups per second")
            values[key] = int(rate)
        else:
            values[key] = _number(ctx, v_node, where, 0, 10)
    return VirtualKeySettings(
        url_env=str(values.get("database_url_env", DEFAULT_URL_ENV)),
        refresh_interval=float(values.get("refresh_interval", 2.0)),  # type: ignore[arg-type]
        lookup_rate=int(values.get("lookup_rate", 40)),  # type: ignore[call-overload]
        miss_ttl=float(values.get("miss_ttl", 1.0)),  # type: ignore[arg-type]
    )


KIND = SourceKind("virtual_keys", _parse, key=lambda p, meta: VirtualKeySource(p, meta))
