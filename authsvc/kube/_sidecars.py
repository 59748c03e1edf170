"""The containers and volumes an injected pod gets, as plain dicts (pure, no I/O).

Init sequence of an injected pod (native sidecars, Kubernetes >= 1.29)::

    authsvc            sidecar (restartPolicy: Always); its startupProbe (/livez) gates the rest
    authsvc-bootstrap  plain init container: `authsvc envoy-config ... -o envoy.yaml`
    authsvc-envoy      sidecar; its startupProbe (TCP on the proxy port) gates the app
    <the pod's own init containers>, then the app containers

The startup gate is ``/livez``, not ``/readyz``: a pod whose key is not resolvable yet must
still start (so ``authsvc explain`` and the probes work; authsvc fails closed with 503 until
the key appears). ``/readyz`` is the readiness probe, so such a pod receives no traffic.
"""

from __future__ import annotations

from typing import Any

from authsvc import _defaults
from authsvc.kube._options import (
    AUTHSVC_UID,
    BOOTSTRAP_CONTAINER,
    BOOTSTRAP_DIR,
    BOOTSTRAP_FILE,
    CONFIG_DIR,
    CONFIG_FILE,
    ENV_APP_PORT,
    ENV_APP_PROBES,
    ENV_POD_IPS,
    ENVOY_CONTAINER,
    KEY_DIR,
    PROXY_PORT_NAME,
    REDIRECT_CONTAINER,
    SIDECAR_CONTAINER,
    SOCKET_DIR,
    STATUS_PORT_NAME,
    VOLUME_BOOTSTRAP,
    VOLUME_CONFIG,
    VOLUME_KEY,
    VOLUME_SOCKET,
    InjectOptions,
)

__all__ = [
    "authsvc_container",
    "bootstrap_container",
    "envoy_container",
    "redirect_container",
    "security_context",
    "sidecar_probes",
    "volumes",
]

Obj = dict[str, Any]


def security_context() -> Obj:
    """Restricted Pod Security Standard, read-only root, one uid for both sidecars.

    Envoy and authsvc share a uid so Envoy may connect to authsvc's Unix socket (connecting
    needs write permission on the socket file) whatever umask authsvc runs with.
    """
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": AUTHSVC_UID,
        "runAsGroup": AUTHSVC_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Obj:
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


def _http_probe(path: str, *, period: int, failures: int, timeout: int = 1) -> Obj:
    return {
        "httpGet": {"path": path, "port": _defaults.STATUS_PORT, "scheme": "HTTP"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def _tcp_probe(*, period: int, failures: int) -> Obj:
    return {
        "tcpSocket": {"port": _defaults.ENVOY_PORT},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 1,
    }


def sidecar_probes(container: str) -> Obj:
    """startup/liveness/readiness probes of a sidecar (shared with the hand-written k8s/base)."""
    if container == SIDECAR_CONTAINER:
        return {
            # 1 s steps, up to 60 s: the app starts as soon as authsvc answers.
            "startupProbe": _http_probe("/livez", period=1, failures=60),
            "livenessProbe": _http_probe("/livez", period=10, failures=3, timeout=2),
            "readinessProbe": _http_probe("/readyz", period=5, failures=2, timeout=2),
        }
    if container == ENVOY_CONTAINER:
        # Envoy's admin (/ready) is loopback-only; kubelet can only see the listener.
        return {
            "startupProbe": _tcp_probe(period=1, failures=60),
            "readinessProbe": _tcp_probe(period=5, failures=2),
        }
    raise ValueError(container)


def authsvc_container(
    opts: InjectOptions,
    app_probes: str | None,
    *,
    app_port: int | None = None,
    key_env: list[Obj] | None = None,
    key_mounts: list[Obj] | None = None,
    use_secret: bool = True,
) -> Obj:
    """The ext_authz server: gRPC on the shared socket, status port on all interfaces.

    ``key_env``/``key_mounts``: the app's own key sources (``_keysources``); ``use_secret``
    False leaves the ``--secret`` file out of the chain (the app's sources are the chain).
    ``app_port``: the bypass detector tries it on the pod IPs (downward API).
    """
    args = [
        "serve",
        "--listen",
        _defaults.AUTHZ_SOCKET_IN_POD,
        "--status-listen",
        f"0.0.0.0:{_defaults.STATUS_PORT}",
    ]
    # The env makes `kubectl exec ... -- authsvc explain` (no flags) resolve exactly as the
    # server does. Without a config the default chain applies, whose file layer is
    # $AUTHSVC_MASTER_KEY_FILE (docs/configuration.md); --master-key-file would add a second one.
    if opts.bypass_readiness != "warn":
        args += ["--bypass-readiness", opts.bypass_readiness]
    env: list[Obj] = []
    if opts.config_map:
        args += ["--config", CONFIG_FILE]
        env = [{"name": "AUTHSVC_CONFIG", "value": CONFIG_FILE}]
    elif use_secret:
        env = [{"name": "AUTHSVC_MASTER_KEY_FILE", "value": opts.key_file}]
    if app_probes is not None:
        env.append({"name": ENV_APP_PROBES, "value": app_probes})
    if app_port is not None:
        env += [
            {"name": ENV_POD_IPS, "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
            {"name": ENV_APP_PORT, "value": str(app_port)},
        ]
    env += key_env or []
    mounts: list[Obj] = [{"name": VOLUME_SOCKET, "mountPath": SOCKET_DIR}]
    if use_secret:
        mounts.append({"name": VOLUME_KEY, "mountPath": KEY_DIR, "readOnly": True})
    if opts.config_map:
        mounts.append({"name": VOLUME_CONFIG, "mountPath": CONFIG_DIR, "readOnly": True})
    mounts += key_mounts or []
    return {
        "name": SIDECAR_CONTAINER,
        "image": opts.image,
        "restartPolicy": "Always",
        "args": args,
        "env": env,
        "ports": [
            {"name": STATUS_PORT_NAME, "containerPort": _defaults.STATUS_PORT, "protocol": "TCP"}
        ],
        **sidecar_probes(SIDECAR_CONTAINER),
        "resources": _resources("50m", "64Mi", "1", "256Mi"),
        "securityContext": security_context(),
        "volumeMounts": mounts,
    }


def bootstrap_args(opts: InjectOptions, app_port: int) -> list[str]:
    """``authsvc envoy-config`` arguments that write the pod's Envoy bootstrap."""
    args = ["envoy-config"]
    if opts.config_map:
        args += ["--config", CONFIG_FILE]
    return [
        *args,
        "--listen",
        _defaults.ENVOY_LISTEN,
        "--upstream",
        f"127.0.0.1:{app_port}",
        "--authz",
        _defaults.AUTHZ_SOCKET_IN_POD,
        "--admin",
        _defaults.ENVOY_ADMIN,
        "-o",
        BOOTSTRAP_FILE,
    ]


def bootstrap_container(opts: InjectOptions, app_port: int) -> Obj:
    """Writes Envoy's bootstrap from the same config authsvc runs with (the halves can't drift)."""
    mounts: list[Obj] = [{"name": VOLUME_BOOTSTRAP, "mountPath": BOOTSTRAP_DIR}]
    if opts.config_map:
        mounts.append({"name": VOLUME_CONFIG, "mountPath": CONFIG_DIR, "readOnly": True})
    return {
        "name": BOOTSTRAP_CONTAINER,
        "image": opts.image,
        "args": bootstrap_args(opts, app_port),
        "resources": _resources("10m", "32Mi", "500m", "128Mi"),
        "securityContext": security_context(),
        "volumeMounts": mounts,
    }


def envoy_args(config_path: str) -> list[str]:
    return [
        "-c",
        config_path,
        "--concurrency",
        "2",
        "--disable-hot-restart",  # a restart in Kubernetes is a new container
        "--log-level",
        "info",
    ]


def envoy_container(opts: InjectOptions) -> Obj:
    return {
        "name": ENVOY_CONTAINER,
        "image": opts.envoy_image,
        "restartPolicy": "Always",
        # The distroless image has no shell; call the binary itself (same path in every image).
        "command": ["/usr/local/bin/envoy"],
        "args": envoy_args(BOOTSTRAP_FILE),
        "ports": [
            {"name": PROXY_PORT_NAME, "containerPort": _defaults.ENVOY_PORT, "protocol": "TCP"}
        ],
        **sidecar_probes(ENVOY_CONTAINER),
        "resources": _resources("50m", "64Mi", "1", "256Mi"),
        "securityContext": security_context(),
        "volumeMounts": [
            {"name": VOLUME_SOCKET, "mountPath": SOCKET_DIR},
            {"name": VOLUME_BOOTSTRAP, "mountPath": BOOTSTRAP_DIR, "readOnly": True},
        ],
    }


def redirect_container(opts: InjectOptions, app_port: int) -> Obj:
    """Opt-in inbound redirect (like Istio's istio-init): TCP arriving from outside the pod for
    the app port goes to Envoy instead (nat PREROUTING; Envoy's own connection to
    127.0.0.1:<app port> is local, OUTPUT, and is not redirected). Runs first, as root with
    NET_ADMIN/NET_RAW only, then exits; re-running it is harmless (the chain is flushed)."""
    rule = f"-p tcp --dport {app_port} -j REDIRECT --to-ports {_defaults.ENVOY_PORT}"
    script = (
        "set -e\n"
        "for t in iptables ip6tables; do\n"
        '  if [ "$t" = ip6tables ] && ! ip6tables -t nat -S >/dev/null 2>&1; then continue; fi\n'
        "  $t -t nat -N AUTHSVC_INBOUND 2>/dev/null || $t -t nat -F AUTHSVC_INBOUND\n"
        f"  $t -t nat -A AUTHSVC_INBOUND {rule}\n"
        "  $t -t nat -C PREROUTING -p tcp -j AUTHSVC_INBOUND 2>/dev/null"
        " || $t -t nat -A PREROUTING -p tcp -j AUTHSVC_INBOUND\n"
        "done\n"
    )
    return {
        "name": REDIRECT_CONTAINER,
        "image": opts.image,  # the authsvc image ships iptables (nft backend) for this
        "command": ["/bin/sh", "-c", script],
        "resources": _resources("10m", "16Mi", "100m", "64Mi"),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
            "readOnlyRootFilesystem": False,  # iptables takes a lock file under /run
            "runAsNonRoot": False,
            "runAsUser": 0,
            "runAsGroup": 0,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def volumes(opts: InjectOptions, *, use_secret: bool = True) -> list[Obj]:
    """Socket and bootstrap emptyDirs, the key Secret (a directory), the optional config."""
    vols: list[Obj] = [
        {"name": VOLUME_SOCKET, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {"name": VOLUME_BOOTSTRAP, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
    ]
    if use_secret:
        vols.append(
            {
                "name": VOLUME_KEY,
                # optional: a pod whose Secret does not exist yet still starts (fail closed:
                # 503, not ready); kubelet fills the directory when the Secret appears.
                "secret": {"secretName": opts.secret, "defaultMode": 0o444, "optional": True},
            }
        )
    if opts.config_map:
        vols.append({"name": VOLUME_CONFIG, "configMap": {"name": opts.config_map}})
    return vols
