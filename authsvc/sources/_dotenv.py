"""``dotenv: PATH`` — ``LITELLM_MASTER_KEY`` of a ``.env`` file, parsed by python-dotenv as
LiteLLM does; an exported ``LITELLM_MASTER_KEY`` wins (``load_dotenv()`` never overrides), so
the layer is then reported as ignored. Label ``dotenv:PATH#LITELLM_MASTER_KEY``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from authsvc.sources._litellm import read_dotenv_source
from authsvc.sources._protocol import OneFile, SourceKind, SourceOutput, parse_file

__all__ = ["KIND", "DotenvSource"]


@dataclass(frozen=True, slots=True)
class DotenvSource(OneFile):
    """``dotenv: PATH`` (master-key chain only)."""

    path: str
    where: str = ""
    name: str = "LITELLM_MASTER_KEY"

    @property
    def label(self) -> str:
        return f"dotenv:{self.path}#{self.name}"

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput:
        reading = read_dotenv_source(
            self.path, self.name, self.label, environ, max_length=max_length
        )
        return SourceOutput(readings=(reading,))


KIND = SourceKind("dotenv", parse_file, chain=lambda path, where: DotenvSource(path, where))
