#!/usr/bin/env bash
# Starts Custody Ledger on its embedded RocksDB, seeded with the border-
# crossing scenario (`custody-demo`), prints the subcontractor network's
# breach scope and how to inspect it, and keeps serving until Ctrl-C.
# Installs missing system packages and builds first.
#
#   DATA=./custody-demo GRPC=127.0.0.1:7100 HTTP=127.0.0.1:7180 SEED=2019 deploy/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target}"
echo "building (release; the first build compiles RocksDB and takes a while)..." >&2
cargo build --release --bins --locked
BIN="$CARGO_TARGET_DIR/release"

DATA="${DATA:-./custody-demo}"
GRPC="${GRPC:-127.0.0.1:7100}"
HTTP="${HTTP:-127.0.0.1:7180}"
SEED="${SEED:-2019}"

echo "the custody CLI is $BIN/custody" >&2
export PATH="$BIN:$PATH"
exec "$BIN/custody-demo" --data "$DATA" --grpc-addr "$GRPC" --http-addr "$HTTP" \
  --seed "$SEED"
