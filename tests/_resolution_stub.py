"""A stand-in with the documented shape of ``authsvc.keys.resolve(...)``'s ``Resolution``.

Observability reads resolutions through ``authsvc.observability.ResolutionLike``; these tests
build one directly so they do not depend on the key-resolution package's internals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from authsvc.keys import KeyRecord, KeyRing, digest, fingerprint


@dataclass(frozen=True)
class Winner:
    source: str
    fingerprint: str | None


@dataclass(frozen=True)
class Resolution:
    resolved: bool
    winner: Winner | None
    ring: KeyRing
    warnings: Sequence[str] = ()
    chain: Mapping[str, object] = field(default_factory=dict)

    def report(self) -> Mapping[str, object]:
        return self.chain


def record(key: str, name: str, origin: str = "test", **kw: object) -> KeyRecord:
    return KeyRecord(name, origin, fingerprint(key), digest(key), **kw)  # type: ignore[arg-type]


def resolution(
    master: str | None, *extra: str, source: str = "env:AUTHSVC_MASTER_KEY", warnings=()
) -> Resolution:
    """A resolution whose ring holds ``master`` (if any) and ``extra`` keys."""
    records = [record(k, f"extra-{i}") for i, k in enumerate(extra)]
    if master is None:
        ring = KeyRing(records, unready_reason="env:AUTHSVC_MASTER_KEY is unset")
        return Resolution(False, None, ring, tuple(warnings), _report(None, source))
    ring = KeyRing(records, master=record(master, "master", source))
    winner = Winner(source, fingerprint(master))
    return Resolution(True, winner, ring, tuple(warnings), _report(master, source))


def _report(master: str | None, source: str) -> dict[str, object]:
    fp = fingerprint(master) if master else None
    return {
        "resolved": master is not None,
        "winner": {"source": source, "fingerprint": fp} if master else None,
        "sources": [
            {
                "source": source,
                "state": "set" if master else "unset",
                "fingerprint": fp,
                "used": bool(master),
            }
        ],
        "warnings": [],
    }
