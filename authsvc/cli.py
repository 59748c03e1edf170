"""Command-line entry point: parse, then hand over to the command's module.

Each command lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``;
only the chosen command's module is imported, so ``authsvc explain`` never loads gRPC.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from authsvc._version import __version__

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("authsvc.server._cli", "run the ext_authz gRPC server (and its status port)"),
    "explain": ("authsvc.keys._explain", "show how the master key resolves, layer by layer"),
    "envoy-config": ("authsvc.envoy._cli", "write the Envoy bootstrap that fronts the app"),
    "up": ("authsvc.stack._cli", "run Envoy + authsvc + a demo upstream locally"),
    "demo-upstream": ("authsvc.stack._demo", "run the LiteLLM-like demo upstream"),
    "verify": ("authsvc.health._verify", "prove, through Envoy, that auth and health routes work"),
    "inject": ("authsvc.kube._inject_cli", "add Envoy + authsvc sidecars to Kubernetes manifests"),
    "webhook": ("authsvc.kube._webhook", "serve the pod-injection admission webhook"),
}


ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("AUTHSVC_CONFIG", "config file when --config is not given"),
    ("AUTHSVC_MASTER_KEY", "the master key (first of the built-in chain)"),
    ("AUTHSVC_MASTER_KEY_FILE", "a file holding the master key (second)"),
    ("LITELLM_MASTER_KEY", "LiteLLM's variable (third)"),
    ("AUTHSVC_ENVOY", "Envoy binary for up/bench (path or command name)"),
    ("ENVOY_BIN", "the same, used when AUTHSVC_ENVOY is unset"),
)
"""The variables a user may set, shown by ``authsvc --help``."""


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authsvc",
        description="Envoy ext_authz sidecar with layered master-key resolution.",
        epilog="commands:\n"
        + "\n".join(f"  {name:<14} {helptext}" for name, (_, helptext) in COMMANDS.items())
        + "\n\nenvironment:\n"
        + "\n".join(f"  {name:<24} {text}" for name, text in ENVIRONMENT)
        + "\n\nRun 'authsvc COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"authsvc {__version__}")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        _top_parser().parse_args(args[:1] or ["--help"])
        return 2  # pragma: no cover - parse_args exits
    name = args[0]
    module_name, helptext = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"authsvc {name}", description=helptext)
    module.configure(parser)
    ns = parser.parse_args(args[1:])
    try:
        code = int(module.run(ns))
        sys.stdout.flush()  # a closed pipe fails here, inside the handler, not at exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `authsvc verify --json | head`: the reader left; no traceback
        _silence_stdout()
        return 141  # 128 + SIGPIPE, what a tool killed by the signal reports


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
