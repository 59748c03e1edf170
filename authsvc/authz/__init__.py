"""The authorization library: request view → decision → response data. No gRPC, no I/O.

It imports only the pure key model (``authsvc.keymodel``); an import-linter contract keeps it so.
"""

from authsvc.authz._credentials import (
    DEFAULT_LOCATIONS,
    DEFAULT_WS_LOCATIONS,
    MAX_CREDENTIAL_LENGTH,
    Bearer,
    Credential,
    CredentialError,
    CredentialLocation,
    custom_header_location,
    extract_credential,
    parse_location,
)
from authsvc.authz._decide import STATUS, Decision, Reason, decide
from authsvc.authz._dry_run import DRY_RUN_HEADER, SHADOWED, shadow
from authsvc.authz._litellm_routes import AppRoutes, litellm_routes
from authsvc.authz._paths import is_canonical, normalize_path, query_values, split_target
from authsvc.authz._policy import (
    DEFAULT_PROTECTED_HEALTH_PATH,
    DEFAULT_PUBLIC_METHODS,
    DEFAULT_PUBLIC_PATHS,
    Policy,
)
from authsvc.authz._respond import HEADER_PREFIX, KEY_NAME_HEADER, Allow, Deny, render
from authsvc.authz._view import RequestView

__all__ = [
    "DEFAULT_LOCATIONS",
    "DEFAULT_PROTECTED_HEALTH_PATH",
    "DEFAULT_PUBLIC_METHODS",
    "DEFAULT_PUBLIC_PATHS",
    "DEFAULT_WS_LOCATIONS",
    "DRY_RUN_HEADER",
    "HEADER_PREFIX",
    "KEY_NAME_HEADER",
    "MAX_CREDENTIAL_LENGTH",
    "SHADOWED",
    "STATUS",
    "Allow",
    "AppRoutes",
    "Bearer",
    "Credential",
    "CredentialError",
    "CredentialLocation",
    "Decision",
    "Deny",
    "Policy",
    "Reason",
    "RequestView",
    "custom_header_location",
    "decide",
    "extract_credential",
    "is_canonical",
    "litellm_routes",
    "normalize_path",
    "parse_location",
    "query_values",
    "render",
    "shadow",
    "split_target",
]
