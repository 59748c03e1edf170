"""The Envoy half's name for the shared address grammar, which lives in ``authsvc._address``
(the one ``serve --listen`` uses too). Only ``_bootstrap`` still imports it from here; new code
imports ``authsvc._address``."""

from authsvc._address import Address, parse_address

__all__ = ["Address", "parse_address"]
