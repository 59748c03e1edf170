"""The wire package stands alone: nothing from the rest of authsvc, and no I/O modules.

(The same rule as the import-linter contract "the wire package imports nothing from authsvc";
this test holds it on its own, indirect imports aside, so it cannot decay before that lands.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import authsvc.h2wire

PKG = Path(authsvc.h2wire.__file__).parent
IO_MODULES = ("socket", "asyncio", "selectors", "ssl", "threading", "os", "subprocess", "time")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            names.add(node.module or "")
    return names


def test_the_wire_package_imports_nothing_from_authsvc_and_does_no_io() -> None:
    files = sorted(PKG.glob("*.py"))
    assert len(files) >= 8
    for file in files:
        imports = _imports(file)
        foreign = {
            n for n in imports if n.startswith("authsvc") and not n.startswith("authsvc.h2wire")
        }
        assert not foreign, f"{file.name} imports {foreign}"
        io = {n for n in imports if n.split(".")[0] in IO_MODULES}
        assert not io, f"{file.name} imports {io}: the wire package is sans-I/O"


def test_the_checker_sees_a_foreign_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from authsvc.keys import KeyRing\nimport socket\n")
    assert _imports(bad) == {"authsvc.keys", "socket"}
