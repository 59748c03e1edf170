"""The compact ring (issue #14): shared records for batches, per-key records, the content
hash, and the key-list parser that feeds it (same verdicts as ``assess``, never a key)."""

from __future__ import annotations

import hashlib
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from authsvc.keymodel import (
    DigestBatch,
    KeyMeta,
    KeyRecord,
    KeyRing,
    PathRule,
    RingBuilder,
    State,
    assess,
    resolve_readings,
)
from authsvc.keymodel._ring import SLICE
from authsvc.sources._keylist import MAX_LIST_KEYS, parse_digest_lines, parse_key_lines


def sha(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def test_a_batch_is_one_shared_record_and_lookup_builds_the_per_key_record() -> None:
    keys = [f"sk-batch-{i:06d}-0123456789abcdef" for i in range(3 * SLICE + 5)]
    paths = PathRule.from_patterns(["/v1/*"])
    meta = KeyMeta("bulk", "keys[0]", paths, 2e9)
    batch = DigestBatch(meta, "file:/k", b"".join(sha(k) for k in keys))
    res = resolve_readings((), batches=[batch])
    ring = res.ring
    assert len(ring) == len(keys)
    record = ring.lookup(sha(keys[SLICE + 1]))
    assert record == KeyRecord(
        "bulk", "file:/k", sha(keys[SLICE + 1]).hex()[:12], sha(keys[SLICE + 1]), paths, 2e9
    )
    assert ring.lookup(sha("sk-not-in-the-ring-at-all")) is None
    assert ring.lookup(os.urandom(32)) is None
    # records() materialises every key once, with its own fingerprint
    records = list(ring.records())
    assert {r.digest for r in records} == {sha(k) for k in keys}
    assert all(r.fingerprint == r.digest.hex()[:12] for r in records)


def test_one_template_for_the_whole_batch_not_one_object_per_key() -> None:
    packed = os.urandom(32 * 1000)
    builder = RingBuilder()
    builder.add_shared(KeyRecord("b", "src", "", b""), packed)
    ring = builder.build()
    ((keys, shared),) = ring._batches
    assert (shared.name, len(keys)) == ("b", 1000) and not ring._records
    assert all(k is v for k, v in keys.items())  # the stored digest is the key: nothing per key


def test_a_rebuilt_ring_shares_the_digest_objects_of_unchanged_keys() -> None:
    packed = os.urandom(32 * 3 * SLICE)
    meta = KeyMeta("b", "keys[0]")
    old = resolve_readings((), batches=[DigestBatch(meta, "file:/k", packed)]).ring
    changed = os.urandom(32) + packed[32:]
    new = resolve_readings((), batches=[DigestBatch(meta, "file:/k", changed)], reuse=old).ring
    ((old_keys, _),) = old._batches
    ((new_keys, _),) = new._batches
    shared = sum(1 for k in new_keys if old_keys.get(k) is k)
    assert shared == 3 * SLICE - 1  # every unchanged key is the old object
    assert new.lookup(changed[:32]) is not None and new.lookup(packed[:32]) is None
    other = resolve_readings((), batches=[DigestBatch(meta, "file:/other", changed)], reuse=old)
    ((other_keys, _),) = other.ring._batches
    assert not any(old_keys.get(k) is k for k in other_keys)  # another source: no reuse


def test_first_wins_master_weak_and_duplicates_are_counted() -> None:
    master = "sk-master-0123456789abcdef"
    other = "sk-other-0123456789abcdef"
    first = KeyMeta("first", "keys[0]")
    second = KeyMeta("second", "keys[1]")
    packed = sha(other) + sha(master) + sha("sk-1234") + sha(other)
    from authsvc.keymodel import Reading

    chain = [Reading.of_value("env:M", master, max_length=1024)]
    res = resolve_readings(
        chain,
        batches=[DigestBatch(first, "file:/a", sha(other)), DigestBatch(second, "file:/b", packed)],
    )
    assert res.ring.lookup(sha(other)).name == "first"  # type: ignore[union-attr]
    assert res.ring.lookup(sha(master)) is res.ring.master
    assert res.ring.lookup(sha("sk-1234")) is None
    joined = " | ".join(res.warnings)
    assert "1 publicly known keys refused" in joined
    assert "1 the master key" in joined
    assert "2 keys already loaded" in joined  # once from file:/a, once repeated in file:/b
    assert len(res.ring) == 2
    weak_ok = resolve_readings(
        chain, batches=[DigestBatch(second, "file:/b", packed)], allow_weak=True
    )
    assert weak_ok.ring.lookup(sha("sk-1234")) is not None


def test_per_key_records_share_equal_names_and_origins() -> None:
    builder = RingBuilder()
    for i in range(100):
        name, origin = "".join(["alias-", str(i % 3)]), "".join(["postgres:", "vkeys"])
        builder.add(KeyRecord(name, origin, "fp", sha(f"sk-vkey-{i}-0123456789abcdef")))
    ring = builder.build()
    origins = {id(r.origin) for r in ring.records()}
    names = {id(r.name) for r in ring.records()}
    assert len(origins) == 1 and len(names) == 3


def test_content_tells_rings_apart_cheaply() -> None:
    def ring(packed: bytes, name: str = "b") -> KeyRing:
        return resolve_readings((), batches=[DigestBatch(KeyMeta(name, "k"), "s", packed)]).ring

    a = os.urandom(64)
    assert ring(a).content == ring(a).content
    assert ring(a).content != ring(a[:32]).content
    assert ring(a).content != ring(a, "other").content
    plain = KeyRing([KeyRecord("n", "o", "f", sha("sk-x-0123456789abcdef"))])
    assert plain.content != KeyRing().content


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=20))
def test_key_lines_agree_with_assess(lines: list[str]) -> None:
    text = "\n".join(lines)
    parsed = parse_key_lines("file:/k", text, max_length=30)
    wanted = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and assess(line, max_length=30)[0] is State.SET:
            wanted.append(hashlib.sha256(line.encode()).digest())
    assert parsed.packed == b"".join(wanted)
    for reading in parsed.problems:  # never a key in a detail
        for raw in lines:
            if len(raw.strip()) >= 8:
                assert raw.strip() not in reading.detail


def test_unusable_lines_are_summed_in_one_reading_without_values() -> None:
    secretish = "sk-has space-0123456789abcdef"
    text = "\n".join([secretish, "sk-good-0123456789abcdef", "a,b-0123456789abcdef", "tiny"])
    parsed = parse_key_lines("file:/k", text, max_length=1024)
    weak, summary = parsed.problems
    assert (weak.source, weak.state) == ("file:/k#line4", State.WEAK)
    assert (summary.source, summary.state) == ("file:/k#lines", State.INVALID)
    assert "2 line(s)" in summary.detail and "line 1 (" in summary.detail
    assert "line 3 (" in summary.detail and secretish not in summary.detail
    assert len(parsed.packed) == 32 and parsed.entries == 4


def test_digest_lists_and_the_limit() -> None:
    digests = [os.urandom(32) for _ in range(3)]
    text = "# ops\n" + "\n".join(d.hex() for d in digests) + "\nnot-hex\n"
    parsed = parse_digest_lines("sha256_file:/d", text)
    assert parsed.packed == b"".join(digests)
    (summary,) = parsed.problems
    assert summary.state is State.INVALID and "line 5" in summary.detail
    too_many = "\n".join(["0" * 63 + "1"] * (MAX_LIST_KEYS + 1))
    (limit,) = parse_digest_lines("sha256_file:/d", too_many).problems
    assert limit.state is State.INVALID and f"{MAX_LIST_KEYS:,} keys" in limit.detail
    assert parse_digest_lines("sha256_file:/d", too_many).packed == b""


def test_a_large_list_parsed_in_the_helper_process_is_the_same() -> None:
    from authsvc.sources import _keylist

    keys = [f"sk-helper-{i:06d}-0123456789abcdef" for i in range(20_000)]
    keys[7] = "tiny"  # weak: comes back as a reading with its Secret (rebuilt in this process)
    keys[9] = "sk-has space-0123456789abcdef"
    text = "\n".join(keys) + "\n"
    assert len(text) >= _keylist.OFFLOAD_BYTES
    here = _keylist._parse_keys_here("file:/k", text, 1024)
    _keylist.offload_parsing()
    assert _keylist._offload
    there = parse_key_lines("file:/k", text, 1024)
    assert _keylist._pool is not None, "the helper process did not start"
    assert there == here
    assert there.problems[0].secret is not None and there.problems[0].source == "file:/k#line8"
    digests = "\n".join(hashlib.sha256(k.encode()).hexdigest() for k in keys) + "\nzz\n"
    assert parse_digest_lines("d", digests) == _keylist._parse_digests_here("d", digests)
