"""Defaults shared by every command, in one place so the halves (Envoy, authsvc, k8s) agree."""

from __future__ import annotations

__all__ = [
    "APP_PORT",
    "AUTHZ_CLUSTER",
    "AUTHZ_LISTEN",
    "AUTHZ_SOCKET_IN_POD",
    "DEMO_KEY_FILE",
    "DEMO_STATE_DIR",
    "ENVOY_ADMIN",
    "ENVOY_LISTEN",
    "ENVOY_PORT",
    "STATUS_LISTEN",
    "STATUS_PORT",
]

AUTHZ_LISTEN = "127.0.0.1:9191"  # gRPC ext_authz (OPA-Envoy's conventional port)
AUTHZ_SOCKET_IN_POD = "unix:/var/run/authsvc/authz.sock"  # shared emptyDir inside a pod
AUTHZ_CLUSTER = "authsvc"  # Envoy cluster name of the authz service
STATUS_PORT = 9192
STATUS_LISTEN = f"127.0.0.1:{STATUS_PORT}"  # /livez /readyz /metrics /app-health/...
ENVOY_PORT = 10000
ENVOY_LISTEN = f"0.0.0.0:{ENVOY_PORT}"  # the port clients (and the k8s Service) use
ENVOY_ADMIN = "127.0.0.1:9901"  # loopback only, always
APP_PORT = 4000  # LiteLLM's default port; the app Envoy fronts
DEMO_STATE_DIR = ".authsvc"  # `authsvc up` / `make run`: demo key, bootstrap, logs (git-ignored)
DEMO_KEY_FILE = f"{DEMO_STATE_DIR}/master.key"  # the demo master key `make run` generates
