"""The compact ring (issue #14): shared records for batches, per-key records, the content
hash, and the key-list parser that feeds it (same verdicts as ``assess``, never a key)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

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


def _packed_by_hand(line: str, max_length: int) -> bool:
    """The list rule, written out: 16..max_length printable ASCII characters other than space
    and comma, not one repeated character. Anything else is a reading (weak or invalid)."""
    return (
        16 <= len(line) <= max_length
        and all(0x21 <= ord(c) <= 0x7E and c != "," for c in line)
        and len(set(line)) > 1
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=20))
def test_key_lines_agree_with_assess(lines: list[str]) -> None:
    text = "\n".join(lines)
    parsed = parse_key_lines("file:/k", text, max_length=30)
    wanted = []
    for raw in text.split("\n"):  # split at \n only (never U+2028, U+0085, 0x1C-0x1E)
        line = raw.removesuffix("\r").strip(" \t")  # a CRLF end, then ASCII space and tab
        if line and not line.startswith("#") and _packed_by_hand(line, 30):
            assert assess(line, max_length=30)[0] is State.SET  # the same verdict as assess
            wanted.append(hashlib.sha256(line.encode()).digest())
    assert parsed.packed == b"".join(wanted)
    for reading in parsed.problems:  # never a key in a detail
        for raw in lines:
            if len(raw.strip(" \t")) >= 8:
                assert raw.strip(" \t") not in reading.detail


def test_only_ascii_space_and_tab_are_trimmed_from_a_key_line() -> None:
    key = "sk-list-trim-0123456789abcdef"
    text = f" \t{key}\t \r\n\u00a0{key}\n{key}\u2028{key}\n{key}\x0b"
    parsed = parse_key_lines("file:/k", text, max_length=1024)
    assert parsed.packed == hashlib.sha256(key.encode()).digest()  # line 1 only
    (summary,) = parsed.problems
    assert summary.source == "file:/k#lines" and summary.state is State.INVALID
    assert summary.detail.startswith("3 line(s) cannot be used and were not loaded: line 2 (")
    assert "line 3 (" in summary.detail and "line 4 (" in summary.detail
    assert key not in summary.detail and parsed.entries == 4


def test_unusable_lines_are_summed_in_one_reading_without_values() -> None:
    control = "sk-has\x01ctl-0123456789abcdef"
    text = "\n".join([control, "sk-good-0123456789abcdef", "sk-caf\u00e9-0123456789abcdef", "tiny"])
    parsed = parse_key_lines("file:/k", text, max_length=1024)
    weak, summary = parsed.problems
    # "tiny": LiteLLM runs with it, authsvc's stricter rule flags it (master_key.weak decides)
    assert (weak.source, weak.state) == ("file:/k#line4", State.SET)
    assert weak.caution == "the key is shorter than 16 characters (4)"
    assert (summary.source, summary.state) == ("file:/k#lines", State.INVALID)
    assert "2 line(s)" in summary.detail
    assert "line 1 (contains a control character" in summary.detail
    assert "line 3 (contains a non-ASCII character" in summary.detail
    assert control not in summary.detail
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
    from authsvc.sources import _keyhelper

    keys = [f"sk-helper-{i:06d}-0123456789abcdef" for i in range(20_000)]
    keys[7] = "tiny"  # weak: comes back as a line number, its reading is built here
    keys[9] = "sk-has space-0123456789abcdef"
    keys[11] = "sk-caf\u00e9-0123456789abcdef"
    text = "\n".join(keys) + "\n"
    assert len(text) >= _keyhelper.OFFLOAD_BYTES
    digests = "\n".join(hashlib.sha256(k.encode()).hexdigest() for k in keys) + "\nzz\n"
    here = parse_key_lines("file:/k", text, 1024)  # before offload_parsing: in-process
    here_digests = parse_digest_lines("d", digests)
    _keyhelper.offload_parsing()
    try:
        there = parse_key_lines("file:/k", text, 1024)
        assert _keyhelper._proc is not None, "the helper process did not start"
        assert there == here
        assert there.problems[0].secret is not None
        assert there.problems[0].source == "file:/k#line8"
        assert there.unusable == 1 and [n for n, _ in there.bad] == [12]  # line 10: flagged
        assert parse_digest_lines("d", digests) == here_digests
        assert len(here_digests.packed) == 32 * len(keys) and here_digests.unusable == 1
    finally:
        _keyhelper._offload = False
        _keyhelper._close()
        _keyhelper._proc = None


def test_the_helper_process_imports_nothing_of_authsvc_and_stays_small() -> None:
    """The helper runs ``_keyhash.py`` as a script: only the standard library, so its peak
    RSS is an interpreter's plus one chunk of lines (issue #14: it was 86 MB as a forkserver
    pool importing authsvc)."""
    import ast
    import subprocess
    import sys

    from authsvc.sources import _keyhash

    tree = ast.parse(Path(_keyhash.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m.startswith("authsvc")}, imported
    assert {m.split(".")[0] for m in imported} <= set(sys.stdlib_module_names), imported
    keys = "".join(f"sk-{i:08d}-{os.urandom(8).hex()}\n" for i in range(25_000)).encode()
    probe = (
        "import resource, subprocess, sys;"
        "p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE);"
        "out, _ = p.communicate(sys.stdin.buffer.read());"
        "print(len(out), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    request = _keyhash.REQUEST.pack(b"k", 1024, 250_000, len(keys)) + keys
    helper = [sys.executable, "-I", "-S", "-B", _keyhash.__file__, "0", "5"]
    done = subprocess.run(
        [sys.executable, "-c", probe, *helper], input=request, capture_output=True, check=True
    )
    size, peak_kb = map(int, done.stdout.split())
    assert size == _keyhash.REPLY.size + 32 * 25_000  # every key hashed, no odd line
    assert peak_kb < 30 * 1024, f"the helper's peak RSS is {peak_kb / 1024:.1f} MB"
