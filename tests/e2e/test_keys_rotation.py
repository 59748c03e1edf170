"""Issue 3 acceptance 3: key rotation through a real Envoy, with Secrets written as kubelet does.

The keys live in a Secret-style directory (``tests/_secretdir.py``: a new timestamped
directory, then a ``..data`` symlink renamed over the old one). The config's
``reload.poll_interval`` is 30 s, so what picks a swap up within 2 s is the directory watch.

1. The master key is rotated several times: each new key is accepted through Envoy within 2 s
   of the swap, and from then on the old one is refused. The latency (swap → first accepted
   request) is measured and printed.
2. Old and new side by side: an extra-keys ``file:`` goes ``A`` → ``A, B`` → ``B`` → ``B, C`` → …
   while client threads send requests continuously. A client switches to the new key only
   once it is accepted, as a rotating client does, so the key it holds is present before and
   after every swap: not one of its requests may fail. A thread with a never-valid key runs
   alongside: not one of its requests may pass.

"Accepted" means Envoy let the request through to the app (its echo is in the response) with
``x-authsvc-key-name`` naming the key. For the master key the demo app accepts it too (200 end
to end: its key file is rotated along); for extra keys the demo app, which knows only its master
key, answers its own 401 — like LiteLLM for a key it does not know — which is not authsvc's
decision.
"""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from pathlib import Path

from authsvc.keys import fingerprint
from authsvc.stack._children import wait_until
from tests._secretdir import SecretDir
from tests.e2e._harness import Launcher, Response, Stack, http_request, new_key

DEADLINE = 2.0  # acceptance 3: "within 2 s"
CONFIG = """\
master_key:
  sources:
    - file: secret/master
keys:
  - name: rotating
    file: secret/client-keys
reload:
  poll_interval: 30
"""


def setup(tmp: Path, master: str, client_keys: list[str]) -> tuple[Path, SecretDir]:
    secret = SecretDir(tmp / "secret", payload(master, client_keys))
    config = tmp / "authsvc.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return config, secret


def payload(master: str, client_keys: list[str]) -> dict[str, str]:
    lines = ["# one key per line: new and old side by side while clients move over"]
    return {"master": master + "\n", "client-keys": "\n".join([*lines, *client_keys]) + "\n"}


def call(stack: Stack, key: str, header: str = "x-api-key") -> Response:
    value = f"Bearer {key}" if header == "authorization" else key
    return http_request(stack.port, "GET", "/v1/models", {header: value}, timeout=5)


def accepted(r: Response, name: str) -> bool:
    return r.reached_upstream and r.echo["headers"].get("x-authsvc-key-name") == [name]


def refused(r: Response) -> bool:
    return r.status == 401 and r.deny_reason == "unknown_key"


def wait_for(stack: Stack, key: str, want: str, since: float, header: str = "x-api-key") -> float:
    """Poll until ``key`` is accepted as ``want`` (a key name) or refused (``want`` ``""``);
    the seconds since ``since``. Fails after ``DEADLINE``."""
    seen: list[Response] = []

    def probe() -> bool:
        r = call(stack, key, header)
        seen.append(r)
        return accepted(r, want) if want else refused(r)

    ok = wait_until(probe, DEADLINE + 1.0, interval=0.01)
    took = time.monotonic() - since
    assert ok and took < DEADLINE, f"not {want or 'refused'} within {DEADLINE}s: {seen[-1]}"
    return took


def test_master_key_rotation_is_live_within_two_seconds(procs: Launcher, tmp_path: Path) -> None:
    keys = [new_key(f"rotation-master-{i}") for i in range(4)]
    config, secret = setup(tmp_path, keys[0], [])
    stack = procs.config_stack(config, app_key=keys[0])
    assert call(stack, keys[0], "authorization").status == 200

    latencies = []
    for old, new in pairwise(keys):
        stack.demo.key_file.write_text(new + "\n")  # the app gets the same new key
        swapped = secret.rotate(payload(new, []))
        latencies.append(wait_for(stack, new, "master", swapped, "authorization"))
        r = call(stack, new, "authorization")
        assert r.status == 200 and accepted(r, "master"), r  # end to end: the app agrees
        assert refused(call(stack, old, "authorization")), "the old master key still passes"
    print(f"\nmaster key rotation: swap → accepted through Envoy in {fmt(latencies)}")

    reloads = [r for r in stack.authz.log_records() if r.get("phase") == "reload"]
    assert [r["fingerprint"] for r in reloads] == [fingerprint(k) for k in keys[1:]]
    assert_upstream_saw_only(stack, {f"Bearer {k}" for k in keys})


def assert_upstream_saw_only(stack: Stack, credentials: set[str]) -> None:
    """The app's request log (ground truth): every request that reached it carried one of
    ``credentials`` (header values; the log holds their fingerprints) and authsvc's key name."""
    allowed = {f"<redacted fp={fingerprint(c)}>" for c in credentials}
    for record in stack.demo.requests():
        if record["public"]:
            continue
        presented = [
            v for h in ("authorization", "x-api-key") for v in record["headers"].get(h, [])
        ]
        assert len(presented) == 1 and presented[0] in allowed, record
        assert len(record["headers"].get("x-authsvc-key-name", [])) == 1, record


def fmt(values: list[float]) -> str:
    shown = ", ".join(f"{v * 1000:.0f}" for v in values)
    return f"[{shown}] ms (max {max(values) * 1000:.0f} ms)"


class Client(threading.Thread):
    """Sends requests back to back with whatever key it holds; records every outcome as
    ``(key fingerprint, accepted, status, sent, answered)`` (monotonic times; a fingerprint,
    not the key, since failing assertions print these)."""

    def __init__(self, stack: Stack, key: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.stack, self.key, self.halt = stack, key, stop
        self.results: list[tuple[str, bool, int, float, float]] = []

    def run(self) -> None:
        while not self.halt.is_set():
            key, sent = self.key, time.monotonic()
            try:
                r = call(self.stack, key)
                outcome = (fingerprint(key), accepted(r, "rotating"), r.status)
            except OSError:
                outcome = (fingerprint(key), False, -1)
            self.results.append((*outcome, sent, time.monotonic()))
            time.sleep(0.005)  # pacing, so the 2 cores also serve the reload

    def sent_with(self, key: str) -> int:
        return sum(1 for r in list(self.results) if r[0] == fingerprint(key))

    def spans(self, start: float, end: float) -> int:
        """How many of its requests were under way at some moment between start and end."""
        return sum(1 for r in list(self.results) if r[3] <= end and r[4] >= start)


def test_overlapping_rotation_never_fails_a_client(procs: Launcher, tmp_path: Path) -> None:
    master = new_key("rotation-overlap-master")
    chain = [new_key(f"rotation-overlap-{i}") for i in range(4)]
    wrong = new_key("rotation-overlap-never-valid")
    config, secret = setup(tmp_path, master, chain[:1])
    stack = procs.config_stack(config, app_key=master)
    assert accepted(call(stack, chain[0]), "rotating")

    stop = threading.Event()
    clients = [Client(stack, chain[0], stop) for _ in range(2)]
    intruder = Client(stack, wrong, stop)
    for thread in [*clients, intruder]:
        thread.start()
    added, removed = [], []
    swaps: list[tuple[float, float]] = []  # (swap, seen through Envoy)
    try:
        for old, new in pairwise(chain):
            swapped = secret.rotate(payload(master, [old, new]))
            added.append(wait_for(stack, new, "rotating", swapped))
            swaps.append((swapped, swapped + added[-1]))
            for client in clients:  # the client moves over once the new key works ...
                client.key = new
            assert wait_until(lambda n=new: all(c.sent_with(n) for c in clients), 5)
            swapped = secret.rotate(payload(master, [new]))  # ... then the old one is removed
            removed.append(wait_for(stack, old, "", swapped))
            swaps.append((swapped, swapped + removed[-1]))
    finally:
        stop.set()
        for thread in [*clients, intruder]:
            thread.join(10)

    results = [r for c in clients for r in c.results]
    failures = [r for r in results if not r[1]]
    passed = [r for r in intruder.results if r[1] or r[2] != 401]
    print(
        f"\noverlapping rotation: {len(swaps)} swaps; {len(results)} requests with a held "
        f"key, {len(failures)} failed; {len(intruder.results)} with a never-valid key, "
        f"{len(passed)} not refused\n  new key accepted after {fmt(added)}"
        f"\n  old key refused after {fmt(removed)}"
    )
    assert failures == [], failures[:5]
    for start, end in swaps:  # requests really were running across every swap
        assert all(c.spans(start, end) for c in clients), (start, end)
    assert intruder.results and passed == [], passed[:5]
    assert_upstream_saw_only(stack, set(chain))
