"""The stable top-level shape of ``authsvc explain --json``, written out once by hand: the
keys, in this order, nothing else (the unit and e2e tests of explain all pin it)."""

EXPLAIN_JSON_KEYS = [
    "resolved",
    "winner",
    "app_open",
    "sources",
    "extra_keys",
    "warnings",
    "dry_run",
]
