"""authsvc: an Envoy ext_authz v3 sidecar that resolves master keys from ordered layers.

Public surface (guarded by ``tests/unit/test_public_api.py``)::

    decide(view, policy, ring, now) -> Decision      the pure decision
    RequestView, Policy, Decision, Reason           its inputs and outputs
    KeyRing, KeyRecord, KeyStore                    immutable key snapshots
    AuthsvcError                                    base of every error we raise
     ├── ConfigError                                a config file or flag is invalid
     ├── KeySourceError                             a key source cannot be read/used
     ├── ServerDied                                 (private) the gRPC server stopped by itself
     ├── StartupFailed                              (private) a worker exited before serving
     ├── ChildFailed                                (private) an `up`/bench child failed
     └── PeerProtocolError                          (private) a client broke HTTP/2 (wraps
                                                    ``authsvc.h2wire.WireError``, which the
                                                    wire package raises: it imports nothing
                                                    from authsvc, so the front converts)

Outside it, on purpose: the HTTP/2 wire codec's errors (``authsvc.h2wire.WireError`` and its
subclasses ``FrameError``, ``HpackError``, ``HuffmanError``, ``SpliceRefused``; a sans-I/O
codec that imports nothing from authsvc cannot derive from our base, and the front converts
each into a ``PeerProtocolError``), and ``ValueError`` from pure constructors
(``PathRule.from_patterns``, ``DigestBatch``, ``parse_location``), which the config parser
turns into a ``ConfigError`` naming the file, line and key.

Everything else lives in private ``_modules`` and may change.
"""

from authsvc._errors import AuthsvcError, ConfigError, KeySourceError
from authsvc._version import __version__
from authsvc.authz import Decision, Policy, Reason, RequestView, decide
from authsvc.keys import KeyRecord, KeyRing, KeyStore

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
