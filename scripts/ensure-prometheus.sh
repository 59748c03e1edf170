#!/bin/sh
# Install Debian's `prometheus` package (prometheus + promtool) when promtool is missing.
# Used by `make test`: the alert-rule tests and the real-Prometheus dashboard test need both.
#
# - Only when promtool is absent: a machine that has it is left alone.
# - Only as root with apt-get (CI runs `make test` as root on a fresh Debian): otherwise it
#   prints what to run and succeeds, and the Prometheus tests skip saying why.
# - No daemon is started: the package's postinst asks invoke-rc.d to start prometheus;
#   a policy-rc.d that answers 101 ("do not run") is put in place for the install when the
#   machine has none (Debian's documented mechanism, the one Docker images ship), then removed.
set -eu
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-prometheus: promtool not found; install it with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends prometheus" >&2
    echo "  (the Prometheus tests skip until then)" >&2
    exit 0
fi
policy=/usr/sbin/policy-rc.d
created=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created=1
fi
trap 'if [ -n "$created" ]; then rm -f "$policy"; fi' EXIT
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends prometheus >/dev/null
echo "ensure-prometheus: installed $(promtool --version 2>&1 | head -1) in $(( $(date +%s) - start ))s"
