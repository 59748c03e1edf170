"""``env: NAME`` — the environment variable ``NAME`` (label ``env:NAME``)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import yaml

from authsvc.keymodel import KeyMeta, Reading, State
from authsvc.sources._protocol import ParseContext, SourceKind, SourceOutput, Watch, output

__all__ = ["KIND", "EnvSource"]


@dataclass(frozen=True, slots=True)
class EnvSource:
    """``env: NAME``. The environment is fixed for the life of the process: nothing to watch."""

    name: str
    where: str = ""  # config location, e.g. "master_key.sources[0]" ("" for built-in defaults)
    key: KeyMeta | None = None  # set when the source is a ``keys:`` entry

    @property
    def label(self) -> str:
        return f"env:{self.name}"

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput:
        return output([self.reading(environ, max_length)], self.key)

    def reading(self, environ: Mapping[str, str], max_length: int) -> Reading:
        value = environ.get(self.name)
        if value is None:
            return Reading.without_value(self.label, State.UNSET, f"{self.name} is not set")
        return Reading.of_value(self.label, value, max_length=max_length, what=self.name)

    def watch(self) -> Watch:
        return Watch()

    def change_token(self) -> Hashable | None:
        return ()


def _parse(ctx: ParseContext, node: yaml.Node, path: str) -> str:
    return ctx.env_name(node, path)


KIND = SourceKind(
    "env",
    _parse,
    chain=lambda name, where: EnvSource(name, where),
    key=lambda name, meta: EnvSource(name, meta.where, meta),
)
