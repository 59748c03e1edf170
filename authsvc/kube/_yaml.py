"""Multi-document YAML in and out, the way kubectl reads it (adapter: errors become ConfigError).

Differences from plain ``yaml.safe_load_all``: timestamps stay strings (Kubernetes fields are
strings; kubectl does not turn ``2024-01-01`` into a date), a bare ``=`` is a string, empty
documents are dropped. Output keeps key order, never uses anchors, and writes multi-line
strings (ConfigMap data, scripts) as ``|`` blocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from authsvc._errors import ConfigError

__all__ = ["dump_documents", "load_documents"]


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_constructor(
    "tag:yaml.org,2002:value",
    lambda loader, node: loader.construct_scalar(node),  # type: ignore[arg-type]
)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def load_documents(text: str, source: str) -> list[Any]:
    """Every non-empty document of ``text``; ``source`` names the input in errors."""
    try:
        return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: invalid YAML{at}: {problem}") from exc


def dump_documents(docs: Iterable[Any]) -> str:
    """``---``-separated YAML, one document per object."""
    return yaml.dump_all(
        list(docs),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        explicit_start=True,
        allow_unicode=True,
        width=4096,
    )
