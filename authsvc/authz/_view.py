"""The request as the decision sees it: our own frozen type, built by the gRPC adapter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["RequestView"]


@dataclass(frozen=True, slots=True)
class RequestView:
    """One HTTP request, as Envoy described it.

    ``target`` is the raw request target (path plus query string, undecoded) exactly as Envoy
    sent it in ``attributes.request.http.path``. ``headers`` has lower-cased names; a header
    sent several times arrives as one value joined with ``,`` (Envoy's behaviour).
    ``first_values`` (when the adapter knows them, from Envoy's raw header list) holds each
    header's first value: the one LiteLLM reads, so the credential rule uses it.
    """

    method: str
    target: str
    headers: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""
    source: str = ""
    first_values: Mapping[str, str] | None = None
