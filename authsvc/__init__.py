"""authsvc: an Envoy ext_authz v3 sidecar that resolves master keys from ordered layers.

Public surface (guarded by ``tests/unit/test_public_api.py``)::

    decide(view, policy, ring, now) -> Decision      the pure decision
    RequestView, Policy, Decision, Reason           its inputs and outputs
    KeyRing, KeyRecord, KeyStore                    immutable key snapshots
    AuthsvcError                                    base of every error we raise
     ├── ConfigError                                a config file or flag is invalid
     ├── KeySourceError                             a key source cannot be read/used
     ├── ServerDied                                 (private) the gRPC server stopped by itself
     └── PeerProtocolError                          (private) a client broke HTTP/2 (wraps
                                                    ``authsvc.h2wire.WireError``, which the
                                                    wire package raises: it imports nothing
                                                    from authsvc, so the front converts)

Everything else lives in private ``_modules`` and may change.
"""

from authsvc._errors import AuthsvcError, ConfigError, KeySourceError
from authsvc.authz import Decision, Policy, Reason, RequestView, decide
from authsvc.keys import KeyRecord, KeyRing, KeyStore

__version__ = "0.1.0"

__all__ = [
    "AuthsvcError",
    "ConfigError",
    "Decision",
    "KeyRecord",
    "KeyRing",
    "KeySourceError",
    "KeyStore",
    "Policy",
    "Reason",
    "RequestView",
    "__version__",
    "decide",
]
