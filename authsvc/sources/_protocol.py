"""The key-source protocol: the one shape every source of keys implements.

A source is built from one config entry (``env: NAME``, ``file: PATH``, ...) by its
``SourceKind`` (parser + factories, see ``_registry``) and then only asked four things:

- ``label`` — how it is named in ``explain``, logs and metrics (never a key);
- ``read(environ, *, max_length) -> SourceOutput`` — the I/O. Never raises for a source
  problem: each becomes a reading state (``missing``, ``unreadable``, ``invalid``, ...);
- ``watch() -> Watch`` — the files whose directories the reloader watches, and/or "poll me
  every N seconds" (a source with no files, e.g. a database);
- ``change_token() -> Hashable | None`` — asked by the reloader at every tick, BEFORE reading:
  when every source's token (and the config file's) equals the last attempt's, nothing is
  read again. ``None`` means "cannot tell cheaply: read me". It must be cheap and must not
  raise (a failure is ``None``).

``SourceOutput`` carries three forms; a source fills what fits it:

- ``readings`` — layers of the master-key chain, in order (a LiteLLM config gives several);
  only used when the source sits in ``master_key.sources``;
- ``keys`` — named keys, each an ``ExtraKeyReadings`` = record (name, where, paths, expiry)
  + the readings that hold it. A ``keys:`` entry yields one, with the ``KeyMeta`` the config
  gave; a source of many keys may yield one per key, each with its own record;
- ``batches`` — ``DigestBatch``: a record template SHARED by many keys + their packed 32-byte
  SHA-256 digests, with no per-key Python object (the form for 100,000+ keys, issue #14).

How the two sources to come fit, without changing this protocol:

- **100,000-key files** (#14): ``read`` returns ``SourceOutput(batches=(DigestBatch(meta,
  label, packed_digests),))`` — ~32 bytes per key plus the ring's own entry; ``watch`` is the
  file; ``change_token`` is its ``file_signature``. Per-key problems are summed in
  ``DigestBatch.detail`` instead of one reading each.
- **LiteLLM virtual keys from Postgres** (#15): ``watch() -> Watch(poll=seconds)`` and no
  files; ``change_token`` returns a cheap database watermark (e.g. ``max(updated_at)`` and the
  row count, or ``None`` when the query fails so a read reports the problem); ``read`` returns
  ``keys`` with one ``ExtraKeyReadings`` per virtual key (its own name, expiry and allowed
  routes as ``KeyMeta``) or batches grouped by shared record. The source may keep its last
  snapshot and apply diffs inside ``read``; the reloader only ever sees whole outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, runtime_checkable

import yaml

from authsvc.keymodel import DigestBatch, ExtraKeyReadings, KeyMeta, Reading
from authsvc.sources._stat import file_signature

__all__ = [
    "KeySource",
    "OneFile",
    "ParseContext",
    "SourceKind",
    "SourceOutput",
    "Watch",
    "output",
    "parse_file",
]


@dataclass(frozen=True, slots=True)
class Watch:
    """What tells the reloader a source may have changed.

    ``files``: paths whose directories are watched (Kubernetes swaps a ``..data`` symlink,
    so the directory, not the file) and which are polled. ``poll``: re-ask this source's
    ``change_token`` at least every ``poll`` seconds (``None``: the reloader's own interval).
    """

    files: tuple[str, ...] = ()
    poll: float | None = None


class OneFile:
    """The watch and change token of a source read from the one file at ``self.path``
    (``file:``, ``sha256_file:``, ``dotenv:``): its directory is watched, and the file's
    signature is the token."""

    __slots__ = ()
    path: str

    def watch(self) -> Watch:
        return Watch(files=(self.path,))

    def change_token(self) -> Hashable | None:
        return file_signature((self.path,))


@dataclass(frozen=True, slots=True)
class SourceOutput:
    """What one ``read`` found (see the module docstring for the three forms)."""

    readings: tuple[Reading, ...] = ()
    keys: tuple[ExtraKeyReadings, ...] = ()
    batches: tuple[DigestBatch, ...] = ()
    lookup: object | None = None
    """What the checker asks about a key the ring does not know (``sources.Lookup``, the
    ``virtual_keys:`` source): it travels with the ring built from this output."""


def output(readings: list[Reading] | tuple[Reading, ...], key: KeyMeta | None) -> SourceOutput:
    """``readings`` as master-chain layers (``key`` is ``None``) or as one named key."""
    if key is None:
        return SourceOutput(readings=tuple(readings))
    return SourceOutput(keys=(ExtraKeyReadings.of(key, readings),))


@runtime_checkable
class KeySource(Protocol):
    """One configured source of keys. See the module docstring."""

    @property
    def label(self) -> str: ...

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput: ...

    def watch(self) -> Watch: ...

    def change_token(self) -> Hashable | None: ...


class ParseContext(Protocol):
    """What a source's parser may ask of the config parser (which implements it).

    Every method names ``path`` (e.g. ``keys[0].file``) in its error; ``fail`` raises a
    ``ConfigError`` with file, line and path. Values are never echoed (they may be keys).
    """

    @property
    def config_path(self) -> str: ...

    def text(self, node: yaml.Node, path: str) -> str:
        """A scalar as text, whatever YAML would make of it (``0123`` stays ``0123``)."""
        ...

    def string(self, node: yaml.Node, path: str) -> str:
        """A string (may be empty)."""
        ...

    def nonempty(self, node: yaml.Node, path: str) -> str: ...

    def env_name(self, node: yaml.Node, path: str, value: str | None = None) -> str:
        """A valid environment variable name (``value`` when already extracted)."""
        ...

    def file(self, node: yaml.Node, path: str) -> str:
        """A path, made absolute against the config file's directory (symlinks kept)."""
        ...

    def fail(self, node: yaml.Node | None, path: str, message: str) -> NoReturn: ...


@dataclass(frozen=True, slots=True)
class SourceKind:
    """One registry entry: the config key (``env``, ``file``, ...), its parser and factories.

    ``parse(ctx, value_node, path)`` validates the entry's value (``path`` is e.g.
    ``keys[0].file``) and returns what the factories need. ``chain(parsed, where)`` builds a
    master-key layer (``where`` = ``master_key.sources[0]``); ``key(parsed, meta)`` builds a
    ``keys:`` entry. A factory left ``None`` means the kind is not allowed in that section.
    """

    name: str
    parse: Callable[[ParseContext, yaml.Node, str], Any]
    chain: Callable[[Any, str], KeySource] | None = None
    key: Callable[[Any, KeyMeta], KeySource] | None = None


def parse_file(ctx: ParseContext, node: yaml.Node, path: str) -> str:
    """The parser of a kind whose value is one file's path (``SourceKind.parse``)."""
    return ctx.file(node, path)
