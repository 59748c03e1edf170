"""Structural check: a key is only ever confirmed through a constant-time comparison.

Replacing ``hmac.compare_digest(a, b)`` by ``a == b`` changes no observable answer, so no
behavioural test can notice it; the timing property has to be checked on the code itself.
This test parses every module of the package (it imports none of them) and holds two rules:

1. The functions that confirm a key — ``KeyRing.lookup`` (every request) and ``Secret.__eq__``
   (config and reload) — call ``hmac.compare_digest`` (or ``secrets.compare_digest``) on
   digests; ``decide()`` finds its key record only through ``ring.lookup``.
2. Nowhere in the package is a digest, or a revealed key, compared with ``==``, ``!=``, ``in``
   or ``not in`` — except at the reviewed places listed in ``ALLOWED``, each of which compares
   two *configured* keys (never one a client sent) and says so.

A new comparison of digests fails rule 2 until it is either made constant-time or reviewed and
added to ``ALLOWED`` with its reason.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "authsvc"
CONSTANT_TIME = {("hmac", "compare_digest"), ("secrets", "compare_digest")}

ALLOWED: dict[tuple[str, str], tuple[int, str]] = {
    # (module, function): (how many such comparisons, why a timing difference reveals nothing)
    ("keymodel/_rule.py", "_extra_records"): (
        2,
        "an extra key's digest against the master's and the earlier extras': all configured",
    ),
    ("sources/_sha256.py", "reading"): (
        2,
        "a configured sha256: digest against the digests of the keys LiteLLM refuses and of the "
        "well-known weak keys: all from configuration or constants",
    ),
    ("keymodel/_render.py", "_outcome"): (
        1,
        "a shadowed layer's digest against the chosen one's, for the explain table (configured)",
    ),
    ("keys/_resolver.py", "_against_the_app"): (
        1,
        "the key LiteLLM itself uses against authsvc's winner: both read from configuration",
    ),
    ("keymodel/_rule.py", "resolve_readings"): (
        1,
        "later layers' digests against the winner's: all from configuration",
    ),
    ("keymodel/_rule.py", "_add_batches"): (
        4,
        "a batch's digests (configuration or LiteLLM's table) against the weak keys' and the "
        "master's",
    ),
    ("keymodel/_ring.py", "__contains__"): (
        3,
        "dict membership while a ring is built: the digests added come from configuration or "
        "LiteLLM's table (a client's digest is looked up with .get and compare_digest)",
    ),
    ("keymodel/_ring.py", "add"): (1, "a configured or stored digest against the ring being built"),
    ("keymodel/_ring.py", "build"): (
        2,
        "the master's digest against a source's keyed map (LiteLLM's table) while building",
    ),
    ("keymodel/_ring.py", "__init__"): (1, "configured records against each other (first wins)"),
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "_proto" not in p.parts)


def _is_digest_like(node: ast.expr) -> bool:
    """A digest value: ``digest``/``x_digest`` names, ``.digest`` attributes, ``digest(...)``
    and ``h.digest()`` calls, or a revealed key (``s.reveal()``)."""
    if isinstance(node, ast.Name):
        return node.id == "digest" or node.id.endswith("_digest")
    if isinstance(node, ast.Attribute):
        return node.attr == "digest" or node.attr.endswith("_digest")
    if isinstance(node, ast.Call):
        return _is_digest_like(node.func) or (
            isinstance(node.func, ast.Attribute) and node.func.attr == "reveal"
        )
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_is_digest_like(e) for e in node.elts)
    return False


class _Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.function = "<module>"
        self.comparisons: list[tuple[str, int, str]] = []
        self.calls: dict[str, set[tuple[str, str]]] = {}

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            self.calls.setdefault(self.function, set()).add((func.value.id, func.attr))
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            if isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) and (
                _is_digest_like(left) or _is_digest_like(right)
            ):
                self.comparisons.append((self.function, node.lineno, ast.unparse(node)))
        self.generic_visit(node)


def _scan(path: Path) -> _Finder:
    finder = _Finder()
    finder.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return finder


def test_the_scanner_sees_a_non_constant_time_comparison() -> None:
    """The rule can fail: the mutant ``compare_digest`` → ``==`` is reported."""
    source = (
        "def lookup(self, key_digest):\n"
        "    record = self._by_digest.get(key_digest)\n"
        "    if record is not None and record.digest == key_digest:\n"
        "        return record\n"
    )
    finder = _Finder()
    finder.visit(ast.parse(source))
    assert [(f, line) for f, line, _ in finder.comparisons] == [("lookup", 3)]
    assert ("hmac", "compare_digest") not in finder.calls.get("lookup", set())
    assert _is_digest_like(ast.parse("s.reveal()", mode="eval").body)
    assert not _is_digest_like(ast.parse("name", mode="eval").body)


@pytest.mark.parametrize(
    ("module", "function"),
    [("keymodel/_ring.py", "lookup"), ("keymodel/_secret.py", "__eq__")],
)
def test_key_confirmation_calls_compare_digest(module: str, function: str) -> None:
    calls = _scan(PACKAGE / module).calls.get(function, set())
    assert calls & CONSTANT_TIME, f"{module}:{function} does not call hmac.compare_digest"


def test_decide_finds_keys_only_through_the_ring_lookup() -> None:
    finder = _scan(PACKAGE / "authz" / "_decide.py")
    assert ("ring", "lookup") in finder.calls.get("decide", set())
    assert not finder.comparisons, finder.comparisons


def test_no_digest_is_compared_with_eq_outside_the_reviewed_places() -> None:
    found: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], list[str]] = {}
    for path in _modules():
        module = path.relative_to(PACKAGE).as_posix()
        for function, line, text in _scan(path).comparisons:
            found[(module, function)] += 1
            where.setdefault((module, function), []).append(f"{module}:{line}: {text}")
    unreviewed = {k: where[k] for k, n in found.items() if k not in ALLOWED or ALLOWED[k][0] != n}
    assert not unreviewed, (
        "digest or key compared with ==/in (not constant time); use hmac.compare_digest, or "
        f"review it and add it to ALLOWED with its reason: {unreviewed}"
    )
    stale = set(ALLOWED) - set(found)
    assert not stale, f"ALLOWED lists places that no longer compare digests: {stale}"
