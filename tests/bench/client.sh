#!/usr/bin/env bash
# Throughput through the client library (`crates/custody-client`: build
# and sign each event, spool it with fsync, stream it, record each answer
# with fsync) against raw streaming (`custody load --stream`: events signed
# in advance on all cores, one AppendStream, nothing kept), on one freshly
# initialised custodyd (release build), alternating the two ROUNDS times
# (default 4), so the machine's noise falls on both. Prints one JSON line per run and a
# summary with the medians and their ratio (client / raw); saves the lines
# to tests/bench/results/client-<date>.jsonl.
#
#   tests/bench/client.sh
#   EVENTS=50000 ROUNDS=1 tests/bench/client.sh     # quicker
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target-rel}"
cargo build --release --workspace --bins >&2
BIN="$CARGO_TARGET_DIR/release"
EVENTS="${EVENTS:-100000}"
ROUNDS="${ROUNDS:-4}"
GRPC=127.0.0.1:17700
HTTP=127.0.0.1:17780

d=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$d"
}
trap cleanup EXIT

"$BIN/custody" keygen --out "$d/owner" >/dev/null
"$BIN/custodyd" init --data "$d/data" --origin bench.example/log --owner-key "$d/owner.pub" >/dev/null
"$BIN/custodyd" serve --data "$d/data" --grpc-addr "$GRPC" --http-addr "$HTTP" 2>"$d/server.log" &
pid=$!
for _ in $(seq 100); do curl -sf "http://$HTTP/checkpoint" >/dev/null && break; sleep 0.1; done

mkdir -p tests/bench/results
out="tests/bench/results/client-$(date -u +%F).jsonl"
: >"$out"
raw() {
  local r=$1 res
  res=$("$BIN/custody" load --server "http://$GRPC" --owner-key "$d/owner.key" \
    --events "$EVENTS" --concurrency 1 --stream --json | tr -d '\n')
  echo "{\"round\":$r,\"mode\":\"raw\",\"result\":$res}" | tee -a "$out"
}
client() {
  local r=$1 res spool="$d/spool-$r"
  "$BIN/custody" report-captures --setup --server "http://$GRPC" \
    --owner-key "$d/owner.key" --spool "$spool" >/dev/null
  res=$("$BIN/custody" report-captures --server "http://$GRPC" --spool "$spool" --events "$EVENTS")
  echo "{\"round\":$r,\"mode\":\"client\",\"result\":$res}" | tee -a "$out"
}
# The log grows as the rounds run, and a larger log is a little slower:
# the order alternates so that neither mode always runs on the larger.
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then raw "$r"; client "$r"; else client "$r"; raw "$r"; fi
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
raw = [r["result"]["events_per_sec"] for r in rows if r["mode"] == "raw"]
cli = [r["result"]["events_per_sec"] for r in rows if r["mode"] == "client"]
a, b = statistics.median(raw), statistics.median(cli)
print(json.dumps({"raw_events_per_sec": raw, "client_events_per_sec": cli,
                  "median_raw": round(a), "median_client": round(b),
                  "ratio": round(b / a, 3), "target": 0.9, "meets_target": b / a >= 0.9}))
PY
echo "client: saved $out" >&2
