"""Fixtures for e2e tests (real processes). See ``_harness.py`` for the building blocks.

- ``procs``         function-scoped ``Launcher``: everything it starts is stopped after the test
- ``module_procs``  module-scoped ``Launcher`` (share one expensive stack across a module)
- ``stack``         demo upstream + ``authsvc serve`` (TCP) + Envoy, master key configured
- ``unix_stack``    the same with authsvc on a Unix socket
- ``demo``          the demo upstream alone (``demo.port``, ``demo.requests()``)

On failure, the children's log tails are appended to the test report ("e2e logs" section).
Every test in this directory is marked ``e2e`` automatically.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.e2e._harness import DemoServer, Launcher, Stack, new_key


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Launcher) and value.started:
                report.sections.append(("e2e logs", value.logs()))
    return report


def _launcher(workdir: Path) -> Launcher:
    workdir.mkdir(parents=True, exist_ok=True)
    return Launcher(workdir)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Launcher]:
    launcher = _launcher(tmp_path / "e2e")
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture(scope="module")
def module_procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    launcher = _launcher(tmp_path_factory.mktemp("e2e-module"))
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture
def stack(procs: Launcher) -> Stack:
    return procs.stack("tcp")


@pytest.fixture
def unix_stack(procs: Launcher) -> Stack:
    return procs.stack("unix")


@pytest.fixture
def demo(procs: Launcher) -> DemoServer:
    return procs.demo(new_key())
