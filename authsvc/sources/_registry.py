"""The registry: config kind (``env``, ``file``, ...) → its ``SourceKind`` (parser + factories).

The config parser dispatches through ``REGISTRY``; the schema it checks (which keys a
``master_key.sources[]`` or ``keys[]`` entry may have) is read from it too. Adding a source
type is one module (its class, parser and ``KIND``) plus one line in ``BUILTIN`` below — or,
for a test or an extension, ``REGISTRY.register(kind)`` / ``with REGISTRY.registered(kind):``.
The order of ``BUILTIN`` is the order kinds are listed in error messages.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Literal

from authsvc._errors import ConfigError
from authsvc.sources import _env, _file, _litellm_db, _litellm_source, _sha256, _sha256_file, _value
from authsvc.sources._protocol import SourceKind

__all__ = ["BUILTIN", "REGISTRY", "Section", "SourceRegistry"]

Section = Literal["chain", "key"]

BUILTIN: tuple[SourceKind, ...] = (
    _sha256.KIND,
    _env.KIND,
    _file.KIND,
    _litellm_source.KIND,
    _value.KIND,
    _sha256_file.KIND,
    _litellm_db.KIND,
)


class SourceRegistry:
    """Config kind → ``SourceKind``. Reads are lock-free snapshots; writes are rare."""

    def __init__(self, kinds: Iterable[SourceKind] = ()) -> None:
        self._lock = threading.Lock()
        self._kinds: dict[str, SourceKind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: SourceKind) -> None:
        """Add ``kind``; a name already taken is a ``ConfigError`` (no silent override)."""
        with self._lock:
            if kind.name in self._kinds:
                raise ConfigError(f"key source kind {kind.name!r} is already registered")
            if kind.chain is None and kind.key is None:
                raise ConfigError(f"key source kind {kind.name!r} has no factory")
            self._kinds = {**self._kinds, kind.name: kind}

    def unregister(self, name: str) -> None:
        with self._lock:
            self._kinds = {k: v for k, v in self._kinds.items() if k != name}

    @contextmanager
    def registered(self, kind: SourceKind) -> Iterator[SourceKind]:
        """``kind`` registered for the duration of the ``with`` block."""
        self.register(kind)
        try:
            yield kind
        finally:
            self.unregister(kind.name)

    def get(self, name: str) -> SourceKind:
        return self._kinds[name]

    def names(self, section: Section) -> tuple[str, ...]:
        """The kinds allowed in ``master_key.sources[]`` (``chain``) or ``keys[]`` (``key``)."""
        kinds = self._kinds.values()
        if section == "chain":
            return tuple(k.name for k in kinds if k.chain is not None)
        return tuple(k.name for k in kinds if k.key is not None)


REGISTRY = SourceRegistry(BUILTIN)
"""The registry the config parser uses."""
