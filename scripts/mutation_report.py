"""Summarise the last ``mutmut run`` (``make mutate``) and check every survivor has a reason.

Reads what mutmut 3 leaves in ``mutants/`` — ``<module>.py.meta`` (exit code per mutant) and
the mutated module itself (the original function and each mutant as separate functions) — so
it needs no mutmut import and works on any run, complete or partial.

Prints, per module, the mutants and how they ended, then every surviving mutant as the line it
changes, with its reason from ``tests/mutation_reasons.toml`` (keyed by module, function and
the mutated line, so a reason survives renumbering). ``--write docs/testing.md`` replaces the
generated block of that file (between the ``mutation-report`` markers) with the same text.

Exit status 1 when a survivor in a STRICT module has no written reason, or when mutants of a
STRICT module were not checked (an interrupted run); 0 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import sys
import textwrap
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
REASONS = ROOT / "tests" / "mutation_reasons.toml"
STRICT = (
    "authsvc/authz/_decide.py",
    "authsvc/authz/_credentials.py",
    "authsvc/authz/_ui_session.py",
)
BEGIN, END = "<!-- mutation-report:begin -->", "<!-- mutation-report:end -->"

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
STATUS.update(dict.fromkeys((36, 24, -24, 152, 255), "timeout"))
STATUS[37] = "type check"
COLUMNS = ("killed", "survived", "no tests", "timeout", "not checked", "other")
_NAME = re.compile(r"^(?P<module>.+)\.x(?:ǁ(?P<cls>[^ǁ]+)ǁ|_)(?P<func>.+)__mutmut_(?P<n>\d+)$")


@dataclass(frozen=True)
class Survivor:
    module: str  # authsvc/authz/_decide.py
    function: str  # decide, Policy.__post_init__
    name: str  # mutmut's mutant name
    removed: tuple[str, ...]
    added: tuple[str, ...]

    @property
    def change(self) -> str:
        """``old → new``, each side's lines whitespace-trimmed and joined with a space."""
        old = " ".join(line.strip() for line in self.removed)
        new = " ".join(line.strip() for line in self.added) or "(removed)"
        return f"{old} → {new}"

    @property
    def key(self) -> str:
        """The reason key: the function and the change (stable when mutmut renumbers)."""
        return f"{self.function}: {self.change}"


def _status(code: int | None) -> str:
    if code is None:
        return "not checked"
    return STATUS.get(code, "other")


def _functions(source: str) -> dict[str, str]:
    """Every function's source by name (mutmut's mangled names are unique in a module)."""
    tree = ast.parse(source)
    return {
        node.name: textwrap.dedent(ast.get_source_segment(source, node) or "")
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _body_lines(source: str) -> list[str]:
    lines = source.splitlines()
    return lines[1:] if lines else []  # the def line carries the mangled name


def _diff(original: str, mutant: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    removed: list[str] = []
    added: list[str] = []
    for line in difflib.unified_diff(_body_lines(original), _body_lines(mutant), lineterm="", n=0):
        if line.startswith(("---", "+++", "@@")):
            continue
        (removed if line.startswith("-") else added).append(line[1:])
    return tuple(removed), tuple(added)


def _mangled(cls: str | None, func: str, suffix: str) -> str:
    return f"xǁ{cls}ǁ{func}__mutmut_{suffix}" if cls else f"x_{func}__mutmut_{suffix}"


def collect() -> tuple[dict[str, Counter[str]], list[Survivor]]:
    counts: dict[str, Counter[str]] = {}
    survivors: list[Survivor] = []
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        source_path = meta.with_suffix("")  # drop ".meta"
        module = source_path.relative_to(MUTANTS).as_posix()
        counts[module] = Counter(_status(code) for code in codes.values())
        functions = _functions(source_path.read_text(encoding="utf-8"))
        for name, code in sorted(codes.items(), key=lambda kv: _sort_key(kv[0])):
            if _status(code) != "survived":
                continue
            m = _NAME.match(name)
            if m is None:
                survivors.append(Survivor(module, name, name, (), ()))
                continue
            cls, func = m["cls"], m["func"]
            original = functions.get(_mangled(cls, func, "orig"), "")
            mutant = functions.get(_mangled(cls, func, m["n"]), "")
            removed, added = _diff(original, mutant)
            function = f"{cls}.{func}" if cls else func
            survivors.append(Survivor(module, function, name, removed, added))
    return counts, survivors


def _sort_key(name: str) -> tuple[str, int]:
    m = _NAME.match(name)
    return (name, 0) if m is None else (name.rsplit("__mutmut_", 1)[0], int(m["n"]))


def load_reasons() -> dict[str, dict[str, str]]:
    if not REASONS.exists():
        return {}
    data = tomllib.loads(REASONS.read_text(encoding="utf-8"))
    return {module: dict(entries) for module, entries in data.items()}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(counts: dict[str, Counter[str]], survivors: list[Survivor]) -> tuple[str, list[str]]:
    reasons = load_reasons()
    problems: list[str] = []
    out = ["| module | mutants | " + " | ".join(COLUMNS) + " |"]
    out.append("|---" * (len(COLUMNS) + 2) + "|")
    total: Counter[str] = Counter()
    for module, c in counts.items():
        total.update(c)
        cells = " | ".join(str(c[col]) for col in COLUMNS)
        out.append(f"| `{module}` | {sum(c.values())} | {cells} |")
        if module in STRICT and c["not checked"]:
            problems.append(f"{module}: {c['not checked']} mutants not checked (interrupted run?)")
    cells = " | ".join(str(total[col]) for col in COLUMNS)
    out.append(f"| **all** | {sum(total.values())} | {cells} |")
    out += ["", "Surviving mutants (the line as mutated → why it survives):", ""]
    out.append("| module | function | mutant | reason |")
    out.append("|---|---|---|---|")
    used: set[tuple[str, str]] = set()
    for s in survivors:
        reason = reasons.get(s.module, {}).get(s.key)
        if reason is None:
            reason = "**no reason written yet** (add a test or a reason)"
            if s.module in STRICT:
                problems.append(f"{s.module}: {s.name} has no reason: {s.key}")
        else:
            used.add((s.module, s.key))
        out.append(f"| `{s.module}` | `{s.function}` | `{_cell(s.change)}` | {_cell(reason)} |")
    stale = [
        f"{module}: {key}"
        for module, entries in reasons.items()
        for key in entries
        if (module, key) not in used
    ]
    if stale:
        out += ["", "Reasons in tests/mutation_reasons.toml that matched no survivor this run:"]
        out += [f"- `{_cell(s)}`" for s in stale]
    return "\n".join(out) + "\n", problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="MARKDOWN", help="replace the generated block there")
    parser.add_argument(
        "--missing",
        action="store_true",
        help="print TOML entries (reason left empty) for survivors that have no reason yet",
    )
    args = parser.parse_args(argv)
    if not MUTANTS.is_dir():
        print("no mutants/ directory: run `make mutate` first", file=sys.stderr)
        return 2
    counts, survivors = collect()
    if args.missing:
        reasons = load_reasons()
        module = None
        for s in survivors:
            if s.key in reasons.get(s.module, {}):
                continue
            if s.module != module:
                module = s.module
                print(f"\n[{json.dumps(module)}]")
            print(f'{json.dumps(s.key, ensure_ascii=False)} = ""')
        return 0
    text, problems = render(counts, survivors)
    print(text, end="")
    if args.write:
        path = Path(args.write)
        doc = path.read_text(encoding="utf-8")
        start, end = doc.find(BEGIN), doc.find(END)
        if start < 0 or end < start:
            print(f"{path}: no {BEGIN} ... {END} block", file=sys.stderr)
            return 2
        path.write_text(doc[: start + len(BEGIN)] + "\n" + text + doc[end:], encoding="utf-8")
    for problem in problems:
        print(f"mutation report: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
