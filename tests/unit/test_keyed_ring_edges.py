"""A keyed map (LiteLLM's virtual keys, issue #15) among the ring's other entries, through the
public ``RingBuilder``/``KeyRing`` API only: the first entry holding a digest keeps it whatever
kind each entry is, the master wins its own digest, and the ring's size, records and lookups
agree. Expected values are counted by hand from the entries each test adds."""

from __future__ import annotations

import hashlib

import pytest

from authsvc.keymodel import KeyRecord, RingBuilder, Standing

KEYS = [f"sk-keyed-edge-{i}-0123456789abcdef" for i in range(6)]
MASTER_KEY = "sk-keyed-edge-master-0123456789ab"


def sha(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


D = [sha(k) for k in KEYS]
M = sha(MASTER_KEY)
MASTER = KeyRecord("master", "env:M", "m", M)


def template(name: str) -> KeyRecord:
    return KeyRecord(name, "virtual_keys:$DATABASE_URL", "", b"", None, None, Standing())


def names(ring: object) -> list[str]:
    return sorted(r.name for r in ring.records())  # type: ignore[attr-defined]


def test_a_record_added_after_a_keyed_map_does_not_take_its_digest() -> None:
    builder = RingBuilder()
    builder.add_keyed({D[0]: template("vk")}, b"1", frozenset())
    assert D[0] in builder
    assert builder.add(KeyRecord("late", "keys[0]", "", D[0])) is False
    ring = builder.build()
    assert len(ring) == 1 and names(ring) == ["vk"]
    assert ring.lookup(D[0]).name == "vk"  # type: ignore[union-attr]


def test_a_shared_batch_after_a_keyed_map_leaves_out_its_digests() -> None:
    builder = RingBuilder()
    builder.add_keyed({D[0]: template("vk"), D[1]: template("vk")}, b"1", frozenset())
    template_file = KeyRecord("file", "file:x", "", b"")
    present, repeated, refused = builder.add_shared(template_file, D[1] + D[2])
    assert (present, repeated, refused) == ([D[1]], 0, 0)
    ring = builder.build()
    assert len(ring) == 3 and names(ring) == ["file", "vk", "vk"]
    assert ring.lookup(D[1]).name == "vk"  # type: ignore[union-attr]
    assert ring.lookup(D[2]).name == "file"  # type: ignore[union-attr]


def test_a_second_keyed_map_leaves_out_what_the_first_holds() -> None:
    builder = RingBuilder()
    first = {D[0]: template("a"), D[1]: template("a")}
    second = {D[1]: template("b"), D[2]: template("b")}
    assert builder.add_keyed(first, b"1", frozenset()) == ([], 0)
    assert builder.add_keyed(second, b"2", frozenset()) == ([D[1]], 0)
    ring = builder.build()
    assert len(ring) == 3 and names(ring) == ["a", "a", "b"]
    assert ring.lookup(D[1]).name == "a"  # type: ignore[union-attr]
    assert len(second) == 2  # the source's map is untouched


def test_a_clash_alone_is_left_out_of_the_count_and_the_records() -> None:
    """Only a held digest (nothing refused): the ring still counts and lists it once."""
    builder = RingBuilder()
    builder.add(KeyRecord("named", "keys[0]", "", D[0]))
    keyed = {D[0]: template("vk"), D[1]: template("vk")}
    assert builder.add_keyed(keyed, b"1", frozenset()) == ([D[0]], 0)
    ring = builder.build()
    assert len(ring) == 2 and names(ring) == ["named", "vk"]
    assert len(list(ring.records())) == 2


def test_a_refused_digest_alone_is_left_out() -> None:
    builder = RingBuilder()
    keyed = {D[0]: template("vk"), D[1]: template("vk")}
    assert builder.add_keyed(keyed, b"1", frozenset({D[1], D[5]})) == ([], 1)
    ring = builder.build()
    assert len(ring) == 1 and ring.lookup(D[1]) is None
    assert ring.lookup(D[0]).name == "vk"  # type: ignore[union-attr]


def test_the_master_wins_its_digest_in_a_keyed_map_added_before_it() -> None:
    builder = RingBuilder()
    keyed = {M: template("vk"), D[0]: template("vk")}
    builder.add_keyed(keyed, b"1", frozenset())
    ring = builder.build(master=MASTER)
    assert ring.ready and len(ring) == 2
    assert ring.lookup(M) is MASTER
    assert ring.lookup(D[0]).name == "vk"  # type: ignore[union-attr]
    assert names(ring) == ["master", "vk"]
    assert sorted(r.digest for r in ring.records()) == sorted([M, D[0]])
    assert len(keyed) == 2  # the source's map is untouched


def test_the_master_leaves_other_keyed_maps_whole() -> None:
    builder = RingBuilder()
    builder.add_keyed({D[0]: template("a")}, b"1", frozenset())
    builder.add_keyed({M: template("b"), D[1]: template("b")}, b"2", frozenset())
    ring = builder.build(master=MASTER)
    assert len(ring) == 3 and names(ring) == ["a", "b", "master"]
    assert ring.lookup(D[0]).name == "a"  # type: ignore[union-attr]


def test_an_empty_keyed_map_adds_nothing() -> None:
    builder = RingBuilder()
    builder.add(KeyRecord("named", "keys[0]", "", D[0]))
    assert builder.add_keyed({D[0]: template("vk")}, b"1", frozenset()) == ([D[0]], 0)
    ring = builder.build()
    assert len(ring) == 1 and names(ring) == ["named"]


def _content(keyed: dict[bytes, KeyRecord], stamp: bytes) -> bytes:
    builder = RingBuilder()
    builder.add_keyed(keyed, stamp, frozenset())
    return builder.build(master=MASTER).content


def test_the_ring_content_follows_the_stamp() -> None:
    keyed = {D[0]: template("vk"), D[5]: template("vk")}
    assert _content(keyed, b"1") == _content(dict(keyed), b"1")
    assert _content(keyed, b"1") != _content(keyed, b"2")


def test_a_keyed_map_holding_only_the_master_key_reports_the_master() -> None:
    """resolve_readings: the master's digest in a virtual-key map is reported as the master
    key, not as a key already loaded (one clash, so the count tells which it was)."""
    from authsvc.keymodel import DigestBatch, KeyMeta, Reading, resolve_readings

    master = Reading.of_value("env:M", MASTER_KEY, max_length=1024)
    keyed = {M: template("vk"), D[0]: template("vk")}
    batch = DigestBatch(KeyMeta("litellm", "keys[0]"), "vk", b"", keyed=keyed, stamp=b"1")
    res = resolve_readings([master], batches=[batch])
    warnings = " ".join(res.warnings)
    assert "1 the master key" in warnings and "already loaded" not in warnings
    assert len(res.ring) == 2 and res.ring.lookup(M).name == "master"  # type: ignore[union-attr]


def test_a_keyed_batch_with_packed_digests_or_no_stamp_is_refused_with_the_rule() -> None:
    from authsvc.keymodel import DigestBatch, KeyMeta

    rule = "a keyed batch has a stamp and no packed digests"
    with pytest.raises(ValueError, match=f"^{rule}$"):
        DigestBatch(KeyMeta("litellm", "keys[0]"), "vk", D[0], keyed={}, stamp=b"1")
    with pytest.raises(ValueError, match=f"^{rule}$"):
        DigestBatch(KeyMeta("litellm", "keys[0]"), "vk", b"", keyed={})
