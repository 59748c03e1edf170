"""The resolution rule, pure: readings in, ``Resolution`` out (no I/O, no clock, no gRPC).

1. The first **candidate** reading holding a usable key wins: ``set`` (with ``weak: refuse``,
   only when it breaks none of authsvc's stricter rules), or ``weak`` when ``allow_weak``. ``unset``/``empty``/``missing``/``unreadable``/``invalid`` never win,
   so an empty layer never shadows a later one.
2. Readings after the winner that hold a **different** key (``set`` or ``weak``; including
   layers the app ignores, but not misplaced ones, which are always warned about) are
   conflicts: a warning each, or — with ``on_conflict: error`` — no master key at all.
3. No winner: the ring has no master (fail closed) and its ``unready_reason`` names every
   source checked with its state.
4. Extra keys (``keys:``) join the ring when ``set`` (or ``weak`` with ``allow_weak``); any other
   state is a warning. A key equal to the master key stays the (unrestricted) master.
5. Batches (``DigestBatch``: many keys known only by digest, one shared record) join the ring
   the same way; a digest of a publicly known key is refused unless ``allow_weak``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from authsvc._errors import KeySourceError
from authsvc.keymodel._reading import WEAK_DIGESTS, Reading, Role, State
from authsvc.keymodel._render import render_table, report
from authsvc.keymodel._ring import FINGERPRINT_LENGTH, KeyRecord, KeyRing, PathRule, RingBuilder
from authsvc.keymodel._secret import Secret
from authsvc.keymodel._standing import Standing

__all__ = [
    "DIGEST_SIZE",
    "MASTER_NAME",
    "DigestBatch",
    "ExtraKeyReadings",
    "KeyMeta",
    "Resolution",
    "resolve_readings",
]

MASTER_NAME = "master"
DIGEST_SIZE = hashlib.sha256().digest_size


@dataclass(frozen=True, slots=True)
class KeyMeta:
    """The record template of a named key: its name, where it is configured, its restrictions.

    A source placed in ``keys:`` gets one; every key it yields carries these (a source that
    yields many keys may give each its own, e.g. a database row's name and expiry).
    """

    name: str
    where: str  # "keys[0]"
    paths: PathRule | None = None
    expires_at: float | None = None  # Unix time; None = never
    litellm: Standing | None = None  # a LiteLLM virtual key's standing (issue #15)


@dataclass(frozen=True, slots=True)
class ExtraKeyReadings:
    """The readings of one named key (a ``keys:`` entry), with the restrictions its records get."""

    name: str
    where: str  # "keys[0]"
    readings: tuple[Reading, ...]
    paths: PathRule | None = None
    expires_at: float | None = None

    @classmethod
    def of(cls, meta: KeyMeta, readings: Sequence[Reading]) -> ExtraKeyReadings:
        return cls(meta.name, meta.where, tuple(readings), meta.paths, meta.expires_at)


@dataclass(frozen=True, slots=True)
class DigestBatch:
    """Many keys sharing ONE record: ``digests`` packs 32-byte SHA-256 digests end to end.

    The compact form for sources of 100,000+ keys (no ``Reading`` object per key): what the
    ring needs is the digest and the record; the fingerprint is the digest's first hex digits.

    ``keyed`` (instead of ``digests``): keys whose records differ (LiteLLM's virtual keys,
    issue #15), as the source's own map digest → record template (``KeyRecord`` without
    digest and fingerprint, shared by keys with equal records). The ring takes the map by
    reference, so the source must never change it once handed out (it copies first);
    ``stamp`` names its content (equal stamps: equal maps), ``names`` counts its distinct
    names (for ``explain``).
    """

    meta: KeyMeta
    source: str  # the label every key of the batch is reported under
    digests: bytes
    detail: str = ""
    content: bytes = field(init=False, repr=False, compare=False)  # SHA-256 of ``digests``
    keyed: Mapping[bytes, KeyRecord] | None = field(default=None, repr=False, compare=False)
    stamp: bytes = b""
    names: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if len(self.digests) % DIGEST_SIZE:
            raise ValueError(f"digests must be a multiple of {DIGEST_SIZE} bytes")
        if self.keyed is not None and (self.digests or not self.stamp):
            raise ValueError("a keyed batch has a stamp and no packed digests")
        # hashed here, where the batch is made (a source's read, off the serving loop), so a
        # reload comparing signatures on the loop never hashes megabytes there
        object.__setattr__(self, "content", hashlib.sha256(self.digests + self.stamp).digest())

    @property
    def name(self) -> str:
        return self.meta.name

    def __len__(self) -> int:
        if self.keyed is not None:
            return len(self.keyed)
        return len(self.digests) // DIGEST_SIZE

    def __iter__(self) -> Iterator[bytes]:
        if self.keyed is not None:
            yield from self.keyed
            return
        view = memoryview(self.digests)
        for start in range(0, len(view), DIGEST_SIZE):
            yield bytes(view[start : start + DIGEST_SIZE])


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of one resolution: who won, what every layer held, and the ring to serve."""

    readings: tuple[Reading, ...]
    winner: Reading | None
    warnings: tuple[str, ...]
    ring: KeyRing = field(compare=False)
    conflicts: tuple[Reading, ...] = ()
    extras: tuple[ExtraKeyReadings, ...] = ()
    chosen: Reading | None = None  # first usable reading, even when a conflict blocks it
    batches: tuple[DigestBatch, ...] = ()
    allow_weak: bool = False  # the rule's input, kept so a reload judges the new result by it

    @property
    def resolved(self) -> bool:
        """True iff a usable master key is in the ring."""
        return self.winner is not None

    @property
    def unready_reason(self) -> str:
        return self.ring.unready_reason

    def master_secret(self) -> Secret | None:
        """The master key, for the one caller that must send it (the deep health check).

        ``None`` when unresolved, or when the winner is known only by its digest.
        """
        return self.winner.secret if self.winner is not None else None

    def require(self) -> None:
        """For ``serve --strict``: raise ``KeySourceError`` with the fail-closed 503 message."""
        if self.winner is None:
            raise KeySourceError(f"authsvc has no usable master key: {self.unready_reason}")

    def report(self) -> dict[str, object]:
        """The stable JSON shape of ``explain --json`` (no keys, only fingerprints)."""
        return report(self)

    def render_table(self) -> str:
        """The human table of ``explain`` and of ``serve``'s logs (no keys)."""
        return render_table(self)

    def signature(self) -> tuple[object, ...]:
        """What a reload compares: every layer's state and key digest (and every batch)."""

        def sig(readings: Sequence[Reading]) -> tuple[object, ...]:
            return tuple((r.source, r.state, r.role, r.digest) for r in readings)

        extras = tuple((e.name, sig(e.readings)) for e in self.extras)
        batches = tuple((b.meta, b.source, b.content) for b in self.batches)
        winner = self.winner.source if self.winner is not None else None
        return (sig(self.readings), winner, extras, batches)


def _checked(readings: Sequence[Reading]) -> str:
    parts = []
    for r in readings:
        if r.role is Role.APP_OPEN:
            parts.append(f"{r.source} ({r.detail})")
            continue
        why = f": {r.detail}" if r.state in (State.WEAK, State.INVALID, State.UNREADABLE) else ""
        ignored = ", ignored by the app" if r.role is not Role.CANDIDATE else ""
        parts.append(f"{r.source} ({r.state}{why}{ignored})")
    return "checked " + "; ".join(parts) if parts else "no key source is configured"


def _reading_warnings(
    readings: Sequence[Reading], winner: Reading | None, allow_weak: bool, refuse: bool = False
) -> list[str]:
    out: list[str] = []
    for r in readings:
        if r.role is Role.APP_OPEN:
            out.append(f"{r.source}: {r.detail}. {r.note}")
            continue
        if r.caution and r.role is Role.CANDIDATE and r.state is State.SET:
            if r is winner:
                how = "allow_weak is true" if refuse else "master_key.weak is warn"
                out.append(
                    f"{r.source}: WEAK master key in use ({how}; the app accepts it): "
                    f"{r.caution}. Replace it, or set master_key.weak: refuse to refuse it"
                )
            elif refuse and not allow_weak:
                out.append(f"{r.source}: weak key refused (master_key.weak: refuse): {r.caution}")
        if r.role is Role.MISPLACED:
            held = f" (it holds a key, fingerprint {r.fingerprint})" if r.fingerprint else ""
            out.append(f"{r.source}: {r.note}{held}")
            continue
        if r.role is not Role.CANDIDATE:
            continue
        if r.state is State.WEAK:
            if r is winner:
                out.append(
                    f"{r.source}: weak key in use because master_key.allow_weak is true: {r.detail}"
                )
            elif not allow_weak:
                out.append(
                    f"{r.source}: weak key refused: {r.detail} "
                    "(master_key.allow_weak: true accepts it, for development only)"
                )
        elif r.state is State.INVALID:
            out.append(f"{r.source}: unusable key: {r.detail}")
        elif r.state is State.UNREADABLE:
            out.append(f"{r.source}: {r.detail}")
    return out


def _extra_records(
    extras: Sequence[ExtraKeyReadings],
    master: KeyRecord | None,
    allow_weak: bool,
    refuse: bool = False,
) -> tuple[list[KeyRecord], list[str]]:
    records: list[KeyRecord] = []
    warnings: list[str] = []
    seen: dict[bytes, tuple[str, str]] = {}  # digest -> (who, source) of the first holder
    for extra in extras:
        who = f"{extra.where} {extra.name!r}"
        for r in extra.readings:
            digest = r.digest
            usable = r.usable(allow_weak, refuse)
            if not usable or digest is None:
                why = r.caution if r.state is State.SET and r.caution else r.detail
                state = "weak" if r.state is State.SET else r.state
                warnings.append(f"{who}: {r.source} is {state} ({why}); no key loaded from it")
                continue
            if r.caution:
                warnings.append(f"{who}: {r.source}: weak key accepted: {r.caution}")
            if r.state is State.WEAK:
                warnings.append(f"{who}: {r.source}: weak key accepted (allow_weak): {r.detail}")
            if master is not None and digest == master.digest:
                warnings.append(
                    f"{who}: {r.source} holds the master key; it stays the unrestricted master"
                )
                continue
            if digest in seen:
                warnings.append(
                    f"{who}: {r.source} holds the same key as {' '.join(seen[digest])}; "
                    "the first is used"
                )
                continue
            seen[digest] = (who, r.source)
            assert r.fingerprint is not None
            records.append(
                KeyRecord(
                    extra.name, r.source, r.fingerprint, digest, extra.paths, extra.expires_at
                )
            )
    return records, warnings


_SKIPPED = {
    "weak": "publicly known keys refused",
    "master": "the master key (it stays the unrestricted master)",
    "duplicate": "keys already loaded from another entry (the first is used)",
}


def _add_batches(
    builder: RingBuilder,
    batches: Sequence[DigestBatch],
    master: KeyRecord | None,
    allow_weak: bool,
) -> list[str]:
    """Add every batch to ``builder`` as one shared record each (no object per key)."""
    warnings: list[str] = []
    refuse = frozenset() if allow_weak else WEAK_DIGESTS
    for batch in batches:
        meta, who = batch.meta, f"{batch.meta.where} {batch.meta.name!r}"
        if batch.keyed is not None:
            # Keys with records of their own (virtual keys, issue #15): the source's map is
            # taken by reference, nothing is done per key (see ``RingBuilder.add_keyed``).
            present, weak = builder.add_keyed(batch.keyed, batch.stamp, refuse)
            is_master = sum(1 for d in present if master is not None and d == master.digest)
            skipped = {"weak": weak, "master": is_master, "duplicate": len(present) - is_master}
        elif len(batch.digests) == DIGEST_SIZE and batch.meta.litellm is not None:
            # A virtual key (issue #15): a record of its own, not a one-key shared map (the
            # ring probes each shared map on a miss: 100,000 of them would be a scan).
            key_digest = batch.digests
            skipped = {"weak": 0, "master": 0, "duplicate": 0}
            if key_digest in refuse:
                skipped["weak"] = 1
            elif master is not None and key_digest == master.digest:
                skipped["master"] = 1
            elif not builder.add(
                KeyRecord(
                    meta.name,
                    batch.source,
                    key_digest.hex()[:FINGERPRINT_LENGTH],
                    key_digest,
                    meta.paths,
                    meta.expires_at,
                    meta.litellm,
                )
            ):
                skipped["duplicate"] = 1
        else:
            template = KeyRecord(
                meta.name, batch.source, "", b"", meta.paths, meta.expires_at, meta.litellm
            )
            present, repeated, weak = builder.add_shared(template, batch.digests, refuse)
            is_master = sum(1 for d in present if master is not None and d == master.digest)
            duplicate = len(present) - is_master + repeated
            skipped = {"weak": weak, "master": is_master, "duplicate": duplicate}
        warnings.extend(
            f"{who}: {batch.source}: {n} {_SKIPPED[k]}" for k, n in skipped.items() if n
        )
    return warnings


def resolve_readings(
    readings: Sequence[Reading],
    *,
    allow_weak: bool = False,
    on_conflict: Literal["warn", "error"] = "warn",
    extras: Sequence[ExtraKeyReadings] = (),
    batches: Sequence[DigestBatch] = (),
    reuse: KeyRing | None = None,
    weak: Literal["warn", "refuse"] = "warn",
) -> Resolution:
    """Apply the rule (see the module docstring) to the chain's readings, in chain order.

    ``reuse``: the ring this resolution will replace; its digest objects are shared by the
    new ring where the same source still holds the same key (memory, see ``RingBuilder``).
    ``weak``: what to do with a usable key that breaks authsvc's stricter rules (a reading's
    ``caution``): serve it with a warning (``warn``), or refuse it (``refuse``).
    """
    readings = tuple(readings)
    refuse = weak == "refuse"
    index = next((i for i, r in enumerate(readings) if r.usable(allow_weak, refuse)), None)
    winner = readings[index] if index is not None else None
    warnings = _reading_warnings(readings, winner, allow_weak, refuse)

    conflicts: tuple[Reading, ...] = ()
    if winner is not None and index is not None:
        conflicts = tuple(
            r
            for r in readings[index + 1 :]
            if r.role is not Role.MISPLACED  # warned about on its own
            and r.state in (State.SET, State.WEAK)
            and r.digest not in (None, winner.digest)
        )
    for r in conflicts:
        warnings.append(
            f"conflict: {r.source} holds a different key (fingerprint {r.fingerprint}) than "
            f"{winner.source if winner else '?'} (fingerprint {winner.fingerprint if winner else '?'}), "
            "which shadows it"
        )
    reason = _checked(readings)
    if conflicts and on_conflict == "error":
        warnings.append(
            "master_key.on_conflict is error: no master key is used until the layers agree"
        )
        sources = ", ".join(r.source for r in (winner, *conflicts) if r is not None)
        reason = f"the master key layers disagree ({sources}) and master_key.on_conflict is error; {reason}"
        winner = None

    master = None
    if winner is not None:
        digest, fp = winner.digest, winner.fingerprint
        assert digest is not None and fp is not None
        master = KeyRecord(MASTER_NAME, winner.source, fp, digest)
    records, extra_warnings = _extra_records(extras, master, allow_weak, refuse)
    warnings.extend(extra_warnings)
    builder = RingBuilder(reuse)
    if master is not None:
        builder.add(master)
    for record in records:
        builder.add(record)
    warnings.extend(_add_batches(builder, batches, master, allow_weak))
    ring = builder.build(master=master, unready_reason=reason)
    chosen = readings[index] if index is not None else None
    return Resolution(
        readings,
        winner,
        tuple(warnings),
        ring,
        conflicts,
        tuple(extras),
        chosen,
        tuple(batches),
        allow_weak,
    )
