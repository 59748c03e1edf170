"""The key ring: an immutable snapshot mapping SHA-256 digest → key record, compactly.

A reload builds a new ring and swaps one reference (see ``KeyStore``); a request reads the
reference once and sees one snapshot from start to end. Keys themselves are never stored:
only their digests and a short fingerprint for humans.

Memory (issue #14): one ``dict`` entry per key, nothing else per key that is not needed.

- A key with a record of its own (the master, a ``keys:`` entry, a virtual key with its own
  alias/expiry/routes) maps to its ``KeyRecord``; the record's ``digest`` IS the dict key
  (one bytes object), and equal names/origins are shared by ``RingBuilder``.
- A key of a shared record (``DigestBatch``: a key file, a digest list) maps to a 2-tuple
  ``(digest, template)``: the template is ONE ``KeyRecord`` (without digest) for the whole
  batch; ``lookup`` builds the per-key ``KeyRecord`` (fingerprint = the digest's first hex
  digits) only when a request presents that key. ~180 bytes per key in all (dict slot, the
  32-byte digest object, the tuple), against ~3 KB with a ``Reading`` and record per key.
- A key of a keyed map (``add_keyed``: LiteLLM's virtual keys, issue #15) maps to a record
  template (no digest, no fingerprint) that keys with equal records share; the map is the
  source's own snapshot, taken by reference (no copy, no object per key at a reload), and
  ``lookup`` builds the key's ``KeyRecord`` as for a shared record.

Lookup is one dict probe (O(1), flat from 1 to 1,000,000 keys, see ``make bench``) and the
hit is confirmed with ``hmac.compare_digest`` against the stored digest.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from authsvc.keymodel._standing import Standing

__all__ = [
    "FINGERPRINT_LENGTH",
    "KeyRecord",
    "KeyRing",
    "KeyStore",
    "PathRule",
    "RingBuilder",
    "digest",
    "fingerprint",
]

FINGERPRINT_LENGTH = 12
DIGEST_SIZE = 32
SLICE = 4096
"""Keys handled per bulk (C-level) step of a build: ~1 ms, so a build running on a thread gives
the GIL back to the serving loop at least that often (see keys._reload)."""


def digest(key: str) -> bytes:
    """SHA-256 of the key's UTF-8 bytes: the only form in which keys are kept in memory."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def fingerprint(key: str) -> str:
    """First 12 hex characters of the key's SHA-256: safe to log, enough to tell keys apart."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:FINGERPRINT_LENGTH]


@dataclass(frozen=True, slots=True)
class PathRule:
    """Where a restricted key may be used: exact paths, and prefixes from ``/p/*`` patterns.

    Patterns are matched against the *normalised* path. ``*`` alone allows everything.
    """

    exact: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> PathRule:
        exact: set[str] = set()
        prefixes: list[str] = []
        for pattern in patterns:
            if pattern == "*":
                prefixes.append("/")
            elif pattern.endswith("/*"):
                prefixes.append(pattern[:-1])  # keep the slash: a segment boundary
                exact.add(pattern[:-2] or "/")
            elif "*" in pattern:
                raise ValueError(f"path pattern {pattern!r}: '*' is only allowed as a last segment")
            else:
                exact.add(pattern)
        return cls(frozenset(exact), tuple(prefixes))

    def allows(self, normalized_path: str) -> bool:
        return normalized_path in self.exact or normalized_path.startswith(self.prefixes)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What we know about one accepted key. ``origin`` names the source, e.g. ``env:NAME``."""

    name: str
    origin: str
    fingerprint: str
    digest: bytes
    paths: PathRule | None = None
    expires_at: float | None = None  # Unix time; None = never
    litellm: Standing | None = None  # a LiteLLM virtual key: decide applies LiteLLM's rules


class RingBuilder:
    """Collects a ring's entries; the first digest added wins (later ones are reported).

    ``add`` takes a record of its own; ``add_shared`` many packed digests under ONE template
    record (its ``digest``/``fingerprint`` are ignored), in slices of ``SLICE`` keys, each a
    few C-level steps. ``reuse`` (the ring being replaced): a digest it already holds under
    the same origin is stored as THE SAME bytes object, so a reload that changes 1 % of the
    keys allocates 1 % new digests, not a second copy of all of them. The builder also hashes
    what it adds (``KeyRing.content``), so "did the keys change?" never walks a ring.
    """

    __slots__ = ("_batches", "_content", "_keyed", "_records", "_reuse", "_strings")

    def __init__(self, reuse: KeyRing | None = None) -> None:
        self._records: dict[bytes, KeyRecord] = {}
        self._batches: list[tuple[dict[bytes, bytes], KeyRecord]] = []
        self._keyed: list[Mapping[bytes, KeyRecord]] = []
        self._content = hashlib.sha256()
        self._strings: dict[str, str] = {}
        self._reuse = reuse

    def _share(self, text: str) -> str:
        return self._strings.setdefault(text, text)

    def __contains__(self, key_digest: bytes) -> bool:
        return (
            key_digest in self._records
            or any(key_digest in m for m, _ in self._batches)
            or any(key_digest in m for m in self._keyed)
        )

    def add(self, record: KeyRecord) -> bool:
        """Add ``record``; False (and nothing changes) when its digest is already present.

        Equal names and origins are stored once (100,000 virtual keys share a few origins).
        """
        if record.digest in self:
            return False
        name, origin = self._share(record.name), self._share(record.origin)
        if name is not record.name or origin is not record.origin:
            record = replace(record, name=name, origin=origin)
        self._records[record.digest] = record
        meta = hash((name, origin, record.paths, record.expires_at, record.litellm))
        self._content.update(record.digest + meta.to_bytes(8, "big", signed=True))
        return True

    def add_shared(
        self, template: KeyRecord, packed: bytes, refuse: frozenset[bytes] = frozenset()
    ) -> tuple[list[bytes], int, int]:
        """Add every 32-byte digest of ``packed`` under ``template`` (one shared record),
        except those in ``refuse``. Returns (digests already added by an earlier entry, how
        many were repeated within ``packed``, how many refused).

        With ``reuse`` holding a map for the same origin, the new map is that map plus the
        difference (set operations, C-level): a rewrite that changes 1 % of 100,000 keys
        costs ~1 % of a build, and the unchanged keys are the same objects.
        """
        if len(packed) % DIGEST_SIZE:
            raise ValueError(f"packed digests must be a multiple of {DIGEST_SIZE} bytes")
        shared = KeyRecord(
            self._share(template.name),
            self._share(template.origin),
            "",
            b"",
            template.paths,
            template.expires_at,
            template.litellm,
        )
        digests: list[bytes] = []
        step = SLICE * DIGEST_SIZE
        for start in range(0, len(packed), step):  # a list of slices: the loop may yield
            end = min(len(packed), start + step)
            digests += [packed[i : i + DIGEST_SIZE] for i in range(start, end, DIGEST_SIZE)]
        old = self._reuse._shared_keys(shared.origin) if self._reuse is not None else None
        if old is not None:
            wanted = set(digests)
            keys = old.copy()
            for key_digest in keys.keys() - wanted:
                del keys[key_digest]
            added = wanted - keys.keys()
            keys.update(zip(added, added, strict=True))
            repeated = len(digests) - len(wanted)
        else:
            keys = dict(zip(digests, digests, strict=True))
            repeated = len(digests) - len(keys)
        del digests
        present: list[bytes] = []
        seen_keyed = (m.keys() for m in self._keyed)
        for seen in (self._records.keys(), *(m.keys() for m, _ in self._batches), *seen_keyed):
            clash = keys.keys() & seen  # the first entry holding a key keeps it
            for key_digest in clash:
                del keys[key_digest]
            present.extend(clash)
        refused = refuse & keys.keys()
        for key_digest in refused:
            del keys[key_digest]
        content = self._content
        content.update(repr((shared.name, shared.origin, shared.paths, shared.litellm)).encode())
        content.update(repr((shared.expires_at, len(keys), sorted(present))).encode())
        content.update(hashlib.sha256(packed).digest())
        if keys:
            self._batches.append((keys, shared))
        return present, repeated, len(refused)

    def add_keyed(
        self, templates: Mapping[bytes, KeyRecord], stamp: bytes, refuse: frozenset[bytes]
    ) -> tuple[list[bytes], int]:
        """Add a map digest → record template (``digest``/``fingerprint`` empty), taken by
        reference: the caller never changes it afterwards (it copies before a change).
        ``stamp`` names its content (a source's snapshot version). Digests already added by
        an earlier entry, or in ``refuse``, are left out (then, and only then, the map is
        copied: C-level set operations, no step per key). Returns (those already added,
        how many refused)."""
        present: list[bytes] = []
        seen_keyed = (m.keys() for m in self._keyed)
        for seen in (self._records.keys(), *(m.keys() for m, _ in self._batches), *seen_keyed):
            present.extend(templates.keys() & seen)  # iterates the smaller side
        refused = (refuse & templates.keys()).difference(present)  # counted once
        if present or refused:
            own = dict(templates)
            for key_digest in (*present, *refused):
                del own[key_digest]
            templates = own
        self._content.update(b"keyed" + stamp + repr(sorted(present)).encode())
        if templates:
            self._keyed.append(templates)
        return present, len(refused)

    def build(
        self,
        *,
        master: KeyRecord | None = None,
        unready_reason: str = "no master key is configured",
    ) -> KeyRing:
        """The ring. ``master`` (if any) wins its digest whatever was added under it."""
        if master is not None:
            for keys, _ in self._batches:
                keys.pop(master.digest, None)
            for i, keyed in enumerate(self._keyed):  # add_keyed did this unless added later
                if master.digest in keyed:
                    self._keyed[i] = {d: t for d, t in keyed.items() if d != master.digest}
            self._records[master.digest] = master
            self._content.update(b"master" + master.digest)
        ring = KeyRing(master=master, unready_reason=unready_reason)
        ring._records = self._records
        ring._batches = tuple(self._batches)
        ring._keyed = tuple(self._keyed)
        ring._size = len(self._records) + sum(len(m) for m, _ in self._batches)
        ring._size += sum(len(m) for m in self._keyed)
        ring._content = self._content.digest()
        self.__init__()  # type: ignore[misc]  # a builder builds once
        return ring


class KeyRing:
    """Immutable digest → record map, plus whether a usable master key is part of it.

    ``unready_reason`` explains, naming every source checked, why no master key resolved;
    it is what a fail-closed 503 says. Build a large ring with ``RingBuilder``.

    Layout: ``_records`` maps a digest to its own ``KeyRecord`` (the master, named keys,
    per-key records such as virtual keys); each of ``_batches`` is ONE shared record with a
    ``{digest: digest}`` map of its keys (the value is the stored digest the hit is confirmed
    against; no other object per key); each of ``_keyed`` maps a digest to a record
    template shared by keys with equal records (virtual keys). A digest is in at most one.
    """

    __slots__ = (
        "_batches",
        "_content",
        "_keyed",
        "_records",
        "_size",
        "master",
        "session_mac",
        "unknown_lookup",
        "unready_reason",
    )

    _records: dict[bytes, KeyRecord]
    _batches: tuple[tuple[dict[bytes, bytes], KeyRecord], ...]
    _keyed: tuple[Mapping[bytes, KeyRecord], ...]
    _size: int
    _content: bytes

    def __init__(
        self,
        records: Iterable[KeyRecord] = (),
        *,
        master: KeyRecord | None = None,
        unready_reason: str = "no master key is configured",
    ) -> None:
        by_digest: dict[bytes, KeyRecord] = {}
        content = hashlib.sha256()
        if master is not None:
            by_digest[master.digest] = master
            content.update(b"master" + master.digest)
        for record in records:
            if record.digest not in by_digest:  # first one named wins
                by_digest[record.digest] = record
                meta = hash(
                    (record.name, record.origin, record.paths, record.expires_at, record.litellm)
                )
                content.update(record.digest + meta.to_bytes(8, "big", signed=True))
        self._records = by_digest
        self._batches = ()
        self._keyed = ()
        self._size = len(by_digest)
        self._content = content.digest()
        self.master = master
        self.unready_reason = "" if master is not None else unready_reason
        # A virtual-key source's unknown-key lookup (#15), set once by the resolver before
        # the ring is served, so it swaps with the ring.
        self.unknown_lookup: object | None = None
        # The Admin UI session cookie's verifier (#15): HMAC-SHA256 keyed with the master key,
        # set by the resolver like ``unknown_lookup``; the key itself is never stored here.
        self.session_mac: hmac.HMAC | None = None

    @property
    def ready(self) -> bool:
        """True when a usable master key is loaded (fail closed otherwise)."""
        return self.master is not None

    @property
    def content(self) -> bytes:
        """A digest of every key and its record: equal for rings that hold the same keys with
        the same records (added in the same order). Cheap: computed while building."""
        return self._content

    def __len__(self) -> int:
        return self._size

    def _shared_keys(self, origin: str) -> dict[bytes, bytes] | None:
        """The digest map of the shared record from ``origin`` (for ``RingBuilder`` reuse)."""
        for keys, shared in self._batches:
            if shared.origin == origin:
                return keys
        return None

    def records(self) -> Iterator[KeyRecord]:
        """Every record, one per key (built on the fly for keys of a shared record)."""
        yield from self._records.values()
        for keys, shared in self._batches:
            for stored in keys.values():
                yield _materialize(stored, shared)
        for keyed in self._keyed:
            for key_digest, template in keyed.items():
                yield _materialize(key_digest, template)

    def lookup(self, key_digest: bytes) -> KeyRecord | None:
        """The record for a presented key's digest, confirmed with a constant-time compare.

        A dict probe per map (the per-key records, then one per shared record: a handful),
        keyed by a SHA-256 digest, so its timing can reveal nothing about the key;
        ``hmac.compare_digest`` against the stored digest makes the final equality check
        constant-time too.
        """
        record = self._records.get(key_digest)
        if record is not None:
            return record if hmac.compare_digest(record.digest, key_digest) else None
        for keys, shared in self._batches:
            stored = keys.get(key_digest)
            if stored is not None:
                if not hmac.compare_digest(stored, key_digest):
                    return None
                return _materialize(stored, shared)
        for keyed in self._keyed:  # the dict's key equality on a SHA-256 digest: the match
            template = keyed.get(key_digest)
            if template is not None:
                return _materialize(key_digest, template)
        return None


def _materialize(stored: bytes, shared: KeyRecord) -> KeyRecord:
    return KeyRecord(
        shared.name,
        shared.origin,
        stored.hex()[:FINGERPRINT_LENGTH],
        stored,
        shared.paths,
        shared.expires_at,
        shared.litellm,
    )


class KeyStore:
    """Holds the current ring. ``swap`` replaces it atomically (one reference assignment)."""

    __slots__ = ("current",)

    def __init__(self, ring: KeyRing | None = None) -> None:
        self.current: KeyRing = ring if ring is not None else KeyRing()

    def swap(self, ring: KeyRing) -> KeyRing:
        previous, self.current = self.current, ring
        return previous
