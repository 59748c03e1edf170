"""The local stack: a LiteLLM-like demo upstream, and ``authsvc up`` (Envoy + authsvc + demo)."""

from authsvc.stack._children import Child, ChildFailed, http_status, tcp_open
from authsvc.stack._demo import DemoUpstream, MasterKeySource
from authsvc.stack._litellm import AuthResult, check_key

__all__ = [
    "AuthResult",
    "Child",
    "ChildFailed",
    "DemoUpstream",
    "MasterKeySource",
    "check_key",
    "http_status",
    "tcp_open",
]
