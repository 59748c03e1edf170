"""``Turns``: every peer with work left gets one turn per round; a peer's connections rotate.

The check flood of issue 20: one peer's 4 (or 500) busy connections must not get 4 (or 500)
times Envoy's share of the event loop. Sans-I/O: rounds are run by hand.
"""

from __future__ import annotations

from collections.abc import Callable

from authsvc.server._front_turns import Turns


class _Round:
    """Collects the callbacks ``Turns`` schedules (as ``loop.call_soon`` would)."""

    def __init__(self) -> None:
        self.scheduled: list[Callable[[], None]] = []

    def __call__(self, callback: Callable[[], None]) -> None:
        self.scheduled.append(callback)

    def run(self) -> None:
        callbacks, self.scheduled = self.scheduled, []
        for callback in callbacks:
            callback()


def _worker(log: list[str], name: str, turns_needed: int) -> Callable[[], bool]:
    left = [turns_needed]

    def turn() -> bool:
        log.append(name)
        left[0] -= 1
        return left[0] > 0

    return turn


def test_a_peer_with_four_connections_gets_one_turn_per_round_like_a_peer_with_one() -> None:
    soon, log = _Round(), []
    turns = Turns(soon)
    for i in range(4):
        turns.wait("attacker", _worker(log, f"a{i}", 3))
    turns.wait("envoy", _worker(log, "envoy", 2))
    assert turns.busy("attacker") and turns.busy("envoy") and not turns.busy("other")
    rounds = []
    while soon.scheduled:
        before = len(log)
        soon.run()
        rounds.append(log[before:])
    assert rounds[0] == ["a0", "envoy"]
    assert rounds[1] == ["a1", "envoy"]
    assert all(r == [f"a{i % 4}"] for i, r in enumerate(rounds[2:], start=2))
    assert sorted(log) == sorted([f"a{i}" for i in range(4)] * 3 + ["envoy"] * 2)
    assert not turns.busy("attacker") and not turns.busy("envoy")


def test_one_round_is_scheduled_at_a_time_and_none_when_idle() -> None:
    soon, log = _Round(), []
    turns = Turns(soon)
    turns.wait("p", _worker(log, "x", 1))
    turns.wait("q", _worker(log, "y", 1))
    assert len(soon.scheduled) == 1
    soon.run()
    assert log == ["x", "y"] and soon.scheduled == [] and turns.rounds == 1


def test_a_peer_that_arrives_mid_flood_is_served_in_the_next_round() -> None:
    soon, log = _Round(), []
    turns = Turns(soon)
    for i in range(100):
        turns.wait("attacker", _worker(log, f"a{i}", 50))
    soon.run()
    turns.wait("envoy", _worker(log, "envoy", 1))
    before = len(log)
    soon.run()
    assert log[before:] == ["a1", "envoy"]
