"""The key chains of k8s/ resolved by the real resolver (``authsvc explain --json``).

The pod's filesystem is rebuilt in a temp dir: the Secret as kubelet writes it (``key ->
..data/key``, ``..data -> ..<version>``), LiteLLM's config.yaml, and the env vars the
manifests give the authsvc container. Paths in the committed configs are mapped onto it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from authsvc.keys import fingerprint
from authsvc.kube._options import KEY_DIR
from tests._keys import make_key
from tests.k8s._support import K8S, authsvc

LITELLM_DIR = "/etc/litellm"


def _publish(secret_dir: Path, key_name: str, value: str, version: str) -> None:
    """Write (or rotate) a Secret the way kubelet does: an atomic ..data symlink swap."""
    secret_dir.mkdir(parents=True, exist_ok=True)
    data = secret_dir / f"..{version}"
    data.mkdir()
    (data / key_name).write_text(value)
    link = secret_dir / key_name
    if not link.is_symlink():
        link.symlink_to(f"..data/{key_name}")
    tmp = secret_dir / "..data_tmp"
    tmp.symlink_to(data.name)
    os.replace(tmp, secret_dir / "..data")


def _config(source: Path, root: Path) -> Path:
    """The committed config with its pod paths moved under ``root``."""
    text = source.read_text()
    for pod_path in (KEY_DIR, LITELLM_DIR):
        text = text.replace(pod_path + "/", f"{root}{pod_path}/")
    out = root / "etc" / "authsvc" / "config.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def _explain(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSVC_", "LITELLM_"))}
    done = authsvc("explain", "--json", *args, env={**clean, **env})
    return done.returncode, json.loads(done.stdout), done.stdout + done.stderr


def _source(report: dict[str, Any], prefix: str) -> dict[str, Any]:
    (found,) = [s for s in report["sources"] if s["source"].startswith(prefix)]
    return found


def test_base_resolves_the_mounted_secret_and_fails_closed_without_it(tmp_path: Path) -> None:
    config = _config(K8S / "base" / "authsvc.yaml", tmp_path)
    code, report, _ = _explain({}, "--config", str(config))
    assert code == 1 and report["resolved"] is False  # optional Secret not there yet
    assert _source(report, "file:")["state"] == "missing"
    key = make_key("k8s-base")
    _publish(tmp_path / KEY_DIR.lstrip("/"), "master-key", key + "\n", "2024_01")
    code, report, output = _explain({}, "--config", str(config))
    assert code == 0, output
    assert report["winner"]["source"] == f"file:{tmp_path}{KEY_DIR}/master-key"
    assert report["winner"]["fingerprint"] == fingerprint(key)
    assert key not in output


def test_injected_default_chain_resolves_the_secret_file(tmp_path: Path) -> None:
    key = make_key("k8s-default-chain")
    _publish(tmp_path / "secret", "master-key", key, "2024_01")
    env = {"AUTHSVC_MASTER_KEY_FILE": str(tmp_path / "secret" / "master-key")}
    code, report, output = _explain(env)
    assert code == 0, output
    assert report["winner"]["fingerprint"] == fingerprint(key)


def test_litellm_and_authsvc_resolve_the_same_key_and_rotation_keeps_them_together(
    tmp_path: Path,
) -> None:
    example = K8S / "examples" / "litellm"
    (tmp_path / LITELLM_DIR.lstrip("/")).mkdir(parents=True)
    (tmp_path / LITELLM_DIR.lstrip("/") / "config.yaml").write_text(
        (example / "litellm-config.yaml").read_text()
    )
    config = _config(example / "authsvc.yaml", tmp_path)
    secret_dir = tmp_path / KEY_DIR.lstrip("/")
    old, new = make_key("k8s-litellm-old"), make_key("k8s-litellm-new")
    _publish(secret_dir, "master-key", old, "2024_01")
    # Both containers got LITELLM_MASTER_KEY from the same Secret when they started.
    env = {"LITELLM_MASTER_KEY": old}
    code, report, output = _explain(env, "--config", str(config))
    assert code == 0, output
    assert report["winner"]["source"].endswith("#general_settings.master_key")
    assert report["winner"]["fingerprint"] == fingerprint(old)
    assert _source(report, "file:")["fingerprint"] == fingerprint(old)
    assert report["warnings"] == []

    # Rotation: the mounted file follows, the env vars do not (until the pods restart).
    _publish(secret_dir, "master-key", new, "2024_02")
    code, report, output = _explain(env, "--config", str(config))
    assert code == 0, output  # on_conflict: warn — still serving LiteLLM's (old) key
    assert report["winner"]["fingerprint"] == fingerprint(old)
    assert _source(report, "file:")["fingerprint"] == fingerprint(new)
    assert report["warnings"], "the differing Secret file must be reported"
    assert old not in output and new not in output

    # After `kubectl rollout restart`: both sides read the new key.
    code, report, output = _explain({"LITELLM_MASTER_KEY": new}, "--config", str(config))
    assert code == 0 and report["winner"]["fingerprint"] == fingerprint(new)
    assert report["warnings"] == []
