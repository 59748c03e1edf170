"""``authsvc explain``: show how the master key resolves, layer by layer (never the key).

Exit status: 0 when a usable master key resolved, 1 when not (fail closed), 2 when the
config is invalid (the message goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from authsvc._demo_hint import demo_key_hint
from authsvc._errors import ConfigError
from authsvc.config import load_config
from authsvc.keys._resolver import resolve

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: $AUTHSVC_CONFIG, else the built-in chain)",
    )
    parser.add_argument(
        "--master-key-file",
        metavar="FILE",
        help="as for 'serve': a key file placed first in the chain",
    )
    parser.add_argument("--json", action="store_true", help="print the stable JSON report")


def run(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    try:
        config = load_config(args.config, environ=environ, master_key_file=args.master_key_file)
    except ConfigError as exc:
        print(f"authsvc explain: {exc}", file=sys.stderr)
        return 2
    resolution = resolve(config, environ)
    if args.json:
        report = resolution.report()
        report["dry_run"] = config.dry_run
        print(json.dumps(report, indent=2))
    else:
        where = config.path or "built-in defaults (no config file)"
        print(f"config: {where}")
        print(resolution.render_table())
        print(DRY_RUN_ON if config.dry_run else DRY_RUN_OFF)
    if not resolution.resolved:
        hint = demo_key_hint("explain", args.master_key_file)
        if hint is not None:
            print(hint, file=sys.stderr)
    return 0 if resolution.resolved else 1


DRY_RUN_ON = (
    "dry-run: ON (dry_run: true in the config): requests that would be denied are ALLOWED "
    "and only recorded; set dry_run: false to enforce"
)
DRY_RUN_OFF = (
    "dry-run: off in this config (a running `serve --dry-run` says so on /readyz and in its log)"
)
