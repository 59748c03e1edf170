"""``make bench``: authsvc through a real Envoy, side by side with Envoy's native key filter.

Run ``python -m authsvc.bench --help``. Results and method: docs/performance.md.
"""

from authsvc.bench._cli import main

__all__ = ["main"]
