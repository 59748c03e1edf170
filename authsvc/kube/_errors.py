"""The one error injection raises: it names the document and the field."""

from __future__ import annotations

from authsvc._errors import ConfigError

__all__ = ["InjectError"]


class InjectError(ConfigError):
    """A pod template cannot be injected. ``field`` is a path like
    ``spec.template.spec.containers[0].livenessProbe.httpGet.port``; ``where`` names the
    document (``document 2 (Deployment shop/web)`` or ``Pod shop/web-7f9c``)."""

    def __init__(self, field: str, reason: str, where: str = "") -> None:
        self.field = field
        self.reason = reason
        self.where = where
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.where}: " if self.where else ""
        field = f"{self.field}: " if self.field else ""
        return f"{head}{field}{self.reason}"

    def at(self, where: str) -> InjectError:
        """The same error, located in a document."""
        return InjectError(self.field, self.reason, where)
