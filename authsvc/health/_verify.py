"""``authsvc verify --url URL [--config F] [--json]``: prove, from outside, through Envoy, that
probe paths are open, the protected health path is closed without a key or with a wrong one,
and open with the resolved master key. Exit 0 iff every check passes. Never prints the key.

The judging and printing are pure (``_verify_plan``); this module resolves the inputs from the
config and sends the requests.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from authsvc._demo_hint import demo_key_hint
from authsvc._errors import AuthsvcError
from authsvc.health._bypass import ENV_APP_PORT, ENV_POD_IPS, probe_port, target_from_env
from authsvc.health._deep import SupportsReveal, key_header, key_header_name
from authsvc.health._http import http_get, parse_url
from authsvc.health._verify_plan import (
    Credential,
    KeyInfo,
    Outcome,
    bypass_outcome,
    evaluate,
    not_run,
    plan,
    render_json,
    render_table,
    store_outcome,
)

__all__ = [
    "VerifyInputs",
    "configure",
    "inputs_from_config",
    "key_header_name",
    "run",
    "run_checks",
]

DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class VerifyInputs:
    """What verify needs, resolved from the config (or built directly by callers/tests)."""

    public_paths: tuple[str, ...]
    protected_path: str
    header: str  # the request header the master key is sent in
    master: tuple[SupportsReveal, KeyInfo] | None  # None: no usable master key resolved
    default_url: str
    stores: tuple[Outcome, ...] = ()  # the virtual-key store, read as serve reads it


def inputs_from_config(
    path: str | None, environ: Mapping[str, str], *, master_key_file: str | None = None
) -> VerifyInputs:
    """Load the config and resolve the master key exactly as ``authsvc serve`` would."""
    from authsvc.config import load_config
    from authsvc.keys import resolve

    config = load_config(path, environ=environ, master_key_file=master_key_file)
    resolution = resolve(config, environ)
    secret = resolution.master_secret()
    master: tuple[SupportsReveal, KeyInfo] | None = None
    if resolution.winner is not None and secret is not None:
        master = (secret, KeyInfo(resolution.winner.source, secret.fingerprint))
    policy = config.policy
    return VerifyInputs(
        public_paths=tuple(sorted(policy.public_paths)),
        protected_path=policy.protected_health_path,
        header=key_header_name(policy.locations),
        master=master,
        default_url=config.health_check.url,
        stores=_store_outcomes(resolution.ring.unknown_lookup),
    )


def _store_outcomes(lookup: object) -> tuple[Outcome, ...]:
    """The ``virtual_keys:`` store this process just read (none without the source)."""
    from datetime import UTC, datetime

    from authsvc.sources import Lookup

    if not isinstance(lookup, Lookup):
        return ()
    status = lookup.store.status
    if status.last_refresh is None or status.stale_since is not None:
        return (store_outcome(lookup.store_label, f"unreadable: {status.error}", False),)
    when = datetime.fromtimestamp(status.last_refresh, UTC).isoformat(timespec="seconds")
    state = (
        f"{status.keys} keys, {status.deprecated} rotated, {status.blocked_teams} blocked "
        f"teams, refreshed {when.replace('+00:00', 'Z')}"
    )
    return (store_outcome(lookup.store_label, state, True),)


def _wrong_key(master: str | None) -> str:
    while True:
        candidate = "sk-authsvc-verify-wrong-" + secrets.token_hex(16)
        if candidate != master:
            return candidate


def run_checks(
    inputs: VerifyInputs, url: str, *, timeout: float = DEFAULT_TIMEOUT
) -> list[Outcome]:
    """Send every planned check through ``url`` (Envoy) and judge the answers."""
    key = inputs.master[1] if inputs.master else None
    master_value = inputs.master[0].reveal() if inputs.master else None
    parse_url(url)  # raises ValueError naming the URL
    outcomes: list[Outcome] = []
    for check in plan(inputs.public_paths, inputs.protected_path):
        if check.credential is Credential.MASTER and master_value is None:
            outcomes.append(
                not_run(
                    check,
                    "no usable master key resolved",
                    "verify resolved no master key from this config/environment: run `authsvc explain`",
                )
            )
            continue
        headers: dict[str, str] = {}
        if check.credential is Credential.WRONG:
            headers = key_header(_wrong_key(master_value), inputs.header)
        elif check.credential is Credential.MASTER and master_value is not None:
            headers = key_header(master_value, inputs.header)
        answer = http_get(parse_url(url, check.path), headers, timeout=timeout)
        outcomes.append(evaluate(check, answer, url=url, key=key))
    return outcomes


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="Envoy's URL as clients reach it (default: health_check.url from the config, "
        "i.e. http://127.0.0.1:10000)",
    )
    parser.add_argument("--config", help="authsvc config file (default: $AUTHSVC_CONFIG)")
    parser.add_argument(
        "--master-key-file",
        help="as for `authsvc serve`: a file tried first in the master-key chain",
    )
    parser.add_argument(
        "--pod-ips",
        metavar="IP[,IP]",
        help=f"also check that the app port does not answer on these addresses (default "
        f"${ENV_POD_IPS}; in an injected pod: kubectl exec ... -c authsvc -- authsvc verify)",
    )
    parser.add_argument(
        "--app-port", type=int, metavar="N", help=f"the app's port (default ${ENV_APP_PORT})"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of checks")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per request (default 5)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        inputs = inputs_from_config(args.config, os.environ, master_key_file=args.master_key_file)
        url = args.url or inputs.default_url
        outcomes = [*inputs.stores, *run_checks(inputs, url, timeout=args.timeout)]
        target = target_from_env(os.environ, pod_ips=args.pod_ips, app_port=args.app_port)
        if target is not None:
            for ip, endpoint in zip(target.pod_ips, target.endpoints(), strict=True):
                reach = probe_port(ip, target.app_port, timeout=min(args.timeout, 5.0))
                outcomes.append(bypass_outcome(endpoint, reach.value))
    except (AuthsvcError, ValueError) as exc:
        print(f"authsvc verify: {exc}", file=sys.stderr)
        return 2
    key = inputs.master[1] if inputs.master else None
    if args.json:
        print(render_json(outcomes))
    else:
        sys.stdout.write(render_table(outcomes, url=url, key=key))
    if inputs.master is None:
        hint = demo_key_hint("verify", args.master_key_file)
        if hint is not None:
            print(hint, file=sys.stderr)
    return 0 if all(o.ok for o in outcomes) else 1
