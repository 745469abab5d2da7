#!/usr/bin/env bash
# Reproduces the `custody load` figures in BENCHMARKS.md: each run starts a
# freshly initialised custodyd (release build) on a temp dir, runs one load
# configuration, and prints one JSON line. Each configuration runs RUNS
# times (default 3); quote the median.
#
#   tests/bench/load.sh            # all configurations
#   RUNS=1 tests/bench/load.sh     # quicker
#   ONLY=stream-c1-half-load tests/bench/load.sh   # one configuration
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target}"
cargo build --release --bins --locked >&2
BIN="$CARGO_TARGET_DIR/release"
RUNS="${RUNS:-3}"

run() { # name events concurrency [--stream]
  local name=$1 events=$2 conc=$3; shift 3
  if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ]; then return; fi
  for r in $(seq "$RUNS"); do
    local d; d=$(mktemp -d)
    "$BIN/custody" keygen --out "$d/owner" >/dev/null
    "$BIN/custodyd" init --data "$d/data" --origin bench.example/log --owner-key "$d/owner.pub" >/dev/null
    "$BIN/custodyd" serve --data "$d/data" --grpc-addr 127.0.0.1:17300 --http-addr 127.0.0.1:17380 2>"$d/server.log" &
    local pid=$!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:17380/checkpoint >/dev/null && break; sleep 0.1; done
    printf '{"config":"%s","run":%d,"result":' "$name" "$r"
    "$BIN/custody" load --server http://127.0.0.1:17300 --owner-key "$d/owner.key" \
      --events "$events" --concurrency "$conc" "$@" --json | tr -d '\n'
    echo '}'
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$d"
  done
}

run unary-c1 3000 1
run unary-c16 30000 16
run unary-c64 60000 64
run stream-c1 200000 1 --stream
run stream-c4 200000 4 --stream
# About half the saturated streaming rate, for DESIGN §9's ack p99 target.
run stream-c1-half-load 200000 1 --stream --rate 20000
