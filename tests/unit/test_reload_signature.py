"""The reload loop skips a re-read when no watched file changed, and never misses a change.

A config with 10,000 ``sha256:`` keys took ~1.4 s of CPU to parse; re-parsing it at every 2 s
poll kept an idle authsvc at half a core. ``file_signature`` is what lets the loop skip: these
tests change real files in every way a reload must see (in place with the same size and the
old mtime put back, an atomic rename, kubelet's ``..data`` swap, chmod, delete, create) and
check the signature moves each time; and that a file written within the last second is never
trusted (a second write in the same timestamp tick would look identical).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from authsvc.keys import KeyStore, Reloader, digest
from authsvc.sources import SETTLED, file_signature
from tests._secretdir import SecretDir

KEY_A = "sk-signature-aaaaaaaaaaaaaa01"
KEY_B = "sk-signature-bbbbbbbbbbbbbb02"  # the same length as KEY_A
LATER = 3600.0  # a ``now`` an hour ahead: every file counts as settled


def _in_place_same_size(path: Path) -> None:
    before = path.stat()
    text = path.read_text()
    path.write_text(text.swapcase())  # same size, other bytes
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old mtime back


def _atomic_replace(path: Path) -> None:
    tmp = path.with_name(".tmp")
    tmp.write_text(path.read_text())  # the same content, a new inode
    os.replace(tmp, path)


CHANGES: dict[str, Callable[[Path], None]] = {
    "in place, same size, mtime restored": _in_place_same_size,
    "atomic rename, same content": _atomic_replace,
    "chmod": lambda p: p.chmod(0o600),
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
def test_every_change_to_a_file_moves_the_signature(tmp_path: Path, change: str) -> None:
    path = tmp_path / "master"
    path.write_text(KEY_A + "\n")
    path.chmod(0o644)
    before = file_signature([str(path)], now=time.time() + LATER)
    assert before is not None
    assert file_signature([str(path)], now=time.time() + LATER) == before  # nothing changed
    CHANGES[change](path)
    assert file_signature([str(path)], now=time.time() + LATER) != before


def test_a_file_that_appears_moves_the_signature(tmp_path: Path) -> None:
    path = tmp_path / "master"
    before = file_signature([str(path)], now=time.time() + LATER)
    assert before is not None  # a missing file is a state too (its errno)
    path.write_text(KEY_A + "\n")
    assert file_signature([str(path)], now=time.time() + LATER) != before


def test_a_kubelet_data_swap_moves_the_signature(tmp_path: Path) -> None:
    secret = SecretDir(tmp_path / "secret", {"master": KEY_A + "\n"})
    path = str(tmp_path / "secret" / "master")
    before = file_signature([path], now=time.time() + LATER)
    secret.rotate({"master": KEY_A + "\n"})  # same content, new ..data directory
    assert file_signature([path], now=time.time() + LATER) != before


def test_a_file_written_within_the_last_second_is_never_trusted(tmp_path: Path) -> None:
    path = tmp_path / "master"
    path.write_text(KEY_A + "\n")
    assert file_signature([str(path)]) is None
    assert file_signature([str(path)], now=time.time() + SETTLED + 0.5) is not None


def test_the_loop_skips_unchanged_files_and_sees_every_change(tmp_path: Path) -> None:
    key = tmp_path / "master"
    key.write_text(KEY_A + "\n")
    config = tmp_path / "authsvc.yaml"
    config.write_text(f"master_key:\n  sources:\n    - file: {key}\n")
    store = KeyStore()
    reloader = Reloader(str(config), {}, store, on_change=lambda _: None)
    time.sleep(SETTLED + 0.1)  # both files settled: their signature can be trusted

    assert reloader.reload() is True  # learns the watched files: the config and the key file
    reloader._attempt()  # the first attempt over both files
    assert reloader._attempt() is None  # nothing changed: no read, no parse
    assert reloader._attempt() is None

    key.write_text(KEY_B + "\n")  # in place, same size
    outcome = reloader._attempt()
    assert outcome is not None and not isinstance(outcome, str)
    assert outcome.winner is not None and outcome.ring.master is not None
    assert outcome.ring.master.digest == digest(KEY_B)
    assert reloader._attempt() is not None  # written just now: read again until it settles
