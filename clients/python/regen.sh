#!/usr/bin/env bash
# Regenerates the protobuf and gRPC stubs of the Python package from
# proto/custody/v1/*.proto, with grpcio-tools pinned below (its protoc and
# gRPC plugin decide the output; the version is what keeps it stable).
#
#   bash clients/python/regen.sh          # rewrites clients/python/custody_ledger/v1/
#   bash clients/python/regen.sh OUT      # writes OUT/custody_ledger/v1/ instead
#   bash clients/python/regen.sh --check  # fails if the checked-in stubs drifted
#
# protoc names modules after the proto path (`from custody.v1 import
# log_pb2`); the stubs live in the package `custody_ledger.v1`, so the
# generated import is made relative and the module name is fixed up.
# The proto file keeps its own name, custody/v1/log.proto, in the
# descriptor pool.
#
# grpcio-tools 1.71.0 emits protobuf 5.29.0 gencode, which runs on
# protobuf 5.29.1 and later (6.x warns once, at import, that the gencode
# is a major version older; 7.x accepts it), and gRPC stubs that need
# grpcio >= 1.71.0: pyproject.toml's minimums follow it. A newer pin
# raises those minimums.
set -euo pipefail

GRPCIO_TOOLS_VERSION=1.71.0

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
check=false
case "${1:-}" in
    --check) check=true; out=$(mktemp -d) ;;
    "") out=$here ;;
    *) mkdir -p "$1"; out=$(cd "$1" && pwd) ;;
esac

# The generator lives in a virtual environment outside the clone (a
# cache, like the build outputs). Tests run in parallel: one installs
# while the others wait (the lock is released when this shell exits).
venv="$HOME/.cache/custody-ledger/venv-grpcio-tools"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null)" != "$GRPCIO_TOOLS_VERSION" ]; then
    echo "regen.sh: installing grpcio-tools==$GRPCIO_TOOLS_VERSION into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "grpcio-tools==$GRPCIO_TOOLS_VERSION" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"; if $check; then rm -rf "$out"; fi' EXIT
"$venv/bin/python" -m grpc_tools.protoc -I"$root/proto" \
    --python_out="$work" --pyi_out="$work" --grpc_python_out="$work" \
    "$root"/proto/custody/v1/*.proto

# `fix FILE OLD NEW`: replaces OLD by NEW in FILE, failing if OLD is not
# there (a newer generator that writes otherwise must be looked at).
fix() {
    grep -qF -- "$2" "$1" || { echo "regen.sh: '$2' not found in $1; update the fix-ups for this grpcio-tools" >&2; exit 1; }
    local tmp="$1.fix"
    OLD="$2" NEW="$3" "$venv/bin/python" - "$1" "$tmp" <<'PY'
import os, sys
text = open(sys.argv[1], encoding="utf-8").read()
open(sys.argv[2], "w", encoding="utf-8").write(text.replace(os.environ["OLD"], os.environ["NEW"]))
PY
    mv "$tmp" "$1"
}
gen="$work/custody/v1"
fix "$gen/log_pb2_grpc.py" "from custody.v1 import log_pb2 as" "from . import log_pb2 as"
fix "$gen/log_pb2.py" "'custody.v1.log_pb2'" "'custody_ledger.v1.log_pb2'"

dest="$out/custody_ledger/v1"
mkdir -p "$dest"
for f in log_pb2.py log_pb2.pyi log_pb2_grpc.py; do
    if $check; then
        if ! cmp -s "$gen/$f" "$here/custody_ledger/v1/$f"; then
            echo "regen.sh: clients/python/custody_ledger/v1/$f differs from what proto/ generates; run: bash clients/python/regen.sh" >&2
            exit 1
        fi
    else
        cp "$gen/$f" "$dest/$f"
    fi
done
if $check; then
    echo "regen.sh: the stubs match proto/ (grpcio-tools $GRPCIO_TOOLS_VERSION)"
fi
