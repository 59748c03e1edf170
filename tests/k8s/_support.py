"""Shared helpers for the offline Kubernetes tests (no API server: schemas, kubectl, files)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from authsvc.kube import load_documents
from tests._leakscan import log_file

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUBE_VERSION = "1.29.0"
KUBECTL = shutil.which("kubectl")
NO_SCHEMA_KINDS = {"Kustomization", "Component"}

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")


def validate(obj: dict[str, Any], where: str) -> None:
    """Strict schema validation against Kubernetes 1.29; a missing schema is a failure too."""
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(
            f"{where}: {obj.get('kind')} {obj['metadata'].get('name')}: {path}: {exc.message}"
        )
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(f"{where}: {exc.message}")


def validate_all(docs: list[Any], where: str) -> int:
    count = 0
    for i, doc in enumerate(docs, start=1):
        assert isinstance(doc, dict), f"{where}: document {i} is not a mapping"
        validate(doc, f"{where} document {i}")
        count += 1
    return count


def kustomize(directory: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    done = subprocess.run(
        [KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"kubectl kustomize {directory}: {done.stderr}"
    return load_documents(done.stdout, str(directory))


def kustomizations() -> list[Path]:
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


def authsvc(
    *args: str, stdin: str | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (``python -m authsvc``) as a user would.

    Its output also goes to the session log directory, for the end-of-suite key-leak scan.
    """
    done = subprocess.run(
        [sys.executable, "-m", "authsvc", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    log_file(f"authsvc-{args[0] if args else 'cli'}").write_text(done.stdout + done.stderr)
    return done


def load_yaml_file(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def pod_templates(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod template) of every workload in ``docs``."""
    out = []
    for doc in docs:
        kind = doc.get("kind")
        if kind == "Pod":
            out.append((f"Pod/{doc['metadata'].get('name')}", doc))
        elif kind == "CronJob":
            out.append(
                (
                    f"CronJob/{doc['metadata']['name']}",
                    doc["spec"]["jobTemplate"]["spec"]["template"],
                )
            )
        elif kind in (
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
            "ReplicationController",
        ):
            out.append((f"{kind}/{doc['metadata']['name']}", doc["spec"]["template"]))
    return out
