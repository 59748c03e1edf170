"""``authsvc verify``, the pure part: which checks to run, how to judge answers, how to print.

No sockets here: ``plan`` lists the checks, ``evaluate`` turns one answer into an outcome with
a fix hint, ``render_table`` / ``render_json`` print them. The HTTP part is ``_verify``.

Who answered matters. authsvc puts ``x-authsvc-reason`` on every denial and Envoy passes it to
the client, so a 401 *with* it came from authsvc and a 401 *without* it came from the app.
A keyless request must be refused by authsvc itself: a 401 from the app means Envoy let it
through without asking authsvc.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from authsvc.health._deep import AUTHSVC_REASON_HEADER
from authsvc.health._http import HttpAnswer, HttpFailure

__all__ = [
    "Check",
    "Credential",
    "Expect",
    "KeyInfo",
    "Outcome",
    "bypass_outcome",
    "evaluate",
    "plan",
    "render_json",
    "render_table",
]

DRY_RUN_HEADER = "x-authsvc-dry-run"  # authz.DRY_RUN_HEADER (health never imports authz)
DRY_RUN_BANNER = (
    "DRY-RUN IS ON in the authsvc behind Envoy: requests it would deny are let through and "
    "only recorded; turn dry-run off (serve --dry-run / dry_run: true) to enforce"
)


class Credential(StrEnum):
    NONE = "none"
    WRONG = "wrong"
    MASTER = "master"


class Expect(StrEnum):
    SUCCESS = "2xx"
    AUTHSVC_401 = "401 from authsvc"
    CLOSED = "closed"  # the app port on the pod IP (the bypass check): no answer
    READABLE = "readable"  # LiteLLM's database (virtual_keys:), read as serve reads it


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    path: str
    credential: Credential
    expect: Expect
    public: bool = False


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """The resolved master key as humans may see it: where it came from and its fingerprint."""

    source: str
    fingerprint: str

    @property
    def phrase(self) -> str:
        return f"the master key resolved from {self.source} (fp {self.fingerprint})"


@dataclass(frozen=True, slots=True)
class Outcome:
    check: Check
    got: str
    ok: bool
    hint: str | None = None
    dry_run: str | None = None  # the answer was let through by dry-run: the would-deny reason

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "check": self.check.name,
            "expected": self.check.expect.value,
            "got": self.got,
            "ok": self.ok,
        }
        if self.hint:
            out["hint"] = self.hint
        if self.dry_run:
            out["dry_run"] = self.dry_run
        return out


def plan(public_paths: Iterable[str], protected_path: str) -> list[Check]:
    """Every public probe path without a key, then the protected path without/wrong/master key."""
    checks = [
        Check(f"GET {path} without a key", path, Credential.NONE, Expect.SUCCESS, public=True)
        for path in sorted(public_paths)
    ]
    checks += [
        Check(
            f"GET {protected_path} without a key",
            protected_path,
            Credential.NONE,
            Expect.AUTHSVC_401,
        ),
        Check(
            f"GET {protected_path} with a wrong key",
            protected_path,
            Credential.WRONG,
            Expect.AUTHSVC_401,
        ),
        Check(
            f"GET {protected_path} with the master key",
            protected_path,
            Credential.MASTER,
            Expect.SUCCESS,
        ),
    ]
    return checks


def describe(answer: HttpAnswer | HttpFailure) -> str:
    """The ``got`` column: ``200``, ``401 from authsvc (unknown_key)``, ``401 from app``, or why not."""
    if isinstance(answer, HttpFailure):
        return f"no answer: {answer.reason}"
    would = answer.headers.get(DRY_RUN_HEADER)
    if would:
        return f"{answer.status} let through by dry-run (would deny: {would})"
    reason = answer.headers.get(AUTHSVC_REASON_HEADER)
    if reason:
        return f"{answer.status} from authsvc ({reason})"
    if 200 <= answer.status < 300:
        return str(answer.status)
    return f"{answer.status} from app or Envoy"


def _hint_unreachable(url: str) -> str:
    return f"nothing answers at {url}: is Envoy running and listening there? (check --url)"


def _hint_authsvc_denied(answer: HttpAnswer, reason: str, key: KeyInfo | None) -> str:
    if reason == "no_master_key":
        return "the running authsvc has no usable master key (fail closed): run `authsvc explain` where it runs"
    if key is not None and reason in ("unknown_key", "expired_key", "path_not_allowed"):
        return (
            f"authsvc behind Envoy refused {key.phrase} ({reason}): it resolves a different key "
            "than this verify run; check --config and the environment, run `authsvc explain` on both"
        )
    return f"authsvc denied the request with {answer.status} ({reason})"


def _evaluate_public(check: Check, answer: HttpAnswer) -> str:
    reason = answer.headers.get(AUTHSVC_REASON_HEADER)
    status = answer.status
    if reason and status in (401, 403, 503):
        return (
            f"probe path is not public in authsvc: add {check.path} to public_paths "
            "(authsvc answered, so Envoy sent it to authsvc)"
        )
    if status in (401, 403):
        return (
            f"probe path is not public in the app or Envoy: {check.path} answered {status} without "
            "authsvc's x-authsvc-reason header, so the app (or another filter) demands a key"
        )
    if status == 404:
        return f"the app has no route {check.path}: fix public_paths or the app's health routes"
    if status >= 500:
        return f"the app (or Envoy's route to it) is unhealthy: {check.path} answered {status}"
    return f"{check.path} answered {status}; a probe path must answer 2xx without a key"


def _evaluate_keyless(check: Check, answer: HttpAnswer, key: KeyInfo | None) -> str | None:
    """Checks expecting authsvc's own 401; ``None`` when it passed."""
    reason = answer.headers.get(AUTHSVC_REASON_HEADER)
    status = answer.status
    if status == 401 and reason:
        return None
    what = "without a key" if check.credential is Credential.NONE else "with a wrong key"
    if 200 <= status < 300:
        return (
            f"{check.path} answered {status} {what}: the route is open to anyone. Envoy does not "
            "send it to authsvc (ext_authz disabled on this route?) or it is in public_paths"
        )
    if reason:
        return _hint_authsvc_denied(answer, reason, key)
    if status in (401, 403):
        return (
            f"the {status} came from the app, not authsvc: Envoy let the request through "
            "without asking authsvc (ext_authz missing or disabled on this route)"
        )
    return f"{check.path} answered {status} {what} without authsvc's x-authsvc-reason header: is this Envoy configured with authsvc?"


def _evaluate_master(answer: HttpAnswer, key: KeyInfo) -> str:
    reason = answer.headers.get(AUTHSVC_REASON_HEADER)
    status = answer.status
    if reason:
        return _hint_authsvc_denied(answer, reason, key)
    if status in (401, 403):
        return f"app rejected {key.phrase}: the app resolves a different key; run `authsvc explain`"
    return f"authsvc accepted the key but the app answered {status}: the app is unhealthy (not a key problem)"


def evaluate(
    check: Check, answer: HttpAnswer | HttpFailure, *, url: str, key: KeyInfo | None
) -> Outcome:
    """Judge one answer (pure). ``key`` describes the master key that was sent, if any."""
    got = describe(answer)
    if isinstance(answer, HttpFailure):
        return Outcome(check, got, False, _hint_unreachable(url))
    if check.expect is Expect.SUCCESS and 200 <= answer.status < 300:
        return Outcome(check, got, True)
    if check.public:
        return Outcome(check, got, False, _evaluate_public(check, answer))
    if check.expect is Expect.AUTHSVC_401:
        would = answer.headers.get(DRY_RUN_HEADER)
        if would:  # authsvc was asked, would have denied, let it through (the app answered)
            note = f"dry-run is on: authsvc would deny this ({would}) but lets it through"
            return Outcome(check, got, True, note, dry_run=would)
        hint = _evaluate_keyless(check, answer, key)
        return Outcome(check, got, hint is None, hint)
    assert key is not None, "the master-key check only runs with a resolved key"
    return Outcome(check, got, False, _evaluate_master(answer, key))


def bypass_outcome(endpoint: str, reach: str) -> Outcome:
    """The bypass check of one pod IP: the app port must not answer there (``reach`` is the
    detector's ``open``/``closed``/``no_answer``)."""
    check = Check(
        f"app port on pod IP {endpoint} (around Envoy)", "", Credential.NONE, Expect.CLOSED
    )
    if reach == "open":
        return Outcome(
            check,
            "answered",
            False,
            f"the app answers on {endpoint}: anyone reaching the pod IP skips Envoy and authsvc; "
            "make it listen on 127.0.0.1 only, or inject with --network-policy / --inbound-redirect",
        )
    return Outcome(check, reach.replace("_", " "), True)


def store_outcome(label: str, state: str, ok: bool) -> Outcome:
    """The virtual-key store as ``verify`` read it, the way ``serve`` does (``state``: keys
    loaded, last refresh, or why it is stale — never a key or a hash)."""
    check = Check(f"LiteLLM database ({label})", "", Credential.NONE, Expect.READABLE)
    if ok:
        return Outcome(check, state, True)
    return Outcome(
        check,
        state,
        False,
        "authsvc serve would accept no virtual key it has not loaded (known keys keep working "
        "from its last snapshot, unknown ones are refused): check the database and its URL; "
        "`authsvc explain` shows the source",
    )


def not_run(check: Check, why: str, hint: str) -> Outcome:
    """A check that could not be sent (e.g. no master key resolved locally): a failure."""
    return Outcome(check, f"not run: {why}", False, hint)


def render_json(outcomes: Sequence[Outcome]) -> str:
    return json.dumps([o.as_dict() for o in outcomes], indent=2)


def render_table(outcomes: Sequence[Outcome], *, url: str, key: KeyInfo | None) -> str:
    header = ("CHECK", "EXPECTED", "GOT", "OK")
    rows = [(o.check.name, o.check.expect.value, o.got, "ok" if o.ok else "FAIL") for o in outcomes]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = [f"verify {url}" + (f" with {key.phrase}" if key else " (no master key resolved)")]
    if any(o.dry_run for o in outcomes):
        lines.append(DRY_RUN_BANNER)
    for row, outcome in zip([header, *rows], [None, *outcomes], strict=True):
        lines.append(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[3]
        )
        if outcome is not None and outcome.hint:
            lines.append(f"    hint: {outcome.hint}")
    failed = sum(not o.ok for o in outcomes)
    lines.append(
        f"all {len(outcomes)} checks passed"
        if not failed
        else f"{failed} of {len(outcomes)} checks failed"
    )
    return "\n".join(lines) + "\n"
