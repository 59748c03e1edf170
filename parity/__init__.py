"""The LiteLLM parity differential (issue #13): the real LiteLLM proxy, authsvc's Check and the
whole stack (Envoy -> authsvc -> LiteLLM) answer the same requests; every difference is a row.

Not part of the ``authsvc`` package: it drives ``authsvc`` only through its command line and its
gRPC API, exactly as an operator would. ``make parity`` runs it (``parity.install`` then
``parity.run``); ``docs/litellm-parity.md`` explains the table.
"""
