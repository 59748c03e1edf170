"""The list-hashing helper process (``sources/_keyhelper.py``, issue #14): a real child
process running ``_keyhash.py``; it leaves when idle, and any failure hashes in-process."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest

from authsvc.sources import _keyhash, _keyhelper

KEYS = [f"sk-keyhelper-{i:06d}-0123456789abcdef" for i in range(2_000)]
DATA = ("\n".join(KEYS) + "\n").encode()
WANTED = b"".join(hashlib.sha256(k.encode()).digest() for k in KEYS)


@pytest.fixture
def helper(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_keyhelper, "_offload", True)
    yield
    _keyhelper._close()
    _keyhelper._proc = None


def test_an_idle_helper_exits_and_the_next_list_starts_another(
    helper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_keyhelper, "IDLE", 0.3)
    assert _keyhelper.hash_elsewhere(b"k", DATA, 1024, 250_000) == (WANTED, 2_000, [], False)
    first = _keyhelper._proc
    assert first is not None
    deadline = time.monotonic() + 10
    while first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.returncode == 0, "the helper did not leave when idle"
    assert _keyhelper.hash_elsewhere(b"k", DATA, 1024, 250_000) == (WANTED, 2_000, [], False)
    assert _keyhelper._proc is not None and _keyhelper._proc is not first


def test_a_helper_that_dies_mid_request_is_replaced_or_the_list_hashed_here(
    helper: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _keyhelper.hash_elsewhere(b"d", b"zz\n", 0, 9) == (b"", 1, [1], False)
    proc = _keyhelper._proc
    assert proc is not None
    proc.kill()
    proc.wait()
    # a helper that was running and is gone: one fresh start answers
    assert _keyhelper.hash_elsewhere(b"k", DATA, 1024, 250_000) == (WANTED, 2_000, [], False)
    # no interpreter to start: None, and the caller hashes in-process
    _keyhelper._close()
    _keyhelper._proc = None
    monkeypatch.setattr(_keyhelper.sys, "executable", "")
    assert _keyhelper.hash_elsewhere(b"k", DATA, 1024, 250_000) is None
    assert _keyhash.hash_keys(DATA, 1024, 250_000) == (WANTED, 2_000, [], False)


def test_the_limit_counts_every_entry_and_nothing_is_loaded_past_it() -> None:
    lines = b"# a comment\n\n" + b"sk-x\n" * 3 + DATA
    packed, entries, odd, limited = _keyhash.hash_keys(lines, 1024, 2_003)
    assert (entries, odd[:3], limited, len(packed)) == (2_003, [3, 4, 5], False, len(WANTED))
    assert _keyhash.hash_keys(lines, 1024, 2_002) == (b"", 2_003, [], True)
    assert _keyhash.hash_digests(b"zz\n" * 3, 2)[3] is True


def test_exit_is_not_held_up_by_a_request_in_flight(helper: None) -> None:
    assert _keyhelper.hash_elsewhere(b"k", DATA, 1024, 250_000) is not None
    proc = _keyhelper._proc
    assert proc is not None
    with _keyhelper._lock:  # as a reload thread waiting for the helper's answer holds it
        started = time.monotonic()
        _keyhelper._close()
        assert time.monotonic() - started < 2.0
    assert proc.wait(timeout=5) != 0, "killed, not asked to leave"
