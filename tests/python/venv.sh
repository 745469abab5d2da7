#!/usr/bin/env bash
# Prints the path of a Python that has the package in clients/python
# installed (`pip install ./clients/python`, from PyPI for its
# dependencies), in a virtual environment outside the clone (a cache, like
# the build outputs). It is installed again whenever a file under
# clients/python changes.
#
#   python=$(bash tests/python/venv.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/clients/python"
venv="$HOME/.cache/custody-ledger/venv-python"
mkdir -p "$(dirname "$venv")"
# Tests run in parallel: one installs while the others wait for it. The
# lock is released when this shell exits.
exec 9>"$venv.lock"
flock 9

# What is installed is named by a hash of the package's files.
hash=$(cd "$src" && find . -type f ! -path '*/__pycache__/*' ! -path './build/*' ! -path '*.egg-info/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
stamp="$venv/custody-ledger-src.sha256"
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "venv.sh: making $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ] || ! "$venv/bin/python" -c 'import custody_ledger' >/dev/null 2>&1; then
    echo "venv.sh: installing clients/python into $venv" >&2
    # Built from a copy: an in-tree build would leave build/ and
    # *.egg-info in the clone.
    copy=$(mktemp -d)
    trap 'rm -rf "$copy"' EXIT
    cp -r "$src/." "$copy/"
    rm -rf "$copy/build" "$copy"/*.egg-info
    "$venv/bin/pip" uninstall --quiet --yes custody-ledger >/dev/null 2>&1 || true
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$copy" >&2
    echo "$hash" >"$stamp"
fi
echo "$venv/bin/python"
