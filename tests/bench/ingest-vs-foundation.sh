#!/usr/bin/env bash
# Ingest of this checkout against an earlier build (commit $FOUNDATION,
# default the last commit of the foundation issue; pass the previous
# commit to check a change does not regress), in the same run: both
# release builds, alternating runs on fresh servers, same load
# configurations. Each round also measures this machine's Ed25519
# verification ceiling on all cores (`custody bench-verify`, the
# sequencer's own verification path), so ingest can be quoted as a
# fraction of it. Prints one JSON line per run; quote medians and the
# ratios current/foundation and ingest/ceiling.
#
#   tests/bench/ingest-vs-foundation.sh
#   RUNS=5 FOUNDATION=<commit> tests/bench/ingest-vs-foundation.sh
#   MIXED=1 FOUNDATION=<commit> tests/bench/ingest-vs-foundation.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target}"
FOUNDATION="${FOUNDATION:-2637c33}"
RUNS="${RUNS:-3}"

. tests/bench/builds.sh
FBIN=$(earlier_bins "$FOUNDATION")
CBIN=$(current_bins)

run() { # build-label bin-dir name events concurrency [--stream]
  local label=$1 bin=$2 name=$3 events=$4 conc=$5; shift 5
  local d; d=$(mktemp -d)
  "$bin/custody" keygen --out "$d/owner" >/dev/null
  "$bin/custodyd" init --data "$d/data" --origin bench.example/log --owner-key "$d/owner.pub" >/dev/null
  "$bin/custodyd" serve --data "$d/data" --grpc-addr 127.0.0.1:17300 --http-addr 127.0.0.1:17380 2>"$d/server.log" &
  local pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:17380/checkpoint >/dev/null && break; sleep 0.1; done
  printf '{"build":"%s","config":"%s","result":' "$label" "$name"
  "$bin/custody" load --server http://127.0.0.1:17300 --owner-key "$d/owner.key" \
    --events "$events" --concurrency "$conc" "$@" --json | tr -d '\n'
  echo '}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$d"
}

for r in $(seq "$RUNS"); do
  printf '{"build":"current","config":"bench-verify","result":'
  "$CBIN/custody" bench-verify --signatures 100000 --rounds 3 | tr -d '\n'
  echo '}'
  for b in foundation current; do
    bin=$CBIN; [ "$b" = foundation ] && bin=$FBIN
    run "$b" "$bin" stream-c1 200000 1 --stream
    run "$b" "$bin" unary-c64 60000 64
    # MIXED=1 adds scale.sh's mix (COPYs, bulk CAPTUREs); the foundation
    # build must have `custody load --transfer-percent` (810a6a7 on).
    if [ -n "${MIXED:-}" ]; then
      run "$b" "$bin" stream-mixed 200000 1 --stream --transfer-percent 10 \
        --bulk-every 10000 --bulk-size 1000
    fi
  done
done
