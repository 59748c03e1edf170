"""The hint ``explain`` and ``verify`` print when no master key resolved but ``make run``'s
demo key is right there (``.authsvc/master.key``): a new user's first stumble."""

from __future__ import annotations

import os

from authsvc._defaults import DEMO_KEY_FILE

__all__ = ["demo_key_hint"]


def demo_key_hint(command: str, master_key_file: str | None, cwd: str | None = None) -> str | None:
    """``hint: ...`` naming ``--master-key-file .authsvc/master.key``, or ``None`` when that
    file is absent here or a key file was already given."""
    if master_key_file is not None:
        return None
    if not os.path.isfile(os.path.join(cwd or os.getcwd(), DEMO_KEY_FILE)):
        return None
    return (
        f"hint: `make run` (authsvc up) keeps its demo master key in {DEMO_KEY_FILE}; "
        f"try: authsvc {command} --master-key-file {DEMO_KEY_FILE}"
    )
