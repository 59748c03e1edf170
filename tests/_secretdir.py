"""A Kubernetes Secret volume on a real file system, written the way kubelet writes it.

kubelet's ``AtomicWriter`` (pkg/volume/util/atomic_writer.go) never rewrites a file in place.
Each update:

1. writes the whole payload into a NEW hidden timestamped directory ``..2026_01_01_00_00_07.N``;
2. creates a symlink ``..data_tmp -> ..2026_…`` and renames it over ``..data`` (the one atomic
   step: a reader sees the old set of files or the new one, never a mix);
3. creates the user-visible symlinks ``NAME -> ..data/NAME`` for names that are new;
4. removes the user-visible symlinks of names no longer in the payload;
5. deletes the previous timestamped directory.

So ``NAME`` is always a symlink whose target changes under it, and a watch on the file itself
dies at the first rotation. ``SecretDir`` reproduces exactly that sequence (same names, same
order), so tests exercise what a pod sees. ``DIRECTORY`` as a file's content writes a directory
in its place (an unreadable "file", for broken-reload tests; kubelet never does this).
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["DIRECTORY", "SecretDir"]


class _Directory:
    def __repr__(self) -> str:
        return "DIRECTORY"


DIRECTORY: Final = _Directory()
"""Use as a file's content to put an (unreadable-as-a-file) directory at that name."""

Content = str | bytes | _Directory

_serial = itertools.count(1)


class SecretDir:
    """A Secret volume mounted at ``root`` holding ``files`` (name → content)."""

    def __init__(self, root: Path, files: Mapping[str, Content]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.swaps = 0
        self.swapped_at = 0.0  # time.monotonic() right after the last ``..data`` rename
        self.rotate(files)

    def path(self, name: str) -> Path:
        """The user-visible path of ``name`` (a symlink into ``..data``): what a config names."""
        return self.root / name

    def data_dir(self) -> Path:
        """The current timestamped directory (where the real files are)."""
        return self.root / os.readlink(self.root / "..data")

    def names(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if not p.name.startswith("..")}

    def rotate(self, files: Mapping[str, Content]) -> float:
        """Publish ``files`` as kubelet does (steps 1 to 5 above). Returns the swap's monotonic time."""
        data = self.root / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        stamp += f"{os.getpid()}{next(_serial):04d}"
        staging = self.root / stamp
        staging.mkdir(mode=0o755)
        for name, content in files.items():
            if isinstance(content, _Directory):
                (staging / name).mkdir()
                continue
            target = staging / name
            target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
            target.chmod(0o644)
        tmp = self.root / "..data_tmp"
        os.symlink(stamp, tmp)
        os.rename(tmp, data)  # the atomic swap
        self.swapped_at = time.monotonic()
        self.swaps += 1
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        for name in self.names() - set(files):
            (self.root / name).unlink()
        if old is not None:
            shutil.rmtree(self.root / old)
        return self.swapped_at
