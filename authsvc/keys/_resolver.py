"""``resolve(config, environ)``: ask every configured source (I/O), then apply the pure rule.

The sources are read through the ``KeySource`` protocol only; which kinds exist is the
registry's business (``authsvc.sources``), so a new kind needs nothing here. Master-chain
sources contribute their ``readings``; every source may contribute named ``keys`` and
``batches``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from authsvc import keymodel
from authsvc.config import Config
from authsvc.keymodel import DigestBatch, ExtraKeyReadings, Reading, resolve_readings

__all__ = ["Resolution", "resolve"]


@dataclass(frozen=True, slots=True)
class Resolution(keymodel.Resolution):
    """A ``keymodel.Resolution`` plus the config it was resolved from (``None`` when built
    from readings alone). A reload compares the config too: a policy change is a change."""

    config: Config | None = field(default=None, compare=False)

    def signature(self) -> tuple[object, ...]:
        return (*keymodel.Resolution.signature(self), self.config)


def resolve(config: Config, environ: Mapping[str, str]) -> Resolution:
    """Read every source of ``config`` (files, environment, LiteLLM config, ...), then resolve.

    The I/O entry point; the rule itself is the pure ``resolve_readings``. Never raises for
    a source problem: each becomes a reading state (and a warning where it matters).
    """
    max_length = config.max_credential_length
    readings: list[Reading] = []
    extras: list[ExtraKeyReadings] = []
    batches: list[DigestBatch] = []
    lookups: list[object] = []
    for spec in config.master_key.sources:
        out = spec.read(environ, max_length=max_length)
        readings.extend(out.readings)
        extras.extend(out.keys)
        batches.extend(out.batches)
    for key in config.keys:
        out = key.source.read(environ, max_length=max_length)
        extras.extend(out.keys)
        batches.extend(out.batches)
        if out.lookup is not None:
            lookups.append(out.lookup)
    pure = resolve_readings(
        readings,
        allow_weak=config.master_key.allow_weak,
        on_conflict=config.master_key.on_conflict,
        extras=extras,
        batches=batches,
    )
    # The unknown-key lookup rides on the ring (set before the ring is served): a reload that
    # drops the ``virtual_keys:`` entry drops the lookup in the same swap. The first wins.
    pure.ring.unknown_lookup = lookups[0] if lookups else None
    fields = {f.name: getattr(pure, f.name) for f in dataclasses.fields(pure)}
    return Resolution(**fields, config=config)
