"""The key ring: digests, fingerprints, lookup, readiness, and the store's atomic swap.

Digests and fingerprints are recomputed here with hashlib, independently of the ring's own.
"""

from __future__ import annotations

import hashlib

from authsvc.keys import KeyRecord, KeyRing, KeyStore, digest, fingerprint

KEY = "sk-ring-0123456789abcdef"
OTHER = "sk-ring-other-0123456789"


def rec(key: str, name: str) -> KeyRecord:
    sha = hashlib.sha256(key.encode("utf-8"))
    return KeyRecord(name, "test", sha.hexdigest()[:12], sha.digest())


def test_digest_and_fingerprint_are_sha256_of_the_utf8_bytes() -> None:
    for key in (KEY, "sk-ünïcode-ключ", ""):
        sha = hashlib.sha256(key.encode("utf-8"))
        assert digest(key) == sha.digest()
        assert fingerprint(key) == sha.hexdigest()[:12]
    assert len(fingerprint(KEY)) == 12


def test_lookup_finds_exactly_the_recorded_digests() -> None:
    master, extra = rec(KEY, "master"), rec(OTHER, "extra")
    ring = KeyRing([extra], master=master)
    assert ring.lookup(hashlib.sha256(KEY.encode()).digest()) is master
    assert ring.lookup(hashlib.sha256(OTHER.encode()).digest()) is extra
    assert ring.lookup(hashlib.sha256(b"sk-nope").digest()) is None
    assert ring.lookup(b"") is None
    assert len(ring) == 2 and tuple(ring.records()) == (master, extra)


def test_the_first_record_of_a_digest_wins_and_the_master_before_all() -> None:
    first, second, as_master = rec(OTHER, "first"), rec(OTHER, "second"), rec(OTHER, "master")
    assert KeyRing([first, second]).lookup(first.digest) is first
    ring = KeyRing([first], master=as_master)
    assert ring.lookup(first.digest) is as_master and len(ring) == 1


def test_readiness_and_the_unready_reason() -> None:
    empty = KeyRing()
    assert not empty.ready and empty.master is None
    assert empty.unready_reason == "no master key is configured"
    told = KeyRing([rec(OTHER, "x")], unready_reason="env:K is unset")
    assert not told.ready and told.unready_reason == "env:K is unset"
    ready = KeyRing(master=rec(KEY, "master"), unready_reason="ignored once a master is here")
    assert ready.ready and ready.unready_reason == ""


def test_the_store_swaps_atomically_and_starts_unready() -> None:
    store = KeyStore()
    assert isinstance(store.current, KeyRing) and not store.current.ready
    first = KeyRing(master=rec(KEY, "master"))
    given = KeyStore(first)
    assert given.current is first
    second = KeyRing(master=rec(OTHER, "master"))
    assert given.swap(second) is first
    assert given.current is second
