"""envoy/*.yaml are generated: regenerate them here and fail if the committed copies are stale.

Set AUTHSVC_REGENERATE=1 to rewrite them instead (then commit the result).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authsvc.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES: dict[str, list[str]] = {
    "envoy-tcp.yaml": [],
    "envoy-unix.yaml": ["--authz", "unix:/var/run/authsvc/authz.sock"],
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_bootstrap_is_fresh(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTHSVC_CONFIG", raising=False)
    fresh = tmp_path / name
    assert main(["envoy-config", *EXAMPLES[name], "-o", str(fresh)]) == 0
    committed = ROOT / "envoy" / name
    if os.environ.get("AUTHSVC_REGENERATE") == "1":
        committed.write_bytes(fresh.read_bytes())
    assert committed.exists(), f"{committed} is missing; run with AUTHSVC_REGENERATE=1"
    assert committed.read_bytes() == fresh.read_bytes(), (
        f"{committed.relative_to(ROOT)} is stale; regenerate with "
        f"`authsvc envoy-config {' '.join(EXAMPLES[name])} -o envoy/{name}` "
        "or AUTHSVC_REGENERATE=1"
    )


def test_readme_documents_every_example() -> None:
    readme = (ROOT / "envoy" / "README.md").read_text(encoding="utf-8")
    for name, args in EXAMPLES.items():
        assert f"authsvc envoy-config {' '.join([*args, '-o', f'envoy/{name}'])}" in readme
    on_disk = {p.name for p in (ROOT / "envoy").glob("*.yaml")}
    assert on_disk == set(EXAMPLES), "every file in envoy/ must be a generated example"
