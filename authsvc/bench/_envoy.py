"""Envoy bootstraps for the bench: the generated production bootstrap, answered by Envoy itself.

Every scenario starts from ``build_bootstrap`` (exactly what ``authsvc envoy-config`` writes,
access log off), then only the auth step differs:

- ``none``:    the ext_authz filter removed (the floor: Envoy alone);
- ``native``:  ext_authz replaced by Envoy's in-process ``envoy.filters.http.api_key_auth``
  with the same key (the speed reference);
- ``authz``:   unchanged — ext_authz (gRPC) to the authsvc endpoint(s).

Every route answers with ``direct_response`` (200, a tiny body), so no upstream process takes
CPU away from the two that matter (Envoy and authsvc).
"""

from __future__ import annotations

from typing import Any

from authsvc.envoy import EnvoyOptions, build_bootstrap

__all__ = ["BODY", "Variant", "bench_bootstrap"]

BODY = "ok\n"
EXT_AUTHZ = "envoy.filters.http.ext_authz"
NATIVE = "envoy.filters.http.api_key_auth"
_TYPE = "type.googleapis.com/envoy.extensions.filters.http."

Variant = str  # "none" | "native" | "authz"


def _native_filter(key: str) -> dict[str, Any]:
    """``api_key_auth`` reading ``Authorization: Bearer <key>`` (the prefix is stripped)."""
    return {
        "name": NATIVE,
        "typed_config": {
            "@type": _TYPE + "api_key_auth.v3.ApiKeyAuth",
            "credentials": [{"key": key, "client": "bench"}],
            "key_sources": [{"header": "authorization"}],
        },
    }


def _hcm(bootstrap: dict[str, Any]) -> dict[str, Any]:
    listener = bootstrap["static_resources"]["listeners"][0]
    hcm: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm


def bench_bootstrap(
    variant: Variant, *, listen: str, admin: str, authz: tuple[str, ...], key: str
) -> dict[str, Any]:
    """The bootstrap for one scenario. ``authz`` is only used by the ``authz`` variant (but must
    be a valid address list for the others too); ``key`` only by ``native``."""
    if variant not in ("none", "native", "authz"):
        raise ValueError(f"unknown bench variant {variant!r}")
    opts = EnvoyOptions(listen=listen, admin=admin, authz=authz, access_log=False)
    bootstrap = build_bootstrap(opts)
    hcm = _hcm(bootstrap)
    for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
        route.pop("route")
        route["direct_response"] = {"status": 200, "body": {"inline_string": BODY}}
        if variant != "authz":
            route.pop("typed_per_filter_config", None)
    filters = hcm["http_filters"]
    index = next(i for i, f in enumerate(filters) if f["name"] == EXT_AUTHZ)
    if variant == "none":
        del filters[index]
    elif variant == "native":
        filters[index] = _native_filter(key)
    return bootstrap
