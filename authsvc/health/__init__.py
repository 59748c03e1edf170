"""Side doors of the sidecar: the status port, probe pass-through, deep health and ``verify``.

Wiring (done by ``authsvc serve``)::

    deep = DeepHealth(config.health_check.url, config.policy.protected_health_path,
                      key_provider=..., interval=config.health_check.interval)
    status = StatusServer(listen, readiness=all_ready(key_ready, deep.readiness),
                          metrics=None, probes=probes_from_env(os.environ))
    status.start(); deep.start()   ...   deep.stop(); status.stop()

Nothing here imports the decision code: the status port cannot run an auth check.
"""

from authsvc.health._bypass import (
    ENV_APP_PORT,
    ENV_POD_IPS,
    BypassDetector,
    BypassTarget,
    Reach,
    detector_from_args,
    probe_port,
    target_from_env,
)
from authsvc.health._bypass import add_arguments as add_bypass_arguments
from authsvc.health._deep import (
    AUTHSVC_REASON_HEADER,
    DeepHealth,
    DeepResult,
    KeyProvider,
    SupportsReveal,
    Verdict,
    classify,
    deep_readiness,
    key_header,
    key_header_name,
)
from authsvc.health._probes import (
    PROBES_ENV,
    ProbeForwarder,
    ProbeOutcome,
    ProbeTarget,
    parse_probes,
    probes_from_env,
)
from authsvc.health._status import Metrics, Readiness, StatusServer, all_ready, parse_listen

__all__ = [
    "AUTHSVC_REASON_HEADER",
    "ENV_APP_PORT",
    "ENV_POD_IPS",
    "PROBES_ENV",
    "BypassDetector",
    "BypassTarget",
    "DeepHealth",
    "DeepResult",
    "KeyProvider",
    "Metrics",
    "ProbeForwarder",
    "ProbeOutcome",
    "ProbeTarget",
    "Reach",
    "Readiness",
    "StatusServer",
    "SupportsReveal",
    "Verdict",
    "add_bypass_arguments",
    "all_ready",
    "classify",
    "deep_readiness",
    "detector_from_args",
    "key_header",
    "key_header_name",
    "parse_listen",
    "parse_probes",
    "probe_port",
    "probes_from_env",
    "target_from_env",
]
