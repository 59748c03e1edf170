"""Boundaries the design depends on, enforced."""

from __future__ import annotations

import ast
from pathlib import Path

import authsvc

PKG = Path(authsvc.__file__).parent
PURE = [PKG / "authz", PKG / "keymodel"]  # also an import-linter contract (pyproject.toml)
FORBIDDEN = ("grpc", "google.protobuf", "google.rpc", "authsvc._proto", "authsvc.server")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_decision_core_imports_no_grpc_or_protobuf() -> None:
    assert all(root.is_dir() for root in PURE)
    files = [p for root in PURE for p in root.rglob("*.py")]
    assert files
    for file in files:
        bad = {n for n in _imports(file) if n.startswith(FORBIDDEN)}
        assert not bad, f"{file.relative_to(PKG)} imports {bad}"


def test_no_module_is_oversized() -> None:
    for file in PKG.rglob("*.py"):
        if "_proto" in file.parts:
            continue
        lines = len(file.read_text().splitlines())
        assert lines <= 450, f"{file.relative_to(PKG)} has {lines} lines; split it"


def test_serving_without_virtual_keys_never_loads_the_postgres_driver() -> None:
    """psycopg and libpq cost ~12 MB of RSS in every process that loads them (issue #14
    measured the serving process at 90 MB instead of 79 after the virtual-key merge): only a
    config with ``virtual_keys:`` may pay for them, at its first connection."""
    import subprocess
    import sys

    probe = (
        "import sys, authsvc.cli, authsvc.server._cli, authsvc.keys, authsvc.sources;"
        "from authsvc.server import _cli;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_binary')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout
