"""Suite-wide hooks. The no-key-leak log collection lives in ``tests/_leakscan.py``.

Hypothesis profiles (docs/testing.md). A test's own ``@settings(max_examples=...)`` still
wins over the profile's count; everything else (seed, database) comes from the profile:

- ``ci`` (``CI=true``, as ``.ci/run`` is run): derandomized — a fixed seed per test, so a CI
  failure reproduces exactly — no example database, and more examples;
- ``dev`` (default): random and fast, failures remembered in ``.hypothesis/``;
- ``mutate`` (``make mutate``): derandomized, small and without shrinking, so each mutant's
  run takes seconds.

``HYPOTHESIS_PROFILE=name`` picks one explicitly.
"""

import os

from hypothesis import Phase, settings

from tests._leakscan import (
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_unconfigure,
)

settings.register_profile("ci", derandomize=True, database=None, max_examples=500, print_blob=True)
settings.register_profile("dev", max_examples=100)
settings.register_profile(  # a mutant only needs to fail, not a minimal example: no shrinking
    "mutate",
    derandomize=True,
    database=None,
    max_examples=40,
    phases=[Phase.explicit, Phase.generate],
    report_multiple_bugs=False,
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)

__all__ = [
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_runtest_logreport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_unconfigure",
]
