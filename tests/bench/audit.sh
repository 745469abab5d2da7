#!/usr/bin/env bash
# Reproduces the `custody audit` figure (DESIGN §9: a replay with every
# signature and hash checked at >= 80,000 entries/s). Each run starts a
# freshly initialised custodyd (release build) on a temp dir, loads it with
# `custody load --stream --events $EVENTS`, then runs `custody audit` over
# the tile API and prints one JSON line: the audit's own report (its
# `entries_per_sec` covers fetching, hashing, signature checks and the
# replay, from the first tile to the last verdict) and the wall-clock time
# of the whole command. RUNS runs (default 3); quote the median.
#
#   tests/bench/audit.sh                 # 3 runs of 200,000 events
#   RUNS=1 EVENTS=50000 tests/bench/audit.sh
#   SERVER=1 tests/bench/audit.sh        # also compare with the server
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target}"
[ -n "${NO_BUILD:-}" ] || cargo build --release --bins --locked >&2
BIN="$CARGO_TARGET_DIR/release"
RUNS="${RUNS:-3}"
EVENTS="${EVENTS:-200000}"
GRPC=127.0.0.1:17310
HTTP=127.0.0.1:17390

size() { curl -sf "http://$HTTP/checkpoint" | sed -n 2p; }

for r in $(seq "$RUNS"); do
  d=$(mktemp -d)
  "$BIN/custody" keygen --out "$d/owner" >/dev/null
  "$BIN/custodyd" init --data "$d/data" --origin bench.example/log --owner-key "$d/owner.pub" >/dev/null
  "$BIN/custodyd" serve --data "$d/data" --grpc-addr "$GRPC" --http-addr "$HTTP" 2>"$d/server.log" &
  pid=$!
  for _ in $(seq 100); do size >/dev/null && break; sleep 0.1; done
  "$BIN/custody" load --server "http://$GRPC" --owner-key "$d/owner.key" \
    --events "$EVENTS" --stream --json >"$d/load.json"
  # Genesis, the load party's registration (party, system, key) and the
  # events: wait until a checkpoint covers them all.
  for _ in $(seq 100); do [ "$(size)" -ge $((EVENTS + 4)) ] && break; sleep 0.1; done
  extra=()
  if [ -n "${SERVER:-}" ]; then extra=(--server "http://$GRPC"); fi
  start=$(date +%s.%N)
  "$BIN/custody" audit --url "http://$HTTP" --log-key "$d/data/log.vkey" "${extra[@]}" \
    --json >"$d/audit.json"
  end=$(date +%s.%N)
  printf '{"run":%d,"events":%d,"wall_seconds":%.2f,"audit":%s}\n' \
    "$r" "$EVENTS" "$(echo "$end - $start" | bc -l)" "$(tr -d '\n' <"$d/audit.json")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$d"
done
