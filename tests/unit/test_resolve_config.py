"""``resolve(config, environ)`` end to end over real config text, env and temp files: the
warning when authsvc's master key is not the key the app itself uses (LiteLLM mode), a
``keys:`` entry's restrictions, the deprecated ``allow_weak``'s warning, and the reload's
shortcut (``previous=``) that must never keep a ring the new config or sources change.

Expected values are written out here (fingerprints with ``hashlib``), not computed with the
resolver.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from authsvc.config import parse_config
from authsvc.keymodel import KeyMeta
from authsvc.keys import REGISTRY, Resolution, SourceKind, SourceOutput, Watch, resolve

AUTHSVC_KEY = "sk-resolve-authsvc-0123456789abcdef"
APP_KEY = "sk-resolve-app-0123456789abcdef"
CI_KEY = "sk-resolve-ci-0123456789abcdef"


def fp(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def sha(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def run(tmp_path: Path, text: str, environ: dict[str, str], **kw: object) -> Resolution:
    config = parse_config(text, str(tmp_path / "authsvc.yaml"), environ=environ)
    return resolve(config, environ, **kw)  # type: ignore[arg-type]


def _litellm(tmp_path: Path, key: str | None) -> None:
    settings = f"general_settings:\n  master_key: {key}\n" if key else "model_list: []\n"
    (tmp_path / "litellm.yaml").write_text(settings)


CHAIN = (
    "master_key:\n  sources:\n    - env: AUTHSVC_KEY\n"
    "    - litellm_config: litellm.yaml\n      dotenv: 'off'\n"
)


def _mismatch(res: Resolution) -> list[str]:
    return [w for w in res.warnings if "a source the app itself ignores" in w]


# -- authsvc's master key against the key the app itself uses ---------------------------------


def test_a_master_key_the_app_does_not_use_is_warned_about_naming_both(tmp_path: Path) -> None:
    """authsvc's env layer wins, but LiteLLM (reading its own config) uses another key: every
    client holding authsvc's key will be refused by the app. The operator is told which
    source authsvc took, which one LiteLLM uses, and both fingerprints — never the keys."""
    _litellm(tmp_path, APP_KEY)
    res = run(tmp_path, CHAIN, {"AUTHSVC_KEY": AUTHSVC_KEY})
    assert res.resolved and res.winner is not None and res.winner.source == "env:AUTHSVC_KEY"
    assert res.ring.lookup(sha(AUTHSVC_KEY)) is not None  # authsvc still serves its winner
    (warning,) = _mismatch(res)
    assert warning.startswith(
        "authsvc's master key comes from env:AUTHSVC_KEY, a source the app itself ignores: "
        "LiteLLM uses "
    )
    assert f"(fingerprint {fp(APP_KEY)})" in warning
    assert warning.endswith("; clients holding authsvc's key will be refused by the app")
    assert AUTHSVC_KEY not in warning and APP_KEY not in warning


def test_no_key_in_the_apps_own_config_is_said_as_such(tmp_path: Path) -> None:
    _litellm(tmp_path, None)
    res = run(tmp_path, CHAIN, {"AUTHSVC_KEY": AUTHSVC_KEY})
    assert _mismatch(res) == [
        "authsvc's master key comes from env:AUTHSVC_KEY, a source the app itself ignores: "
        "LiteLLM itself has no usable key there; clients holding authsvc's key will be "
        "refused by the app"
    ]


def test_no_app_warning_when_both_hold_the_same_key_or_the_app_layer_wins(tmp_path: Path) -> None:
    _litellm(tmp_path, AUTHSVC_KEY)  # the same key in both: nothing differs for a client
    same = run(tmp_path, CHAIN, {"AUTHSVC_KEY": AUTHSVC_KEY})
    assert same.resolved and same.warnings == ()  # not even an empty line
    _litellm(tmp_path, APP_KEY)  # authsvc's env layer empty: the app's own key wins
    app = run(tmp_path, CHAIN, {})
    assert app.winner is not None and app.winner.fingerprint == fp(APP_KEY)
    assert app.warnings == ()
    plain = "master_key:\n  sources:\n    - env: AUTHSVC_KEY\n"  # no LiteLLM layer at all
    assert _mismatch(run(tmp_path, plain, {"AUTHSVC_KEY": AUTHSVC_KEY})) == []


def test_only_the_first_litellm_layer_is_what_the_app_reads(tmp_path: Path) -> None:
    """The app reads one config: the FIRST litellm_config layer. A second one (holding the
    same key as authsvc's winner) does not hide that the app uses another key."""
    _litellm(tmp_path, APP_KEY)
    (tmp_path / "other.yaml").write_text(f"general_settings:\n  master_key: {AUTHSVC_KEY}\n")
    text = CHAIN + "    - litellm_config: other.yaml\n      dotenv: 'off'\n"
    (warning,) = _mismatch(run(tmp_path, text, {"AUTHSVC_KEY": AUTHSVC_KEY}))
    assert f"(fingerprint {fp(APP_KEY)})" in warning


# -- keys: entries and allow_weak --------------------------------------------------------------


def test_a_keys_entry_keeps_its_paths_and_expiry(tmp_path: Path) -> None:
    text = (
        "master_key:\n  sources:\n    - env: AUTHSVC_KEY\n"
        "keys:\n  - name: ci\n    env: CI_KEY\n    paths: [/v1/models]\n"
        "    expires: 2027-01-31T00:00:00Z\n"
    )
    res = run(tmp_path, text, {"AUTHSVC_KEY": AUTHSVC_KEY, "CI_KEY": CI_KEY})
    record = res.ring.lookup(sha(CI_KEY))
    assert record is not None and record.name == "ci"
    assert record.paths is not None
    assert record.paths.allows("/v1/models") and not record.paths.allows("/v1/chat/completions")
    assert record.expires_at == 1_801_353_600.0  # date -u -d 2027-01-31T00:00:00Z +%s
    master = res.ring.lookup(sha(AUTHSVC_KEY))
    assert master is not None and master.paths is None and master.expires_at is None


def test_allow_weak_says_it_is_deprecated_and_what_it_lets_through(tmp_path: Path) -> None:
    text = "master_key:\n  sources:\n    - env: K\n  allow_weak: true\n"
    res = run(tmp_path, text, {"K": "sk-1234"})
    assert res.resolved
    assert (
        "master_key.allow_weak is deprecated (development only): keys LiteLLM accepts are "
        "served by default now (master_key.weak: warn); allow_weak also lets sk-1234 and "
        "None through"
    ) in res.warnings
    plain = run(tmp_path, "master_key:\n  sources:\n    - env: K\n", {"K": AUTHSVC_KEY})
    assert not any("allow_weak" in w for w in plain.warnings)


# -- the reload's shortcut: reuse only what would be rebuilt equal ----------------------------


def test_an_unchanged_reload_keeps_the_ring_and_takes_the_new_config(tmp_path: Path) -> None:
    text = "master_key:\n  sources:\n    - env: K\n"
    first = run(tmp_path, text, {"K": AUTHSVC_KEY})
    again = run(tmp_path, text, {"K": AUTHSVC_KEY}, previous=first)
    assert again.ring is first.ring  # nothing read differs: no second ring is built
    assert again.config is not None and again.config is not first.config
    assert again.resolved and again.ring.lookup(sha(AUTHSVC_KEY)) is not None


def test_a_reload_sees_a_changed_key_and_a_changed_rule(tmp_path: Path) -> None:
    text = "master_key:\n  sources:\n    - env: K\n"
    first = run(tmp_path, text, {"K": AUTHSVC_KEY})
    rotated = run(tmp_path, text, {"K": APP_KEY}, previous=first)
    assert rotated.ring.lookup(sha(APP_KEY)) is not None
    assert rotated.ring.lookup(sha(AUTHSVC_KEY)) is None
    # a weak key served under weak: warn, then the operator tightens to refuse
    weak = "sk-13-chars-x"
    warned = run(tmp_path, text, {"K": weak})
    assert warned.resolved
    refused = run(tmp_path, text + "  weak: refuse\n", {"K": weak}, previous=warned)
    assert not refused.resolved and not refused.ring.ready
    # ... and a conflict that turns into an error
    two = "master_key:\n  sources:\n    - env: K\n    - env: L\n"
    env = {"K": AUTHSVC_KEY, "L": APP_KEY}
    lenient = run(tmp_path, two, env)
    assert lenient.resolved and lenient.conflicts
    strict = run(tmp_path, two + "  on_conflict: error\n", env, previous=lenient)
    assert not strict.resolved
    # ... and allow_weak turned off again
    dev = run(tmp_path, text + "  allow_weak: true\n", {"K": "sk-1234"})
    assert dev.resolved
    assert not run(tmp_path, text, {"K": "sk-1234"}, previous=dev).resolved


def test_a_reload_sees_a_changed_keys_entry(tmp_path: Path) -> None:
    base = "master_key:\n  sources:\n    - env: K\nkeys:\n  - name: ci\n    env: CI_KEY\n"
    env = {"K": AUTHSVC_KEY, "CI_KEY": CI_KEY}
    first = run(tmp_path, base, env)
    record = first.ring.lookup(sha(CI_KEY))
    assert record is not None and record.paths is None
    scoped = run(tmp_path, base + "    paths: [/v1/models]\n", env, previous=first)
    record = scoped.ring.lookup(sha(CI_KEY))
    assert record is not None and record.paths is not None
    assert not record.paths.allows("/v1/chat/completions")
    gone = run(tmp_path, base, {"K": AUTHSVC_KEY}, previous=scoped)
    assert gone.ring.lookup(sha(CI_KEY)) is None


# -- the unknown-key lookup (virtual_keys:) rides on the ring it was resolved with ------------


@dataclass(frozen=True)
class _Lookup:
    name: str


LOOKUPS = {name: _Lookup(name) for name in ("a", "b")}  # one object per name, as a live source


@dataclass(frozen=True)
class _LookupSource:
    """A test-only ``lookup:`` kind: a keys: entry that brings an unknown-key lookup (as the
    ``virtual_keys:`` source does), without a database."""

    name: str
    meta: KeyMeta

    @property
    def label(self) -> str:
        return f"lookup:{self.name}"

    def read(self, environ: Mapping[str, str], *, max_length: int) -> SourceOutput:
        return SourceOutput(lookup=LOOKUPS[self.name])

    def watch(self) -> Watch:
        return Watch()

    def change_token(self) -> Hashable | None:
        return None


@pytest.fixture
def lookup_kind() -> Iterator[None]:
    def parse(ctx: Any, node: Any, path: str) -> str:
        return str(node.value)

    kind = SourceKind("lookup", parse, key=lambda name, meta: _LookupSource(name, meta))
    with REGISTRY.registered(kind):
        yield


MASTER_ONLY = "master_key:\n  sources:\n    - env: K\n"


def _with(*names: str) -> str:
    entries = "".join(f"  - name: vk{i}\n    lookup: {n}\n" for i, n in enumerate(names))
    return MASTER_ONLY + ("keys:\n" + entries if names else "")


@pytest.mark.usefixtures("lookup_kind")
def test_the_first_lookup_rides_on_the_ring(tmp_path: Path) -> None:
    env = {"K": AUTHSVC_KEY}
    assert run(tmp_path, _with("a"), env).ring.unknown_lookup is LOOKUPS["a"]
    assert run(tmp_path, _with("b", "a"), env).ring.unknown_lookup is LOOKUPS["b"]
    assert run(tmp_path, _with(), env).ring.unknown_lookup is None


@pytest.mark.usefixtures("lookup_kind")
def test_a_reload_that_drops_or_changes_the_lookup_drops_it_with_the_ring(tmp_path: Path) -> None:
    env = {"K": AUTHSVC_KEY}
    first = run(tmp_path, _with("a"), env)
    same = run(tmp_path, _with("a"), env, previous=first)
    assert same.ring is first.ring and same.ring.unknown_lookup is LOOKUPS["a"]
    gone = run(tmp_path, _with(), env, previous=first)
    assert gone.ring is not first.ring and gone.ring.unknown_lookup is None
    other = run(tmp_path, _with("b"), env, previous=first)
    assert other.ring.unknown_lookup is LOOKUPS["b"]
    assert first.ring.unknown_lookup is LOOKUPS["a"]  # the served ring is never changed
    back = run(tmp_path, _with("a"), env, previous=gone)
    assert back.ring.unknown_lookup is LOOKUPS["a"]
