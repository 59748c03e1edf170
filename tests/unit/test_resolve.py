"""The resolution rule, straight on the pure function: a property test over every state of
every layer (acceptance 1), plus the cases that read best as examples."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import authsvc
from authsvc.keymodel._render import OUTCOMES
from authsvc.keys import (
    ExtraKeyReadings,
    PathRule,
    Reading,
    Resolution,
    Role,
    State,
    resolve_readings,
)

STRONG = [
    "sk-strong-aaaaaaaaaaaaaaaa",
    "sk-strong-bbbbbbbbbbbbbbbb",
    "sk-strong-cccccccccccccccc",
    "short-key",  # authsvc's stricter rules: set, with a caution (served, warned about)
    "changeme",
]
WEAK = ["sk-1234", " sk-1234"]  # refused, as LiteLLM refuses them (leak scan: no "None")
INVALID = [
    "sk-line\nbreak-0123456789",
    "sk-ünicode-0123456789",
    " sk-padded-0123456789 ",
]
EMPTY = ["", "   ", "\t"]
ALL_KEYS = STRONG + WEAK + INVALID


def make(i: int, state: State, value: str, role: Role) -> Reading:
    label = f"env:LAYER_{i}"
    if state in (State.UNSET, State.MISSING, State.UNREADABLE):
        return Reading.without_value(label, state, f"layer {i} is {state}", role=role)
    reading = Reading.of_value(label, value, max_length=1024, role=role)
    assert reading.state is state, (value, reading.state)  # assess() agrees with the generator
    return reading


VALUES = {
    State.SET: st.sampled_from(STRONG),
    State.WEAK: st.sampled_from(WEAK),
    State.INVALID: st.sampled_from(INVALID),
    State.EMPTY: st.sampled_from(EMPTY),
    State.UNSET: st.just(""),
    State.MISSING: st.just(""),
    State.UNREADABLE: st.just(""),
}


@st.composite
def layers(draw: st.DrawFn) -> list[Reading]:
    n = draw(st.integers(min_value=0, max_value=8))
    out = []
    for i in range(n):
        state = draw(st.sampled_from(list(State)))
        value = draw(VALUES[state])
        role = draw(st.sampled_from([Role.CANDIDATE] * 4 + [Role.IGNORED, Role.MISPLACED]))
        out.append(make(i, state, value, role))
    return out


def expected_winner(readings: list[Reading], allow_weak: bool) -> int | None:
    """The rule, restated independently of the implementation."""
    for i, r in enumerate(readings):
        if r.role is Role.CANDIDATE and (
            r.state is State.SET or (allow_weak and r.state is State.WEAK)
        ):
            return i
    return None


def leaks(res: Resolution) -> list[str]:
    text = "\n".join(
        [json.dumps(res.report()), res.render_table(), res.unready_reason, repr(res), *res.warnings]
    )
    return [k for k in ALL_KEYS if k.strip() and k.strip() in text]


@settings(deadline=None)  # examples: the hypothesis profile (tests/conftest.py)
@given(layers(), st.booleans(), st.sampled_from(["warn", "error"]))
def test_resolution_rule_holds_for_every_chain(
    readings: list[Reading], allow_weak: bool, on_conflict: str
) -> None:
    res = resolve_readings(readings, allow_weak=allow_weak, on_conflict=on_conflict)  # type: ignore[arg-type]
    idx = expected_winner(readings, allow_weak)

    # conflicts: later layers (not misplaced) holding a different key
    conflicts = []
    if idx is not None:
        w = readings[idx]
        conflicts = [
            r
            for r in readings[idx + 1 :]
            if r.role is not Role.MISPLACED
            and r.state in (State.SET, State.WEAK)
            and r.digest != w.digest
        ]
    assert list(res.conflicts) == conflicts
    blocked = bool(conflicts) and on_conflict == "error"

    # the winner is always the first usable source (unless a conflict blocks it)
    if idx is None or blocked:
        assert res.winner is None and not res.resolved
        assert res.ring.master is None and not res.ring.ready
        for r in readings:  # the fail-closed reason names every source checked
            assert r.source in res.unready_reason
    else:
        assert res.winner is readings[idx] and res.resolved
        assert res.ring.master is not None and res.ring.ready
        assert res.ring.master.origin == readings[idx].source
        assert res.ring.master.digest == readings[idx].digest
        assert res.ring.master.name == "master"
        assert res.master_secret() is readings[idx].secret
        # weak keys never win unless allowed; empty/unset/... never win at all
        assert res.winner.state is State.SET or (allow_weak and res.winner.state is State.WEAK)
    assert res.chosen is (readings[idx] if idx is not None else None)

    # empty never shadows: dropping every empty layer changes nothing about who wins
    non_empty = [r for r in readings if r.state is not State.EMPTY]
    again = resolve_readings(non_empty, allow_weak=allow_weak, on_conflict=on_conflict)  # type: ignore[arg-type]
    assert again.winner is res.winner

    # one warning per conflict, and the blocking message under on_conflict: error
    assert sum(w.startswith("conflict:") for w in res.warnings) == len(conflicts)
    assert any("on_conflict is error" in w for w in res.warnings) == blocked
    # every misplaced layer is warned about
    for r in readings:
        if r.role is Role.MISPLACED:
            assert any(w.startswith(r.source + ":") for w in res.warnings)

    # the JSON report: exact shape, one entry per layer in order, used marks the winner only
    rep = res.report()
    assert list(rep) == ["resolved", "winner", "app_open", "sources", "extra_keys", "warnings"]
    assert rep["resolved"] is res.resolved
    if res.winner is None:
        assert rep["winner"] is None
    else:
        assert rep["winner"] == {
            "source": res.winner.source,
            "fingerprint": res.winner.fingerprint,
            "caution": res.winner.caution,
        }
    # everything the table shows is in the JSON too: detail, role, note, outcome
    table = res.render_table()
    assert rep["sources"] == [
        {
            "source": r.source,
            "state": r.state.value,
            "fingerprint": r.fingerprint,
            "used": r is res.winner,
            "outcome": s["outcome"],
            "role": r.role.value,
            "detail": r.detail,
            "note": r.note,
            "caution": r.caution,
        }
        for r, s in zip(readings, rep["sources"], strict=True)  # type: ignore[arg-type]
    ]
    for s in rep["sources"]:  # type: ignore[attr-defined]
        assert s["detail"] in table and OUTCOMES[s["outcome"]] in table
        assert (s["outcome"] in ("used", "used_weak")) is s["used"]
    assert rep["warnings"] == list(res.warnings)
    assert json.loads(json.dumps(rep)) == rep
    # fingerprints only where a value exists
    for r in readings:
        assert (r.fingerprint is None) == (
            r.state in (State.UNSET, State.EMPTY, State.MISSING, State.UNREADABLE)
        )

    assert leaks(res) == []


def test_example_chain_and_table() -> None:
    readings = [
        make(0, State.UNSET, "", Role.CANDIDATE),
        make(1, State.EMPTY, "", Role.CANDIDATE),
        make(2, State.WEAK, "sk-1234", Role.CANDIDATE),
        make(3, State.SET, STRONG[0], Role.CANDIDATE),
        make(4, State.SET, STRONG[0], Role.CANDIDATE),
        make(5, State.SET, STRONG[1], Role.CANDIDATE),
    ]
    res = resolve_readings(readings)
    assert res.winner is readings[3]
    assert [r.source for r in res.conflicts] == ["env:LAYER_5"]
    assert any("weak key refused" in w and "env:LAYER_2" in w for w in res.warnings)
    table = res.render_table()
    assert "master key: resolved from env:LAYER_3" in table
    lines = {line.split()[1]: line for line in table.splitlines() if line.strip()[:1].isdigit()}
    assert "refused" in lines["env:LAYER_2"]
    assert "USED" in lines["env:LAYER_3"]
    assert "shadowed, same key" in lines["env:LAYER_4"]
    assert "shadowed, DIFFERENT key" in lines["env:LAYER_5"]


def test_conflict_under_error_is_no_key_with_a_clear_reason() -> None:
    readings = [
        make(0, State.SET, STRONG[0], Role.CANDIDATE),
        make(1, State.SET, STRONG[1], Role.CANDIDATE),
    ]
    res = resolve_readings(readings, on_conflict="error")
    assert not res.resolved and res.chosen is readings[0]
    assert "disagree" in res.unready_reason and "on_conflict is error" in res.unready_reason
    assert "BLOCKED by conflict" in res.render_table()


def test_nothing_configured_fails_closed() -> None:
    res = resolve_readings([])
    assert not res.resolved and not res.ring.ready
    assert res.report() == {
        "resolved": False,
        "winner": None,
        "app_open": False,
        "sources": [],
        "extra_keys": [],
        "warnings": [],
    }
    assert res.unready_reason == "no key source is configured"


def test_allow_weak_lets_a_weak_key_win_with_a_warning() -> None:
    res = resolve_readings([make(0, State.WEAK, "sk-1234", Role.CANDIDATE)], allow_weak=True)
    assert res.resolved
    assert any("weak key in use" in w for w in res.warnings)


def test_extra_keys_join_the_ring_with_their_restrictions() -> None:
    master = make(0, State.SET, STRONG[0], Role.CANDIDATE)
    rule = PathRule.from_patterns(["/v1/models"])
    ci = ExtraKeyReadings(
        "ci",
        "keys[0]",
        (
            Reading.of_value("file:/k#line1", STRONG[1], max_length=1024),
            Reading.of_value("file:/k#line2", "short", max_length=1024),
            Reading.of_value("file:/k#line3", STRONG[0], max_length=1024),  # the master key
        ),
        paths=rule,
        expires_at=123.0,
    )
    dup = ExtraKeyReadings(
        "dup", "keys[1]", (Reading.of_value("env:DUP", STRONG[1], max_length=1024),)
    )
    res = resolve_readings([master], extras=[ci, dup], weak="refuse")
    names = sorted((r.name, r.origin) for r in res.ring.records())
    assert names == [("ci", "file:/k#line1"), ("master", "env:LAYER_0")]
    warned = resolve_readings([master], extras=[ci, dup])  # the default: served, warned
    names = sorted((r.name, r.origin) for r in warned.ring.records())
    assert names == [("ci", "file:/k#line1"), ("ci", "file:/k#line2"), ("master", "env:LAYER_0")]
    assert any("file:/k#line2: weak key accepted" in w for w in warned.warnings)
    ci_record = next(r for r in res.ring.records() if r.name == "ci")
    assert ci_record.paths is rule and ci_record.expires_at == 123.0
    assert any("file:/k#line2 is weak" in w for w in res.warnings)
    assert any("holds the master key" in w for w in res.warnings)
    assert any("holds the same key as" in w for w in res.warnings)
    assert "extra keys:" in res.render_table()


def test_pure_resolver_does_no_io_and_imports_no_grpc() -> None:
    pkg = Path(authsvc.__file__).parent / "keymodel"
    forbidden = (
        "grpc",
        "google",
        "os",
        "io",
        "pathlib",
        "subprocess",
        "socket",
        "watchfiles",
        "yaml",
        "authsvc.sources",
        "authsvc.config",
        "authsvc.keys",
    )
    for name in ("_rule.py", "_reading.py", "_render.py", "_secret.py", "_ring.py"):
        tree = ast.parse((pkg / name).read_text())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            for mod in mods:
                assert not any(mod == f or mod.startswith(f + ".") for f in forbidden), (name, mod)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", name


def test_require_raises_the_fail_closed_message() -> None:
    from authsvc import KeySourceError
    from authsvc.authz import Policy, Reason, RequestView, decide

    res = resolve_readings([make(0, State.UNSET, "", Role.CANDIDATE)])
    try:
        res.require()
    except KeySourceError as exc:
        message = str(exc)
    else:
        raise AssertionError("no error")
    assert message == "authsvc has no usable master key: checked env:LAYER_0 (unset)"
    d = decide(RequestView("GET", "/v1/models", {}), Policy.build(), res.ring, 0.0)
    assert d.reason is Reason.NO_MASTER_KEY and d.status == 503 and d.message == message
    resolve_readings([make(0, State.SET, STRONG[0], Role.CANDIDATE)]).require()  # no error


# -- the messages, written out --------------------------------------------------------------


def _fp(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _value(label: str, value: str, **kw: object) -> Reading:
    return Reading.of_value(label, value, max_length=1024, **kw)  # type: ignore[arg-type]


def test_conflict_messages_and_on_conflict_error() -> None:
    a, b = STRONG[0], STRONG[1]
    readings = [_value("env:A", a), _value("env:B", b)]
    conflict = (
        f"conflict: env:B holds a different key (fingerprint {_fp(b)}) than env:A "
        f"(fingerprint {_fp(a)}), which shadows it"
    )
    warned = resolve_readings(readings)
    assert warned.winner is readings[0] and warned.warnings == (conflict,)
    assert warned.ring.master is not None and warned.ring.master.fingerprint == _fp(a)
    assert warned.ring.master.name == "master" and warned.ring.master.origin == "env:A"
    refused = resolve_readings(readings, on_conflict="error")
    assert refused.winner is None and refused.chosen is readings[0]
    assert refused.warnings == (
        conflict,
        "master_key.on_conflict is error: no master key is used until the layers agree",
    )
    assert refused.unready_reason == (
        "the master key layers disagree (env:A, env:B) and master_key.on_conflict is error; "
        "checked env:A (set); env:B (set)"
    )
    assert refused.signature()[1] is None and warned.signature()[1] == "env:A"


def test_layer_warnings_and_the_unready_reason() -> None:
    readings = [
        Reading.without_value("file:/k", State.UNREADABLE, "the file cannot be read: no"),
        _value("env:WEAK", WEAK[0]),
        _value("env:BAD", INVALID[0]),
        _value("env:APP", STRONG[2], role=Role.IGNORED, note="the app ignores it"),
        _value("env:ELSEWHERE", STRONG[1], role=Role.MISPLACED, note="nothing reads it"),
        Reading.without_value("env:GONE", State.MISSING, "gone", role=Role.MISPLACED, note="n/a"),
    ]
    res = resolve_readings(readings)
    weak, bad = readings[1], readings[2]
    assert res.winner is None
    assert res.warnings == (
        "file:/k: the file cannot be read: no",
        f"env:WEAK: weak key refused: {weak.detail} "
        "(master_key.allow_weak: true accepts it, for development only)",
        f"env:BAD: unusable key: {bad.detail}",
        f"env:ELSEWHERE: nothing reads it (it holds a key, fingerprint {_fp(STRONG[1])})",
        "env:GONE: n/a",
    )
    assert res.unready_reason == (
        "checked file:/k (unreadable: the file cannot be read: no); "
        f"env:WEAK (weak: {weak.detail}); env:BAD (invalid: {bad.detail}); "
        "env:APP (set, ignored by the app); env:ELSEWHERE (set, ignored by the app); "
        "env:GONE (missing, ignored by the app)"
    )
    assert resolve_readings([]).unready_reason == "no key source is configured"
    allowed = resolve_readings(readings, allow_weak=True)
    assert allowed.winner is weak
    assert allowed.warnings[1] == (
        f"env:WEAK: weak key in use because master_key.allow_weak is true: {weak.detail}"
    )


def test_extra_key_records_and_warnings() -> None:
    master = _value("env:M", STRONG[0])
    extras = [
        ExtraKeyReadings("ci", "keys[0]", (_value("file:/ci", STRONG[1]),), None, 1.5e9),
        ExtraKeyReadings("dup", "keys[1]", (_value("env:DUP", STRONG[1]),)),
        ExtraKeyReadings("same", "keys[2]", (_value("env:SAME", STRONG[0]),)),
        ExtraKeyReadings("weak", "keys[3]", (_value("env:W", WEAK[0]),)),
        ExtraKeyReadings(
            "gone", "keys[4]", (Reading.without_value("file:/g", State.MISSING, "no file"),)
        ),
        ExtraKeyReadings("last", "keys[5]", (_value("env:LAST", STRONG[2]),)),
    ]
    res = resolve_readings([master], extras=extras)
    names = {r.name: r for r in res.ring.records()}
    assert set(names) == {"master", "ci", "last"}
    ci = names["ci"]
    assert (ci.origin, ci.fingerprint, ci.expires_at) == ("file:/ci", _fp(STRONG[1]), 1.5e9)
    assert names["last"].fingerprint == _fp(STRONG[2])
    weak = extras[3].readings[0]
    assert res.warnings == (
        "keys[1] 'dup': env:DUP holds the same key as keys[0] 'ci' file:/ci; the first is used",
        "keys[2] 'same': env:SAME holds the master key; it stays the unrestricted master",
        f"keys[3] 'weak': env:W is weak ({weak.detail}); no key loaded from it",
        "keys[4] 'gone': file:/g is missing (no file); no key loaded from it",
    )
    loose = resolve_readings([master], extras=extras, allow_weak=True)
    assert "weak" in {r.name for r in loose.ring.records()}
    assert f"keys[3] 'weak': env:W: weak key accepted (allow_weak): {weak.detail}" in loose.warnings


def test_an_extra_key_with_several_readings_loads_each_usable_one() -> None:
    master = _value("env:M", STRONG[0])
    more = [
        "sk-strong-dddddddddddddddd",
        "sk-strong-eeeeeeeeeeeeeeee",
        "sk-strong-ffffffffffffffff",
    ]
    extras = [
        ExtraKeyReadings("one", "keys[0]", (_value("env:ONE", STRONG[1]),)),
        ExtraKeyReadings(  # each skipped reading is followed by one that must still load
            "multi",
            "keys[1]",
            (
                _value("env:AGAIN", STRONG[1]),  # same as keys[0]
                _value("env:D", more[0]),
                _value("env:MASTER", STRONG[0]),  # the master key
                _value("env:E", more[1]),
                Reading.without_value("file:/none", State.MISSING, "no file"),
                _value("env:F", more[2]),
            ),
        ),
    ]
    res = resolve_readings([master], extras=extras)
    origins = sorted(r.origin for r in res.ring.records())
    assert origins == ["env:D", "env:E", "env:F", "env:M", "env:ONE"]


def test_a_weak_layer_after_the_winner_is_not_refused_when_weak_is_allowed() -> None:
    readings = [_value("env:A", STRONG[0]), _value("env:W", WEAK[0])]
    assert not any(
        "weak key refused" in w for w in resolve_readings(readings, allow_weak=True).warnings
    )
    assert any("weak key refused" in w for w in resolve_readings(readings).warnings)


def test_master_secret_and_the_signature_of_extras() -> None:
    assert resolve_readings([]).master_secret() is None
    master = _value("env:M", STRONG[0])
    secret = resolve_readings([master]).master_secret()
    assert secret is not None and secret.reveal() == STRONG[0]
    one = ExtraKeyReadings("x", "keys[0]", (_value("env:X", STRONG[1]),))
    other = ExtraKeyReadings("x", "keys[0]", (_value("env:X", STRONG[2]),))
    with_one = resolve_readings([master], extras=[one]).signature()
    assert with_one != resolve_readings([master], extras=[other]).signature()
    assert with_one != resolve_readings([master]).signature()
    assert with_one == resolve_readings([master], extras=[one]).signature()
