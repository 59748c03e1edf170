"""Issue 14: a 100,000-key source reloaded under load, through a real Envoy.

A Secret volume (written as kubelet does, ``tests/_secretdir.py``) holds the master key and a
key list of 100,000 keys. Client threads send requests continuously, each with a key that
stays in the list; meanwhile the list is rewritten three times, each time replacing 1,000
keys. For each rewrite we wait until one of its new keys is accepted through Envoy (the new
ring is in place, swapped atomically), then:

- every client request, before, during and after every swap, was accepted (no valid request
  lost while 100,000 keys were re-read and the ring rebuilt);
- from that moment no removed key passes: a sample of them is refused at once, and an
  intruder thread cycling through ALL removed keys for the rest of the test is never accepted;
- the new keys are all accepted (a sample), and the ring holds 100,000 extra keys.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from pathlib import Path

from authsvc.keys import fingerprint
from authsvc.stack._children import wait_until
from tests._secretdir import SecretDir
from tests.e2e._harness import Launcher, Response, Stack, http_request, new_key

N = 100_000
ROTATE = 1_000
CONFIG = """\
master_key:
  sources:
    - file: secret/master
keys:
  - name: bulk
    file: secret/keys
reload:
  poll_interval: 30  # long: a rotation the watch misses fails the 20 s wait below
"""


def gen() -> str:
    return "sk-" + secrets.token_urlsafe(18)


def call(stack: Stack, key: str) -> Response:
    return http_request(stack.port, "GET", "/v1/models", {"x-api-key": key}, timeout=10)


def accepted(r: Response) -> bool:
    return r.reached_upstream and r.echo["headers"].get("x-authsvc-key-name") == ["bulk"]


def refused(r: Response) -> bool:
    return r.status == 401 and r.deny_reason == "unknown_key"


class Sender(threading.Thread):
    """Sends requests back to back with keys from ``pool`` (a list it may be given anew);
    records (key fingerprint, accepted, status, sent) per request."""

    def __init__(self, stack: Stack, pool: list[str], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.stack, self.pool, self.halt = stack, pool, stop
        self.results: list[tuple[str, bool, int, float]] = []

    def run(self) -> None:
        rng = random.Random()
        while not self.halt.is_set():
            pool = self.pool
            if not pool:
                time.sleep(0.01)
                continue
            key, sent = rng.choice(pool), time.monotonic()
            try:
                r = call(self.stack, key)
                outcome = (fingerprint(key), accepted(r), r.status)
            except OSError:
                outcome = (fingerprint(key), False, -1)
            self.results.append((*outcome, sent))
            time.sleep(0.003)


def test_reloading_100k_keys_under_load_loses_nothing_and_leaks_nothing(
    procs: Launcher, tmp_path: Path
) -> None:
    master = new_key("reload-100k-master")
    keys = [gen() for _ in range(N)]
    secret = SecretDir(
        tmp_path / "secret", {"master": master + "\n", "keys": "\n".join(keys) + "\n"}
    )
    config = tmp_path / "authsvc.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    stack = procs.config_stack(config, app_key=master)
    assert accepted(call(stack, keys[0])) and accepted(call(stack, keys[-1]))

    rng = random.Random(14)
    slots = rng.sample(range(N), 3 * ROTATE)
    rotating = set(slots)
    stable = [k for i, k in enumerate(keys) if i not in rotating]
    stop = threading.Event()
    clients = [Sender(stack, stable, stop) for _ in range(3)]
    intruder = Sender(stack, [], stop)
    for thread in [*clients, intruder]:
        thread.start()
    removed_all: list[str] = []
    seen_at: list[float] = []
    try:
        assert wait_until(lambda: all(len(c.results) > 20 for c in clients), 30)
        for round_ in range(3):
            batch = slots[round_ * ROTATE : (round_ + 1) * ROTATE]
            removed = [keys[i] for i in batch]
            for i in batch:
                keys[i] = gen()
            added = [keys[i] for i in batch]
            swapped = secret.rotate({"master": master + "\n", "keys": "\n".join(keys) + "\n"})
            assert wait_until(lambda a=added[0]: accepted(call(stack, a)), 20, interval=0.02), (
                f"round {round_}: a new key was not accepted within 20 s"
            )
            seen_at.append(time.monotonic() - swapped)
            for key in rng.sample(removed, 50):
                r = call(stack, key)
                assert refused(r), f"round {round_}: a removed key still passes: {r.status}"
            for key in rng.sample(added, 50):
                assert accepted(call(stack, key)), f"round {round_}: a new key is refused"
            removed_all.extend(removed)
            intruder.pool = list(removed_all)  # from now on none of these may pass
            time.sleep(1.0)
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in [*clients, intruder]:
            thread.join(15)

    results = [r for c in clients for r in c.results]
    failures = [r for r in results if not r[1]]
    leaked = [r for r in intruder.results if r[1] or r[2] != 401]
    print(
        f"\n100,000 keys, 3 rewrites of {ROTATE} keys: new keys accepted after "
        f"{', '.join(f'{s:.2f}' for s in seen_at)} s; {len(results)} requests with valid "
        f"keys, {len(failures)} failed; {len(intruder.results)} with removed keys, "
        f"{len(leaked)} not refused"
    )
    assert failures == [], failures[:5]
    assert leaked == [], leaked[:5]
    assert len(intruder.results) > 50, "the intruder hardly ran"
    reloads = [r for r in stack.authz.log_records() if r.get("phase") == "reload"]
    assert reloads and reloads[-1]["keys_loaded"] == N + 1
