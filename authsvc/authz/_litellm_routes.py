"""The routes a LiteLLM proxy serves without a key (facts from LiteLLM 1.110.2's source).

- ``LiteLLMRoutes.public_routes`` in ``proxy/_types.py``: ``user_api_key_auth`` lets these
  through without a key, whatever the method.
- Routes with no auth dependency at all: the Admin UI (``/ui`` static files, ``/_next``
  assets), sign-in (``/login``, ``/v2/login``, ``/sso/*``), the ``/public/*`` hubs, the OpenAPI
  document and docs, ``/health/readiness``, ``/get/ui_theme_settings``.

``/health`` itself is protected (it needs a key). Paths must be in normal form to match a
prefix (``/ui/../v1/models`` is never public). ``ui_closed`` moves the UI and sign-in routes
to a refused list instead (``litellm_ui: closed``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LITELLM_VERSION", "AppRoutes", "litellm_routes"]

LITELLM_VERSION = "1.110.2"

_PUBLIC_ROUTES = (  # LiteLLMRoutes.public_routes
    "/routes",
    "/",
    "/health/liveliness",
    "/health/liveness",
    "/test",
    "/config/yaml",
    "/litellm/.well-known/litellm-ui-config",
    "/.well-known/litellm-ui-config",
    "/public/model_hub",
    "/public/v1/model_hub",
    "/public/v1/model_hub/providers",
    "/public/v1/model_hub/modes",
    "/public/v1/model_hub/features",
    "/public/model_hub/info",
    "/public/agent_hub",
    "/public/mcp_hub",
    "/public/skill_hub",
    "/public/litellm_model_cost_map",
    "/moyai/connect/exchange",
)
_NO_AUTH = ("/health/readiness", "/openapi.json", "/docs", "/redoc")
_NO_AUTH_PREFIXES = ("/public/",)
_UI = ("/ui", "/login", "/v2/login", "/sso", "/get/ui_theme_settings")
_UI_PREFIXES = ("/ui/", "/sso/", "/_next/")


@dataclass(frozen=True, slots=True)
class AppRoutes:
    """Exact paths and prefixes: public (any method) and refused at the edge."""

    public: frozenset[str]
    public_prefixes: tuple[str, ...]
    closed: frozenset[str] = frozenset()
    closed_prefixes: tuple[str, ...] = ()


def litellm_routes(*, ui_closed: bool = False) -> AppRoutes:
    """LiteLLM's keyless routes; with ``ui_closed`` the UI and sign-in routes are refused."""
    public = {*_PUBLIC_ROUTES, *_NO_AUTH}
    if ui_closed:
        return AppRoutes(frozenset(public), _NO_AUTH_PREFIXES, frozenset(_UI), _UI_PREFIXES)
    return AppRoutes(frozenset({*public, *_UI}), (*_NO_AUTH_PREFIXES, *_UI_PREFIXES))
