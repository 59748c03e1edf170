"""``file: PATH`` — a file (label ``file:PATH``).

In the master-key chain the whole file is the key, stripped of surrounding ASCII space, tab and
line ends (Secrets usually end with a newline). As a ``keys:`` entry the file is a key list
(``_keylist``): one key per line (blank lines and ``#`` comments ignored; a CRLF line end and
ASCII space and tab trimmed), read as ONE ``DigestBatch`` (one shared record, no object per
key); lines that cannot be used are reported as ``file:PATH#lines`` (invalid, summed), and weak
lines or lines authsvc's stricter rules flag as ``file:PATH#lineN`` (resolution decides). Up to
``MAX_LIST_KEYS`` keys and ``MAX_LIST_BYTES`` per file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from authsvc.keymodel import OWS, KeyMeta, Reading
from authsvc.sources._fileio import read_text
from authsvc.sources._keylist import MAX_LIST_BYTES, list_output, parse_key_lines
from authsvc.sources._protocol import OneFile, SourceKind, SourceOutput, output, parse_file

__all__ = ["KIND", "FileSource"]


@dataclass(frozen=True, slots=True)
class FileSource(OneFile):
    """``file: PATH`` — an absolute path (relative ones were resolved against the config dir)."""

    path: str
    where: str = ""
    key: KeyMeta | None = None  # set when the source is a ``keys:`` entry (one key per line)

    @property
    def label(self) -> str:
        return f"file:{self.path}"

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput:
        if self.key is None:
            return output([self._whole(max_length)], None)
        state, detail, text = read_text(self.path, limit=MAX_LIST_BYTES)
        if text is None:
            return output([Reading.without_value(self.label, state, detail)], self.key)
        return list_output(self.key, self.label, parse_key_lines(self.label, text, max_length))

    def _whole(self, max_length: int) -> Reading:
        state, detail, text = read_text(self.path)
        if text is None:
            return Reading.without_value(self.label, state, detail)
        return Reading.of_value(
            self.label, text.strip(OWS + "\r\n"), max_length=max_length, what="the file"
        )


KIND = SourceKind(
    "file",
    parse_file,
    chain=lambda path, where: FileSource(path, where),
    key=lambda path, meta: FileSource(path, meta.where, meta),
)
