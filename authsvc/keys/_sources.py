"""Source adapters: each configured layer → readings (I/O happens here, nowhere else).

- ``env: NAME``       → ``env:NAME``
- ``file: PATH``      → ``file:PATH``; the value is stripped of surrounding whitespace (Secrets
  usually end with a newline). For extra keys a file holds one key per line (blank lines and
  ``#`` comments ignored): ``file:PATH#lineN`` per key.
- ``litellm_config``  → see ``_litellm``
- ``value: STRING``   → ``config:CONFIG#master_key.sources[i]``; ``os.environ/NAME`` reads NAME
- ``sha256: HEX``     → ``config:CONFIG#keys[i].sha256`` (extra keys; only the digest is known)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from authsvc.config._model import (
    Config,
    DotenvSource,
    EnvSource,
    ExtraKeySpec,
    FileSource,
    LiteLLMSource,
    Sha256Source,
    SourceSpec,
    ValueSource,
)
from authsvc.keys._fileio import read_text
from authsvc.keys._litellm import read_dotenv_source, read_litellm
from authsvc.keys._reading import LITELLM_REFUSED, OWS, WEAK_DIGESTS, Reading, Role, State
from authsvc.keys._resolve import ExtraKeyReadings, Resolution, resolve_readings
from authsvc.keys._secret import Secret

__all__ = ["read_extra_key", "read_source", "resolve"]


def _env(spec: EnvSource, environ: Mapping[str, str], max_length: int) -> Reading:
    value = environ.get(spec.name)
    if value is None:
        return Reading.without_value(spec.label, State.UNSET, f"{spec.name} is not set")
    return Reading.of_value(spec.label, value, max_length=max_length, what=spec.name)


def _value(spec: ValueSource, environ: Mapping[str, str], max_length: int) -> Reading:
    if spec.env is not None:
        what = f"os.environ/{spec.env}"
        value = environ.get(spec.env)
        if value is None:
            return Reading.without_value(spec.label, State.UNSET, f"{what}: {spec.env} is not set")
        return Reading.of_value(spec.label, value, max_length=max_length, what=what)
    assert spec.literal is not None
    return Reading.of_value(
        spec.label, spec.literal.reveal(), max_length=max_length, what="the inline value"
    )


def _file(spec: FileSource, max_length: int) -> Reading:
    state, detail, text = read_text(spec.path)
    if text is None:
        return Reading.without_value(spec.label, state, detail)
    return Reading.of_value(
        spec.label, text.strip(OWS + "\r\n"), max_length=max_length, what="the file"
    )


def _sha256(spec: Sha256Source) -> Reading:
    fp = spec.digest.hex()[:12]
    detail = "the digest is the SHA-256 of a publicly known default key"
    if spec.digest in _REFUSED_DIGESTS:
        return Reading(spec.label, State.WEAK, fp, detail, key_digest=spec.digest)
    caution = detail if spec.digest in WEAK_DIGESTS else ""
    return Reading(
        spec.label, State.SET, fp, "SHA-256 digest", caution=caution, key_digest=spec.digest
    )


_REFUSED_DIGESTS = frozenset(Secret(k).digest for k in LITELLM_REFUSED)


def read_source(spec: SourceSpec, environ: Mapping[str, str], *, max_length: int) -> list[Reading]:
    """The readings of one master-key layer (a LiteLLM config gives several)."""
    if isinstance(spec, EnvSource):
        return [_env(spec, environ, max_length)]
    if isinstance(spec, FileSource):
        return [_file(spec, max_length)]
    if isinstance(spec, LiteLLMSource):
        return read_litellm(spec.path, environ, max_length=max_length, dotenv=spec.dotenv)
    if isinstance(spec, DotenvSource):
        return [
            read_dotenv_source(spec.path, spec.name, spec.label, environ, max_length=max_length)
        ]
    return [_value(spec, environ, max_length)]


def _key_file(spec: FileSource, max_length: int) -> list[Reading]:
    state, detail, text = read_text(spec.path)
    if text is None:
        return [Reading.without_value(spec.label, state, detail)]
    lines = (line.removesuffix("\r").strip(OWS) for line in text.split("\n"))
    readings = [
        Reading.of_value(f"{spec.label}#line{number}", line, max_length=max_length, what="the key")
        for number, line in enumerate(lines, start=1)
        if line and not line.startswith("#")
    ]
    if not readings:
        return [Reading.without_value(spec.label, State.EMPTY, "the file holds no keys")]
    return readings


def read_extra_key(
    spec: ExtraKeySpec, environ: Mapping[str, str], *, max_length: int
) -> list[Reading]:
    """The readings of one ``keys:`` entry (a file gives one reading per key line)."""
    source = spec.source
    if isinstance(source, Sha256Source):
        return [_sha256(source)]
    if isinstance(source, EnvSource):
        return [_env(source, environ, max_length)]
    if isinstance(source, FileSource):
        return _key_file(source, max_length)
    return [_value(source, environ, max_length)]


def resolve(config: Config, environ: Mapping[str, str]) -> Resolution:
    """Read every layer of ``config`` (files, environment, LiteLLM config), then resolve.

    The I/O entry point; the rule itself is the pure ``resolve_readings``. Never raises for
    a source problem: each becomes a reading state (and a warning where it matters).
    """
    max_length = config.max_credential_length
    readings: list[Reading] = []
    app: list[Reading] = []  # what the app itself reads (LiteLLM mode)
    for spec in config.master_key.sources:
        got = read_source(spec, environ, max_length=max_length)
        readings.extend(got)
        if isinstance(spec, LiteLLMSource) and not app:
            app = got
    extras = [
        ExtraKeyReadings(
            spec.name,
            spec.where,
            tuple(read_extra_key(spec, environ, max_length=max_length)),
            spec.paths,
            spec.expires_at,
        )
        for spec in config.keys
    ]
    res = resolve_readings(
        readings,
        weak=config.master_key.weak,
        allow_weak=config.master_key.allow_weak,
        on_conflict=config.master_key.on_conflict,
        extras=extras,
        config=config,
    )
    res = _against_the_app(res, app)
    if config.master_key.allow_weak:
        deprecated = (
            "master_key.allow_weak is deprecated (development only): keys LiteLLM accepts are "
            "served by default now (master_key.weak: warn); allow_weak also lets sk-1234 and "
            "None through"
        )
        res = replace(res, warnings=(*res.warnings, deprecated))
    return res


def _against_the_app(res: Resolution, app: list[Reading]) -> Resolution:
    """Warn when authsvc's winner is a source the app itself ignores (LiteLLM mode)."""
    winner = res.winner
    if not app or winner is None or any(r is winner for r in app):
        return res
    used = next((r for r in app if r.role is Role.CANDIDATE and r.digest is not None), None)
    if used is not None and used.digest == winner.digest:
        return res  # the same key: nothing differs for a client
    what = (
        f"LiteLLM uses {used.source} (fingerprint {used.fingerprint})"
        if used is not None
        else "LiteLLM itself has no usable key there"
    )
    warning = (
        f"authsvc's master key comes from {winner.source}, a source the app itself ignores: "
        f"{what}; clients holding authsvc's key will be refused by the app"
    )
    return replace(res, warnings=(*res.warnings, warning))
