"""The webhook's JSONPatch: applied by a real JSONPatch library, it must give exactly ``after``."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from authsvc.kube import json_patch

KEYS = st.sampled_from(["a", "b", "c/d", "~e", "a~1", "", "-", "0"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["x", "y", ""]))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=25,
)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=5)


def _apply(before: dict[str, Any], after: dict[str, Any]) -> Any:
    return jsonpatch.apply_patch(before, json_patch(before, after))


@settings(max_examples=400, deadline=None)
@given(OBJECTS, OBJECTS)
def test_patch_turns_before_into_after(before: dict[str, Any], after: dict[str, Any]) -> None:
    result = _apply(before, after)
    assert result == after
    # bool/int are distinct in JSON: True must not stand in for 1.
    assert json.dumps(result, sort_keys=True) == json.dumps(after, sort_keys=True)


@settings(max_examples=200, deadline=None)
@given(OBJECTS)
def test_no_change_no_ops(value: dict[str, Any]) -> None:
    assert json_patch(value, value) == []


def test_keys_are_escaped_and_missing_arrays_added_whole() -> None:
    before = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "a"}]}}
    after = {
        "metadata": {"labels": {"app": "x"}, "annotations": {"authsvc.io/status": "injected"}},
        "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "s"}]},
    }
    ops = json_patch(before, after)
    assert ops == [
        {"op": "add", "path": "/metadata/annotations", "value": {"authsvc.io/status": "injected"}},
        {"op": "add", "path": "/spec/initContainers", "value": [{"name": "s"}]},
    ]
    more = {
        **after,
        "metadata": {
            **after["metadata"],
            "annotations": {"authsvc.io/status": "injected", "a~b/c": "1"},
        },
    }
    assert json_patch(after, more) == [
        {"op": "add", "path": "/metadata/annotations/a~0b~1c", "value": "1"}
    ]


def test_insertions_at_the_front_are_adds_at_explicit_indexes() -> None:
    before = {"l": [{"name": "mine"}]}
    after = {"l": [{"name": "s1"}, {"name": "s2"}, {"name": "mine"}]}
    assert json_patch(before, after) == [
        {"op": "add", "path": "/l/0", "value": {"name": "s1"}},
        {"op": "add", "path": "/l/1", "value": {"name": "s2"}},
    ]
