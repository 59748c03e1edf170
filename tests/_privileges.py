"""Run a piece of Python without root's file-permission override (for "unreadable" tests).

CI runs the suite as root, and root reads a mode-000 file anyway (CAP_DAC_OVERRIDE), so a test
of the permission-denied branch that simply ``chmod 0``s a file would test nothing there.
As root, the snippet runs in a child under util-linux ``setpriv`` with every capability
dropped (effective, permitted, inheritable, ambient and the bounding set): it keeps uid 0, so it
still reads the worktree and the virtualenv (owned by root), but a mode-000 file is refused
exactly as for any other user. As another user, the snippet runs the same way without
``setpriv`` (no override to drop). The child reports whether it really had no capabilities,
so a ``setpriv`` that silently did nothing fails the test instead of passing it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

__all__ = ["run_without_dac_override"]

_PRELUDE = """
import json, sys
def _cap_eff():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return None
"""


def run_without_dac_override(snippet: str, **names: Any) -> dict[str, Any]:
    """Run ``snippet`` (which assigns ``result``, a JSON-able value) in a capability-less child.

    ``names`` are passed to it as JSON-decoded globals. Returns ``{"result": ..., "cap_eff":
    int, "uid": int}``; raises ``AssertionError`` with the child's stderr when it fails.
    """
    code = "\n".join(
        [
            _PRELUDE,
            f"globals().update(json.loads({json.dumps(json.dumps(names))}))",
            snippet,
            "import os",
            'print(json.dumps({"result": result, "cap_eff": _cap_eff(), "uid": os.getuid()}))',
        ]
    )
    argv = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, (
            "running as root: util-linux `setpriv` is needed to drop CAP_DAC_OVERRIDE "
            "(apt-get install util-linux)"
        )
        argv = [
            setpriv,
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
            "--",
            *argv,
        ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stderr}"
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["cap_eff"] == 0, f"the child still has capabilities: CapEff={out['cap_eff']:#x}"
    return out
