"""``litellm_config: PATH`` — the master key exactly as a LiteLLM proxy resolves it from its
config.yaml (the reading itself is ``_litellm.read_litellm``; this module only plugs it in)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import yaml

from authsvc.sources._litellm import read_litellm
from authsvc.sources._protocol import ParseContext, SourceKind, SourceOutput, Watch
from authsvc.sources._stat import file_signature

__all__ = ["KIND", "LiteLLMSource"]


@dataclass(frozen=True, slots=True)
class LiteLLMSource:
    """``litellm_config: PATH`` — master-key chain only (it yields several layers).

    ``dotenv`` is the ``.env`` LiteLLM loads (``auto``, ``off`` or a path); ``files`` are the
    files LiteLLM reads for its config (the main one, its ``include:`` files, the ``.env``),
    found when the config was loaded: they are watched, and their signature is the token.
    """

    path: str
    where: str = ""
    dotenv: str = "auto"
    files: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"litellm:{self.path}#general_settings.master_key"

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput:
        readings = read_litellm(self.path, environ, max_length=max_length, dotenv=self.dotenv)
        return SourceOutput(readings=tuple(readings))

    def watch(self) -> Watch:
        return Watch(files=tuple(dict.fromkeys((self.path, *self.files))))

    def change_token(self) -> Hashable | None:
        return file_signature(tuple(dict.fromkeys((self.path, *self.files))))


def _parse(ctx: ParseContext, node: yaml.Node, path: str) -> str:
    return ctx.file(node, path)


KIND = SourceKind("litellm_config", _parse, chain=lambda path, where: LiteLLMSource(path, where))
