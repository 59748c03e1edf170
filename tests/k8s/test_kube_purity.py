"""The pod transform is pure: the CLI and the HTTPS server are the only adapters."""

from __future__ import annotations

import ast
from pathlib import Path

import authsvc.kube

KUBE = Path(authsvc.kube.__file__).parent
PURE = [
    "_admission",
    "_documents",
    "_errors",
    "_inject",
    "_jsonpatch",
    "_options",
    "_probes",
    "_sidecars",
]
IO = (
    "os",
    "sys",
    "io",
    "socket",
    "ssl",
    "http",
    "subprocess",
    "threading",
    "logging",
    "pathlib",
    "shutil",
    "tempfile",
    "signal",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_transform_modules_do_no_io() -> None:
    for name in PURE:
        bad = {n for n in _imports(KUBE / f"{name}.py") if n.split(".")[0] in IO}
        assert not bad, f"authsvc/kube/{name}.py imports {bad}"
        assert not any(
            n.startswith(("authsvc.kube._webhook", "authsvc.kube._inject_cli"))
            for n in _imports(KUBE / f"{name}.py")
        )
