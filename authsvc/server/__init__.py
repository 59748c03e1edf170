"""The ext_authz gRPC server: Check, gRPC health and reflection, listening on TCP and Unix
sockets, with a clean SIGTERM shutdown. The wiring (``authsvc serve``) lives in ``_cli``."""

from authsvc.server._adapter import response_from
from authsvc.server._front import Front
from authsvc.server._grpc import AUTHZ_SERVICE, AuthzServer, DecisionObserver
from authsvc.server._listen import ListenError, parse_listen
from authsvc.server._signals import serve_until_signal

__all__ = [
    "AUTHZ_SERVICE",
    "AuthzServer",
    "DecisionObserver",
    "Front",
    "ListenError",
    "parse_listen",
    "response_from",
    "serve_until_signal",
]
