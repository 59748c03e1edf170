"""A strict reader over PyYAML's node tree: every value keeps its file and line.

``yaml.compose`` gives nodes with marks; we convert scalars ourselves, so a wrong type, an
unknown key or a duplicate key is a ``ConfigError`` that names the file, the line, the path
(``master_key.sources[1]``) and, for unknown keys, the nearest valid name. Messages never echo
values of secret fields, nor any text of the file that could be a key (``safe_problem``,
``shown``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from typing import NoReturn

import yaml

from authsvc._errors import ConfigError

__all__ = ["SHOWN_BELOW", "Reader", "compose", "safe_problem", "shown"]

_TAG = "tag:yaml.org,2002:"
_KIND = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "an empty value",
    "timestamp": "a timestamp",
    "binary": "binary data",
}

SHOWN_BELOW = 16
"""Text from the file this short is shown in messages: it cannot be a usable key (same as
``authsvc.keys.MIN_KEY_LENGTH``; a test keeps them equal). Longer text could be one."""

_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def shown(text: str) -> str:
    """``text`` itself when it is too short to be a key, else a placeholder."""
    return text if len(text) < SHOWN_BELOW else "[not shown]"


def safe_problem(exc: yaml.MarkedYAMLError) -> str:
    """The parser's complaint without any text of the file that could be a key.

    PyYAML quotes names from the file (``found undefined alias 'NAME'``, ``found duplicate
    anchor``, ``could not determine a constructor for the tag '!NAME'``); an unquoted key that
    starts with ``*``, ``&`` or ``!`` is parsed as exactly such a name.
    """
    problem = ": ".join(p for p in (exc.context, exc.problem) if p) or "syntax error"

    def quoted(match: re.Match[str]) -> str:
        inner = match.group(0)[1:-1]
        return match.group(0) if len(inner) < SHOWN_BELOW else "'[not shown]'"

    return _QUOTED.sub(quoted, problem)


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
"""libyaml's loader when PyYAML was built with it: ~6x faster on a config with 10,000 keys."""


def compose(text: str, filename: str) -> yaml.Node | None:
    """Parse ``text`` into a node tree; a syntax error names the file and line (no snippet).

    A file is parsed with libyaml when it is there. libyaml words its complaints differently
    and names nothing from the file (``found undefined alias``, no alias), so a file it
    rejects is parsed again with the pure-Python loader, whose verdict and message count:
    errors read the same with or without libyaml.
    """
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass  # the pure loader below gives the verdict and its message
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{mark.line + 1}" if mark is not None else "?"
        raise ConfigError(f"{filename}:{line}: invalid YAML: {safe_problem(exc)}") from None
    except yaml.YAMLError as exc:  # e.g. several documents in one file
        raise ConfigError(f"{filename}: invalid YAML: {type(exc).__name__}") from None


def describe(node: yaml.Node) -> str:
    """What kind of value a node holds, for messages ('a string', 'a list', ...)."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag
    if tag.startswith(_TAG):
        return _KIND.get(tag[len(_TAG) :], tag)
    return f"a value tagged {shown(tag)}"  # a custom tag: '!KEY' if a key starts with '!'


class Reader:
    """Typed accessors that raise ``ConfigError`` with ``file:line: path: message``."""

    def __init__(self, filename: str, known_paths: Mapping[str, tuple[str, ...]]) -> None:
        self.filename = filename
        self._known = known_paths  # key name -> every full path where it is valid

    def line(self, node: yaml.Node) -> int:
        return int(node.start_mark.line) + 1

    def fail(self, node: yaml.Node | None, path: str, message: str) -> NoReturn:
        where = f"{self.filename}:{self.line(node)}" if node is not None else self.filename
        prefix = f"{path}: " if path else ""
        raise ConfigError(f"{where}: {prefix}{message}")

    def mapping(
        self, node: yaml.Node, path: str, allowed: Collection[str]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping's entries by key; unknown or duplicate keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, path, f"expected a mapping, got {describe(node)}")
        self._plain(node, path, "map")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self.fail(key_node, path, "YAML merge keys ('<<') are not supported")
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _TAG + "str":
                self.fail(key_node, path, f"keys must be plain names, got {describe(key_node)}")
            key = str(key_node.value)
            if key not in allowed:
                self._unknown(key_node, key, path, allowed)
            if key in out:
                first = self.line(out[key][0])
                self.fail(key_node, path, f"duplicate key {key!r} (first set on line {first})")
            out[key] = (key_node, value_node)
        return out

    def _plain(self, node: yaml.Node, path: str, kind: str) -> None:
        if node.tag != _TAG + kind:
            tag = node.tag if node.tag.startswith(_TAG) else shown(node.tag)
            self.fail(node, path, f"unsupported YAML tag {tag!r}")

    def _unknown(self, node: yaml.Node, key: str, path: str, allowed: Collection[str]) -> NoReturn:
        under = path or "top level"
        here = f"{path}.{key}" if path else key
        elsewhere = [p for p in self._known.get(key, ()) if p != here]
        if elsewhere:
            hint = f"; it belongs at {' or '.join(elsewhere)}"
        else:
            close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6) or [
                name for name in sorted(allowed) if name.startswith(key) or key.startswith(name)
            ]
            if close:
                hint = f"; did you mean {close[0]!r}?"
            else:
                hint = f"; valid keys here: {', '.join(sorted(allowed))}"
        where = f"{self.filename}:{self.line(node)}"
        raise ConfigError(f"{where}: unknown key {key!r} under {under}{hint}")

    def sequence(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, path, f"expected a list, got {describe(node)}")
        self._plain(node, path, "seq")
        return list(node.value)

    def _scalar(self, node: yaml.Node, path: str, kinds: tuple[str, ...], want: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in {_TAG + k for k in kinds}:
            self.fail(node, path, f"expected {want}, got {describe(node)}")
        return str(node.value)

    def string(self, node: yaml.Node, path: str) -> str:
        """A string. A number or boolean where a string is wanted must be quoted."""
        return self._scalar(node, path, ("str",), "a string (quote it)")

    def text(self, node: yaml.Node, path: str) -> str:
        """A string that may look like another scalar (timestamps, numbers): its raw text."""
        return self._scalar(node, path, ("str", "timestamp", "int", "float"), "a string")

    def boolean(self, node: yaml.Node, path: str) -> bool:
        raw = self._scalar(node, path, ("bool",), "true or false").lower()
        return raw in ("true", "yes", "on")

    def integer(self, node: yaml.Node, path: str, *, low: int, high: int) -> int:
        self._scalar(node, path, ("int",), "an integer")
        value = int(yaml.constructor.SafeConstructor().construct_object(node))
        if not low <= value <= high:
            self.fail(node, path, f"must be between {low} and {high}, got {value}")
        return value

    def seconds(self, node: yaml.Node, path: str, *, low: float, high: float) -> float:
        self._scalar(node, path, ("int", "float"), "a number of seconds")
        value = float(yaml.constructor.SafeConstructor().construct_object(node))
        if not low <= value <= high:  # also refuses NaN
            self.fail(node, path, f"must be between {low:g} and {high:g} seconds, got {value:g}")
        return value
