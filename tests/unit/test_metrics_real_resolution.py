"""The observer fed by the real key resolution (``authsvc.keys.resolve``, issue 3).

Skipped, with the reason, while the key-resolution package is not on this branch.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

import authsvc.keys
from authsvc.keys import fingerprint
from authsvc.observability import RESOLUTION_LOGGER, JsonFormatter, Observer
from tests._keys import ALT, MASTER

if not hasattr(authsvc.keys, "resolve"):
    pytest.skip(
        "authsvc.keys.resolve (layered key resolution, issue 3) is not on this branch yet",
        allow_module_level=True,
    )
config = pytest.importorskip("authsvc.config", reason="authsvc.config (issue 3) is not here yet")


def resolve(environ: dict[str, str]):  # type: ignore[no-untyped-def]
    return authsvc.keys.resolve(config.load_config(None, environ=environ), environ)


@pytest.fixture
def summary() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(RESOLUTION_LOGGER)
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def gauges(obs: Observer) -> dict[str, object]:
    out: dict[str, object] = {}
    for family in text_string_to_metric_families(obs.metrics()[0].decode()):
        for s in family.samples:
            if s.name in ("authsvc_master_key_resolved", "authsvc_keys_loaded"):
                out[s.name] = s.value
            if s.name == "authsvc_master_key_info":
                out["info"] = (s.labels["source"], len(s.labels["key_id"]))
    return out


def test_resolved_from_env(summary: io.StringIO) -> None:
    obs = Observer()
    obs.on_startup(resolve({"AUTHSVC_MASTER_KEY": MASTER}))
    assert gauges(obs) == {
        "authsvc_master_key_resolved": 1,
        "authsvc_keys_loaded": 1,
        "info": ("env:AUTHSVC_MASTER_KEY", 12),
    }
    (line,) = [json.loads(x) for x in summary.getvalue().splitlines()]
    assert line["resolved"] is True and line["fingerprint"] == fingerprint(MASTER)
    assert isinstance(line["chain"], dict) and line["chain"]["resolved"] is True
    assert MASTER not in summary.getvalue()


def test_unresolved_and_conflicting(summary: io.StringIO) -> None:
    obs = Observer()
    obs.on_startup(resolve({}))
    assert gauges(obs) == {"authsvc_master_key_resolved": 0, "authsvc_keys_loaded": 0}
    obs.on_change(resolve({"AUTHSVC_MASTER_KEY": MASTER, "LITELLM_MASTER_KEY": ALT}))
    first, second = [json.loads(x) for x in summary.getvalue().splitlines()]
    assert first["level"] == "error" and first["resolved"] is False
    assert second["level"] == "warning" and second["warnings"]
    text = summary.getvalue()
    assert MASTER not in text and ALT not in text
