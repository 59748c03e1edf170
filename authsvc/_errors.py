"""The exception hierarchy (drawn in the package docstring). Messages never contain keys.

Subclasses living next to their raisers: ``server.ListenError`` and ``kube`` ``InjectError``
(both ``ConfigError``), ``server._workers.StartupFailed`` and ``stack.ChildFailed``.
"""

from __future__ import annotations

__all__ = ["AuthsvcError", "ConfigError", "KeySourceError", "PeerProtocolError", "ServerDied"]


class AuthsvcError(Exception):
    """Base class of every error authsvc raises on purpose."""


class ConfigError(AuthsvcError):
    """A config file, flag or environment setting is invalid. The message names where."""


class KeySourceError(AuthsvcError):
    """A key source cannot be used (unreadable, invalid, weak, conflicting)."""


class ServerDied(AuthsvcError):
    """The gRPC server stopped by itself while ``serve`` was serving (``serve`` exits 1, so
    the supervisor or kubelet starts a new one instead of a process that listens on nothing)."""


class PeerProtocolError(AuthsvcError):
    """A client broke the HTTP/2 or gRPC wire protocol (the ``authsvc.h2wire.WireError`` it
    raised is the ``__cause__``: that package imports nothing from authsvc, so the front
    converts its errors at the seam). The connection is closed; nothing else is affected."""
