"""Key lists that scale (issue #14): 100,000 keys in one ``file:`` or ``sha256_file:`` entry
are accepted; past the limits a file is refused with a clear error and nothing of it loads."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from authsvc import ConfigError
from authsvc.config import load_config
from authsvc.config._load import MAX_CONFIG_BYTES
from authsvc.keys import State, resolve
from authsvc.sources import MAX_LIST_BYTES, MAX_LIST_KEYS

MASTER = "sk-master-key-lists-0123456789"
N = 100_000


def config(tmp_path: Path, entries: str) -> Path:
    (tmp_path / "master").write_text(MASTER + "\n")
    path = tmp_path / "authsvc.yaml"
    path.write_text(f"master_key:\n  sources:\n    - file: {tmp_path / 'master'}\nkeys:\n{entries}")
    return path


def test_100k_keys_in_one_key_file_and_100k_digests_in_one_sha256_file(tmp_path: Path) -> None:
    keys = [f"sk-list-{i:06d}-{os.urandom(8).hex()}" for i in range(N)]
    (tmp_path / "keys.txt").write_text("# bulk\n" + "\n".join(keys) + "\n")
    digests = [os.urandom(32) for _ in range(N)]
    (tmp_path / "digests.txt").write_text("\n".join(d.hex().upper() for d in digests) + "\n")
    path = config(
        tmp_path,
        f"  - name: bulk\n    file: {tmp_path / 'keys.txt'}\n"
        f"  - name: hashed\n    sha256_file: {tmp_path / 'digests.txt'}\n",
    )
    res = resolve(load_config(str(path), environ={}), {})
    assert res.resolved and len(res.ring) == 1 + 2 * N
    assert res.warnings == ()
    record = res.ring.lookup(hashlib.sha256(keys[N // 2].encode()).digest())
    assert record is not None and (record.name, record.origin) == (
        "bulk",
        f"file:{tmp_path / 'keys.txt'}",
    )
    hashed = res.ring.lookup(digests[7])
    assert hashed is not None and hashed.name == "hashed"
    table = res.render_table()
    assert "100,000 keys from 100,000 entries" in table
    assert keys[0] not in table and digests[0].hex() not in table.lower()


def test_a_list_past_the_limits_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as fh:
        fh.truncate(MAX_LIST_BYTES + 1)
    many = tmp_path / "many.txt"
    many.write_text((("ab" * 32) + "\n") * (MAX_LIST_KEYS + 1))
    path = config(
        tmp_path,
        f"  - name: big\n    file: {big}\n  - name: many\n    sha256_file: {many}\n",
    )
    res = resolve(load_config(str(path), environ={}), {})
    assert len(res.ring) == 1  # the master only: nothing of either file
    states = {r.source: (r.state, r.detail) for e in res.extras for r in e.readings}
    assert states[f"file:{big}"][0] is State.INVALID
    assert "larger than 16384 KiB" in states[f"file:{big}"][1]
    assert states[f"sha256_file:{many}"] == (
        State.INVALID,
        f"the file holds more than {MAX_LIST_KEYS:,} keys (the limit per key list): "
        "split it into several files",
    )
    joined = "\n".join(res.warnings)
    assert "big" in joined and "many" in joined


def test_sha256_file_is_a_keys_entry_only_and_needs_a_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("master_key:\n  sources:\n    - sha256_file: /x\n")
    with pytest.raises(ConfigError, match="sha256_file"):
        load_config(str(path), environ={})


def test_config_file_cap_names_the_limit_and_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("# pad\n" * (MAX_CONFIG_BYTES // 6 + 1))
    with pytest.raises(ConfigError, match=r"larger than 4 MiB .*sha256_file"):
        load_config(str(path), environ={})
