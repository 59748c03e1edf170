"""``value: STRING`` — a literal in the config (held as a ``Secret``), or ``os.environ/NAME``
(read from the environment, as LiteLLM does). Label ``config:CONFIG#WHERE``."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import yaml

from authsvc.keymodel import KeyMeta, Reading, Secret, State
from authsvc.sources._protocol import ParseContext, SourceKind, SourceOutput, Watch, output

__all__ = ["ENV_PREFIX", "KIND", "ValueSource"]

ENV_PREFIX = "os.environ/"


@dataclass(frozen=True, slots=True)
class ValueSource:
    """``value: STRING`` — a literal (held as a ``Secret``) or ``os.environ/NAME``."""

    config_path: str
    where: str
    literal: Secret | None = None
    env: str | None = None  # set for "os.environ/NAME"
    key: KeyMeta | None = None  # set when the source is a ``keys:`` entry

    @property
    def label(self) -> str:
        return f"config:{self.config_path}#{self.where}"

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput:
        return output([self.reading(environ, max_length)], self.key)

    def reading(self, environ: Mapping[str, str], max_length: int) -> Reading:
        if self.env is not None:
            what = f"os.environ/{self.env}"
            value = environ.get(self.env)
            if value is None:
                why = f"{what}: {self.env} is not set"
                return Reading.without_value(self.label, State.UNSET, why)
            return Reading.of_value(self.label, value, max_length=max_length, what=what)
        assert self.literal is not None
        return Reading.of_value(
            self.label, self.literal.reveal(), max_length=max_length, what="the inline value"
        )

    def watch(self) -> Watch:
        return Watch()  # part of the config file, which the reloader watches itself

    def change_token(self) -> Hashable | None:
        return ()


@dataclass(frozen=True, slots=True)
class _Parsed:
    config_path: str
    literal: Secret | None
    env: str | None


def _parse(ctx: ParseContext, node: yaml.Node, path: str) -> _Parsed:
    raw = ctx.string(node, path)  # never echoed: it may be a key
    if raw.startswith(ENV_PREFIX):
        name = ctx.env_name(node, path, raw[len(ENV_PREFIX) :])
        return _Parsed(ctx.config_path, None, name)
    return _Parsed(ctx.config_path, Secret(raw), None)


KIND = SourceKind(
    "value",
    _parse,
    chain=lambda p, where: ValueSource(p.config_path, where, p.literal, p.env),
    key=lambda p, meta: ValueSource(p.config_path, meta.where, p.literal, p.env, meta),
)
