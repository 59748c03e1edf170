"""Run the parity table: for every setup of parity/scenarios.yaml, the real LiteLLM, authsvc's
Check and the whole stack (Envoy -> authsvc -> LiteLLM) answer the same requests.

Exit status: 0 when every disagreement is listed as deliberate in docs/litellm-parity.md, 1
otherwise (also when a row got no answer), 2 on a usage error; with ``--report-only`` (CI until
#13's fixes land) unlisted disagreements are printed but do not fail the run. The table (markdown) is
written to ``--out`` (default ``.parity/parity-<version>.md``); ``--update-doc`` also puts it
into docs/litellm-parity.md. Keys are generated for the run and never printed: the table names
them (A, B, WRONG...), the logs under ``.parity/run-<version>/`` are the processes' own.

    python -m parity.run [--litellm-version 1.110.2] [--jobs 3] [--only SETUP ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from parity import _procs
from parity._procs import Ports, Proc, base_env
from parity._report import apply_deliberate, markdown, read_deliberate, summarize, update_doc
from parity._send import CheckAnswer, HttpAnswer, send_check, send_http
from parity._table import Keys, Request, Setup, Table, TableError, load
from parity._verdict import (
    ACCEPT,
    REFUSE,
    Outcome,
    Row,
    check_cell,
    check_verdict,
    compare,
    litellm_cell,
    litellm_verdict,
    stack_verdict,
)
from parity.install import DEFAULT_VERSION, STAMP, venv_dir

ROOT = Path(__file__).resolve().parent.parent
LITELLM_START_TIMEOUT = 180.0


@dataclass
class Context:
    venv: Path
    run_dir: Path
    table: Table
    keys: Keys
    ports: Ports = field(default_factory=Ports)


@dataclass
class SetupResult:
    setup: Setup
    litellm_state: str
    rows: list[Row]
    seconds: float
    phases: dict[str, float]  # seconds from the setup's start to the end of each phase


def _redact(text: str, keys: Keys) -> str:
    for name, value in keys.secrets().items():
        text = text.replace(value, f"<{name}>")
    return text


def _prepare(setup: Setup, ctx: Context) -> tuple[Path, dict[str, str]]:
    workdir = ctx.run_dir / setup.id
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / "cfg.yaml").write_text(ctx.keys.fill(setup.config), encoding="utf-8")
    for name, text in setup.files:
        (workdir / name).write_text(ctx.keys.fill(text), encoding="utf-8")
    dotenv = _dotenv_dir(setup, ctx, workdir) / ".env"
    if setup.dotenv_where is not None:
        dotenv.write_text(ctx.keys.fill(setup.dotenv_text), encoding="utf-8")
    authsvc_config = setup.authsvc_config.replace("{{CFG}}", str(workdir / "cfg.yaml"))
    authsvc_config = authsvc_config.replace("{{DOTENV}}", str(dotenv))
    (workdir / "authsvc.yaml").write_text(ctx.keys.fill(authsvc_config), encoding="utf-8")
    env = base_env({k: ctx.keys.fill(v) for k, v in setup.env})
    return workdir, env


def _dotenv_dir(setup: Setup, ctx: Context, workdir: Path) -> Path:
    # venv-parent: the directory holding LiteLLM's virtualenv, on the path load_dotenv() walks
    # up from LiteLLM's package directory
    return ctx.venv.parent if setup.dotenv_where == "venv-parent" else workdir


def _litellm_key(setup: Setup, state: str, rows: Sequence[Row], keys: Keys) -> str:
    """What LiteLLM runs with, read off its answers to the ``keys`` request set."""
    if state != "ready":
        return state
    seen = {r.request: r.litellm.split(" ")[0] for r in rows}
    if seen.get("no key") == ACCEPT:
        return "open (no key)"
    accepted = [
        keys.label(c) for c in setup.candidates if seen.get(f"Bearer {keys.label(c)}") == ACCEPT
    ]
    if len(accepted) == 1:
        return accepted[0]
    return "several keys" if accepted else "a key no candidate matches"


def _explain_row(
    setup: Setup, litellm_key: str, code: int, data: dict[str, object], keys: Keys
) -> Row:
    winner = data.get("winner")
    fp = winner.get("fingerprint") if isinstance(winner, dict) else None
    ours = keys.name_of(fp if isinstance(fp, str) else None) if fp else None
    if fp and ours is None:
        ours = f"fingerprint {fp}"
    cell = f"key {ours}" if ours else f"no key (explain exit {code})"
    if litellm_key.startswith("refuses to start") or litellm_key == "exited":
        outcome = Outcome.AGREE if ours is None else Outcome.LOOSER
    elif litellm_key.startswith("timeout"):
        outcome = Outcome.ERROR
    elif ours is None:
        outcome = Outcome.STRICTER
    else:
        outcome = Outcome.AGREE if ours == litellm_key else Outcome.LOOSER
    shown = "refuses to start" if litellm_key == "exited" else litellm_key
    return Row(
        setup.id, "explain: master key", f"runs with: {shown}", cell, outcome, "-", Outcome.AGREE
    )


def run_setup(setup: Setup, ctx: Context) -> SetupResult:
    started = time.monotonic()
    workdir, env = _prepare(setup, ctx)
    lport, aport, sport, eport, admin = (ctx.ports.take() for _ in range(5))
    procs: list[Proc] = []
    try:
        litellm = _procs.start_litellm(ctx.venv, workdir, env, lport)
        procs.append(litellm)
        authsvc = _procs.start_authsvc(workdir, env, aport, sport)
        procs.append(authsvc)
        envoy, envoy_why = _procs.start_envoy(workdir, env, (eport, lport, aport, admin))
        if envoy is not None:
            procs.append(envoy)
        code, explained = _procs.explain(workdir, env)
        phases = {"explain": time.monotonic() - started}
        lstate = litellm.wait_ready(
            lambda: _procs.http_ok(lport, "/health/liveliness"), LITELLM_START_TIMEOUT
        )
        astate = authsvc.wait_ready(lambda: _procs.grpc_answers(aport), 60)
        estate = (
            envoy.wait_ready(lambda: _procs.http_ok(admin, "/ready"), 60) if envoy else envoy_why
        )
        if lstate == "exited":
            lstate = f"refuses to start (exit {litellm.exited()})"
        phases["ready"] = time.monotonic() - started
        rows = [
            _row(setup, req, lstate, astate, estate, (lport, aport, eport))
            for req in ctx.table.requests_of(setup, ctx.keys)
        ]
        rows.append(
            _explain_row(
                setup, _litellm_key(setup, lstate, rows, ctx.keys), code, explained, ctx.keys
            )
        )
        phases["requests"] = time.monotonic() - started
    finally:
        for proc in procs:
            proc.terminate()  # all at once: each stop() then waits for one already stopping
        for proc in reversed(procs):
            proc.stop()
        if setup.dotenv_where == "venv-parent":
            (_dotenv_dir(setup, ctx, workdir) / ".env").unlink(missing_ok=True)
    state = "runs" if lstate == "ready" else lstate
    phases["stopped"] = time.monotonic() - started
    return SetupResult(setup, state, rows, time.monotonic() - started, phases)


def _row(
    setup: Setup, req: Request, lstate: str, astate: str, estate: str, ports: tuple[int, int, int]
) -> Row:
    lport, aport, eport = ports
    if lstate == "ready":
        answer = send_http(req, lport)
        lverdict = litellm_verdict(answer)
        lcell = litellm_cell(answer, lverdict)
    elif lstate.startswith("refuses to start"):
        lverdict, lcell = REFUSE, lstate
    else:
        lverdict, lcell = "?", f"LiteLLM {lstate}"
    check = (
        send_check(req, aport, eport)
        if astate == "ready"
        else CheckAnswer(None, 0, f"authsvc {astate}")
    )
    stack = (
        send_http(req, eport) if estate == "ready" else HttpAnswer(0, {}, b"", f"Envoy {estate}")
    )
    sverdict, scell = stack_verdict(stack)
    if stack.status == 0:
        sverdict = "?"
    return Row(
        setup=setup.id,
        request=req.label,
        litellm=lcell,
        check=check_cell(check),
        check_outcome=compare(lverdict, check_verdict(check) if check.allowed is not None else "?"),
        stack=scell,
        stack_outcome=compare(lverdict, sverdict),
    )


def _stray_dotenv(venv: Path) -> Path | None:
    """A .env that LiteLLM's load_dotenv() would find walking up from its package: it would
    change every setup, so the run refuses to start."""
    found = sorted(venv.glob("lib/python*/site-packages/litellm/proxy"))
    here = found[0] if found else venv
    for directory in [here, *here.parents]:
        if (directory / ".env").is_file():
            return directory / ".env"
    return None


def _git_rev() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parity.run", description=__doc__)
    parser.add_argument("--litellm-version", default=DEFAULT_VERSION)
    parser.add_argument("--root", type=Path, default=ROOT / ".parity")
    parser.add_argument("--table", type=Path, default=ROOT / "parity" / "scenarios.yaml")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "litellm-parity.md")
    parser.add_argument("--out", type=Path, help="markdown table (default .parity/parity-V.md)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("PARITY_JOBS", "3")))
    parser.add_argument("--only", nargs="*", default=[], help="run only these setups")
    parser.add_argument("--update-doc", action="store_true", help="write the table into --doc")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="exit 0 despite unlisted disagreements (still 1 when a row has no answer)",
    )
    args = parser.parse_args(argv)
    version = args.litellm_version or DEFAULT_VERSION
    venv = venv_dir(args.root, version).resolve()
    if not (venv / STAMP).is_file():
        print(
            f"parity: LiteLLM {version} is not installed: python -m parity.install --version {version}"
        )
        return 2
    stray = _stray_dotenv(venv)
    if stray is not None:
        print(f"parity: {stray} would be loaded by every LiteLLM (load_dotenv); move it away")
        return 2
    try:
        table = load(args.table)
    except (TableError, OSError) as exc:
        print(f"parity: {args.table}: {exc}")
        return 2
    setups = [s for s in table.setups if not args.only or s.id in args.only]
    unknown = set(args.only) - {s.id for s in table.setups}
    if unknown:
        print(f"parity: unknown setup(s): {sorted(unknown)}")
        return 2
    ctx = Context(
        venv, args.root.resolve() / f"run-{version}", table, Keys.generate(table.literals)
    )
    started = time.monotonic()
    parallel = [s for s in setups if s.dotenv_where != "venv-parent"]
    alone = [s for s in setups if s.dotenv_where == "venv-parent"]
    results: list[SetupResult] = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for result in pool.map(lambda s: run_setup(s, ctx), parallel):
                _progress(result)
                results.append(result)
        for setup in alone:
            result = run_setup(setup, ctx)
            _progress(result)
            results.append(result)
    finally:
        _procs.stop_everything()
    elapsed = time.monotonic() - started
    order = {s.id: i for i, s in enumerate(table.setups)}
    results.sort(key=lambda r: order[r.setup.id])
    rows = apply_deliberate([row for r in results for row in r.rows], read_deliberate(args.doc))
    summary = summarize(rows)
    header = [
        f"LiteLLM {version} (PyPI, installed by `make parity`: {_install_notes(venv)}) against "
        f"authsvc `{_git_rev()}`; {len(results)} LiteLLM processes, run in {elapsed:.0f} s.",
    ]
    index = [(r.setup.id, r.setup.covers, r.litellm_state) for r in results]
    text = _redact(markdown(rows, summary, header, index), ctx.keys)
    out = args.out or args.root / f"parity-{version}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    if args.update_doc and not update_doc(args.doc, text):
        print(f"parity: {args.doc} has no table markers; table not written there")
    for row in rows:
        bad = [o for o in (row.check_outcome, row.stack_outcome) if o is not Outcome.AGREE]
        if bad and not row.deliberate:
            print(
                f"  NOT LISTED  {row.setup} / {row.request}: LiteLLM {row.litellm}; "
                f"Check {row.check}; Envoy {row.stack}"
            )
    print(f"parity: {summary.line()}")
    print(f"parity: table written to {out} ({elapsed:.0f} s)")
    if summary.errors:
        return 1
    if args.report_only and summary.unlisted:
        print("parity: --report-only: the disagreements above do not fail this run")
        return 0
    return 1 if summary.unlisted else 0


def _install_notes(venv: Path) -> str:
    notes = [
        line.removeprefix("# ")
        for line in (venv / STAMP).read_text(encoding="utf-8").splitlines()
        if line.startswith("# ")
    ]
    return "; ".join(notes) or "the proxy extra as published"


def _progress(result: SetupResult) -> None:
    bad = sum(
        1
        for r in result.rows
        if (r.check_outcome is not Outcome.AGREE or r.stack_outcome is not Outcome.AGREE)
        and not r.deliberate
    )
    print(
        f"parity: {result.setup.id:<24} LiteLLM {result.litellm_state:<28} "
        f"{len(result.rows):>3} rows, {bad} disagreeing ("
        + ", ".join(f"{k} {v:.0f}" for k, v in result.phases.items())
        + " s)",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
