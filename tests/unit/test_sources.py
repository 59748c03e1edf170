"""Source adapters over real files and environ dicts, and the value rules (assess, Secret)."""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
from pathlib import Path

import pytest

from authsvc.config import (
    EnvSource,
    ExtraKeySpec,
    FileSource,
    Sha256Source,
    ValueSource,
    parse_config,
)
from authsvc.keys import (
    MIN_KEY_LENGTH,
    WEAK_KEYS,
    KeyMeta,
    Reading,
    Secret,
    State,
    assess,
    fingerprint,
    resolve,
)

KEY = "sk-source-test-0123456789abcdef"
OTHER = "sk-source-other-0123456789abcdef"


def one(spec: object, environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    (reading,) = spec.read(environ or {}, max_length=1024).readings  # type: ignore[attr-defined]
    return reading


def key_readings(spec: ExtraKeySpec) -> tuple[Reading, ...]:
    """The readings of a ``keys:`` entry, with the record its source was built with."""
    (key,) = spec.source.read({}, max_length=1024).keys
    assert (key.name, key.where) == (spec.name, spec.where)
    return key.readings


# -- Secret -------------------------------------------------------------------------------


def test_secret_never_shows_its_value() -> None:
    s = Secret(KEY)
    texts = [repr(s), str(s), f"{s}", f"{s!r}", f"{s}", f"{s:>60}", "%s" % (s,)]  # noqa: UP031
    for text in texts:
        assert KEY not in text and fingerprint(KEY) in text
    assert s.reveal() == KEY
    assert s.digest == hashlib.sha256(KEY.encode()).digest()
    assert s == Secret(KEY) and s != Secret(OTHER) and hash(s) == hash(Secret(KEY))
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(AttributeError):
        s._value = "x"  # type: ignore[misc]
    assert copy.deepcopy(s) is s


# -- assess -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "state", "words"),
    [
        (KEY, State.SET, "is set"),
        ("", State.EMPTY, "is empty"),
        ("  \n", State.EMPTY, "only whitespace"),
        (" " + KEY, State.INVALID, "leading or trailing whitespace"),
        (KEY + "\n", State.INVALID, "leading or trailing whitespace"),
        ("sk-in side-0123456789", State.INVALID, "contains whitespace"),
        ("sk-line\nbreak-0123456789", State.INVALID, "line break"),
        ("sk-tab\tinside-0123456789", State.INVALID, "contains whitespace"),
        ("sk-ctl\x01-0123456789abcd", State.INVALID, "control character"),
        ("sk-del\x7f-0123456789abcd", State.INVALID, "control character"),
        ("sk-ünicode-0123456789", State.INVALID, "non-ASCII"),
        ("sk-a,b-0123456789abcdef", State.INVALID, "comma"),
        ("x" * 2000, State.INVALID, "longer than 1024"),
        ("sk-1234", State.WEAK, "publicly known"),
        ("SK-1234", State.WEAK, "publicly known"),
        ("changeme", State.WEAK, "publicly known"),
        ("sk-abc", State.WEAK, f"shorter than {MIN_KEY_LENGTH}"),
        ("a" * 40, State.WEAK, "single repeated character"),
        ("k" * 15 + "x", State.SET, "is set"),
    ],
)
def test_assess(value: str, state: State, words: str) -> None:
    got, detail = assess(value, max_length=1024, what="LITELLM_MASTER_KEY")
    assert got is state and words in detail
    assert detail.startswith("LITELLM_MASTER_KEY")  # the message names the source
    if value.strip():
        assert value.strip() not in detail


def test_weak_list_is_small_lowercase_and_documented() -> None:
    assert {"sk-1234", "sk-123456", "changeme", "password", "secret", "admin"} <= WEAK_KEYS
    assert all(k == k.lower() for k in WEAK_KEYS)
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    for key in WEAK_KEYS:
        assert f"`{key}`" in doc, key


# -- env / value / file / sha256 -------------------------------------------------------------


def test_env_source_states() -> None:
    spec = EnvSource("MY_KEY")
    assert one(spec).state is State.UNSET
    assert one(spec, {"MY_KEY": ""}).state is State.EMPTY
    assert one(spec, {"MY_KEY": "sk-1234"}).state is State.WEAK
    r = one(spec, {"MY_KEY": KEY})
    assert (r.source, r.state, r.fingerprint) == ("env:MY_KEY", State.SET, fingerprint(KEY))
    assert r.secret is not None and r.secret.reveal() == KEY
    assert KEY not in repr(r)


def test_value_source_literal_and_indirection() -> None:
    literal = ValueSource("/etc/authsvc.yaml", "master_key.sources[2]", literal=Secret(KEY))
    r = one(literal)
    assert r.source == "config:/etc/authsvc.yaml#master_key.sources[2]" and r.state is State.SET
    indirect = ValueSource("/etc/authsvc.yaml", "master_key.sources[2]", env="NAME")
    assert one(indirect).state is State.UNSET and "NAME is not set" in one(indirect).detail
    assert one(indirect, {"NAME": ""}).state is State.EMPTY
    assert one(indirect, {"NAME": KEY}).fingerprint == fingerprint(KEY)


def test_file_source_strips_the_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "master"
    spec = FileSource(str(path))
    assert one(spec).state is State.MISSING
    assert one(FileSource(str(tmp_path / "no-dir" / "master"))).state is State.MISSING
    path.write_text(KEY + "\n")
    r = one(spec)
    assert (r.source, r.state, r.fingerprint) == (f"file:{path}", State.SET, fingerprint(KEY))
    path.write_text("\n \n")
    assert one(spec).state is State.EMPTY
    path.write_text(f"{KEY}\n{OTHER}\n")
    assert one(spec).state is State.INVALID and "line break" in one(spec).detail
    path.write_bytes(b"\xff\xfe-0123456789abcdef")
    assert one(spec).state is State.INVALID and "UTF-8" in one(spec).detail
    path.unlink()
    path.mkdir()
    assert one(spec).state is State.UNREADABLE and "directory" in one(spec).detail


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_source_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "master"
    path.write_text(KEY)
    path.chmod(0)
    assert one(FileSource(str(path))).state is State.UNREADABLE


def test_extra_key_file_holds_one_key_per_line(tmp_path: Path) -> None:
    """A key file is ONE batch of digests (no reading per key); weak lines stay readings."""
    path = tmp_path / "keys"
    path.write_text(f"# rotation: new first\n{KEY}\n\n  {OTHER}  \nshort\n")
    meta = KeyMeta("ci", "keys[0]")
    spec = ExtraKeySpec("ci", "keys[0]", FileSource(str(path), "keys[0]", meta))
    readings = key_readings(spec)
    assert [(r.source, r.state) for r in readings] == [(f"file:{path}#line5", State.WEAK)]
    (batch,) = spec.source.read({}, max_length=1024).batches
    assert (batch.meta, batch.source) == (meta, f"file:{path}")
    assert list(batch) == [
        hashlib.sha256(KEY.encode()).digest(),
        hashlib.sha256(OTHER.encode()).digest(),
    ]
    path.write_text("# nothing yet\n\n")
    (r,) = key_readings(spec)
    assert r.state is State.EMPTY and "no keys" in r.detail
    assert not spec.source.read({}, max_length=1024).batches


def test_sha256_keys_are_known_by_digest_only() -> None:
    digest = hashlib.sha256(KEY.encode()).digest()
    meta = KeyMeta("ops", "keys[1]")
    spec = ExtraKeySpec("ops", "keys[1]", Sha256Source("/c.yaml", "keys[1]", digest, meta))
    (r,) = key_readings(spec)
    assert (r.source, r.state, r.fingerprint) == (
        "config:/c.yaml#keys[1].sha256",
        State.SET,
        fingerprint(KEY),
    )
    assert r.secret is None and r.digest == digest
    weak_digest = hashlib.sha256(b"sk-1234").digest()
    weak = ExtraKeySpec(
        "w", "keys[2]", Sha256Source("/c.yaml", "keys[2]", weak_digest, KeyMeta("w", "keys[2]"))
    )
    assert key_readings(weak)[0].state is State.WEAK


def test_resolve_reads_everything_and_builds_the_ring(tmp_path: Path) -> None:
    (tmp_path / "master").write_text(KEY + "\n")
    (tmp_path / "ci.keys").write_text(OTHER + "\n")
    config = parse_config(
        "master_key:\n"
        "  sources:\n"
        "    - env: AUTHSVC_MASTER_KEY\n"
        "    - file: master\n"
        "keys:\n"
        "  - name: ci\n"
        "    file: ci.keys\n"
        "    paths: [/v1/models]\n",
        str(tmp_path / "authsvc.yaml"),
        environ={},
    )
    res = resolve(config, {"AUTHSVC_MASTER_KEY": "  "})
    assert res.resolved and res.winner is not None
    assert res.winner.source == f"file:{tmp_path / 'master'}"
    assert sorted(r.name for r in res.ring.records()) == ["ci", "master"]
    assert res.config is config
    secret = res.master_secret()
    assert secret is not None and secret.reveal() == KEY


def test_resolved_ring_drives_decide(tmp_path: Path) -> None:
    from authsvc.authz import Reason, RequestView, decide

    (tmp_path / "ci.keys").write_text(f"{OTHER}\n")
    config = parse_config(
        "master_key:\n  sources:\n    - env: M\n"
        "keys:\n"
        "  - name: ci\n    file: ci.keys\n    paths: [/v1/models]\n"
        "  - name: old\n    value: os.environ/OLD\n    expires: 2020-01-01T00:00:00Z\n",
        str(tmp_path / "c.yaml"),
        environ={},
    )
    res = resolve(config, {"M": KEY, "OLD": "sk-old-key-0123456789abcdef"})

    def check(key: str, path: str) -> Reason:
        view = RequestView("POST", path, {"authorization": f"Bearer {key}"})
        return decide(view, config.policy, res.ring, 1_800_000_000.0).reason

    assert check(KEY, "/v1/chat/completions") is Reason.KEY_VALID
    assert check(OTHER, "/v1/models") is Reason.KEY_VALID
    assert check(OTHER, "/v1/chat/completions") is Reason.PATH_NOT_ALLOWED
    assert check("sk-old-key-0123456789abcdef", "/v1/models") is Reason.EXPIRED_KEY
    assert check("sk-unknown-0123456789abcdef", "/v1/models") is Reason.UNKNOWN_KEY
