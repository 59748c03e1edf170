"""How a resolution is shown: the stable JSON report and the human table. Never a key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from authsvc.keymodel._reading import Reading, Role, State

__all__ = ["Shown", "render_table", "report"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Extra(_Named, Protocol):
    @property
    def readings(self) -> tuple[Reading, ...]: ...


class _Batch(_Named, Protocol):
    @property
    def source(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def names(self) -> int: ...  # distinct names of a keyed batch (virtual keys); else 0
    def __len__(self) -> int: ...


class Shown(Protocol):
    """What rendering needs from a resolution (structural: this module imports no resolver)."""

    @property
    def readings(self) -> tuple[Reading, ...]: ...
    @property
    def winner(self) -> Reading | None: ...
    @property
    def chosen(self) -> Reading | None: ...
    @property
    def conflicts(self) -> tuple[Reading, ...]: ...
    @property
    def extras(self) -> Sequence[_Extra]: ...
    @property
    def batches(self) -> Sequence[_Batch]: ...
    @property
    def warnings(self) -> tuple[str, ...]: ...
    @property
    def resolved(self) -> bool: ...
    @property
    def unready_reason(self) -> str: ...


def report(res: Shown) -> dict[str, object]:
    """The ``explain --json`` shape: everything the table shows, never a key.

    ``{"resolved", "winner": {"source", "fingerprint", "caution"} | None, "app_open",
    "sources": [{"source", "state", "fingerprint", "used", "outcome", "role", "detail",
    "note", "caution"}], "extra_keys": [...], "warnings"}``. ``outcome`` is one of
    ``OUTCOMES``; ``role`` is ``candidate``, ``ignored`` (by the app), ``misplaced`` or
    ``app_open``.
    """
    winner = res.winner
    sources: list[dict[str, object]] = []
    after = False
    for r in res.readings:
        sources.append(
            {
                "source": r.source,
                "state": str(r.state),
                "fingerprint": r.fingerprint,
                "used": r is winner,
                "outcome": _outcome(res, r, after),
                "role": str(r.role),
                "detail": r.detail,
                "note": r.note,
                "caution": r.caution,
            }
        )
        after = after or r is res.chosen
    return {
        "resolved": res.resolved,
        "winner": (
            {"source": winner.source, "fingerprint": winner.fingerprint, "caution": winner.caution}
            if winner is not None
            else None
        ),
        "app_open": any(r.role is Role.APP_OPEN for r in res.readings),
        "sources": sources,
        "extra_keys": [
            {
                "name": e.name,
                "source": r.source,
                "state": str(r.state),
                "fingerprint": r.fingerprint,
                "detail": r.detail,
                "caution": r.caution,
            }
            for e in res.extras
            for r in e.readings
        ]
        + [
            {
                "name": b.name,
                "source": b.source,
                "state": "set",
                "fingerprint": None,
                "detail": f"{len(b)} keys; {b.detail}",
                "caution": "",
            }
            for b in res.batches
        ],
        "warnings": list(res.warnings),
    }


OUTCOMES: dict[str, str] = {
    "used": "USED",
    "used_weak": "USED (weak: warned)",
    "blocked": "BLOCKED by conflict",
    "misplaced": "misplaced, not used",
    "ignored_by_app": "ignored by LiteLLM",
    "app_open": "THE APP IS OPEN",
    "conflict": "shadowed, DIFFERENT key",
    "shadowed_same": "shadowed, same key",
    "shadowed": "shadowed",
    "refused": "refused",
    "not_used": "",
}
"""Outcome codes (``explain --json``) and their words in the table."""


def _outcome(res: Shown, r: Reading, after_winner: bool) -> str:
    if r is res.winner:
        return "used_weak" if r.caution else "used"
    if r is res.chosen:
        return "blocked"
    if r.role is Role.APP_OPEN:
        return "app_open"
    if r.role is Role.MISPLACED:
        return "misplaced"
    if r.role is Role.IGNORED:
        return "ignored_by_app"
    if any(r is c for c in res.conflicts):
        return "conflict"
    if after_winner and r.digest is not None and res.chosen is not None:
        return "shadowed_same" if r.digest == res.chosen.digest else "shadowed"
    if not after_winner and (
        r.state in (State.WEAK, State.INVALID) or (r.state is State.SET and r.caution)
    ):
        return "refused"
    return "not_used"


def _status(res: Shown, r: Reading, after_winner: bool) -> str:
    return OUTCOMES[_outcome(res, r, after_winner)]


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    return lines


MAX_BATCH_ROWS = 5
"""A source of more batches than this (one per virtual key, say) is shown as one row."""


def _batch_rows(batches: Sequence[_Batch]) -> list[tuple[str, str, str, str, str]]:
    by_source: dict[str, list[_Batch]] = {}
    for b in batches:
        by_source.setdefault(b.source, []).append(b)
    rows: list[tuple[str, str, str, str, str]] = []
    for source, group in by_source.items():
        if len(group) <= MAX_BATCH_ROWS and not any(b.names for b in group):
            rows.extend((b.name, b.source, "set", f"{len(b)} keys", b.detail) for b in group)
            continue
        total = sum(len(b) for b in group)
        detail = next((b.detail for b in group if b.detail), "")
        # a summary batch holds no key; a keyed batch counts its distinct names
        named = sum(b.names or (1 if len(b) else 0) for b in group)
        rows.append((f"({named} names)", source, "set", f"{total} keys", detail))
    return rows


def render_table(res: Shown) -> str:
    """A table of the chain, in order: source, state, fingerprint, outcome, detail."""
    out: list[str] = []
    if res.winner is not None:
        out.append(
            f"master key: resolved from {res.winner.source} (fingerprint {res.winner.fingerprint})"
        )
    else:
        out.append(f"master key: NOT RESOLVED (fail closed): {res.unready_reason}")
    rows: list[tuple[str, ...]] = []
    after = False
    for n, r in enumerate(res.readings, start=1):
        detail = r.detail
        if r.caution:
            detail = f"{detail}; WEAK: {r.caution}"
        if r.note:
            detail = f"{detail} ({r.note})"
        rows.append(
            (str(n), r.source, str(r.state), r.fingerprint or "-", _status(res, r, after), detail)
        )
        after = after or r is res.chosen
    if rows:
        out.extend(
            "  " + line
            for line in _table(("#", "SOURCE", "STATE", "FINGERPRINT", "OUTCOME", "DETAIL"), rows)
        )
    if res.extras or res.batches:
        out.append("extra keys:")
        extra_rows = [
            (
                e.name,
                r.source,
                str(r.state),
                r.fingerprint or "-",
                f"{r.detail}; WEAK: {r.caution}" if r.caution else r.detail,
            )
            for e in res.extras
            for r in e.readings
        ]
        extra_rows.extend(_batch_rows(res.batches))
        out.extend(
            "  " + line
            for line in _table(("NAME", "SOURCE", "STATE", "FINGERPRINT", "DETAIL"), extra_rows)
        )
    if res.warnings:
        out.append("warnings:")
        out.extend(f"  - {w}" for w in res.warnings)
    return "\n".join(out)
