"""Route policy: which requests need no key. Built once from config; the hot path only reads it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from authsvc.authz._credentials import (
    DEFAULT_LOCATIONS,
    DEFAULT_WS_LOCATIONS,
    MAX_CREDENTIAL_LENGTH,
    CredentialLocation,
)
from authsvc.authz._litellm_routes import AppRoutes
from authsvc.authz._paths import is_canonical

__all__ = [
    "DEFAULT_PROTECTED_HEALTH_PATH",
    "DEFAULT_PUBLIC_METHODS",
    "DEFAULT_PUBLIC_PATHS",
    "Policy",
]

DEFAULT_PUBLIC_PATHS = ("/health/liveliness", "/health/liveness", "/health/readiness")
DEFAULT_PUBLIC_METHODS = ("GET", "HEAD")
DEFAULT_PROTECTED_HEALTH_PATH = "/health"


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything ``decide()`` needs besides the request and the keys, precomputed.

    Public paths are matched **exactly** against the raw path (query dropped), and must be in
    normal form, so a path that only *normalises* to a public one (``%2F`` tricks, dot
    segments, doubled slashes) is never public.
    """

    public_paths: frozenset[str] = frozenset(DEFAULT_PUBLIC_PATHS)
    public_methods: frozenset[str] = frozenset(DEFAULT_PUBLIC_METHODS)
    locations: tuple[CredentialLocation, ...] = DEFAULT_LOCATIONS
    max_credential_length: int = MAX_CREDENTIAL_LENGTH
    protected_health_path: str = DEFAULT_PROTECTED_HEALTH_PATH
    forward_credentials: bool = True
    ws_locations: tuple[CredentialLocation, ...] = DEFAULT_WS_LOCATIONS
    """Where a websocket upgrade's key is read (LiteLLM's realtime rule)."""
    app_routes: AppRoutes | None = None
    """The app's own keyless routes (any method) and the ones refused at the edge (LiteLLM
    mode); ``None`` outside LiteLLM mode."""
    missing_message: str = field(init=False)
    strip_headers: tuple[str, ...] = field(init=False)
    """Credential headers removed from allowed requests (when credentials are not forwarded)."""
    strip_query: tuple[str, ...] = field(init=False)
    """Credential query parameters removed from allowed requests (likewise)."""

    def __post_init__(self) -> None:
        hidden = () if self.forward_credentials else (*self.locations, *self.ws_locations)
        strip_headers = tuple(
            dict.fromkeys(
                loc.name for loc in hidden if loc.kind == "header" and loc.name != "upgrade"
            )
        )
        strip_query = tuple(dict.fromkeys(loc.name for loc in hidden if loc.kind == "query"))
        object.__setattr__(self, "strip_headers", strip_headers)
        object.__setattr__(self, "strip_query", strip_query)
        where = ", ".join(
            f"{loc.label} (Bearer)" if loc.bearer in ("required", "strict") else loc.label
            for loc in self.locations
        )
        object.__setattr__(self, "missing_message", f"No api key passed in. Send it in: {where}.")

    def app_public(self, path: str) -> bool:
        """A keyless route of the app (any method); prefixes match only paths in normal form."""
        routes = self.app_routes
        if routes is None:
            return False
        if path in routes.public:
            return True
        return path.startswith(routes.public_prefixes) and is_canonical(path)

    def closed_at_edge(self, path: str) -> bool:
        """A route of the app that the operator closed at the edge (``litellm_ui: closed``)."""
        routes = self.app_routes
        if routes is None:
            return False
        if path in routes.closed:
            return True
        return bool(routes.closed_prefixes) and path.startswith(routes.closed_prefixes)

    @classmethod
    def build(
        cls,
        public_paths: Iterable[str] = DEFAULT_PUBLIC_PATHS,
        *,
        locations: Iterable[CredentialLocation] = DEFAULT_LOCATIONS,
        max_credential_length: int = MAX_CREDENTIAL_LENGTH,
        protected_health_path: str = DEFAULT_PROTECTED_HEALTH_PATH,
        forward_credentials: bool = True,
        ws_locations: Iterable[CredentialLocation] | None = None,
        app_routes: AppRoutes | None = None,
    ) -> Policy:
        """Validate and build. Raises ``ValueError`` naming the offending entry."""
        paths = tuple(public_paths)
        for path in paths:
            if not is_canonical(path) or "?" in path:
                raise ValueError(
                    f"public path {path!r} is not in normal form "
                    "(absolute, no query, no '.', '..', '//' or %-escapes)"
                )
        if protected_health_path in paths:
            raise ValueError(
                f"protected health path {protected_health_path!r} cannot also be a public path"
            )
        locs = tuple(locations)
        if not locs:
            raise ValueError("at least one credential location is required")
        if max_credential_length < 16:
            raise ValueError("max credential length must be at least 16")
        return cls(
            public_paths=frozenset(paths),
            locations=locs,
            max_credential_length=max_credential_length,
            protected_health_path=protected_health_path,
            forward_credentials=forward_credentials,
            ws_locations=(
                tuple(ws_locations)
                if ws_locations is not None
                else DEFAULT_WS_LOCATIONS
                if locs == DEFAULT_LOCATIONS
                else locs  # configured locations apply to websocket upgrades too
            ),
            app_routes=app_routes,
        )
