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
from collections.abc import Collection, Iterator, Mapping
from typing import NoReturn

import yaml

from authsvc._errors import ConfigError

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUES",
    "NOT_SHOWN",
    "SHOWN_BELOW",
    "Reader",
    "YamlError",
    "compose",
    "env_name_shown",
    "load_bounded",
    "quoted",
    "safe_problem",
    "shown",
]

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
_SHOWABLE = re.compile(r"[A-Za-z0-9_!/*][A-Za-z0-9_.:/+!*-]*\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
NOT_SHOWN = "[not shown]"


def shown(text: str) -> str:
    """``text`` itself when it is provably no key, else ``[not shown]``.

    Redaction by construction: text from the file is shown only when it is shorter than any
    usable key (``SHOWN_BELOW``) *and* a plain identifier, path or tag (``_SHOWABLE``: no
    space, quote, comma, control or non-ASCII character) — never on the strength of a
    key-shaped pattern. Callers name the location and the kind of problem instead.
    """
    return text if len(text) < SHOWN_BELOW and _SHOWABLE.match(text) else NOT_SHOWN


def quoted(text: str, known: Collection[str] = ()) -> str:
    """``'text'`` when ``shown`` or one of ``known`` (authsvc's own words, e.g. its default
    paths), else ``[not shown]`` (for messages that quote a value)."""
    return repr(text) if shown(text) == text or text in known else NOT_SHOWN


def env_name_shown(name: str) -> str:
    """An environment variable name as messages may show it: ``shown``, or a conventional
    ``UPPER_CASE_NAME`` (with an underscore: a generated key is one run of characters)."""
    if shown(name) == name:
        return name
    if _ENV_NAME.match(name) and "_" in name.strip("_") and name.isupper() and len(name) <= 64:
        return name
    return NOT_SHOWN


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


class YamlError(ConfigError):
    """A document that is not valid YAML, or exceeds the bounds below. ``line`` (1-based) is
    where, when known; ``problem`` never quotes text of the file that could be a key."""

    def __init__(self, filename: str, line: int | None, problem: str) -> None:
        self.line, self.problem = line, problem
        where = f"{filename}:{line}" if line is not None else filename
        super().__init__(f"{where}: invalid YAML: {problem}")


def _marked(filename: str, exc: yaml.MarkedYAMLError) -> YamlError:
    mark = exc.problem_mark or exc.context_mark
    return YamlError(filename, None if mark is None else mark.line + 1, safe_problem(exc))


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
"""libyaml's loader when PyYAML was built with it: ~6x faster on a config with 10,000 keys."""

MAX_VALUES = 250_000
"""Values (scalars, lists, mappings) a document may hold *after* alias expansion: every
alias counts as the whole value it repeats. A config with 10,000 ``sha256:`` keys (as many as
fit in ``MAX_CONFIG_BYTES``) holds ~50,000; a LiteLLM config a few hundred. A 1 MiB flow list
(``[a,a,...]``) holds ~500,000 and cost 211 MB RSS and 7 s to build: refused after 250,000,
before any tree is built, so a hostile file costs at most ~0.5 s and ~30 MB."""

MAX_DEPTH = 64
"""Nesting depth of lists and mappings. Deeper documents are refused before they are
composed: libyaml's composer recurses per level and a few 100,000 ``[`` crash the process."""


def _check_bounds(events: Iterator[yaml.Event], filename: str) -> None:
    """Walk the parser's event stream (no recursion, no tree) and refuse a document whose
    expansion exceeds ``MAX_VALUES``, whose nesting exceeds ``MAX_DEPTH``, or with an alias
    inside the value it names (a cycle). Stops at the first violation: an alias bomb is
    refused after reading a few lines, in microseconds."""
    sizes: dict[str, int] = {}  # anchor -> values it expands to
    stack: list[tuple[str | None, int]] = []  # open collections: (anchor, total at start)
    total = 0

    def refuse(event: yaml.Event, why: str) -> NoReturn:
        mark = event.start_mark
        raise YamlError(filename, None if mark is None else mark.line + 1, why)

    for event in events:
        if isinstance(event, yaml.AliasEvent):
            anchor = str(event.anchor)
            if anchor not in sizes:
                if any(open_anchor == anchor for open_anchor, _ in stack):
                    refuse(event, "an alias refers to a value that contains it")
                continue  # undefined: the composer reports it
            total += sizes[anchor]
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                sizes[str(event.anchor)] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            total += 1
            stack.append((None if event.anchor is None else str(event.anchor), total - 1))
            if len(stack) > MAX_DEPTH:
                refuse(event, f"lists and mappings nest deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent) and stack:
            named, start = stack.pop()
            if named is not None:
                sizes[named] = total - start
        if total > MAX_VALUES:
            refuse(
                event,
                f"the document holds more than {MAX_VALUES:,} values "
                "(an alias counts as all the values it repeats)",
            )


def compose(text: str, filename: str) -> yaml.Node | None:
    """Parse ``text`` into a node tree; a syntax error names the file and line (no snippet).

    The document is first checked against ``MAX_VALUES`` and ``MAX_DEPTH`` on the parser's
    event stream, before any tree is built. A file is parsed with libyaml when it is there.
    libyaml words its complaints differently and names nothing from the file (``found
    undefined alias``, no alias), so a file it rejects is parsed again with the pure-Python
    loader, whose verdict and message count: errors read the same with or without libyaml.
    """
    if _FAST_LOADER is not None:
        try:
            _check_bounds(yaml.parse(text, Loader=_FAST_LOADER), filename)
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass  # the pure loader below gives the verdict and its message
    try:
        _check_bounds(yaml.parse(text, Loader=yaml.SafeLoader), filename)
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _marked(filename, exc) from None
    except yaml.YAMLError as exc:  # e.g. several documents in one file
        raise YamlError(filename, None, type(exc).__name__) from None


def load_bounded(text: str, filename: str) -> object:
    """``yaml.safe_load`` with the bounds of ``compose``: the same Python values, or a
    ``ConfigError`` (syntax, several documents, an alias bomb, too deep). An alias still
    yields one shared object, never a copy; callers type-check every value they use."""
    node = compose(text, filename)
    if node is None:
        return None
    try:
        return yaml.constructor.SafeConstructor().construct_document(node)
    except yaml.MarkedYAMLError as exc:  # e.g. a merge key that is not a mapping
        raise _marked(filename, exc) from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # e.g. 2026-13-01
        raise YamlError(filename, None, type(exc).__name__) from None


def describe(node: yaml.Node) -> str:
    """What kind of value a node holds, for messages ('a string', 'a list', ...)."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag
    if tag.startswith(_TAG):  # '!!NAME': NAME comes from the file too
        suffix = tag[len(_TAG) :]
        return _KIND.get(suffix, f"a value tagged !!{shown(suffix)}")
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
            tag = node.tag
            text = f"!!{shown(tag[len(_TAG) :])}" if tag.startswith(_TAG) else shown(tag)
            self.fail(node, path, f"unsupported YAML tag {text!r}")

    def _unknown(self, node: yaml.Node, key: str, path: str, allowed: Collection[str]) -> NoReturn:
        """An unknown mapping key. It is quoted (and compared with the valid names) only when
        ``shown``: a key pasted as a mapping key must not come back in the message, nor any
        hint derived from its text."""
        under = path or "top level"
        valid = f"; valid keys here: {', '.join(sorted(allowed))}"
        where = f"{self.filename}:{self.line(node)}"
        if shown(key) != key:
            raise ConfigError(f"{where}: unknown key {NOT_SHOWN} under {under}{valid}")
        here = f"{path}.{key}" if path else key
        elsewhere = [p for p in self._known.get(key, ()) if p != here]
        if elsewhere:
            hint = f"; it belongs at {' or '.join(elsewhere)}"
        else:
            close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6) or [
                name for name in sorted(allowed) if name.startswith(key) or key.startswith(name)
            ]
            hint = f"; did you mean {close[0]!r}?" if close else valid
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

    def _short_number(self, node: yaml.Node, path: str, expected: str) -> None:
        """Checked before the text is converted: a 5,000-digit integer would make ``int()``
        raise (Python's digit limit) or cost quadratic time; no valid value is that long."""
        if len(str(node.value)) > 32:
            self.fail(node, path, f"{expected}, got a number of {len(str(node.value))} characters")

    def boolean(self, node: yaml.Node, path: str) -> bool:
        raw = self._scalar(node, path, ("bool",), "true or false").lower()
        return raw in ("true", "yes", "on")

    def integer(self, node: yaml.Node, path: str, *, low: int, high: int) -> int:
        self._scalar(node, path, ("int",), "an integer")
        self._short_number(node, path, f"must be between {low} and {high}")
        value = int(yaml.constructor.SafeConstructor().construct_object(node))
        if not low <= value <= high:  # a long number could be a (numeric) key: not shown
            self.fail(node, path, f"must be between {low} and {high}, got {shown(str(value))}")
        return value

    def seconds(self, node: yaml.Node, path: str, *, low: float, high: float) -> float:
        self._scalar(node, path, ("int", "float"), "a number of seconds")
        self._short_number(node, path, f"must be between {low:g} and {high:g} seconds")
        value = float(yaml.constructor.SafeConstructor().construct_object(node))
        if not low <= value <= high:  # also refuses NaN
            got = shown(f"{value:g}") if len(str(node.value)) < SHOWN_BELOW else NOT_SHOWN
            self.fail(node, path, f"must be between {low:g} and {high:g} seconds, got {got}")
        return value
