"""Issue 7 acceptance 2: a bounded soak through a real Envoy, loopback only.

For ``$AUTHSVC_SOAK_SECONDS`` (default 60) client threads send requests continuously through a
real Envoy to the demo upstream; authsvc runs as ``serve --workers 2`` (Envoy lists both
workers, as ``envoy-config --workers 2`` writes), while an orchestrator cycles through:

(a) **rotation** — the extra-keys file of a Secret-style directory (kubelet's ``..data`` swap)
    goes ``old`` → ``old, new`` → ``new``; the rotating clients move to ``new`` once every
    worker has it (Envoy accepts it and each worker's ``authsvc_keys_loaded`` on the
    supervisor's ``/metrics`` shows it), and ``old`` is retired (then sent by the invalid
    client) once Envoy refuses it and every worker has dropped it;
(b) **garbage config** — the config file is overwritten in place with text that is invalid YAML
    at every prefix, left so while traffic runs, then fixed (written atomically, as config tools
    and kubelet do; a truncating in-place write of a *good* config can be read half-written);
(c) **kill** — one worker (the two in turn) is SIGKILLed; the supervisor starts a new one on
    the same address.

Clients: ``master`` (the master key, must be 200 end to end), two ``rotating`` (the extra key
they hold; must reach the app with ``x-authsvc-key-name: rotating`` — the demo app itself knows
only its master key and answers its own 401, which is not authsvc's decision), and ``invalid``
(no key, a never-valid key in a header or ``?key=``, retired keys; must get authsvc's 401).

The only documented window is (c): from the SIGKILL until the new worker answers gRPC health
plus ``GRACE``. In it, Envoy's own 503 (no authsvc body: failure_mode_allow is off,
status_on_error 503) is tolerated for a valid request; Envoy's retry policy and outlier
detection send the dead worker's checks to the live one, so the report usually counts none.
There is no window for (a) (old and new overlap) or (b) (the last good keys keep serving).

Pass: zero valid requests fail outside the window, zero invalid requests pass anywhere, and the
app's request log (ground truth) holds exactly the requests the clients saw reach it, each with
a valid credential. The counts are printed and attached to the report (``soak`` section and
user property).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from authsvc.keys import fingerprint
from authsvc.stack._children import grpc_answers, wait_until
from tests._secretdir import SecretDir
from tests.e2e._harness import (
    AuthzServer,
    Launcher,
    Response,
    Stack,
    http_request,
    new_key,
    worker_pids,
)

SOAK_SECONDS = float(os.environ.get("AUTHSVC_SOAK_SECONDS", "60"))
WORKERS = 2
GRACE = 0.5  # after the new worker answers health (measured: Envoy needs ~0 ms more)
PACE = 0.01  # each client pauses this long between requests (2 cores: leave room for the rest)
DWELL = 1.0  # steady traffic between phases, and while the config is garbage
DENIED = {"missing_credential", "unknown_key", "malformed_credential"}
CONFIG = """\
master_key:
  sources:
    - file: secret/master
keys:
  - name: rotating
    file: secret/client-keys
reload:
  poll_interval: {poll}
"""
GARBAGE = "reload: {poll_interval: [\n}}} {{{ this is not YAML\n"  # every prefix is rejected


@dataclass(frozen=True)
class Outcome:
    kind: str
    valid: bool
    sent: float
    answered: float
    status: int  # -1: no HTTP answer at all
    reached: bool  # the app answered: Envoy let it through
    key_name: str | None  # x-authsvc-key-name the app received
    reason: str | None  # authsvc's deny reason (None: not an authsvc denial)
    credential: str  # fingerprint of the presented credential (never the key: reprs get printed)


@dataclass
class Soak:
    stack: Stack
    secret: SecretDir
    config: Path
    master: str
    rotating: str
    authz: AuthzServer
    retired: list[str] = field(default_factory=list)
    never_valid: str = ""
    windows: list[tuple[float, float]] = field(default_factory=list)  # (SIGKILL, health again)
    probes_reached: int = 0  # orchestrator requests that reached the app
    events: Counter[str] = field(default_factory=Counter)
    timings: dict[str, list[float]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def time(self, what: str, seconds: float) -> None:
        self.timings.setdefault(what, []).append(seconds)

    # -- requests ---------------------------------------------------------------------------

    def send(self, kind: str, valid: bool, headers: dict[str, str], path: str) -> Outcome:
        sent = time.monotonic()
        try:
            r = http_request(self.stack.port, "GET", path, headers, timeout=10)
        except OSError:
            r = Response(-1, {}, b"")
        reached = r.reached_upstream
        name = None
        if reached:
            names = r.echo["headers"].get("x-authsvc-key-name") or [None]
            name = names[0]
        credential = fingerprint(next(iter(headers.values()), path.partition("key=")[2]))
        return Outcome(
            kind, valid, sent, time.monotonic(), r.status, reached, name, r.deny_reason, credential
        )

    def probe(self, key: str) -> Outcome:
        out = self.send("probe", True, {"x-api-key": key}, "/v1/models")
        self.probes_reached += out.reached
        return out

    def wait_for(self, key: str, accepted: bool, keys_loaded: int, timeout: float = 5.0) -> float:
        """Until Envoy accepts (refuses) ``key`` and every worker holds ``keys_loaded`` keys."""
        start = time.monotonic()

        def ok() -> bool:
            out = self.probe(key)
            if accepted:
                return out.reached and out.key_name == "rotating"
            return out.status == 401 and out.reason == "unknown_key"

        def everywhere() -> bool:
            return self.keys_loaded() == dict.fromkeys(map(str, range(WORKERS)), keys_loaded)

        assert wait_until(ok, timeout, interval=0.01), (
            f"key not {'accepted' if accepted else 'refused'}"
        )
        assert wait_until(everywhere, timeout, interval=0.01), self.keys_loaded()
        return time.monotonic() - start

    def keys_loaded(self) -> dict[str, float]:
        """``authsvc_keys_loaded`` per worker, from the supervisor's ``/metrics``."""
        text = http_request(self.authz.status_port, "GET", "/metrics").body.decode()
        return {
            sample.labels["worker"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "authsvc_keys_loaded"
            for sample in family.samples
        }

    # -- the phases ---------------------------------------------------------------------------

    def rotate(self, clients: list[Client]) -> None:
        old, new = self.rotating, new_key(f"soak-rotating-{self.events['rotations']}")
        self.secret.rotate(files(self.master, [old, new]))
        self.time("new key accepted by every worker after swap", self.wait_for(new, True, 3))
        self.rotating = new
        assert wait_until(lambda: all(c.used(new) for c in clients if c.kind == "rotating"), 5)
        self.secret.rotate(files(self.master, [new]))
        self.time("old key dropped by every worker after swap", self.wait_for(old, False, 2))
        self.retired.append(old)
        self.events["rotations"] += 1
        self.events["..data swaps"] += 2

    def garbage(self) -> None:
        failures = self.count('"event":"key_reload"')
        reloads = self.count('"phase":"reload"')
        self.config.write_text(GARBAGE)  # in place: truncate, then write
        assert wait_until(lambda: self.count('"event":"key_reload"') > failures, 5)
        time.sleep(DWELL)  # traffic runs against the broken config
        poll = "0.4" if self.events["garbage rewrites"] % 2 == 0 else "0.5"
        write_atomically(self.config, CONFIG.format(poll=poll))  # a different good config
        assert wait_until(lambda: self.count('"phase":"reload"') > reloads, 5), "fix not seen"
        self.events["garbage rewrites"] += 1

    def kill(self) -> None:
        """SIGKILL one worker (in turn); the window ends when its successor answers health."""
        workers = worker_pids(self.authz.proc)
        assert len(workers) == WORKERS, workers
        victim = workers[self.events["worker SIGKILLs"] % WORKERS]
        start = time.monotonic()
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            now = worker_pids(self.authz.proc)
            return len(now) == WORKERS and victim not in now

        assert wait_until(replaced, 10, interval=0.01), "the supervisor did not replace it"
        assert wait_until(lambda: all(grpc_answers(a) for a in self.authz.addresses), 10, 0.01)
        ready = time.monotonic()
        self.windows.append((start, ready))
        self.time("worker down (SIGKILL to its successor answering health)", ready - start)
        self.events["worker SIGKILLs"] += 1

    def count(self, needle: str) -> int:
        """Lines of every worker (they share the supervisor's output) holding ``needle``."""
        text = self.authz.proc.log_path.read_text(encoding="utf-8", errors="replace")
        return text.count(needle)


def files(master: str, client_keys: list[str]) -> dict[str, str]:
    return {"master": master + "\n", "client-keys": "\n".join(client_keys) + "\n"}


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Client(threading.Thread):
    """One client: sends what ``pick`` says, back to back (paced), until the soak stops."""

    def __init__(self, soak: Soak, kind: str, pick: Callable[[], tuple[bool, dict[str, str], str]]):
        super().__init__(daemon=True, name=f"soak-{kind}")
        self.soak, self.kind, self.pick = soak, kind, pick
        self.outcomes: list[Outcome] = []

    def run(self) -> None:
        while not self.soak.stop.is_set():
            valid, headers, path = self.pick()
            self.outcomes.append(self.soak.send(self.kind, valid, headers, path))
            time.sleep(PACE)

    def used(self, key: str) -> bool:
        fp = fingerprint(key)
        return any(o.credential == fp for o in list(self.outcomes))


def clients(soak: Soak) -> list[Client]:
    n = [0]

    def master() -> tuple[bool, dict[str, str], str]:
        return True, {"authorization": f"Bearer {soak.master}"}, "/v1/models"

    def rotating() -> tuple[bool, dict[str, str], str]:
        return True, {"x-api-key": soak.rotating}, "/v1/models"

    def invalid() -> tuple[bool, dict[str, str], str]:
        n[0] += 1
        retired = soak.retired[n[0] % len(soak.retired)] if soak.retired else soak.never_valid
        choices: list[tuple[dict[str, str], str]] = [
            ({}, "/v1/models"),
            ({"x-api-key": soak.never_valid}, "/v1/models"),
            ({"authorization": f"Bearer {soak.never_valid}"}, "/v1/chat/completions"),
            ({}, f"/v1/models?key={soak.never_valid}"),
            ({"x-api-key": retired}, "/v1/models"),
            ({"authorization": soak.master}, "/v1/models"),  # no 'Bearer ': not a credential
        ]
        headers, path = choices[n[0] % len(choices)]
        return False, headers, path

    return [
        Client(soak, "master", master),
        Client(soak, "rotating", rotating),
        Client(soak, "rotating", rotating),
        Client(soak, "invalid", invalid),
    ]


def in_window(o: Outcome, soak: Soak) -> bool:
    return any(o.sent <= end + GRACE and o.answered >= start for start, end in soak.windows)


def classify(o: Outcome, soak: Soak) -> str:
    expected = {"master": "master", "rotating": "rotating"}.get(o.kind)
    end_to_end = o.kind != "master" or o.status == 200  # the app accepts only the master key
    if o.valid and o.reached and o.key_name == expected and end_to_end:
        return "ok"
    if not o.valid:
        if o.reached:
            return "PASSED"  # an invalid request reached the app
        if o.status == 401 and o.reason in DENIED:
            return "denied"
    if in_window(o, soak) and o.status == 503 and o.reason is None and not o.reached:
        return "503-in-window"
    return "failure"


def report(soak: Soak, outcomes: list[Outcome], elapsed: float) -> tuple[str, dict[str, Any]]:
    table: dict[str, Counter[str]] = {}
    for o in outcomes:
        row = table.setdefault(o.kind, Counter())
        row["sent"] += 1
        row[classify(o, soak)] += 1
    down = sum(in_window(o, soak) for o in outcomes)  # sent while a worker was down
    columns = ["sent", "ok", "denied", "503-in-window", "failure", "PASSED"]
    lines = [
        f"soak: {elapsed:.0f} s through Envoy, authsvc --workers {WORKERS}; "
        + ", ".join(f"{n} {k}" for k, n in soak.events.items())
        + f"; {down} requests sent while a worker was down"
    ]
    lines.append("  " + f"{'client':<10}" + "".join(f"{c:>15}" for c in columns))
    for kind in ("master", "rotating", "invalid"):
        row = table.get(kind, Counter())
        lines.append("  " + f"{kind:<10}" + "".join(f"{row[c]:>15}" for c in columns))
    for what, values in soak.timings.items():
        lines.append(
            f"  {what}: max {max(values) * 1000:.0f} ms, mean "
            f"{sum(values) / len(values) * 1000:.0f} ms over {len(values)}"
        )
    data = {
        "seconds": round(elapsed, 1),
        "events": dict(soak.events),
        "sent_while_a_worker_was_down": down,
        "counts": {k: dict(v) for k, v in table.items()},
        "timings_ms": {k: [round(v * 1000) for v in vs] for k, vs in soak.timings.items()},
    }
    return "\n".join(lines), data


@pytest.mark.slow
@pytest.mark.timeout(SOAK_SECONDS + 120)
def test_soak(procs: Launcher, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    master, first = new_key("soak-master"), new_key("soak-rotating-first")
    secret = SecretDir(tmp_path / "secret", files(master, [first]))
    config = tmp_path / "authsvc.yaml"
    config.write_text(CONFIG.format(poll="0.5"))
    stack = procs.config_stack(config, app_key=master, workers=WORKERS)
    soak = Soak(stack, secret, config, master, first, stack.authz)
    soak.never_valid = new_key("soak-never-valid")
    assert soak.probe(first).key_name == "rotating"

    threads = clients(soak)
    for thread in threads:
        thread.start()
    start = time.monotonic()
    try:
        while True:
            for phase in (
                lambda: soak.rotate(threads),
                soak.garbage,
                lambda: soak.rotate(threads),
                soak.kill,
            ):
                phase()
                time.sleep(DWELL)
            if time.monotonic() - start >= SOAK_SECONDS:
                break
    finally:
        soak.stop.set()
        for thread in threads:
            thread.join(15)
    elapsed = time.monotonic() - start

    outcomes = [o for t in threads for o in t.outcomes]
    kills = [k for k, _ in soak.windows] + [float("inf")]
    for (killed, ready), after in zip(soak.windows, kills[1:], strict=True):
        late = [
            o.answered - ready for o in outcomes if o.status == 503 and killed <= o.answered < after
        ]
        soak.time("last Envoy 503 after the new worker answered health", max([0.0, *late]))
    text, data = report(soak, outcomes, elapsed)
    print("\n" + text)
    request.node.user_properties.append(("soak", data))
    request.node.add_report_section("call", "soak", text)

    verdicts = Counter(classify(o, soak) for o in outcomes)
    bad = [o for o in outcomes if classify(o, soak) in ("failure", "PASSED")]
    assert verdicts["PASSED"] == 0, [o for o in bad if not o.valid][:5]
    assert verdicts["failure"] == 0, bad[:5]
    assert data["sent_while_a_worker_was_down"] > 0, "no request was sent while a worker was down"
    assert soak.events["worker SIGKILLs"] >= 1 and soak.events["garbage rewrites"] >= 1

    # ground truth: the app saw exactly the requests the clients saw reach it, all valid
    valid = {f"Bearer {master}", first, *soak.retired, soak.rotating}
    allowed = {f"<redacted fp={fingerprint(v)}>" for v in valid}
    seen = [r for r in stack.demo.requests() if not r["public"]]
    reached = sum(o.reached for o in outcomes) + soak.probes_reached
    assert len(seen) == reached, (len(seen), reached)
    for record in seen:
        presented = [
            v for h in ("authorization", "x-api-key") for v in record["headers"].get(h, [])
        ]
        assert len(presented) == 1 and presented[0] in allowed, record
        assert "?" not in record["target"], record
