#!/usr/bin/env bash
# Starts Custody Ledger on its embedded RocksDB with a small demo, then keeps
# serving until Ctrl-C. Installs missing system packages and builds first.
#
#   DATA=./custody-data GRPC=127.0.0.1:7100 HTTP=127.0.0.1:7180 deploy/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target}"
echo "building (release; the first build compiles RocksDB and takes a while)..." >&2
cargo build --release --bins --locked
BIN="$CARGO_TARGET_DIR/release"

DATA="${DATA:-./custody-data}"
GRPC="${GRPC:-127.0.0.1:7100}"
HTTP="${HTTP:-127.0.0.1:7180}"
ORIGIN="${ORIGIN:-demo.custody-ledger.example/log}"

if [ ! -f "$DATA/log.key" ]; then
  mkdir -p "$DATA"
  [ -f "$DATA/owner.key" ] || "$BIN/custody" keygen --out "$DATA/owner"
  "$BIN/custodyd" init --data "$DATA" --origin "$ORIGIN" --owner-key "$DATA/owner.pub" >/dev/null
fi

"$BIN/custodyd" serve --data "$DATA" --grpc-addr "$GRPC" --http-addr "$HTTP" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do
  curl -sf "http://$HTTP/checkpoint" >/dev/null 2>&1 && break
  sleep 0.1
done

echo
echo "== demo: a lane camera registers and reports 2,000 signed captures"
"$BIN/custody" load --server "http://$GRPC" --owner-key "$DATA/owner.key" --events 2000 --concurrency 4 --stream
echo
echo "== the signed checkpoint (C2SP tlog-checkpoint), from http://$HTTP/checkpoint"
curl -s "http://$HTTP/checkpoint"
echo
echo "== an auditor verifies entry 5 offline against the pinned log key"
"$BIN/custody" prove inclusion --server "http://$GRPC" --index 5 --out "$DATA/entry5.proof.json" >/dev/null
"$BIN/custody" verify "$DATA/entry5.proof.json" --log-key "$DATA/log.vkey"
echo
echo "== a monitor pins the checkpoint and will prove every later one extends it"
"$BIN/custody" monitor --url "http://$HTTP" --log-key "$DATA/log.vkey" --state "$DATA/monitor.state" --once
cat <<INFO

Custody Ledger is serving:
  gRPC      http://$GRPC   (custody.v1.CustodyLog, health, reflection)
  tiles     http://$HTTP/checkpoint, /tile/<L>/<N>, /tile/entries/<N>
  log key   $DATA/log.vkey: $(cat "$DATA/log.vkey")
Try:
  $BIN/custody monitor --url http://$HTTP --log-key $DATA/log.vkey --state $DATA/monitor.state
  $BIN/custody load --server http://$GRPC --owner-key $DATA/owner.key --events 50000 --concurrency 4 --stream
Ctrl-C stops the server.
INFO
wait $SERVER
