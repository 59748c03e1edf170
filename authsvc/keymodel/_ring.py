"""The key ring: an immutable snapshot mapping SHA-256 digest → key record.

A reload builds a new ring and swaps one reference (see ``KeyStore``); a request reads the
reference once and sees one snapshot from start to end. Keys themselves are never stored:
only their digests and a short fingerprint for humans.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from authsvc.keymodel._standing import Standing

__all__ = [
    "FINGERPRINT_LENGTH",
    "KeyRecord",
    "KeyRing",
    "KeyStore",
    "PathRule",
    "digest",
    "fingerprint",
]

FINGERPRINT_LENGTH = 12


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


class KeyRing:
    """Immutable digest → record map, plus whether a usable master key is part of it.

    ``unready_reason`` explains, naming every source checked, why no master key resolved;
    it is what a fail-closed 503 says.
    """

    __slots__ = ("_by_digest", "master", "unknown_lookup", "unready_reason")

    def __init__(
        self,
        records: Iterable[KeyRecord] = (),
        *,
        master: KeyRecord | None = None,
        unready_reason: str = "no master key is configured",
    ) -> None:
        by_digest: dict[bytes, KeyRecord] = {}
        if master is not None:
            by_digest[master.digest] = master
        for record in records:
            by_digest.setdefault(record.digest, record)  # first one named wins
        self._by_digest = MappingProxyType(by_digest)
        self.master = master
        self.unready_reason = "" if master is not None else unready_reason
        # A virtual-key source's unknown-key lookup (#15), set once by the resolver before
        # the ring is served, so it swaps with the ring.
        self.unknown_lookup: object | None = None

    @property
    def ready(self) -> bool:
        """True when a usable master key is loaded (fail closed otherwise)."""
        return self.master is not None

    def __len__(self) -> int:
        return len(self._by_digest)

    def records(self) -> tuple[KeyRecord, ...]:
        return tuple(self._by_digest.values())

    def lookup(self, key_digest: bytes) -> KeyRecord | None:
        """The record for a presented key's digest, confirmed with a constant-time compare.

        The dict lookup is keyed by a SHA-256 digest, so its timing can reveal nothing about
        the key; ``hmac.compare_digest`` makes the final equality check constant-time too.
        """
        record = self._by_digest.get(key_digest)
        if record is not None and hmac.compare_digest(record.digest, key_digest):
            return record
        return None


class KeyStore:
    """Holds the current ring. ``swap`` replaces it atomically (one reference assignment)."""

    __slots__ = ("current",)

    def __init__(self, ring: KeyRing | None = None) -> None:
        self.current: KeyRing = ring if ring is not None else KeyRing()

    def swap(self, ring: KeyRing) -> KeyRing:
        previous, self.current = self.current, ring
        return previous
