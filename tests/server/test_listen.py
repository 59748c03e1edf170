"""Binding: TCP port conflicts, Unix socket preparation and cleanup, on a real server."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from authsvc.authz import Policy
from authsvc.keys import KeyStore
from authsvc.server import AuthzServer, ListenError
from tests.server.conftest import LoopThread, Running, check, master_ring, request


def test_busy_port_fails_clearly_naming_the_address(
    start_server: Callable[..., Running],
) -> None:
    first = start_server()
    with pytest.raises(ListenError) as info:
        start_server([first.tcp])
    assert repr(first.tcp) in str(info.value)
    assert "already in use" in str(info.value)


def test_unix_socket_parent_created_and_removed_on_stop(
    loop_thread: LoopThread, short_tmp: Path
) -> None:
    path = short_tmp / "a" / "b" / "authz.sock"
    server = AuthzServer(KeyStore(master_ring()), Policy.build(), [f"unix:{path}"])
    loop_thread.run(server.start())
    try:
        assert path.is_socket()
        assert server.bound_addresses == (f"unix:{path}",)
        assert check(f"unix:{path}", request()).denied_response.status.code == 401
    finally:
        loop_thread.run(server.stop(1))
    assert not path.exists()


def test_stale_socket_file_is_replaced(
    start_server: Callable[..., Running], short_tmp: Path
) -> None:
    path = short_tmp / "authz.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a leftover from a crash
    assert path.is_socket()
    running = start_server([f"unix:{path}"])
    assert check(running.unix, request()).denied_response.status.code == 401


def test_live_socket_is_not_stolen(start_server: Callable[..., Running], short_tmp: Path) -> None:
    path = short_tmp / "authz.sock"
    start_server([f"unix:{path}"])
    with pytest.raises(ListenError, match="already listening"):
        start_server([f"unix:{path}"])
    assert path.is_socket()


@pytest.mark.parametrize("kind", ["file", "dir", "symlink"])
def test_non_socket_path_is_refused_and_left_alone(
    start_server: Callable[..., Running], short_tmp: Path, kind: str
) -> None:
    path = short_tmp / "authz.sock"
    if kind == "file":
        path.write_text("precious")
    elif kind == "dir":
        path.mkdir()
    else:
        os.symlink(short_tmp / "elsewhere", path)
    with pytest.raises(ListenError, match="is not a socket") as info:
        start_server([f"unix:{path}"])
    assert str(path) in str(info.value)
    assert os.path.lexists(path)
    if kind == "file":
        assert path.read_text() == "precious"


PLAIN_PYTHON = "/usr/bin/python3"  # any user may run it (unlike a venv under /root or /work)


def _connects_as(path: Path, uid: int, gid: int) -> str:
    """Try to connect to ``path`` from a process running as ``uid``/``gid`` (no other groups)."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX)\n"
        "try:\n s.connect(sys.argv[1]); print('connected')\n"
        "except PermissionError: print('denied')\n"
    )
    done = subprocess.run(
        [PLAIN_PYTHON, "-c", code, str(path)],
        user=uid, group=gid, extra_groups=[], capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.stdout.strip() or done.stderr


def test_socket_is_owner_and_group_only(
    start_server: Callable[..., Running], short_tmp: Path
) -> None:
    """0660 (``serve --socket-mode``): Envoy connects as the same uid or group (in a pod both
    sidecars run as 10001:10001); any other local user cannot even try a key."""
    path = short_tmp / "authz.sock"
    running = start_server([f"unix:{path}"])
    assert path.stat().st_mode & 0o777 == 0o660
    assert running.unix
    if os.geteuid() != 0 or not os.access(PLAIN_PYTHON, os.X_OK):
        pytest.skip("checking other users needs root and /usr/bin/python3 (run as them)")
    short_tmp.chmod(0o755)
    group = path.stat().st_gid
    assert _connects_as(path, 65534, 65533) == "denied"  # another user, another group
    os.chown(path, 0, 10001)  # the socket's group, as in a pod (the sidecars' gid / fsGroup)
    assert _connects_as(path, 65534, 10001) == "connected"
    os.chown(path, 0, group)


def test_one_bad_address_binds_nothing(
    start_server: Callable[..., Running], short_tmp: Path
) -> None:
    blocker = short_tmp / "file"
    blocker.write_text("x")
    good = short_tmp / "good.sock"
    with pytest.raises(ListenError):
        start_server([f"unix:{good}", f"unix:{blocker}"])
    assert not good.exists()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_and_port_zero_report_the_real_port(start_server: Callable[..., Running]) -> None:
    running = start_server(["[::1]:0"])
    (address,) = running.server.bound_addresses
    assert address.startswith("[::1]:") and not address.endswith(":0")
    assert check(address, request()).denied_response.status.code == 401


def test_unresolvable_host_fails_clearly(start_server: Callable[..., Running]) -> None:
    with pytest.raises(ListenError, match="does not resolve") as info:
        start_server(["no-such-host.invalid:9191"])
    assert "'no-such-host.invalid:9191'" in str(info.value)
