"""The key-source protocol's pure parts: the registry, the batch form, the compatible surface."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import authsvc.keys
from authsvc import ConfigError
from authsvc.config import load_config, parse_config
from authsvc.keys import (
    REGISTRY,
    DigestBatch,
    KeyMeta,
    KeySource,
    KeyStore,
    Reading,
    Reloader,
    SourceKind,
    fingerprint,
    resolve_readings,
)
from authsvc.sources import BUILTIN, SourceRegistry

MASTER = "sk-protocol-master-0123456789abcdef"
BULK = [f"sk-protocol-bulk-{i}-0123456789abcdef" for i in range(5)]


def sha(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def test_the_registry_refuses_a_taken_name_and_a_kind_without_factory() -> None:
    registry = SourceRegistry(BUILTIN)
    with pytest.raises(ConfigError, match="'env' is already registered"):
        registry.register(SourceKind("env", lambda ctx, node, path: None, chain=print))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="has no factory"):
        registry.register(SourceKind("nothing", lambda ctx, node, path: None))
    assert registry.names("chain") == ("env", "file", "litellm_config", "value")
    assert registry.names("key") == (
        "sha256",
        "env",
        "file",
        "value",
        "sha256_file",
        "virtual_keys",
    )


def test_registered_is_undone_on_exit(tmp_path: Path) -> None:
    kind = SourceKind("later", lambda ctx, node, path: None, chain=print)  # type: ignore[arg-type]
    with REGISTRY.registered(kind):
        assert "later" in REGISTRY.names("chain")
    assert "later" not in REGISTRY.names("chain")
    with pytest.raises(ConfigError, match="later"):
        parse_config("master_key:\n  sources:\n    - later: x\n", str(tmp_path / "c"), environ={})


def test_every_built_in_source_implements_the_protocol(tmp_path: Path) -> None:
    config = parse_config(
        "master_key:\n  sources:\n    - env: A\n    - file: k\n    - litellm_config: l.yaml\n"
        "    - value: os.environ/B\nkeys:\n  - name: x\n    sha256: " + "ab" * 32 + "\n",
        str(tmp_path / "c.yaml"),
        environ={},
    )
    sources = config.sources()
    assert len(sources) == 5 and all(isinstance(s, KeySource) for s in sources)
    files = {f for s in sources for f in s.watch().files}
    assert files == {str(tmp_path / "k"), str(tmp_path / "l.yaml")}


def test_the_reloader_watches_what_the_sources_ask(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_text(MASTER)
    path = tmp_path / "c.yaml"
    path.write_text("master_key:\n  sources:\n    - file: secrets/key\n    - env: X\n")
    reloader = Reloader(str(path), {}, KeyStore(), watch=False)
    reloader.reload()
    assert reloader.watched_files() == (str(path), str(tmp_path / "secrets" / "key"))
    assert reloader.watch_dirs() == {str(tmp_path), str(tmp_path / "secrets")}
    assert load_config(str(path), environ={}).watched_files() == (
        str(tmp_path / "secrets" / "key"),
        str(path),
    )


def test_a_batch_must_hold_whole_digests() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        DigestBatch(KeyMeta("b", "keys[0]"), "x:b", b"\0" * 33)
    batch = DigestBatch(KeyMeta("b", "keys[0]"), "x:b", b"".join(sha(k) for k in BULK))
    assert len(batch) == len(BULK) and list(batch) == [sha(k) for k in BULK]


def test_batches_join_the_ring_with_their_shared_record() -> None:
    master = Reading.of_value("env:M", MASTER, max_length=1024)
    meta = KeyMeta("bulk", "keys[0]", expires_at=2e9)
    packed = b"".join(sha(k) for k in [*BULK, MASTER, BULK[0], "sk-1234"])
    batch = DigestBatch(meta, "x:bulk", packed)
    res = resolve_readings([master], batches=[batch])
    assert len(res.ring) == 1 + len(BULK)
    record = res.ring.lookup(sha(BULK[3]))
    assert record is not None
    assert (record.name, record.origin, record.fingerprint, record.expires_at) == (
        "bulk",
        "x:bulk",
        fingerprint(BULK[3]),
        2e9,
    )
    assert res.ring.lookup(sha("sk-1234")) is None
    warnings = " ".join(res.warnings)
    assert "1 publicly known keys refused" in warnings
    assert "1 the master key" in warnings and "1 keys already loaded" in warnings
    assert "8 keys" in next(line for line in res.render_table().splitlines() if "x:bulk" in line)
    weak_ok = resolve_readings([master], batches=[batch], allow_weak=True)
    assert weak_ok.ring.lookup(sha("sk-1234")) is not None
    assert res.signature() != resolve_readings([master]).signature()


def test_the_keys_package_keeps_its_public_names() -> None:
    before = {
        "MIN_KEY_LENGTH",
        "WEAK_KEYS",
        "ExtraKeyReadings",
        "KeyRecord",
        "KeyRing",
        "KeyStore",
        "PathRule",
        "Reading",
        "Reloader",
        "Resolution",
        "Role",
        "Secret",
        "State",
        "assess",
        "digest",
        "fingerprint",
        "rejection",
        "resolve",
        "resolve_readings",
    }
    assert before <= set(authsvc.keys.__all__)
    for name in authsvc.keys.__all__:
        assert hasattr(authsvc.keys, name), name
