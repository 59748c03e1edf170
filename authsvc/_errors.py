"""The exception hierarchy (drawn in the package docstring). Messages never contain keys."""

from __future__ import annotations

__all__ = ["AuthsvcError", "ConfigError", "KeySourceError"]


class AuthsvcError(Exception):
    """Base class of every error authsvc raises on purpose."""


class ConfigError(AuthsvcError):
    """A config file, flag or environment setting is invalid. The message names where."""


class KeySourceError(AuthsvcError):
    """A key source cannot be used (unreadable, invalid, weak, conflicting)."""
