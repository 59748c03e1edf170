"""The resolution rule (``resolve_readings``), the parts ``make mutate`` showed untested: a
virtual key's own record (a one-digest batch with a LiteLLM standing) and what it skips, the
weak-key warnings an operator reads to learn WHY a key is served or refused, the precedence
of a keys: entry's records over a later batch, and that an extra key's restrictions reach
its record.

Expected values are written out here (digests and fingerprints with ``hashlib``).
"""

from __future__ import annotations

import hashlib

from authsvc.authz import Policy, Reason, RequestView, decide
from authsvc.keymodel import (
    DigestBatch,
    ExtraKeyReadings,
    KeyMeta,
    PathRule,
    Reading,
    Standing,
    resolve_readings,
)

MASTER = "sk-rule-master-0123456789abcdef"
VKEY = "sk-rule-virtual-0123456789abcdef"
CI = "sk-rule-ci-0123456789abcdef"
SHORT = "sk-13-chars-x"  # LiteLLM accepts it; authsvc's stricter rule cautions about it
NOW = 1_800_000_000.0


def sha(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def fp(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def value(label: str, key: str) -> Reading:
    return Reading.of_value(label, key, max_length=1024)


def virtual(key: str, standing: Standing | None = None, **kw: object) -> DigestBatch:
    meta = KeyMeta("alice", "keys[1]", litellm=standing or Standing(), **kw)  # type: ignore[arg-type]
    return DigestBatch(meta, "virtual_keys:$DATABASE_URL", sha(key))


# -- a virtual key: one digest with a LiteLLM standing is a record of its own -----------------


def test_a_virtual_key_gets_its_own_full_record() -> None:
    only = PathRule.from_patterns(["/v1/chat/*"])
    standing = Standing(team_id="team-7")
    res = resolve_readings(
        [value("env:M", MASTER)],
        batches=[virtual(VKEY, standing, paths=only, expires_at=NOW + 60)],
    )
    record = res.ring.lookup(sha(VKEY))
    assert record is not None
    assert (record.name, record.origin, record.fingerprint) == (
        "alice",
        "virtual_keys:$DATABASE_URL",
        fp(VKEY),  # the digest's first 12 hex digits: the key's fingerprint
    )
    assert record.digest == sha(VKEY)
    assert (record.paths, record.expires_at, record.litellm) == (only, NOW + 60, standing)
    assert len(res.ring) == 2 and not [w for w in res.warnings if "keys[1]" in w]
    # and decide() applies LiteLLM's rules to it (a standing, not authsvc's own key rules)
    blocked = resolve_readings(
        [value("env:M", MASTER)], batches=[virtual(VKEY, Standing(blocked=True))]
    )
    view = RequestView("GET", "/v1/models", {"authorization": f"Bearer {VKEY}"})
    assert decide(view, Policy.build(), blocked.ring, NOW).reason is Reason.BLOCKED_KEY


def test_a_virtual_key_equal_to_the_master_stays_the_unrestricted_master() -> None:
    res = resolve_readings(
        [value("env:M", MASTER)],
        batches=[virtual(MASTER, Standing(blocked=True), paths=PathRule.from_patterns(["/x"]))],
    )
    record = res.ring.lookup(sha(MASTER))
    assert record is not None and record.name == "master" and record.litellm is None
    assert record.paths is None
    assert [w for w in res.warnings if "keys[1]" in w] == [
        "keys[1] 'alice': virtual_keys:$DATABASE_URL: 1 the master key "
        "(it stays the unrestricted master)"
    ]


def test_a_publicly_known_virtual_key_is_refused_unless_allow_weak() -> None:
    res = resolve_readings([value("env:M", MASTER)], batches=[virtual("sk-1234")])
    assert res.ring.lookup(sha("sk-1234")) is None
    assert [w for w in res.warnings if "keys[1]" in w] == [
        "keys[1] 'alice': virtual_keys:$DATABASE_URL: 1 publicly known keys refused"
    ]
    dev = resolve_readings([value("env:M", MASTER)], batches=[virtual("sk-1234")], allow_weak=True)
    record = dev.ring.lookup(sha("sk-1234"))
    assert record is not None and record.name == "alice"


def test_the_first_entry_holding_a_key_keeps_it() -> None:
    """Layer precedence for named keys: a keys: entry's record wins over a later virtual key
    or batch holding the same key (reported once as a duplicate), whatever its standing."""
    ci = ExtraKeyReadings("ci", "keys[0]", (value("env:CI", CI),))
    res = resolve_readings(
        [value("env:M", MASTER)],
        extras=[ci],
        batches=[
            virtual(CI, Standing(blocked=True)),
            DigestBatch(KeyMeta("bulk", "keys[2]"), "file:bulk", sha(CI) + sha(VKEY)),
        ],
    )
    record = res.ring.lookup(sha(CI))
    assert record is not None and (record.name, record.litellm) == ("ci", None)
    assert [w for w in res.warnings if "already loaded" in w] == [
        "keys[1] 'alice': virtual_keys:$DATABASE_URL: 1 keys already loaded from another "
        "entry (the first is used)",
        "keys[2] 'bulk': file:bulk: 1 keys already loaded from another entry (the first is used)",
    ]
    assert not [w for w in res.warnings if "the master key" in w]  # a duplicate, not the master
    bulk = res.ring.lookup(sha(VKEY))
    assert bulk is not None and bulk.name == "bulk"


def test_an_extra_keys_paths_and_expiry_reach_its_record() -> None:
    only = PathRule.from_patterns(["/v1/models"])
    meta = KeyMeta("ci", "keys[0]", paths=only, expires_at=NOW)
    res = resolve_readings(
        [value("env:M", MASTER)], extras=[ExtraKeyReadings.of(meta, [value("env:CI", CI)])]
    )
    record = res.ring.lookup(sha(CI))
    assert record is not None and (record.paths, record.expires_at) == (only, NOW)


# -- the weak-key warnings: why a key is served, why it is refused ----------------------------


def test_a_weak_master_served_says_which_setting_lets_it_through() -> None:
    warn = resolve_readings([value("env:M", SHORT)])
    assert warn.resolved
    (line,) = [w for w in warn.warnings if "WEAK master key in use" in w]
    assert line.startswith(
        "env:M: WEAK master key in use (master_key.weak is warn; the app accepts it): "
    )
    assert line.endswith(". Replace it, or set master_key.weak: refuse to refuse it")
    both = resolve_readings([value("env:M", SHORT)], weak="refuse", allow_weak=True)
    assert both.resolved
    (line,) = [w for w in both.warnings if "WEAK master key in use" in w]
    assert line.startswith("env:M: WEAK master key in use (allow_weak is true; the app accepts it)")


def test_weak_refuse_is_the_one_setting_that_refuses_and_says_so() -> None:
    refused = resolve_readings([value("env:M", SHORT)], weak="refuse")
    assert not refused.resolved
    caution = value("env:M", SHORT).caution
    assert [w for w in refused.warnings if "weak key refused" in w] == [
        f"env:M: weak key refused (master_key.weak: refuse): {caution}"
    ]
    # under the default (warn), a cautioned key in a later layer is a conflict, not "refused"
    later = resolve_readings([value("env:M", MASTER), value("env:N", SHORT)])
    assert later.resolved and later.conflicts
    assert not [w for w in later.warnings if "weak key refused" in w]
    # weak: refuse with allow_weak: the key is served, so nothing says it is refused
    dev = resolve_readings(
        [value("env:M", MASTER), value("env:N", SHORT)], weak="refuse", allow_weak=True
    )
    assert not [w for w in dev.warnings if "weak key refused" in w]


def test_the_default_weak_rule_is_warn() -> None:
    """``weak`` defaults to ``warn`` (LiteLLM accepts such keys): served, with the warning."""
    res = resolve_readings([value("env:M", SHORT)])
    assert res.resolved and any("master_key.weak is warn" in w for w in res.warnings)


def test_an_extra_keys_skipped_layer_says_why() -> None:
    """A keys: entry layer that loads nothing names its state and the reason: for a key
    authsvc's stricter rule refuses, that caution; for an unset variable, its detail."""
    weak = ExtraKeyReadings("ci", "keys[0]", (value("env:CI", SHORT),))
    res = resolve_readings([value("env:M", MASTER)], extras=[weak], weak="refuse")
    (line,) = [w for w in res.warnings if w.startswith("keys[0] 'ci'")]
    assert line.startswith("keys[0] 'ci': env:CI is weak (")
    assert line.endswith("); no key loaded from it")
    caution = value("env:CI", SHORT).caution  # the reading's own words, not the rule's
    assert caution and f"({caution})" in line
    assert res.ring.lookup(sha(SHORT)) is None
    empty = ExtraKeyReadings("ci", "keys[0]", (value("env:CI", ""),))
    res = resolve_readings([value("env:M", MASTER)], extras=[empty])
    (line,) = [w for w in res.warnings if w.startswith("keys[0] 'ci'")]
    assert line.startswith("keys[0] 'ci': env:CI is empty (")
    assert f"({value('env:CI', '').detail})" in line
    served = resolve_readings([value("env:M", MASTER)], extras=[weak])  # weak: warn by default
    assert served.ring.lookup(sha(SHORT)) is not None


def test_an_open_app_layer_does_not_hide_the_layers_after_it() -> None:
    """The app running open is said first, and every later layer is still listed in the 503
    reason and still warned about (an operator fixes all of them, not one per restart)."""
    from authsvc.keymodel import Role, State

    opened = Reading.without_value(
        "litellm_config:/app/config.yaml",
        State.UNSET,
        "no master key",
        role=Role.APP_OPEN,
        note="THE APP ITSELF IS OPEN",
    )
    res = resolve_readings([opened, value("env:K", SHORT)], weak="refuse")
    assert not res.resolved
    assert res.unready_reason.startswith("checked litellm_config:/app/config.yaml (no master key)")
    assert "; env:K (set" in res.unready_reason
    assert (
        res.warnings[0] == "litellm_config:/app/config.yaml: no master key. THE APP ITSELF IS OPEN"
    )
    assert any(w.startswith("env:K: weak key refused") for w in res.warnings)
