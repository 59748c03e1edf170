"""``authsvc inject -f FILE|-``: add Envoy + authsvc to every pod template in a manifest.

Like ``istioctl kube-inject``: reads multi-document YAML, writes it back with the sidecars
added (other documents unchanged), e.g. ``authsvc inject -f app.yaml | kubectl apply -f -``.
A summary goes to stderr; errors name the document and field, and exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from authsvc._errors import ConfigError
from authsvc.kube import _options
from authsvc.kube._documents import inject_documents
from authsvc.kube._errors import InjectError
from authsvc.kube._yaml import dump_documents, load_documents

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        required=True,
        metavar="FILE",
        help="manifest to inject (multi-document YAML); '-' reads stdin",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write here instead of stdout (atomically)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    _options.add_arguments(parser)


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        with open(name, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read: {exc}") from exc


def _write(name: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(name))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".authsvc-inject-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, name)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot write: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    source = "<stdin>" if args.filename == "-" else args.filename
    try:
        options = _options.from_args(args)
        docs = load_documents(_read(args.filename), source)
        injected, outcome = inject_documents(docs, options)
    except ConfigError as exc:
        # Document errors get the input's name; read/parse/option errors carry their own.
        prefix = f"{source}: " if isinstance(exc, InjectError) else ""
        print(f"authsvc inject: {prefix}{exc}", file=sys.stderr)
        return 1
    text = dump_documents(injected)
    if args.output:
        try:
            _write(args.output, text)
        except ConfigError as exc:
            print(f"authsvc inject: {exc}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if not args.quiet:
        for label in outcome.injected:
            print(f"authsvc inject: injected {label}", file=sys.stderr)
        for line in outcome.skipped:
            print(f"authsvc inject: skipped {line}", file=sys.stderr)
        for line in outcome.changed:
            print(f"authsvc inject: changed {line}", file=sys.stderr)
        for line in outcome.warnings:
            print(f"authsvc inject: WARNING: {line}", file=sys.stderr)
        if not outcome.injected and not outcome.skipped:
            print(f"authsvc inject: {source}: no pod templates found", file=sys.stderr)
    return 0
