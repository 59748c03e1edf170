"""parity/install.py: which requirements of LiteLLM's ``proxy`` extra get installed."""

from __future__ import annotations

from parity.install import extra_requirements, relax

METADATA = """\
Metadata-Version: 2.4
Name: litellm
Version: 1.110.2
Requires-Dist: httpx[http2]>=0.28.0,<1.0
Requires-Dist: rich>=13.9.4,<14.0 ; extra == 'cli'
Requires-Dist: litellm-proxy==1.110.2 ; extra == 'proxy'
Requires-Dist: uvicorn>=0.33.0,<1.0 ; extra == 'proxy'
Requires-Dist: granian>=2.7.4,<3.0 ; python_full_version < '3.15' and extra == 'proxy'
Requires-Dist: granian>=2.8.0,<3.0 ; python_full_version >= '3.15' and extra == 'proxy'
Requires-Dist: uvloop>=0.22.1,<1.0 ; sys_platform == 'win32' and extra == 'proxy'
Requires-Dist: litellm-enterprise==0.1.83.post1 ; extra == 'proxy'
Provides-Extra: proxy

Requires-Dist: not-a-header ; extra == 'proxy'
"""


def test_only_the_proxy_extra_for_this_interpreter_minus_the_unresolvable() -> None:
    kept, left_out = extra_requirements(METADATA)
    assert kept == [
        "uvicorn<1.0,>=0.33.0",
        "granian<3.0,>=2.7.4",
        "litellm-enterprise==0.1.83.post1",
    ]
    assert left_out == ["litellm-proxy==1.110.2"]


def test_a_missing_exact_pin_is_relaxed_to_at_most_the_pin() -> None:
    reqs = ["uvicorn<1.0,>=0.33.0", "litellm-enterprise==0.1.83.post1"]
    step = relax(reqs, "litellm-enterprise==0.1.83.post1")
    assert step == (
        ["uvicorn<1.0,>=0.33.0", "litellm-enterprise<=0.1.83.post1"],
        "litellm-enterprise==0.1.83.post1 -> litellm-enterprise<=0.1.83.post1",
    )


def test_a_missing_range_is_left_out_and_an_unknown_name_stops() -> None:
    reqs = ["uvicorn<1.0,>=0.33.0", "litellm-enterprise<=0.1.83.post1"]
    assert relax(reqs, "litellm-enterprise<=0.1.83.post1") == (
        ["uvicorn<1.0,>=0.33.0"],
        "litellm-enterprise<=0.1.83.post1 -> left out",
    )
    assert relax(reqs, "something-else") is None
