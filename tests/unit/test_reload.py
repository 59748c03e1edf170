"""Hot reload against a real Kubernetes-style Secret directory (``..data`` symlink swaps, as
kubelet does), with the real watcher and the polling fallback; broken reloads keep the last
good ring."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from authsvc.config import load_config
from authsvc.keys import KeyStore, Reloader, Resolution, digest, rejection, resolve
from tests._secretdir import SecretDir

KEY_A = "sk-rotation-aaaaaaaaaaaaaaaa01"
KEY_B = "sk-rotation-bbbbbbbbbbbbbbbb02"
KEY_C = "sk-rotation-cccccccccccccccc03"
ALL = (KEY_A, KEY_B, KEY_C)


class Recorder:
    def __init__(self) -> None:
        self.changes: list[Resolution] = []
        self.errors: list[str] = []


def make_reloader(
    config: Path,
    store: KeyStore,
    rec: Recorder,
    environ: dict[str, str] | None = None,
    **kw: object,
) -> Reloader:
    return Reloader(
        str(config),
        environ or {},
        store,
        on_change=rec.changes.append,
        on_error=rec.errors.append,
        **kw,  # type: ignore[arg-type]
    )


def master_digest(store: KeyStore) -> bytes | None:
    return store.current.master.digest if store.current.master is not None else None


def assert_no_key_in(texts: list[str]) -> None:
    for text in texts:
        for key in ALL:
            assert key not in text


async def wait_until(pred: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, SecretDir]:
    secret = SecretDir(tmp_path / "secret", {"master": KEY_A + "\n", "extra": KEY_C + "\n"})
    config = tmp_path / "authsvc.yaml"
    config.write_text(
        "master_key:\n  sources:\n    - file: secret/master\n"
        "keys:\n  - name: ci\n    file: secret/extra\n"
        "reload:\n  poll_interval: 30\n"  # long: these tests prove the *watch* fires
    )
    return config, secret


def run_with(reloader: Reloader, body: Callable[[], object]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(reloader.run(stop))
        try:
            await asyncio.wait_for(body(), timeout=20)  # type: ignore[arg-type]
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=5)

    asyncio.run(main())


def test_kubelet_rotation_swaps_the_store_within_two_seconds(setup: tuple[Path, SecretDir]) -> None:
    config, secret = setup
    store, rec = KeyStore(), Recorder()
    reloader = make_reloader(config, store, rec)

    async def body() -> None:
        await wait_until(lambda: master_digest(store) == digest(KEY_A), 5)
        await asyncio.sleep(0.3)  # let the watcher start
        for new in (KEY_B, KEY_A, KEY_B):  # several rotations: the watch must survive each
            secret.rotate({"master": new + "\n", "extra": KEY_C + "\n"})
            took = await wait_until(lambda new=new: master_digest(store) == digest(new), 2.0)
            assert took < 2.0
        # the extra key rotates too; the old one is gone from the ring
        secret.rotate({"master": KEY_B + "\n", "extra": KEY_A + "\n"})
        await wait_until(lambda: store.current.lookup(digest(KEY_C)) is None, 2.0)

    run_with(reloader, body)
    assert len(rec.changes) == 5 and rec.errors == []
    assert store.current.lookup(digest(KEY_B)) is not None
    assert_no_key_in([r.render_table() for r in rec.changes])


def test_a_rotation_before_the_watch_runs_is_read_once_it_runs(
    setup: tuple[Path, SecretDir], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch starts after the reloader's first read, and under load it started seconds
    later (a full CI run, issue #14: no reload within 20 s of a rotation, the 30 s poll was
    all that was left). A rotation in between makes no event: it must still be read as soon
    as the watch runs, not at the next poll (30 s here). The late start is made certain by
    delaying watchfiles' own ``awatch``; the reloader is the real one."""
    import watchfiles

    real = watchfiles.awatch

    def late_awatch(*args: Any, **kwargs: Any) -> AsyncIterator[set[Any]]:
        async def late() -> AsyncIterator[set[Any]]:
            await asyncio.sleep(2.0)  # the watch is not up yet
            async for changes in real(*args, **kwargs):
                yield changes

        return late()

    monkeypatch.setattr(watchfiles, "awatch", late_awatch)
    config, secret = setup
    store, rec = KeyStore(), Recorder()
    served = resolve(load_config(str(config), environ={}), {})  # as serve starts the reloader
    reloader = make_reloader(config, store, rec, initial=served)

    async def body() -> None:
        assert master_digest(store) == digest(KEY_A)
        await asyncio.sleep(0.5)  # the reloader's first read (a few ms) is done
        secret.rotate({"master": KEY_B + "\n", "extra": KEY_C + "\n"})  # no watch to see it
        await wait_until(lambda: master_digest(store) == digest(KEY_B), 5.0)

    run_with(reloader, body)
    assert rec.errors == []


def test_polling_fallback_without_watch(setup: tuple[Path, SecretDir]) -> None:
    config, secret = setup
    store, rec = KeyStore(), Recorder()
    reloader = make_reloader(config, store, rec, watch=False, poll_interval=0.2)

    async def body() -> None:
        await wait_until(lambda: master_digest(store) == digest(KEY_A), 5)
        secret.rotate({"master": KEY_B + "\n", "extra": KEY_C + "\n"})
        await wait_until(lambda: master_digest(store) == digest(KEY_B), 2.0)

    run_with(reloader, body)


def test_directory_created_later_is_picked_up(tmp_path: Path) -> None:
    config = tmp_path / "authsvc.yaml"
    config.write_text(
        "master_key:\n  sources:\n    - file: later/master\nreload: {poll_interval: 0.2}\n"
    )
    store, rec = KeyStore(), Recorder()
    reloader = make_reloader(config, store, rec)

    async def body() -> None:
        await wait_until(lambda: reloader.current is not None, 5)
        assert not store.current.ready  # fail closed at start
        secret = SecretDir(tmp_path / "later", {"master": KEY_A})
        await wait_until(lambda: master_digest(store) == digest(KEY_A), 2.0)
        assert str(tmp_path / "later") in reloader.watch_dirs()
        await asyncio.sleep(0.5)  # now watched: a rotation is seen through the watch
        secret.rotate({"master": KEY_B})
        await wait_until(lambda: master_digest(store) == digest(KEY_B), 2.0)

    run_with(reloader, body)
    assert store.current.ready


def test_fail_closed_at_start_then_ready_after_a_fix(setup: tuple[Path, SecretDir]) -> None:
    config, secret = setup
    secret.rotate({"master": "sk-1234\n", "extra": KEY_C + "\n"})
    store, rec = KeyStore(), Recorder()
    initial = resolve(load_config(str(config), environ={}), {})
    assert not initial.resolved
    store.swap(initial.ring)
    reloader = make_reloader(config, store, rec, initial=initial)
    assert reloader.reload() is False  # same result: nothing to do
    secret.rotate({"master": KEY_A + "\n", "extra": KEY_C + "\n"})
    assert reloader.reload() is True
    assert store.current.ready and master_digest(store) == digest(KEY_A)
    assert [r.resolved for r in rec.changes] == [True]


def test_unchanged_content_does_nothing(setup: tuple[Path, SecretDir]) -> None:
    config, secret = setup
    store, rec = KeyStore(), Recorder()
    reloader = make_reloader(config, store, rec)
    assert reloader.reload() is True
    ring = store.current
    secret.rotate({"master": KEY_A + "\n", "extra": KEY_C + "\n"})  # same keys, new files
    config.write_text(config.read_text() + "# a comment\n")
    assert reloader.reload() is False
    assert store.current is ring and len(rec.changes) == 1


def test_broken_reloads_keep_the_last_good_ring(
    setup: tuple[Path, SecretDir], caplog: pytest.LogCaptureFixture
) -> None:
    config, secret = setup
    store, rec = KeyStore(), Recorder()
    reloader = make_reloader(config, store, rec)
    assert reloader.reload() is True
    good = store.current
    good_config = config.read_text()
    errors = rec.errors

    # 1. garbage YAML in the config file
    config.write_text("master_key: [\n")
    assert reloader.reload() is False and store.current is good
    assert (
        rec.errors[-1].startswith("config reload failed:") and ":2: invalid YAML" in rec.errors[-1]
    )
    assert reloader.reload() is False and len(rec.errors) == 1  # reported once, not every poll
    config.write_text(good_config)
    assert reloader.reload() is False and store.current is good  # back to the same: no swap

    # 2. the key file becomes unreadable (root ignores chmod: replace it with a directory)
    data = secret.data_dir()
    (data / "master").unlink()
    (data / "master").mkdir()
    assert reloader.reload() is False and store.current is good
    assert "is now unreadable" in rec.errors[-1] and "keeping the last good keys" in rec.errors[-1]
    (data / "master").rmdir()

    # 3. a weak key rotated in
    secret.rotate({"master": "sk-1234\n", "extra": KEY_C + "\n"})
    assert reloader.reload() is False and store.current is good
    assert "secret/master is now weak" in rec.errors[-1]
    assert "keeping the last good keys" in rec.errors[-1]

    # 4. a conflict under on_conflict: error (a layer the config now adds disagrees)
    secret.rotate({"master": KEY_A + "\n", "extra": KEY_C + "\n"})
    store, rec = KeyStore(), Recorder()
    reloader = make_reloader(config, store, rec, environ={"OTHER": KEY_B})
    assert reloader.reload() is True
    good = store.current
    config.write_text(
        good_config.replace("master_key:\n", "master_key:\n  on_conflict: error\n").replace(
            "    - file: secret/master\n", "    - file: secret/master\n    - env: OTHER\n"
        )
    )
    assert reloader.reload() is False and store.current is good
    assert "no usable master key" in rec.errors[-1] and "disagree" in rec.errors[-1]
    errors.extend(rec.errors)

    assert_no_key_in(errors + caplog.messages)


def test_weak_rotation_with_a_fallback_layer_keeps_the_old_key(tmp_path: Path) -> None:
    secret = SecretDir(tmp_path / "s", {"master": KEY_A})
    config = tmp_path / "c.yaml"
    config.write_text("master_key:\n  sources:\n    - file: s/master\n    - env: FALLBACK\n")
    store, rec = KeyStore(), Recorder()
    reloader = make_reloader(config, store, rec, environ={"FALLBACK": KEY_B})
    assert reloader.reload() and master_digest(store) == digest(KEY_A)
    secret.rotate({"master": "sk-1234"})
    assert reloader.reload() is False and master_digest(store) == digest(KEY_A)
    assert "is now weak" in rec.errors[-1]
    secret.rotate({"master": KEY_C})
    assert reloader.reload() and master_digest(store) == digest(KEY_C)


def test_rejection_rule() -> None:
    def res(environ: dict[str, str]) -> Resolution:
        return resolve(load_config(None, environ={}), environ)

    none, good, other = (
        res({}),
        res({"LITELLM_MASTER_KEY": KEY_A}),
        res({"LITELLM_MASTER_KEY": KEY_B}),
    )
    assert rejection(None, none) is None  # nothing to protect
    assert rejection(none, none) is None and rejection(none, good) is None
    assert rejection(good, other) is None  # a rotation
    why = rejection(good, none)
    assert why is not None and why.startswith("reload rejected: no usable master key")
    assert "env:LITELLM_MASTER_KEY (unset)" in why and good.winner is not None
    assert good.winner.fingerprint in why  # says which keys it keeps
    why = rejection(good, res({"LITELLM_MASTER_KEY": "sk-1234"}))
    assert why is not None and "env:LITELLM_MASTER_KEY is now weak" in why


def test_default_logging_has_no_keys(
    setup: tuple[Path, SecretDir], caplog: pytest.LogCaptureFixture
) -> None:
    config, secret = setup
    caplog.set_level(logging.DEBUG)
    store = KeyStore()
    reloader = Reloader(str(config), {}, store)
    assert reloader.reload()
    secret.rotate({"master": "sk-1234\n", "extra": KEY_C + "\n"})
    assert not reloader.reload()
    assert any("keys reloaded" in m for m in caplog.messages)
    assert any("reload rejected" in m for m in caplog.messages)
    assert_no_key_in(caplog.messages)


def test_a_failing_callback_does_not_stop_reloading(setup: tuple[Path, SecretDir]) -> None:
    config, secret = setup
    store = KeyStore()
    calls: list[bool] = []

    def broken(res: Resolution) -> None:
        calls.append(res.resolved)
        raise RuntimeError("wiring bug")

    reloader = Reloader(str(config), {}, store, on_change=broken, poll_interval=0.1, watch=False)

    async def body() -> None:
        await wait_until(lambda: master_digest(store) == digest(KEY_A), 5)
        secret.rotate({"master": KEY_B + "\n", "extra": KEY_C + "\n"})
        await wait_until(lambda: master_digest(store) == digest(KEY_B), 2)

    run_with(reloader, body)
    assert calls == [True, True]


def test_initial_resolution_is_installed_and_run_rechecks_at_start(
    setup: tuple[Path, SecretDir],
) -> None:
    config, secret = setup
    initial = resolve(load_config(str(config), environ={}), {})
    store, rec = KeyStore(), Recorder()
    reloader = make_reloader(config, store, rec, initial=initial)
    assert store.current is initial.ring and reloader.current is initial
    secret.rotate({"master": KEY_B + "\n", "extra": KEY_C + "\n"})  # before run() starts

    async def body() -> None:
        await wait_until(lambda: master_digest(store) == digest(KEY_B), 1)

    run_with(reloader, body)
    assert len(rec.changes) == 1
