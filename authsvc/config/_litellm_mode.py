"""LiteLLM mode in the config: with a ``litellm_config`` source, the LiteLLM config decides the
credential locations (``general_settings.litellm_key_header_name``) and the keyless routes
(LiteLLM's own list; ``litellm_ui: closed`` refuses the Admin UI at the edge), and every file
LiteLLM reads for its config (``include:`` files, its ``.env``) is watched for reload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import yaml

from authsvc._yaml import Reader
from authsvc.authz import (
    DEFAULT_LOCATIONS,
    DEFAULT_WS_LOCATIONS,
    AppRoutes,
    CredentialLocation,
    Policy,
    custom_header_location,
    litellm_routes,
)
from authsvc.config._model import LiteLLMSource, MasterKeyConfig
from authsvc.sources import ParseContext

__all__ = ["litellm_defaults", "litellm_locations", "litellm_mode", "litellm_with_dotenv"]

_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,256}\Z")

UI = Literal["open", "closed"]


def _first(master: MasterKeyConfig) -> LiteLLMSource | None:
    return next((s for s in master.sources if isinstance(s, LiteLLMSource)), None)


def litellm_mode(
    r: Reader,
    master: MasterKeyConfig,
    top: Mapping[str, tuple[yaml.Node, yaml.Node]],
    environ: Mapping[str, str],
) -> tuple[MasterKeyConfig, UI]:
    """Check ``litellm_ui`` and ``credentials``; record the files each LiteLLM source reads."""
    from authsvc.sources import litellm_key_header

    ui: UI = "open"
    lite = _first(master)
    if "litellm_ui" in top:
        node = top["litellm_ui"][1]
        value = r.string(node, "litellm_ui")
        if value not in ("open", "closed"):
            r.fail(node, "litellm_ui", f"expected 'open' or 'closed', got {value!r}")
        if lite is None:
            r.fail(node, "litellm_ui", "applies only in LiteLLM mode (a litellm_config source)")
        ui = "closed" if value == "closed" else "open"
    if lite is None:
        return master, ui
    if "credentials" in top:
        r.fail(
            top["credentials"][1],
            "credentials",
            "in LiteLLM mode the credential locations follow the LiteLLM config "
            "(general_settings.litellm_key_header_name); remove credentials",
        )
    sources = tuple(
        LiteLLMSource(
            s.path, s.where, s.dotenv, litellm_key_header(s.path, environ, dotenv=s.dotenv)[1]
        )
        if isinstance(s, LiteLLMSource)
        else s
        for s in master.sources
    )
    return MasterKeyConfig(sources, master.on_conflict, master.allow_weak, master.weak), ui


def _with_files(master: MasterKeyConfig, environ: Mapping[str, str]) -> MasterKeyConfig:
    from authsvc.sources import litellm_key_header

    sources = tuple(
        LiteLLMSource(
            s.path, s.where, s.dotenv, litellm_key_header(s.path, environ, dotenv=s.dotenv)[1]
        )
        if isinstance(s, LiteLLMSource)
        else s
        for s in master.sources
    )
    return MasterKeyConfig(sources, master.on_conflict, master.allow_weak, master.weak)


def litellm_defaults(
    master: MasterKeyConfig, environ: Mapping[str, str]
) -> tuple[MasterKeyConfig, Policy]:
    """Without a config file (the default chain may end in ``litellm_config:
    $AUTHSVC_LITELLM_CONFIG``): LiteLLM mode's files, credential locations and routes."""
    lite = litellm_locations(master, "open", environ)
    if lite is None:
        return master, Policy.build()
    routes, http, ws = lite
    return _with_files(master, environ), Policy.build(
        locations=http, ws_locations=ws, app_routes=routes
    )


def litellm_locations(
    master: MasterKeyConfig, ui: UI, environ: Mapping[str, str]
) -> tuple[AppRoutes, tuple[CredentialLocation, ...], tuple[CredentialLocation, ...]] | None:
    """LiteLLM's routes and credential locations (HTTP, websocket); ``None`` outside LiteLLM
    mode. An unreadable LiteLLM config gives LiteLLM's defaults (its readings say why)."""
    from authsvc.sources import litellm_key_header

    lite = _first(master)
    if lite is None:
        return None
    routes = litellm_routes(ui_closed=ui == "closed")
    name = litellm_key_header(lite.path, environ, dotenv=lite.dotenv)[0]
    if name is None or not _HEADER_NAME.match(name.lower()):
        return routes, DEFAULT_LOCATIONS, DEFAULT_WS_LOCATIONS
    custom = custom_header_location(name)
    return routes, (custom, *DEFAULT_LOCATIONS), (custom, *DEFAULT_WS_LOCATIONS)


def litellm_with_dotenv(
    ctx: ParseContext, entries: Mapping[str, tuple[yaml.Node, yaml.Node]], path: str
) -> LiteLLMSource:
    """``{litellm_config: PATH, dotenv: auto|off|PATH}``: the ``.env`` LiteLLM loads."""
    d_node = entries["dotenv"][1]
    if d_node.tag.endswith(":bool"):  # YAML reads an unquoted off/on as a boolean
        dotenv = "auto" if d_node.value.lower() in ("true", "on", "yes", "y") else "off"
    else:
        raw = ctx.nonempty(d_node, f"{path}.dotenv")
        dotenv = raw if raw in ("auto", "off") else ctx.file(d_node, f"{path}.dotenv")
    others = [k for k in entries if k not in ("litellm_config", "dotenv")]
    if others:
        ctx.fail(d_node, path, f"needs exactly one source kind; got litellm_config and {others[0]}")
    c_node = entries["litellm_config"][1]
    return LiteLLMSource(ctx.file(c_node, f"{path}.litellm_config"), path, dotenv)
