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
    """``litellm_config: PATH`` — master-key chain only (it yields several layers)."""

    path: str
    where: str = ""

    @property
    def label(self) -> str:
        return f"litellm:{self.path}#general_settings.master_key"

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput:
        return SourceOutput(readings=tuple(read_litellm(self.path, environ, max_length=max_length)))

    def watch(self) -> Watch:
        return Watch(files=(self.path,))

    def change_token(self) -> Hashable | None:
        return file_signature((self.path,))


def _parse(ctx: ParseContext, node: yaml.Node, path: str) -> str:
    return ctx.file(node, path)


KIND = SourceKind("litellm_config", _parse, chain=lambda path, where: LiteLLMSource(path, where))
