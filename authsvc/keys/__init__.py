"""Where keys come from (sources, resolution, reload) and the immutable ring they land in."""

from authsvc.keys._ring import KeyRecord, KeyRing, KeyStore, PathRule, digest, fingerprint

__all__ = ["KeyRecord", "KeyRing", "KeyStore", "PathRule", "digest", "fingerprint"]
