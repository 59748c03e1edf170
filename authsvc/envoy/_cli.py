"""``authsvc envoy-config``: write the Envoy bootstrap that fronts the app.

Route policy (public paths, credential headers, whether keys go upstream) comes from the same
config authsvc runs with, so the two halves cannot drift; addresses come from flags.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from authsvc import _defaults
from authsvc._errors import ConfigError
from authsvc._worker_addresses import MAX_WORKERS, worker_addresses
from authsvc.config import load_config
from authsvc.envoy._bootstrap import build_bootstrap, render_yaml
from authsvc.envoy._options import EnvoyOptions

__all__ = ["configure", "policy_options", "run", "write_atomically"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="F",
        help="authsvc's config file: public paths, credential headers, forward_credentials "
        "(default: $AUTHSVC_CONFIG, else the built-in defaults)",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=_defaults.ENVOY_LISTEN,
        help="where Envoy accepts client traffic (default: %(default)s)",
    )
    parser.add_argument(
        "--upstream",
        metavar="HOST:PORT",
        default=f"127.0.0.1:{_defaults.APP_PORT}",
        help="the app Envoy fronts (default: %(default)s)",
    )
    parser.add_argument(
        "--authz",
        metavar="ADDR",
        action="extend",
        nargs="+",
        help="authsvc endpoint(s): HOST:PORT or unix:/path; repeat or list one per worker "
        f"(default: {_defaults.AUTHZ_LISTEN})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help=f"authsvc runs with 'serve --workers N' (1..{MAX_WORKERS}): list every worker's "
        "address, derived from --authz by the same rule serve uses (default: %(default)s)",
    )
    parser.add_argument(
        "--admin",
        metavar="HOST:PORT",
        default=_defaults.ENVOY_ADMIN,
        help="Envoy admin interface, loopback only (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=1.0,
        help="how long Envoy waits for a check before failing closed (default: %(default)s)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def policy_options(
    config_path: str | None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The ``EnvoyOptions`` fields that come from authsvc's own config.

    The one place the Envoy half reads that config: the same ``load_config`` as
    ``authsvc serve`` (``config_path`` ``None`` = ``$AUTHSVC_CONFIG``, else the built-in
    defaults), so public paths, credential headers and ``forward_credentials`` cannot drift.
    """
    config = load_config(config_path, environ=os.environ if environ is None else environ)
    policy = config.policy
    return {
        "public_paths": tuple(sorted(policy.public_paths)),
        "public_methods": tuple(sorted(policy.public_methods)),
        "credential_headers": tuple(
            dict.fromkeys(
                loc.name
                for loc in (*policy.locations, *policy.ws_locations)
                if loc.kind == "header"
            )
        ),
        "forward_credentials": config.forward_credentials,
        "session_cookie": policy.app_routes is not None,  # LiteLLM mode: the UI's token cookie
    }


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file + rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    try:
        opts = EnvoyOptions(
            listen=args.listen,
            upstream=args.upstream,
            authz=worker_addresses(args.authz or (_defaults.AUTHZ_LISTEN,), args.workers),
            admin=args.admin,
            authz_timeout=args.timeout,
            **policy_options(args.config),
        )
        text = render_yaml(build_bootstrap(opts))
        if args.output and args.output != "-":
            write_atomically(Path(args.output), text)
        else:
            sys.stdout.write(text)
    except (ConfigError, OSError) as exc:
        print(f"authsvc envoy-config: error: {exc}", file=sys.stderr)
        return 2
    return 0
