"""The deliberate-difference list (read from docs/litellm-parity.md), the summary and the
markdown table.

A deliberate entry is a row of the table between ``<!-- deliberate:begin -->`` and
``<!-- deliberate:end -->`` in the doc: ``| setup | request | reason |`` (``*`` for every request
of the setup; ``explain`` for the master-key row). Only a STRICTER outcome (authsvc refuses what
LiteLLM accepts) can be deliberate; a looser one never is, whatever the list says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from parity._verdict import Outcome, Row

BEGIN = "<!-- deliberate:begin -->"
END = "<!-- deliberate:end -->"
TABLE_BEGIN = "<!-- parity-table:begin -->"
TABLE_END = "<!-- parity-table:end -->"


@dataclass(frozen=True)
class Deliberate:
    setup: str
    request: str  # "*" = every request of the setup
    reason: str

    def matches(self, row: Row) -> bool:
        return self.setup == row.setup and self.request in ("*", row.request)


def read_deliberate(doc: Path) -> list[Deliberate]:
    if not doc.is_file():
        return []
    text = doc.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return []
    out: list[Deliberate] = []
    for line in text[start + len(BEGIN) : end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("setup", "") or set(cells[0]) <= {"-", ":"}:
            continue
        out.append(Deliberate(cells[0].strip("`"), cells[1].strip("`"), cells[2]))
    return out


def apply_deliberate(rows: Iterable[Row], listed: Sequence[Deliberate]) -> list[Row]:
    out = []
    for row in rows:
        stricter = Outcome.STRICTER in (row.check_outcome, row.stack_outcome)
        looser = Outcome.LOOSER in (row.check_outcome, row.stack_outcome)
        hit = next((d for d in listed if d.matches(row)), None)
        if hit is not None and stricter and not looser:
            row = replace(row, deliberate=hit.reason)
        out.append(row)
    return out


@dataclass(frozen=True)
class Summary:
    comparisons: int
    agree: int
    stricter: int
    looser: int
    errors: int
    deliberate: int  # stricter comparisons whose row is listed
    unlisted: int  # disagreements (or errors) not listed: the run fails when > 0

    def line(self) -> str:
        return (
            f"{self.comparisons} comparisons: {self.agree} agree, {self.stricter} stricter "
            f"(authsvc refuses what LiteLLM accepts; {self.deliberate} of them listed as "
            f"deliberate), {self.looser} looser (authsvc accepts what LiteLLM refuses), "
            f"{self.errors} without an answer; {self.unlisted} not listed as deliberate"
        )


def _outcomes(row: Row) -> list[Outcome]:
    return [row.check_outcome] + ([row.stack_outcome] if row.stack != "-" else [])


def summarize(rows: Sequence[Row]) -> Summary:
    counts = dict.fromkeys(Outcome, 0)
    deliberate = unlisted = 0
    for row in rows:
        for outcome in _outcomes(row):
            counts[outcome] += 1
            if outcome is Outcome.AGREE:
                continue
            if row.deliberate and outcome is Outcome.STRICTER:
                deliberate += 1
            else:
                unlisted += 1
    return Summary(
        comparisons=sum(counts.values()),
        agree=counts[Outcome.AGREE],
        stricter=counts[Outcome.STRICTER],
        looser=counts[Outcome.LOOSER],
        errors=counts[Outcome.ERROR],
        deliberate=deliberate,
        unlisted=unlisted,
    )


def _mark(outcome: Outcome, cell: str) -> str:
    if cell == "-":
        return "-"
    return cell if outcome is Outcome.AGREE else f"**{outcome.value.upper()}**: {cell}"


def _esc(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("|", "/")).strip()


def markdown(
    rows: Sequence[Row],
    summary: Summary,
    header: Sequence[str],
    setups: Sequence[tuple[str, str, str]],
) -> str:
    """``header`` lines, the setup index (id, covers, LiteLLM's state) and the row table."""
    lines = [*header, "", f"**{summary.line()}.**", "", "| setup | covers | LiteLLM |"]
    lines.append("|---|---|---|")
    lines += [f"| `{sid}` | {_esc(covers)} | {_esc(state)} |" for sid, covers, state in setups]
    lines += [
        "",
        "| setup | request | LiteLLM | authsvc Check | through Envoy | deliberate |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r.setup}` | {_esc(r.request)} | {_esc(r.litellm)} "
            f"| {_esc(_mark(r.check_outcome, r.check))} | {_esc(_mark(r.stack_outcome, r.stack))} "
            f"| {_esc(r.deliberate)} |"
        )
    return "\n".join(lines) + "\n"


def update_doc(doc: Path, table: str) -> bool:
    """Replace the text between the table markers of ``doc``; False if there are none."""
    text = doc.read_text(encoding="utf-8")
    start, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if start < 0 or end < start:
        return False
    new = text[: start + len(TABLE_BEGIN)] + "\n" + table + text[end:]
    doc.write_text(new, encoding="utf-8")
    return True
