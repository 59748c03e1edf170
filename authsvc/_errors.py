"""The exception hierarchy (drawn in the package docstring). Messages never contain keys.

Subclasses living next to their raisers: ``server.ListenError`` and ``kube`` ``InjectError``
(both ``ConfigError``), ``server._workers.StartupFailed`` and ``stack.ChildFailed``.
"""

from __future__ import annotations

__all__ = ["AuthsvcError", "ConfigError", "KeySourceError", "ServerDied"]


class AuthsvcError(Exception):
    """Base class of every error authsvc raises on purpose."""


class ConfigError(AuthsvcError):
    """A config file, flag or environment setting is invalid. The message names where."""


class KeySourceError(AuthsvcError):
    """A key source cannot be used (unreadable, invalid, weak, conflicting)."""


class ServerDied(AuthsvcError):
    """The gRPC server stopped by itself while ``serve`` was serving (``serve`` exits 1, so
    the supervisor or kubelet starts a new one instead of a process that listens on nothing)."""
