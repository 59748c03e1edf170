"""A keyed batch (LiteLLM's virtual keys, issue #15): the source's own map digest → record
template joins the ring by reference, nothing per key; clashes are left out on a copy."""

from __future__ import annotations

import hashlib

import pytest

from authsvc.keymodel import (
    DigestBatch,
    KeyMeta,
    KeyRecord,
    Reading,
    Standing,
    fingerprint,
    resolve_readings,
)

MASTER = "sk-keyed-master-0123456789abcdef"
KEYS = [f"sk-keyed-{i}-0123456789abcdef" for i in range(6)]
ENTRY = KeyMeta("litellm", "keys[0]")


def sha(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _template(name: str, blocked: bool = False) -> KeyRecord:
    return KeyRecord(name, "virtual_keys:$DATABASE_URL", "", b"", None, 2e9, Standing(blocked))


def test_a_keyed_batch_joins_the_ring_by_reference_and_builds_records_on_lookup() -> None:
    master = Reading.of_value("env:M", MASTER, max_length=1024)
    shared = _template("team:a")
    keyed = {sha(k): shared for k in KEYS[:4]} | {sha(KEYS[4]): _template("alice", True)}
    batch = DigestBatch(ENTRY, "virtual_keys:$DATABASE_URL", b"", keyed=keyed, stamp=b"1", names=2)
    res = resolve_readings([master], batches=[batch])
    assert len(res.ring) == 1 + 5 and len(batch) == 5 and set(batch) == set(keyed)
    assert res.ring._keyed[0] is keyed  # no copy: nothing clashed
    record = res.ring.lookup(sha(KEYS[4]))
    assert record is not None
    assert (record.name, record.fingerprint, record.digest, record.expires_at) == (
        "alice",
        fingerprint(KEYS[4]),
        sha(KEYS[4]),
        2e9,
    )
    assert record.litellm == Standing(True)
    assert res.ring.lookup(sha(KEYS[5])) is None
    assert {r.digest for r in res.ring.records()} == {sha(MASTER), *keyed}
    assert "(2 names)" in res.render_table()


def test_clashes_are_left_out_of_a_copy_and_the_source_map_is_untouched() -> None:
    master = Reading.of_value("env:M", MASTER, max_length=1024)
    keyed = {sha(k): _template("team:a") for k in [*KEYS[:3], MASTER, "sk-1234"]}
    before = dict(keyed)
    earlier = DigestBatch(KeyMeta("bulk", "keys[1]"), "file:x", sha(KEYS[0]))
    batch = DigestBatch(ENTRY, "virtual_keys:$DATABASE_URL", b"", keyed=keyed, stamp=b"2")
    res = resolve_readings([master], batches=[earlier, batch])
    assert keyed == before  # the store's map is never changed by the ring
    assert len(res.ring) == 1 + 1 + 2  # master, the file's key, KEYS[1:3]
    assert (
        res.ring.lookup(sha(MASTER)) is not None and res.ring.lookup(sha(MASTER)).name == "master"
    )  # type: ignore[union-attr]
    assert res.ring.lookup(sha(KEYS[0])).origin == "file:x"  # type: ignore[union-attr]
    assert res.ring.lookup(sha("sk-1234")) is None
    warnings = " ".join(res.warnings)
    assert "1 publicly known keys refused" in warnings
    assert "1 the master key" in warnings and "1 keys already loaded" in warnings


def test_keyed_batches_compare_by_stamp_and_refuse_packed_digests() -> None:
    keyed = {sha(KEYS[0]): _template("a")}
    one = DigestBatch(ENTRY, "v", b"", keyed=keyed, stamp=b"1")
    assert one == DigestBatch(ENTRY, "v", b"", keyed=dict(keyed), stamp=b"1")
    assert one != DigestBatch(ENTRY, "v", b"", keyed=keyed, stamp=b"2")
    assert one.content != DigestBatch(ENTRY, "v", b"", keyed=keyed, stamp=b"2").content
    with pytest.raises(ValueError, match="stamp"):
        DigestBatch(ENTRY, "v", sha(KEYS[0]), keyed=keyed, stamp=b"1")
    with pytest.raises(ValueError, match="stamp"):
        DigestBatch(ENTRY, "v", b"", keyed=keyed)


def test_a_weak_digest_already_held_by_an_earlier_entry_is_left_out_once() -> None:
    master = Reading.of_value("env:M", MASTER, max_length=1024)
    weak = sha("sk-1234")
    earlier = DigestBatch(KeyMeta("bulk", "keys[1]"), "file:x", weak)
    keyed = {weak: _template("team:a"), sha(KEYS[0]): _template("team:a")}
    batch = DigestBatch(ENTRY, "virtual_keys:$DATABASE_URL", b"", keyed=keyed, stamp=b"3")
    res = resolve_readings([master], batches=[earlier, batch], allow_weak=True)
    assert len(res.ring) == 3 and res.ring.lookup(weak).origin == "file:x"  # type: ignore[union-attr]
    refused = resolve_readings([master], batches=[batch])  # not allowed: refused, not loaded
    assert len(refused.ring) == 2 and refused.ring.lookup(weak) is None


def test_a_digest_both_held_and_refused_is_left_out_once() -> None:
    from authsvc.keymodel import RingBuilder

    weak = sha("sk-1234")
    builder = RingBuilder()
    builder.add(KeyRecord("pinned", "keys[0]", "", weak))  # e.g. a sha256: entry of it
    keyed = {weak: _template("team:a"), sha(KEYS[0]): _template("team:a")}
    present, refused = builder.add_keyed(keyed, b"4", frozenset({weak}))
    assert (present, refused) == ([weak], 0)
    ring = builder.build()
    assert len(ring) == 2 and ring.lookup(weak).name == "pinned"  # type: ignore[union-attr]
    assert len(keyed) == 2  # the source's map is untouched
