"""The ring's contracts that ``make mutate`` showed untested: ``content`` (what the observer
compares to tell a changed key set from an unchanged one) changes with every key AND every
record field; a resolution's ``signature`` (what the reload compares) sees a batch's keys; the
first holder of a digest keeps it whatever the order of records and batches; a shared record
keeps its LiteLLM standing; counts after a rebuild that reuses the old ring.

Digests are made with ``hashlib`` here, not with the ring's ``digest()``.
"""

from __future__ import annotations

import hashlib

import pytest

from authsvc.authz import Policy, Reason, RequestView, decide
from authsvc.keymodel import (
    DigestBatch,
    KeyMeta,
    KeyRecord,
    KeyRing,
    PathRule,
    Reading,
    RingBuilder,
    Standing,
    resolve_readings,
)

MASTER = "sk-builder-master-0123456789abcdef"
KEYS = [f"sk-builder-{i:02d}-0123456789abcdef" for i in range(6)]
NOW = 1_800_000_000.0


def sha(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def rec(key: str, name: str = "n", origin: str = "o", **kw: object) -> KeyRecord:
    return KeyRecord(name, origin, hashlib.sha256(key.encode()).hexdigest()[:12], sha(key), **kw)  # type: ignore[arg-type]


MASTER_REC = rec(MASTER, "master", "env:M")


# -- content: equal for the same keys and records, different for any change -------------------


@pytest.mark.parametrize(
    "change",
    [
        {"name": "other"},
        {"origin": "file:/other"},
        {"paths": PathRule.from_patterns(["/v1/*"])},
        {"expires_at": NOW},
        {"litellm": Standing(blocked=True)},
    ],
)
def test_content_changes_with_every_record_field(change: dict[str, object]) -> None:
    base = {"name": "n", "origin": "o"}
    one = KeyRing([rec(KEYS[0], **base)], master=MASTER_REC)
    assert one.content == KeyRing([rec(KEYS[0], **base)], master=MASTER_REC).content
    changed = KeyRing([rec(KEYS[0], **{**base, **change})], master=MASTER_REC)
    assert changed.content != one.content
    # the same through the builder (how resolve_readings builds every ring)
    built = []
    for fields in (base, {**base, **change}):
        builder = RingBuilder()
        assert builder.add(rec(KEYS[0], **fields))
        built.append(builder.build(master=MASTER_REC).content)
    assert built[0] != built[1]


def test_content_tells_which_key_is_the_master() -> None:
    assert KeyRing(master=MASTER_REC).content != KeyRing().content
    other = rec(KEYS[0], "master", "env:M")
    assert KeyRing(master=MASTER_REC).content != KeyRing(master=other).content
    b1, b2 = RingBuilder(), RingBuilder()
    assert b1.build(master=MASTER_REC).content != b2.build(master=other).content


def test_content_of_a_batch_sees_its_expiry_and_what_an_earlier_entry_took() -> None:
    packed = sha(KEYS[1]) + sha(KEYS[2])

    def ring(expires_at: float | None, extra: str | None) -> KeyRing:
        builder = RingBuilder()
        if extra is not None:
            builder.add(rec(extra))
        builder.add_shared(rec(KEYS[5], "bulk", "file:b", expires_at=expires_at), packed)
        return builder.build(master=MASTER_REC)

    assert ring(None, None).content == ring(None, None).content
    assert ring(None, None).content != ring(NOW, None).content
    # the same records and batch, but an earlier entry holds one of the batch's keys
    assert ring(None, KEYS[3]).content != ring(None, KEYS[1]).content


def test_a_resolution_signature_sees_a_batch_s_keys() -> None:
    """The reload compares signatures: a batch whose keys changed (same entry, same size) is
    a change, or the new keys would never be served."""
    meta = KeyMeta("bulk", "keys[0]")
    master = [Reading.of_value("env:M", MASTER, max_length=1024)]

    def res(*keys: str) -> object:
        packed = b"".join(sha(k) for k in keys)
        return resolve_readings(master, batches=[DigestBatch(meta, "file:b", packed)]).signature()

    assert res(KEYS[0], KEYS[1]) == res(KEYS[0], KEYS[1])
    assert res(KEYS[0], KEYS[1]) != res(KEYS[0], KEYS[2])


# -- first holder wins, in any order; counts and sizes ----------------------------------------


def test_the_first_holder_keeps_a_digest_whichever_kind_came_first() -> None:
    builder = RingBuilder()
    assert builder.add(rec(KEYS[0], "first"))
    assert not builder.add(rec(KEYS[0], "second"))  # the same digest again: refused
    present, repeated, refused = builder.add_shared(
        rec(KEYS[5], "bulk", "file:b"), sha(KEYS[0]) + sha(KEYS[1]) + sha(KEYS[1])
    )
    assert (present, repeated, refused) == ([sha(KEYS[0])], 1, 0)
    assert not builder.add(rec(KEYS[1], "late"))  # held by the batch now
    assert builder.add(rec(KEYS[2], "new"))  # in no entry yet: a batch does not block it
    ring = builder.build(master=MASTER_REC)
    assert [ring.lookup(sha(k)).name for k in KEYS[:3]] == ["first", "bulk", "new"]  # type: ignore[union-attr]
    assert len(ring) == 4


def test_the_master_wins_its_digest_in_a_batch_and_is_counted_once() -> None:
    builder = RingBuilder()
    builder.add_shared(rec(KEYS[5], "bulk", "file:b"), sha(MASTER) + sha(KEYS[0]))
    ring = builder.build(master=MASTER_REC)
    record = ring.lookup(sha(MASTER))
    assert record is not None and record.name == "master"
    assert len(ring) == 2  # the master and KEYS[0]: the batch's copy of the master is gone
    assert sorted(r.name for r in ring.records()) == ["bulk", "master"]


def test_a_builder_without_a_master_is_not_ready_and_says_so() -> None:
    ring = RingBuilder().build()
    assert not ring.ready and ring.unready_reason == "no master key is configured"
    assert KeyRing().unknown_lookup is None  # no virtual-key lookup unless the resolver sets one


def test_packed_digests_must_be_whole() -> None:
    with pytest.raises(ValueError, match=r"^packed digests must be a multiple of 32 bytes$"):
        RingBuilder().add_shared(rec(KEYS[5]), b"x" * 33)


def test_a_shared_record_keeps_its_standing_paths_and_expiry() -> None:
    """Keys of one shared record (a batch of several keys) are materialised with the record's
    LiteLLM standing, paths and expiry: decide() applies LiteLLM's rules to each."""
    only = PathRule.from_patterns(["/v1/*"])
    meta = KeyMeta(
        "team", "keys[0]", paths=only, expires_at=NOW + 60, litellm=Standing(blocked=True)
    )
    packed = sha(KEYS[0]) + sha(KEYS[1])
    res = resolve_readings(
        [Reading.of_value("env:M", MASTER, max_length=1024)],
        batches=[DigestBatch(meta, "virtual_keys:$DATABASE_URL", packed)],
    )
    record = res.ring.lookup(sha(KEYS[1]))
    assert record is not None
    assert (record.name, record.origin, record.digest) == (
        "team",
        "virtual_keys:$DATABASE_URL",
        sha(KEYS[1]),
    )
    assert record.fingerprint == hashlib.sha256(KEYS[1].encode()).hexdigest()[:12]
    assert (record.paths, record.expires_at, record.litellm) == (
        only,
        NOW + 60,
        Standing(blocked=True),
    )
    view = RequestView("GET", "/v1/models", {"authorization": f"Bearer {KEYS[1]}"})
    assert decide(view, Policy.build(), res.ring, NOW).reason is Reason.BLOCKED_KEY


def test_a_rebuild_reusing_the_old_ring_counts_like_a_fresh_build() -> None:
    """A reload reuses the old ring's digests; its warnings (repeats, what an earlier entry
    holds) and its keys must be those of a fresh build of the same input."""
    master = [Reading.of_value("env:M", MASTER, max_length=1024)]
    meta = KeyMeta("bulk", "keys[0]")
    old = resolve_readings(
        master, batches=[DigestBatch(meta, "file:b", b"".join(sha(k) for k in KEYS[:3]))]
    )
    packed = b"".join(sha(k) for k in [KEYS[1], KEYS[2], KEYS[3], KEYS[3], KEYS[4], MASTER])
    batch = DigestBatch(meta, "file:b", packed)
    fresh = resolve_readings(master, batches=[batch])
    reused = resolve_readings(master, batches=[batch], reuse=old.ring)
    assert [w for w in reused.warnings if "file:b" in w] == [
        "keys[0] 'bulk': file:b: 1 the master key (it stays the unrestricted master)",
        "keys[0] 'bulk': file:b: 1 keys already loaded from another entry (the first is used)",
    ]
    assert reused.warnings == fresh.warnings
    assert len(reused.ring) == len(fresh.ring) == 5  # the master and KEYS[1..4]
    assert reused.ring.lookup(sha(KEYS[0])) is None  # gone from the list: gone from the ring
    assert reused.ring.content == fresh.ring.content
