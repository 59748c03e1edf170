"""The route policy of a config: ``Policy.build`` with its ``ValueError`` pinned to the
entry that caused it, and LiteLLM mode's credential locations and keyless routes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import yaml

from authsvc._yaml import Reader, quoted
from authsvc.authz import (
    DEFAULT_LOCATIONS,
    DEFAULT_PROTECTED_HEALTH_PATH,
    DEFAULT_PUBLIC_PATHS,
    DEFAULT_WS_LOCATIONS,
    MAX_CREDENTIAL_LENGTH,
    CredentialLocation,
    Policy,
)
from authsvc.config._litellm_mode import litellm_locations
from authsvc.config._model import MasterKeyConfig

__all__ = ["build_policy"]

_OWN_PATHS = frozenset((*DEFAULT_PUBLIC_PATHS, DEFAULT_PROTECTED_HEALTH_PATH))  # may be quoted


def build_policy(
    r: Reader,
    environ: Mapping[str, str],
    top: dict[str, tuple[yaml.Node, yaml.Node]],
    public: tuple[str, ...],
    health_path: str,
    locations: tuple[CredentialLocation, ...] | None,
    max_len: int | None,
    forward: bool,
    master: MasterKeyConfig | None = None,
    ui: Literal["open", "closed"] = "open",
) -> Policy:
    """``Policy.build``, its ``ValueError`` pinned to the entry that caused it. Its
    message is never passed on (it quotes values): each case has its own words."""
    if "public_paths" in top:
        for i, (item, path) in enumerate(zip(top["public_paths"][1].value, public, strict=True)):
            if path == health_path:
                r.fail(
                    item,
                    f"public_paths[{i}]",
                    f"protected health path {quoted(path, _OWN_PATHS)} "
                    "cannot also be a public path",
                )
    culprits = {
        "protected health path": (
            "protected_health_path",
            f"protected health path {quoted(health_path, _OWN_PATHS)} cannot also be a public path",
        ),
        "credential location": ("credentials", "needs at least one location"),
        "max credential length": ("max_credential_length", "must be at least 16"),
    }
    ws = DEFAULT_WS_LOCATIONS if locations is None else locations
    app_routes = None
    if master is not None:
        lite = litellm_locations(master, ui, environ)
        if lite is not None:
            app_routes, locations, ws = lite
    try:
        return Policy.build(
            public,
            locations=DEFAULT_LOCATIONS if locations is None else locations,
            max_credential_length=MAX_CREDENTIAL_LENGTH if max_len is None else max_len,
            protected_health_path=health_path,
            forward_credentials=forward,
            ws_locations=ws,
            app_routes=app_routes,
        )
    except ValueError as exc:
        message = str(exc)
        name, problem = next(
            (v for k, v in culprits.items() if k in message),
            ("public_paths", "an entry is not a path in normal form"),
        )
        r.fail(top[name][1] if name in top else None, name, problem)
