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
    """``{"resolved", "winner": {"source", "fingerprint"} | None, "sources": [...], "warnings"}``."""
    winner = res.winner
    return {
        "resolved": res.resolved,
        "winner": (
            {"source": winner.source, "fingerprint": winner.fingerprint}
            if winner is not None
            else None
        ),
        "sources": [
            {
                "source": r.source,
                "state": str(r.state),
                "fingerprint": r.fingerprint,
                "used": r is winner,
            }
            for r in res.readings
        ],
        "warnings": list(res.warnings),
    }


def _status(res: Shown, r: Reading, after_winner: bool) -> str:
    if r is res.winner:
        return "USED"
    if r is res.chosen:
        return "BLOCKED by conflict"
    if r.role is Role.MISPLACED:
        return "misplaced, not used"
    if r.role is Role.IGNORED:
        return "ignored by LiteLLM"
    if any(r is c for c in res.conflicts):
        return "shadowed, DIFFERENT key"
    if after_winner and r.digest is not None and res.chosen is not None:
        return "shadowed, same key" if r.digest == res.chosen.digest else "shadowed"
    if not after_winner and r.state in (State.WEAK, State.INVALID):
        return "refused"
    return ""


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    return lines


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
        rows.append(
            (str(n), r.source, str(r.state), r.fingerprint or "-", _status(res, r, after), r.detail)
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
            (e.name, r.source, str(r.state), r.fingerprint or "-", r.detail)
            for e in res.extras
            for r in e.readings
        ]
        extra_rows.extend(
            (b.name, b.source, "set", f"{len(b)} keys", b.detail) for b in res.batches
        )
        out.extend(
            "  " + line
            for line in _table(("NAME", "SOURCE", "STATE", "FINGERPRINT", "DETAIL"), extra_rows)
        )
    if res.warnings:
        out.append("warnings:")
        out.extend(f"  - {w}" for w in res.warnings)
    return "\n".join(out)
