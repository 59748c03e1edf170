"""Where each ``authsvc serve --workers N`` worker listens: one rule, shared by ``serve``,
``envoy-config`` and ``up`` so the gRPC half and the Envoy half cannot drift.

With one worker (the default) the addresses are used unchanged. With N > 1, worker ``i``
(0-based) listens on each given address transformed as follows:

- ``unix:/run/authsvc/authz.sock`` → ``unix:/run/authsvc/authz-<i>.sock`` (``-<i>`` goes before
  the file name's last suffix; a name without a suffix gets it appended: ``authz`` → ``authz-1``)
- ``HOST:PORT`` / ``[V6]:PORT`` → ``HOST:<PORT+i>`` (port 0 is refused: Envoy must know ports)

Addresses are read by the shared grammar (``authsvc._address``) and written back in its
canonical form; every derived address is checked by it too (e.g. a path grown past the kernel's
limit). Pure: no sockets and no gRPC import (``envoy-config`` uses it too).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import replace

from authsvc._address import parse_address
from authsvc._errors import ConfigError

__all__ = ["MAX_WORKERS", "port_clash", "worker_address", "worker_addresses", "worker_listen"]

MAX_WORKERS = 64


def _check_count(workers: int) -> None:
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers {workers}: must be between 1 and {MAX_WORKERS}")


def worker_address(address: str, index: int, workers: int) -> str:
    """The address worker ``index`` of ``workers`` listens on for the given ``address``."""
    _check_count(workers)
    if not 0 <= index < workers:
        raise ValueError(f"worker index {index} out of range for {workers} workers")
    if workers == 1:
        return address
    parsed = parse_address(address, "address", any_port=True)
    if parsed.is_unix:
        head, name = posixpath.split(parsed.path)
        stem, suffix = posixpath.splitext(name)
        derived = "unix:" + posixpath.join(head, f"{stem}-{index}{suffix}")
    else:
        if parsed.port == 0:
            raise ConfigError(
                f"address {address!r}: port 0 cannot be used with --workers {workers}: Envoy "
                "must know every worker's port (workers use PORT, PORT+1, ...)"
            )
        if parsed.port + workers - 1 > 65535:
            raise ConfigError(
                f"address {address!r}: --workers {workers} needs ports {parsed.port}.."
                f"{parsed.port + workers - 1}, beyond 65535"
            )
        derived = str(replace(parsed, port=parsed.port + index))
    return str(parse_address(derived, f"--workers {workers}: worker {index}'s address"))


def worker_listen(listen: Sequence[str], workers: int) -> tuple[tuple[str, ...], ...]:
    """Per worker, the addresses it listens on (``worker_listen(L, N)[i]`` is worker ``i``'s)."""
    _check_count(workers)
    return tuple(tuple(worker_address(a, i, workers) for a in listen) for i in range(workers))


def worker_addresses(listen: Sequence[str], workers: int) -> tuple[str, ...]:
    """Every address the workers listen on, worker 0's first: the endpoints Envoy must list."""
    out = tuple(a for addresses in worker_listen(listen, workers) for a in addresses)
    if len(set(out)) != len(out):
        raise ConfigError(
            f"addresses {list(listen)} with --workers {workers}: two workers would share an "
            "address; give addresses whose derived ports/paths do not overlap"
        )
    return out


def port_clash(addresses: Sequence[str], other: str) -> str | None:
    """The first of ``addresses`` that uses the TCP port of ``other`` (``HOST:PORT``), if any.

    Hosts are not compared: a wildcard bind (``0.0.0.0``) clashes with every host anyway. An
    ``other`` that does not parse, or asks for port 0, clashes with nothing.
    """
    try:
        port = parse_address(other, "other", any_port=True).port
    except ConfigError:
        return None
    if port == 0:
        return None
    for address in addresses:
        if parse_address(address, "address", any_port=True).port == port:
            return address
    return None
