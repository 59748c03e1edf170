"""Install a pinned real LiteLLM proxy into its own virtualenv: ``.parity/venv-<version>``.

``litellm[proxy]==1.110.2`` does not resolve on every registry: its ``proxy`` extra requires
``litellm-proxy``, which is not published everywhere. So this installs the ``litellm`` wheel plus
every other requirement of its ``proxy`` extra, read from the wheel's own METADATA
(``Requires-Dist: ...; extra == "proxy"``), leaving out the names in ``UNRESOLVABLE``.

An exact pin the registry cannot satisfy (pip: "No matching distribution found for N==V";
1.110.2 pins post-releases ``litellm-enterprise==0.1.83.post1`` and
``litellm-proxy-extras==0.4.114.post1`` that not every mirror has) is relaxed to ``N<=V`` (the
newest release not after the pin) and, if that fails too, left out. Every such change is printed
and written to the stamp, so the table says exactly what ran. The
proxy's code is inside the ``litellm`` wheel itself (``litellm/proxy/``); the check at the end
imports ``litellm.proxy.proxy_server`` so a missing dependency fails here, not at the first run.

Idempotent: a finished install leaves a stamp naming the requirements it installed; a second
run with the same version does nothing. Usage::

    python -m parity.install [--version 1.110.2] [--root .parity]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DEFAULT_VERSION = "1.110.2"
# Requirements of the proxy extra that do not resolve on the registries this project uses.
UNRESOLVABLE = frozenset({"litellm-proxy"})
STAMP = ".parity-installed"


@dataclass(frozen=True)
class Plan:
    wheel: Path
    requirements: tuple[str, ...]  # the proxy extra's requirements, minus UNRESOLVABLE
    left_out: tuple[str, ...]


def _only_for_extra(marker: Marker | None, extra: str) -> bool:
    """True when ``marker`` holds for ``extra`` on this interpreter but not without it."""
    if marker is None:
        return False
    return marker.evaluate({"extra": extra}) and not marker.evaluate({"extra": ""})


def extra_requirements(metadata: str, extra: str = "proxy") -> tuple[list[str], list[str]]:
    """(kept, left out): the ``Requires-Dist`` lines of ``metadata`` that belong to ``extra`` on
    this interpreter, as requirement strings without markers."""
    kept: list[str] = []
    left_out: list[str] = []
    for line in metadata.splitlines():
        if line == "":
            break  # the headers end at the first blank line; the long description follows
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.removeprefix("Requires-Dist:").strip())
        if not _only_for_extra(req.marker, extra):
            continue
        req.marker = None
        (left_out if canonicalize_name(req.name) in UNRESOLVABLE else kept).append(str(req))
    return kept, left_out


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            raise SystemExit(f"{wheel.name}: expected one METADATA, found {len(names)}")
        return zf.read(names[0]).decode("utf-8")


def _run(argv: list[str], what: str) -> None:
    started = time.monotonic()
    done = subprocess.run(argv, check=False)
    if done.returncode != 0:
        raise SystemExit(f"parity install: {what} failed (exit {done.returncode})")
    print(f"parity install: {what}: {time.monotonic() - started:.1f} s", flush=True)


_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")


def relax(requirements: list[str], missing: str) -> tuple[list[str], str] | None:
    """``requirements`` with ``missing`` (pip's "No matching distribution found for ...")
    relaxed: ``N==V`` becomes ``N<=V``; anything else by that name is dropped. None when no
    requirement has that name (then there is nothing left to try)."""
    name = canonicalize_name(Requirement(missing).name)
    out: list[str] = []
    change = ""
    for text in requirements:
        req = Requirement(text)
        if canonicalize_name(req.name) != name:
            out.append(text)
            continue
        pins = [s for s in req.specifier if s.operator == "=="]
        if len(pins) == 1 and len(req.specifier) == 1:
            relaxed = f"{req.name}<={pins[0].version}"
            out.append(relaxed)
            change = f"{text} -> {relaxed}"
        else:
            change = f"{text} -> left out"
    return (out, change) if change else None


def pip_install(python: str, wheel: Path, requirements: list[str]) -> list[str]:
    """Install ``wheel`` and ``requirements`` (relaxing what the registry lacks, see the module
    doc); returns the changes made."""
    changes: list[str] = []
    reqs = list(requirements)
    for _ in range(2 * len(requirements) + 1):
        started = time.monotonic()
        done = subprocess.run(
            [python, "-m", "pip", "install", "-q", str(wheel), *reqs],
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            print(f"parity install: pip install: {time.monotonic() - started:.1f} s", flush=True)
            return changes
        found = _NOT_FOUND.search(done.stderr)
        step = relax(reqs, found.group(1)) if found else None
        if step is None:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise SystemExit(f"parity install: pip install failed (exit {done.returncode})")
        reqs, change = step
        changes.append(change)
        print(f"parity install: not on this registry: {change}", flush=True)
    raise SystemExit("parity install: pip install did not converge")


def venv_dir(root: Path, version: str) -> Path:
    return root / f"venv-{version}"


def install(version: str, root: Path) -> Path:
    """Install LiteLLM ``version`` under ``root``; returns the venv directory."""
    venv = venv_dir(root, version)
    stamp = venv / STAMP
    if stamp.is_file():
        print(f"parity install: litellm {version} already in {venv}", flush=True)
        return venv
    started = time.monotonic()
    if venv.exists():
        shutil.rmtree(venv)  # a half-finished earlier attempt
    _run([sys.executable, "-m", "venv", str(venv)], "create virtualenv")
    python = str(venv / "bin" / "python")
    wheels = root / f"wheels-{version}"
    wheels.mkdir(parents=True, exist_ok=True)
    download = [python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    _run([*download, "-d", str(wheels), f"litellm=={version}"], f"download litellm=={version}")
    found = sorted(wheels.glob(f"litellm-{version}-*.whl"))
    if not found:
        raise SystemExit(f"parity install: no litellm {version} wheel in {wheels}")
    kept, left_out = extra_requirements(wheel_metadata(found[-1]))
    print(f"parity install: proxy extra: {len(kept)} requirements; left out: {left_out}")
    changes = pip_install(python, found[-1], kept)
    # the import check must not reach out for the model cost map (no network needed, or used)
    offline = ["env", "LITELLM_LOCAL_MODEL_COST_MAP=True", "LITELLM_OFFLINE_MODE=true"]
    _run([*offline, python, "-c", "import litellm.proxy.proxy_server"], "import the proxy")
    notes = [f"# left out: {r}" for r in left_out] + [f"# relaxed: {c}" for c in changes]
    stamp.write_text("\n".join([f"litellm=={version}", *kept, *notes]) + "\n", encoding="utf-8")
    print(f"parity install: done in {time.monotonic() - started:.1f} s -> {venv}", flush=True)
    return venv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.install", description=__doc__)
    parser.add_argument("--version", default=DEFAULT_VERSION, help="LiteLLM version (PyPI)")
    parser.add_argument("--root", type=Path, default=Path(".parity"), help="where venvs live")
    args = parser.parse_args(argv)
    install(args.version or DEFAULT_VERSION, args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
