"""``resolve(config, environ)``: ask every configured source (I/O), then apply the pure rule.

The sources are read through the ``KeySource`` protocol only; which kinds exist is the
registry's business (``authsvc.sources``), so a new kind needs nothing here. Master-chain
sources contribute their ``readings``; every source may contribute named ``keys`` and
``batches``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from authsvc import keymodel
from authsvc.config import Config
from authsvc.keymodel import (
    DigestBatch,
    ExtraKeyReadings,
    Reading,
    Role,
    Secret,
    resolve_readings,
)
from authsvc.sources import LiteLLMSource

__all__ = ["Resolution", "resolve"]


@dataclass(frozen=True, slots=True)
class Resolution(keymodel.Resolution):
    """A ``keymodel.Resolution`` plus the config it was resolved from (``None`` when built
    from readings alone). A reload compares the config too: a policy change is a change."""

    config: Config | None = field(default=None, compare=False)

    def signature(self) -> tuple[object, ...]:
        return (*keymodel.Resolution.signature(self), self.config)


def _inputs(
    readings: Sequence[Reading],
    extras: Sequence[ExtraKeyReadings],
    batches: Sequence[DigestBatch],
) -> tuple[object, ...]:
    """What the rule's result depends on, comparable (a reading's key only by its digest)."""

    def held(rs: Sequence[Reading]) -> tuple[object, ...]:
        return tuple((r, r.digest) for r in rs)

    return (
        held(readings),
        tuple((e.name, e.where, e.paths, e.expires_at, held(e.readings)) for e in extras),
        tuple(batches),  # packed digests compare as bytes: one memcmp per batch
    )


def resolve(
    config: Config, environ: Mapping[str, str], *, previous: Resolution | None = None
) -> Resolution:
    """Read every source of ``config`` (files, environment, LiteLLM config, ...), then resolve.

    The I/O entry point; the rule itself is the pure ``resolve_readings``. Never raises for
    a source problem: each becomes a reading state (and a warning where it matters).

    ``previous`` (the reloader's current resolution): when every source read exactly what it
    read then, under the same rule settings, its ring is reused instead of building an equal
    one (a 100,000-key ring is ~20 MB and ~0.1 s of work; polls re-read unchanged files).
    """
    max_length = config.max_credential_length
    readings: list[Reading] = []
    extras: list[ExtraKeyReadings] = []
    batches: list[DigestBatch] = []
    app: tuple[Reading, ...] = ()  # what the app itself reads (LiteLLM mode)
    lookups: list[object] = []
    for spec in config.master_key.sources:
        out = spec.read(environ, max_length=max_length)
        readings.extend(out.readings)
        if isinstance(spec, LiteLLMSource) and not app:
            app = out.readings
        extras.extend(out.keys)
        batches.extend(out.batches)
    for key in config.keys:
        out = key.source.read(environ, max_length=max_length)
        extras.extend(out.keys)
        batches.extend(out.batches)
        if out.lookup is not None:
            lookups.append(out.lookup)
    # The unknown-key lookup rides on the ring (set before the ring is served): a reload that
    # drops the ``virtual_keys:`` entry drops the lookup in the same swap. The first wins.
    lookup = lookups[0] if lookups else None
    if (
        previous is not None
        and previous.config is not None
        and previous.ring.unknown_lookup is lookup
    ):
        old, new = previous.config.master_key, config.master_key
        same_rule = (old.allow_weak, old.on_conflict, old.weak) == (
            new.allow_weak,
            new.on_conflict,
            new.weak,
        )
        if same_rule and _inputs(readings, extras, batches) == _inputs(
            previous.readings, previous.extras, previous.batches
        ):
            return dataclasses.replace(previous, config=config)
    pure = resolve_readings(
        readings,
        weak=config.master_key.weak,
        allow_weak=config.master_key.allow_weak,
        on_conflict=config.master_key.on_conflict,
        extras=extras,
        batches=batches,
        reuse=previous.ring if previous is not None else None,
    )
    pure.ring.unknown_lookup = lookup
    pure.ring.session_mac = _session_mac(pure.master_secret())
    fields = {f.name: getattr(pure, f.name) for f in dataclasses.fields(pure)}
    warnings = list(pure.warnings)
    mismatch = _against_the_app(pure.winner, app)
    if mismatch:
        warnings.append(mismatch)
    if config.master_key.allow_weak:
        warnings.append(
            "master_key.allow_weak is deprecated (development only): keys LiteLLM accepts are "
            "served by default now (master_key.weak: warn); allow_weak also lets sk-1234 and "
            "None through"
        )
    fields["warnings"] = tuple(warnings)
    return Resolution(**fields, config=config)


def _session_mac(secret: Secret | None) -> hmac.HMAC | None:
    """The Admin UI cookie's verifier: HMAC-SHA256 keyed with the master key (LiteLLM signs
    the ``token`` cookie with it), so the ring carries no copy of the key itself."""
    if secret is None:
        return None
    return hmac.new(secret.reveal().encode("utf-8", "surrogatepass"), digestmod=hashlib.sha256)


def _against_the_app(winner: Reading | None, app: tuple[Reading, ...]) -> str:
    """A warning when authsvc's winner is a source the app itself ignores (LiteLLM mode)."""
    if not app or winner is None or any(r is winner for r in app):
        return ""
    used = next((r for r in app if r.role is Role.CANDIDATE and r.digest is not None), None)
    if used is not None and used.digest == winner.digest:
        return ""  # the same key: nothing differs for a client
    what = (
        f"LiteLLM uses {used.source} (fingerprint {used.fingerprint})"
        if used is not None
        else "LiteLLM itself has no usable key there"
    )
    return (
        f"authsvc's master key comes from {winner.source}, a source the app itself ignores: "
        f"{what}; clients holding authsvc's key will be refused by the app"
    )
