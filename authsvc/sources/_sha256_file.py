"""``sha256_file: PATH`` (``keys:`` only) — a list of keys known only by their SHA-256 digests,
one per line (64 hex digits; blank lines and ``#`` comments ignored). Label
``sha256_file:PATH``.

The form for very many keys that authsvc must never see in clear (issue #14): 100,000 digests
are a 6.5 MB file read as ONE ``DigestBatch`` (``_keylist``: up to ``MAX_LIST_KEYS`` digests
and ``MAX_LIST_BYTES`` per file), where as ``sha256:`` config entries they would be a 10 MB
config file. Watched and reloaded like any key file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from authsvc.keymodel import KeyMeta, Reading
from authsvc.sources._fileio import read_text
from authsvc.sources._keylist import MAX_LIST_BYTES, list_output, parse_digest_lines
from authsvc.sources._protocol import OneFile, SourceKind, SourceOutput, output, parse_file

__all__ = ["KIND", "Sha256FileSource"]


@dataclass(frozen=True, slots=True)
class Sha256FileSource(OneFile):
    """``sha256_file: PATH`` (extra keys only): an absolute path to a digest list."""

    path: str
    key: KeyMeta

    @property
    def label(self) -> str:
        return f"sha256_file:{self.path}"

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput:
        state, detail, text = read_text(self.path, limit=MAX_LIST_BYTES)
        if text is None:
            return output([Reading.without_value(self.label, state, detail)], self.key)
        return list_output(self.key, self.label, parse_digest_lines(self.label, text))


KIND = SourceKind("sha256_file", parse_file, key=lambda path, meta: Sha256FileSource(path, meta))
