"""RFC 6902 JSON Patch from two JSON values (pure): what the webhook sends the API server.

``json_patch(before, after)`` returns operations that turn ``before`` into ``after``:
``remove``/``add``/``replace`` on object members, and for arrays the common head and tail are
kept while the middle is patched element by element (same length) or removed and re-added at
explicit indexes (so inserting sidecars at the front of ``initContainers`` is three ``add``s).
A member that does not exist yet is added whole, arrays included: ``add .../-`` into a
missing array would fail on the server. Keys are escaped (``~`` → ``~0``, ``/`` → ``~1``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["escape", "json_patch"]

Op = dict[str, Any]


def escape(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _same(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: 1 != True, 1 == 1.0."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b) and (isinstance(a, str) == isinstance(b, str))


def _diff(before: Any, after: Any, path: str, ops: list[Op]) -> None:
    if _same(before, after):
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before:
            if key not in after:
                ops.append({"op": "remove", "path": f"{path}/{escape(key)}"})
        for key, value in after.items():
            child = f"{path}/{escape(key)}"
            if key in before:
                _diff(before[key], value, child, ops)
            else:
                ops.append({"op": "add", "path": child, "value": value})
        return
    if isinstance(before, list) and isinstance(after, list):
        _diff_list(before, after, path, ops)
        return
    ops.append({"op": "replace", "path": path, "value": after})


def _diff_list(before: list[Any], after: list[Any], path: str, ops: list[Op]) -> None:
    head = 0
    limit = min(len(before), len(after))
    while head < limit and _same(before[head], after[head]):
        head += 1
    tail = 0
    while tail < limit - head and _same(before[-1 - tail], after[-1 - tail]):
        tail += 1
    old = before[head : len(before) - tail]
    new = after[head : len(after) - tail]
    if len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff(a, b, f"{path}/{head + i}", ops)
        return
    for i in reversed(range(len(old))):
        ops.append({"op": "remove", "path": f"{path}/{head + i}"})
    for i, value in enumerate(new):
        ops.append({"op": "add", "path": f"{path}/{head + i}", "value": value})


def json_patch(before: Any, after: Any) -> list[Op]:
    """Operations turning ``before`` into ``after`` (both JSON values; root must be an object)."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        raise TypeError("json_patch works on two JSON objects")
    ops: list[Op] = []
    _diff(before, after, "", ops)
    return ops
