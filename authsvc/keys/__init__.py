"""Where keys come from (sources, resolution, reload) and the immutable ring they land in.

Cold path: ``resolve(config, environ) -> Resolution`` reads every layer and applies the one
rule (``resolve_readings``, pure); ``Reloader`` re-runs it on file changes and swaps the
``KeyStore``. Hot path: ``KeyRing`` / ``KeyStore`` only.
"""

# Import cycle note: authz._decide imports keys._ring while this package initialises, and
# _sources imports authsvc.config, which imports leaf modules by full path (_ring, _secret, authz's
# _credentials/_policy), never names from a half-initialised package: any import order works.
from authsvc.keys._reading import MIN_KEY_LENGTH, WEAK_KEYS, Reading, Role, State, assess
from authsvc.keys._reload import Reloader, rejection
from authsvc.keys._resolve import ExtraKeyReadings, Resolution, resolve_readings
from authsvc.keys._ring import KeyRecord, KeyRing, KeyStore, PathRule, digest, fingerprint
from authsvc.keys._secret import Secret
from authsvc.keys._sources import resolve

__all__ = [
    "MIN_KEY_LENGTH",
    "WEAK_KEYS",
    "ExtraKeyReadings",
    "KeyRecord",
    "KeyRing",
    "KeyStore",
    "PathRule",
    "Reading",
    "Reloader",
    "Resolution",
    "Role",
    "Secret",
    "State",
    "assess",
    "digest",
    "fingerprint",
    "rejection",
    "resolve",
    "resolve_readings",
]
