"""A new key-source type, defined and registered HERE only (one ``SourceKind``), is picked up
by the config parser, the resolution, ``authsvc explain`` (text and ``--json``) and the
reloader, with no change to any of them.

The test source, ``vault: NAME``, reads an in-memory store standing in for a remote service
(a database, a secret manager): it has no file to watch, asks to be polled, and its change
token is the store's version. As a master-key layer it yields one reading; as a ``keys:``
entry it yields its keys in the compact batch form (one shared record, packed digests).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from authsvc.cli import main
from authsvc.config import load_config
from authsvc.keys import (
    REGISTRY,
    DigestBatch,
    KeyMeta,
    KeyStore,
    Reading,
    Reloader,
    SourceKind,
    SourceOutput,
    State,
    Watch,
    digest,
    fingerprint,
    resolve,
)
from authsvc.sources import SETTLED, KeySource, ParseContext

MASTER = "sk-vault-master-0123456789abcdef"
ROTATED = "sk-vault-rotated-0123456789abcdef"
BULK = [f"sk-vault-bulk-{i:04d}-0123456789abcdef" for i in range(50)]
LATE = "sk-vault-late-arrival-0123456789abcdef"


@dataclass
class Vault:
    """The remote store: named entries, each a list of keys, and a version bumped on change."""

    entries: dict[str, list[str]] = field(default_factory=dict)
    version: int = 0
    reads: int = 0

    def put(self, name: str, keys: list[str]) -> None:
        self.entries[name] = list(keys)
        self.version += 1


VAULT = Vault()


@dataclass(frozen=True, slots=True)
class VaultSource:
    name: str
    where: str
    key: KeyMeta | None = None

    @property
    def label(self) -> str:
        return f"vault:{self.name}"

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput:
        VAULT.reads += 1
        keys = VAULT.entries.get(self.name)
        if self.key is None:  # a master-key layer
            if not keys:
                reading = Reading.without_value(self.label, State.UNSET, "no such entry")
            else:
                reading = Reading.of_value(self.label, keys[0], max_length=max_length)
            return SourceOutput(readings=(reading,))
        packed = b"".join(hashlib.sha256(k.encode()).digest() for k in keys or [])
        batch = DigestBatch(self.key, self.label, packed, detail=f"version {VAULT.version}")
        return SourceOutput(batches=(batch,))

    def watch(self) -> Watch:
        return Watch(poll=0.05)  # no files: "poll me"

    def change_token(self) -> Hashable | None:
        return VAULT.version


def _parse(ctx: ParseContext, node: yaml.Node, path: str) -> str:
    name = ctx.nonempty(node, path)
    if not name.isidentifier():
        ctx.fail(node, path, "expected a vault entry name")
    return name


VAULT_KIND = SourceKind(
    "vault",
    _parse,
    chain=lambda name, where: VaultSource(name, where),
    key=lambda name, meta: VaultSource(name, meta.where, meta),
)

CONFIG = """\
master_key:
  sources:
    - vault: main
    - env: AUTHSVC_MASTER_KEY
keys:
  - name: bulk
    vault: bulk
    paths: [/v1/models]
reload:
  poll_interval: 30
"""


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Path]:
    VAULT.entries.clear()
    VAULT.put("main", [MASTER])
    VAULT.put("bulk", BULK)
    VAULT.reads = 0
    path = tmp_path / "authsvc.yaml"
    path.write_text(CONFIG)
    with REGISTRY.registered(VAULT_KIND):  # the ONE place the new kind is made known
        yield path


def test_the_parser_builds_the_new_source_and_checks_its_value(vault: Path) -> None:
    config = load_config(str(vault), environ={})
    assert config.master_key.sources[0] == VaultSource("main", "master_key.sources[0]")
    assert isinstance(config.keys[0].source, KeySource)
    from authsvc import ConfigError

    vault.write_text(CONFIG.replace("vault: main", "vault: 'not a name'"))
    with pytest.raises(ConfigError, match=r"master_key\.sources\[0\]\.vault: expected a vault"):
        load_config(str(vault), environ={})


def test_unregistered_the_kind_is_an_unknown_key(tmp_path: Path) -> None:
    from authsvc import ConfigError

    path = tmp_path / "authsvc.yaml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError, match="vault"):
        load_config(str(path), environ={})


def test_resolution_takes_the_master_and_the_batch(vault: Path) -> None:
    res = resolve(load_config(str(vault), environ={}), {})
    assert res.winner is not None and res.winner.source == "vault:main"
    assert res.ring.lookup(digest(MASTER)) is res.ring.master
    record = res.ring.lookup(digest(BULK[7]))
    assert record is not None
    assert (record.name, record.origin, record.fingerprint) == (
        "bulk",
        "vault:bulk",
        fingerprint(BULK[7]),
    )
    assert record.paths is not None and record.paths.allows("/v1/models")
    assert not record.paths.allows("/v1/chat/completions")
    assert len(res.ring) == 1 + len(BULK)


def test_explain_shows_the_new_source(vault: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--config", str(vault), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["winner"] == {
        "source": "vault:main",
        "fingerprint": fingerprint(MASTER),
        "caution": "",
    }
    assert [s["source"] for s in report["sources"]] == ["vault:main", "env:AUTHSVC_MASTER_KEY"]

    assert main(["explain", "--config", str(vault)]) == 0
    text = capsys.readouterr().out
    assert f"master key: resolved from vault:main (fingerprint {fingerprint(MASTER)})" in text
    bulk_row = next(line for line in text.splitlines() if "vault:bulk" in line)
    assert "bulk" in bulk_row and f"{len(BULK)} keys" in bulk_row
    assert MASTER not in text and not any(k in text for k in BULK)


def test_the_reloader_follows_the_change_token(vault: Path) -> None:
    store = KeyStore()
    changes: list[object] = []
    errors: list[str] = []
    reloader = Reloader(
        str(vault), {}, store, on_change=changes.append, on_error=errors.append, watch=False
    )

    async def wait_for(pred: object, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():  # type: ignore[operator]
            assert time.monotonic() < deadline, "the reloader did not follow the source"
            await asyncio.sleep(0.02)

    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(reloader.run(stop))
        try:
            await wait_for(lambda: store.current.master is not None)
            assert store.current.master is not None
            assert store.current.master.digest == digest(MASTER)
            # config poll_interval is 30 s: only the source's Watch(poll=0.05) makes it tick.
            # A config file written less than SETTLED seconds ago is read at every tick.
            await asyncio.sleep(max(0.0, vault.stat().st_ctime + SETTLED + 0.5 - time.time()))
            reads = VAULT.reads
            await asyncio.sleep(0.5)
            assert VAULT.reads == reads  # token unchanged: nothing read again
            VAULT.put("bulk", [*BULK, LATE])  # no file changes: only the token moves
            await wait_for(lambda: store.current.lookup(digest(LATE)) is not None)
            VAULT.put("main", [ROTATED])
            await wait_for(
                lambda: (
                    store.current.master is not None
                    and store.current.master.digest == digest(ROTATED)
                )
            )
            assert store.current.lookup(digest(MASTER)) is None
        finally:
            stop.set()
            await task

    asyncio.run(body())
    assert len(changes) == 3 and errors == []
