"""The Envoy half: the bootstrap that puts Envoy (with ext_authz → authsvc) in front of the app.

Usage: ``render_yaml(build_bootstrap(EnvoyOptions(authz=("unix:/run/authz.sock",))))``.
"""

from authsvc._address import Address, parse_address
from authsvc.envoy._binary import envoy_binary
from authsvc.envoy._bootstrap import build_bootstrap, render_yaml
from authsvc.envoy._cli import policy_options, write_atomically
from authsvc.envoy._options import DEFAULT_CREDENTIAL_HEADERS, EnvoyOptions, RouteOptions

__all__ = [
    "DEFAULT_CREDENTIAL_HEADERS",
    "Address",
    "EnvoyOptions",
    "RouteOptions",
    "build_bootstrap",
    "envoy_binary",
    "parse_address",
    "policy_options",
    "render_yaml",
    "write_atomically",
]
