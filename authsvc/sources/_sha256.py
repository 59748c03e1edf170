"""``sha256: HEX`` (``keys:`` only) — a key known only by its digest.
Label ``config:CONFIG#keys[i].sha256``."""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import yaml

from authsvc.keymodel import LITELLM_REFUSED, WEAK_DIGESTS, KeyMeta, Reading, Secret, State
from authsvc.sources._protocol import ParseContext, SourceKind, SourceOutput, Watch, output

__all__ = ["KIND", "Sha256Source"]

_SHA256 = re.compile(r"[0-9a-fA-F]{64}\Z")
_REFUSED_DIGESTS = frozenset(Secret(k).digest for k in LITELLM_REFUSED)


@dataclass(frozen=True, slots=True)
class Sha256Source:
    """``sha256: HEX`` (extra keys only) — the key is known only by its digest."""

    config_path: str
    where: str
    digest: bytes
    key: KeyMeta | None = None

    @property
    def label(self) -> str:
        return f"config:{self.config_path}#{self.where}.sha256"

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput:
        return output([self.reading()], self.key)

    def reading(self) -> Reading:
        fp = self.digest.hex()[:12]
        detail = "the digest is the SHA-256 of a publicly known default key"
        if self.digest in _REFUSED_DIGESTS:  # LiteLLM refuses it too
            return Reading(self.label, State.WEAK, fp, detail, key_digest=self.digest)
        caution = detail if self.digest in WEAK_DIGESTS else ""  # served, warned about
        return Reading(
            self.label, State.SET, fp, "SHA-256 digest", caution=caution, key_digest=self.digest
        )

    def watch(self) -> Watch:
        return Watch()

    def change_token(self) -> Hashable | None:
        return ()


def _parse(ctx: ParseContext, node: yaml.Node, path: str) -> tuple[str, bytes]:
    hexdigest = ctx.text(node, path)  # all digits would read as an int
    if not _SHA256.match(hexdigest):
        ctx.fail(node, path, "expected 64 hexadecimal characters (a SHA-256 digest)")
    return ctx.config_path, bytes.fromhex(hexdigest)


KIND = SourceKind("sha256", _parse, key=lambda p, meta: Sha256Source(p[0], meta.where, p[1], meta))
