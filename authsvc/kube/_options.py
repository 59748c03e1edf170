"""What injection is parameterised by: one frozen, validated value, and the names it uses.

``InjectOptions`` is what ``authsvc inject`` and ``authsvc webhook`` build from their flags
(``add_arguments`` / ``from_args``), so the CLI and the webhook produce the same pods. Every
name a pod gets (containers, volumes, ports, annotations) is a constant here, in one place.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from authsvc import _defaults
from authsvc._errors import ConfigError
from authsvc._version import __version__

__all__ = [
    "ANNOTATION_APP_PORT",
    "ANNOTATION_HELM_HOOK",
    "ANNOTATION_INJECT",
    "ANNOTATION_ORIGINAL_PROBES",
    "ANNOTATION_STATUS",
    "ANNOTATION_VERSION",
    "AUTHSVC_UID",
    "BOOTSTRAP_CONTAINER",
    "BOOTSTRAP_DIR",
    "BOOTSTRAP_FILE",
    "CONFIG_DIR",
    "CONFIG_FILE",
    "DEFAULT_ENVOY_IMAGE",
    "DEFAULT_IMAGE",
    "ENVOY_CONTAINER",
    "ENV_APP_PORT",
    "ENV_APP_PROBES",
    "ENV_LITELLM_CONFIG",
    "ENV_POD_IPS",
    "KEY_DIR",
    "LITELLM_CONFIG_DIR",
    "OPT_IN_VALUES",
    "OPT_OUT_VALUES",
    "PROXY_PORT_NAME",
    "REDIRECT_CONTAINER",
    "SIDECAR_CONTAINER",
    "SOCKET_DIR",
    "STATUS_INJECTED",
    "STATUS_PORT_NAME",
    "VOLUME_BOOTSTRAP",
    "VOLUME_CONFIG",
    "VOLUME_KEY",
    "VOLUME_LITELLM_CONFIG",
    "VOLUME_SOCKET",
    "InjectOptions",
    "add_arguments",
    "from_args",
]

DEFAULT_IMAGE = f"ghcr.io/authsvc/authsvc:{__version__}"
DEFAULT_ENVOY_IMAGE = "envoyproxy/envoy:distroless-v1.40-latest"

# Annotations (on the pod template) and the opt-in/opt-out label/annotation.
ANNOTATION_INJECT = "authsvc.io/inject"  # label "enabled" opts in (webhook); "false" opts out
OPT_OUT_VALUES = frozenset({"false", "disabled"})
OPT_IN_VALUES = frozenset({"true", "enabled"})  # also injects Jobs, CronJobs and Helm hooks
ANNOTATION_HELM_HOOK = "helm.sh/hook"  # Helm hooks (migrations, tests) serve nothing
ANNOTATION_STATUS = "authsvc.io/status"
STATUS_INJECTED = "injected"
ANNOTATION_VERSION = "authsvc.io/version"  # version of the injector that injected the pod
ANNOTATION_ORIGINAL_PROBES = "authsvc.io/original-probes"  # verbatim httpGet of each probe
ANNOTATION_APP_PORT = "authsvc.io/app-port"  # per-pod override of --app-port

# What the authsvc container reads: the app probes it forwards (see authsvc serve).
ENV_APP_PROBES = "AUTHSVC_APP_PROBES"
# The bypass detector's inputs (authsvc.health._bypass) and LiteLLM mode without a config file
# (authsvc.config._chain): the same names the server reads.
ENV_POD_IPS = "AUTHSVC_POD_IPS"
ENV_APP_PORT = "AUTHSVC_APP_PORT"
ENV_LITELLM_CONFIG = "AUTHSVC_LITELLM_CONFIG"

# Containers, volumes, ports, paths.
SIDECAR_CONTAINER = "authsvc"
BOOTSTRAP_CONTAINER = "authsvc-bootstrap"
ENVOY_CONTAINER = "authsvc-envoy"
REDIRECT_CONTAINER = "authsvc-redirect"
VOLUME_SOCKET = "authsvc-socket"
VOLUME_KEY = "authsvc-master-key"
VOLUME_CONFIG = "authsvc-config"
VOLUME_BOOTSTRAP = "authsvc-envoy-bootstrap"
VOLUME_LITELLM_CONFIG = "authsvc-litellm-config"  # the app's own LiteLLM config volume, again
STATUS_PORT_NAME = "authsvc-status"
PROXY_PORT_NAME = "authsvc-proxy"
SOCKET_DIR = _defaults.AUTHZ_SOCKET_IN_POD.removeprefix("unix:").rsplit("/", 1)[0]
KEY_DIR = "/var/run/secrets/authsvc"
CONFIG_DIR = "/etc/authsvc"
CONFIG_FILE = f"{CONFIG_DIR}/config.yaml"
BOOTSTRAP_DIR = "/etc/authsvc-envoy"
BOOTSTRAP_FILE = f"{BOOTSTRAP_DIR}/envoy.yaml"
LITELLM_CONFIG_DIR = "/etc/authsvc-litellm"  # where authsvc sees the app's LiteLLM config
AUTHSVC_UID = 10001  # the image's user; Envoy runs as the same uid (see docs/kubernetes.md)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_IMAGE = re.compile(r"^[^\s]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


@dataclass(frozen=True, slots=True)
class InjectOptions:
    """Everything an injected pod depends on besides the pod itself.

    ``secret``/``secret_key``: the Secret holding the master key, mounted as a directory at
    ``KEY_DIR`` (never subPath: subPath mounts never see a rotation). ``config_map``: an
    optional ConfigMap whose ``config.yaml`` is authsvc's config (without it authsvc reads the
    key file only). ``app_port``: where Envoy forwards allowed requests (127.0.0.1:app_port);
    a pod annotation ``authsvc.io/app-port`` overrides it.
    """

    image: str = DEFAULT_IMAGE
    envoy_image: str = DEFAULT_ENVOY_IMAGE
    secret: str = "authsvc-master-key"
    secret_key: str = "master-key"
    config_map: str | None = None
    app_port: int = _defaults.APP_PORT
    include_jobs: bool = False  # inject Jobs, CronJobs and Helm hook pods too
    network_policy: bool = False  # emit a NetworkPolicy per workload (inject only)
    inbound_redirect: bool = False  # iptables init container: app port -> Envoy
    key_env: tuple[str, ...] = ()  # more app variables holding the key (besides *MASTER_KEY*)
    bypass_readiness: str = "warn"  # serve --bypass-readiness in the injected authsvc

    def __post_init__(self) -> None:
        for what, image in (("--image", self.image), ("--envoy-image", self.envoy_image)):
            if not _IMAGE.match(image):
                raise ConfigError(f"{what}: {image!r} is not an image reference")
        for what, name in (("--secret", self.secret), ("--config-map", self.config_map)):
            if name is not None and not _DNS_SUBDOMAIN.match(name):
                raise ConfigError(
                    f"{what}: {name!r} is not a valid Kubernetes object name "
                    "(lower-case letters, digits, '-' and '.')"
                )
        if not _SECRET_KEY.match(self.secret_key):
            raise ConfigError(f"--secret-key: {self.secret_key!r} is not a valid Secret key")
        check_app_port(self.app_port, "--app-port")
        if self.bypass_readiness not in ("warn", "fail"):
            raise ConfigError(f"--bypass-readiness: {self.bypass_readiness!r} is not warn or fail")
        for name in self.key_env:
            if not _ENV_NAME.match(name):
                raise ConfigError(f"--key-env: {name!r} is not an environment variable name")

    @property
    def key_file(self) -> str:
        return f"{KEY_DIR}/{self.secret_key}"


def reserved_ports() -> dict[int, str]:
    """Ports the sidecars use inside the pod's network namespace, with who uses them."""
    admin_port = int(_defaults.ENVOY_ADMIN.rsplit(":", 1)[1])
    return {
        _defaults.STATUS_PORT: f"{SIDECAR_CONTAINER} (status port)",
        _defaults.ENVOY_PORT: f"{ENVOY_CONTAINER} (proxy port)",
        admin_port: f"{ENVOY_CONTAINER} (admin port, loopback)",
    }


def check_app_port(port: object, what: str) -> int:
    """The app port as an int, or a ConfigError naming ``what``."""
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{what}: {port!r} is not a port number (1-65535)")
    if port in reserved_ports():
        raise ConfigError(f"{what}: port {port} is used by {reserved_ports()[port]}")
    return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The injection flags shared by ``authsvc inject`` and ``authsvc webhook``."""
    d = InjectOptions()
    group = parser.add_argument_group("injection")
    group.add_argument("--image", default=d.image, help=f"authsvc image (default {d.image})")
    group.add_argument(
        "--envoy-image", default=d.envoy_image, help=f"Envoy image (default {d.envoy_image})"
    )
    group.add_argument(
        "--secret",
        default=d.secret,
        metavar="NAME",
        help=f"Secret with the master key, mounted as a directory (default {d.secret})",
    )
    group.add_argument(
        "--secret-key",
        default=d.secret_key,
        metavar="KEY",
        help=f"key inside the Secret that holds the master key (default {d.secret_key})",
    )
    group.add_argument(
        "--config-map",
        default=None,
        metavar="NAME",
        help="ConfigMap whose config.yaml is authsvc's config (default: none, key file only)",
    )
    group.add_argument(
        "--app-port",
        type=int,
        default=d.app_port,
        metavar="N",
        help=f"port the app listens on, on 127.0.0.1 (default {d.app_port}; "
        f"a pod annotation {ANNOTATION_APP_PORT} overrides it; LiteLLM's --port/PORT is read)",
    )
    group.add_argument(
        "--key-env",
        action="append",
        metavar="NAME",
        help="an app variable that holds the key, passed to authsvc like LITELLM_MASTER_KEY "
        "and *MASTER_KEY* variables are (repeatable)",
    )
    group.add_argument(
        "--bypass-readiness",
        choices=("warn", "fail"),
        default=d.bypass_readiness,
        help="what the injected authsvc does when the app answers on the pod IP: warn (log, "
        "metric, /readyz detail) or fail (also NotReady); default warn",
    )
    group.add_argument(
        "--include-jobs",
        action="store_true",
        help="inject Jobs, CronJobs and Helm hook pods too (default: skipped, they serve "
        f"nothing; one pod opts in with the annotation {ANNOTATION_INJECT}: enabled)",
    )
    group.add_argument(
        "--network-policy",
        action="store_true",
        help="add a NetworkPolicy per workload admitting only Envoy's and the status port "
        "(needs a CNI that enforces NetworkPolicy; inject only, the webhook cannot add objects)",
    )
    group.add_argument(
        "--inbound-redirect",
        action="store_true",
        help="add an init container (NET_ADMIN, iptables) that redirects inbound traffic for "
        "the app port to Envoy, like Istio, for apps that cannot listen on 127.0.0.1",
    )


def from_args(args: argparse.Namespace) -> InjectOptions:
    return InjectOptions(
        include_jobs=args.include_jobs,
        network_policy=args.network_policy,
        inbound_redirect=args.inbound_redirect,
        key_env=tuple(args.key_env or ()),
        bypass_readiness=args.bypass_readiness,
        image=args.image,
        envoy_image=args.envoy_image,
        secret=args.secret,
        secret_key=args.secret_key,
        config_map=args.config_map,
        app_port=args.app_port,
    )
