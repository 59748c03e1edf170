"""The Dockerfile, checked without a Docker engine: structure, user, build context, install steps."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from pathlib import Path

from tests.k8s._support import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_every_stage_is_slim_python() -> None:
    froms = [rest for word, rest in _instructions() if word == "FROM"]
    assert froms
    for rest in froms:
        assert re.match(r"python:3\.1[1-9]-slim(\s+AS\s+\w+)?$", rest, re.I), rest


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for word, rest in _final_stage() if word == "USER"]
    assert users, "no USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "numeric uid so runAsNonRoot can verify it"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    from authsvc.kube._options import AUTHSVC_UID

    assert int(uid) == AUTHSVC_UID, "the manifests' runAsUser is the image's user"


def test_entrypoint_is_the_cli() -> None:
    (entry,) = [rest for word, rest in _final_stage() if word == "ENTRYPOINT"]
    assert json.loads(entry) == ["authsvc"]


def test_installs_like_the_makefile_without_dev_extras() -> None:
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN")
    make = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in make and "-c constraints.txt ." in runs
    assert "[dev]" not in runs and " -e " not in runs


def _ignored(relative: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for the patterns used here: last match wins, '!' re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pat[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, pat) for prefix in prefixes)
        if hit:
            ignored = not negate
    return ignored


def test_build_context_holds_only_what_the_image_installs() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    context = {f for f in tracked if not _ignored(f, patterns)}
    assert context, "empty build context"
    for f in context:
        assert f in ("pyproject.toml", "constraints.txt", "README.md") or f.startswith(
            "authsvc/"
        ), f
        assert not re.search(r"\.(key|pem|p12|pfx|crt|env)$|(^|/)\.env", f, re.I), (
            f"{f} in the image"
        )
    # Everything COPY'd from the context is in it.
    for word, rest in _instructions():
        assert word != "ADD", "ADD fetches URLs and unpacks archives; use COPY"
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert any(
                    f == source or f.startswith(source.rstrip("/") + "/") for f in context
                ), source


def test_readme_the_package_metadata_names_is_copied() -> None:
    assert (ROOT / "README.md").exists()
    assert Path("README.md").name in DOCKERFILE.read_text()
