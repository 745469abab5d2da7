#!/usr/bin/env bash
# One bulk CAPTURE of a $MANIFEST-member manifest while a second reporter
# streams $SMALL small CAPTUREs at $RATE/s, builds A and B alternately on
# fresh logs: the bulk event's ack, the small events' ack p50/p99, and
# custodyd's peak RSS during the manifest's upload, its RSS after it, and
# its peak RSS from then on (the bulk event's). One JSON line per run. Not
# part of CI.
#
#   A=<dir with custodyd, custody> B=<dir> [MANIFEST=1000000] [RUNS=2] \
#     [SLICE=n] [LOGS=dir] tests/bench/bulk-ab.sh
#
# SLICE, if set, is passed to `custodyd serve --bulk-slice` (builds before
# 00cc2f9 have no such flag); LOGS keeps each run's
# server log there (set RUST_LOG=info,custodyd::sequencer=debug to see
# the sequencer's slow steps).
set -euo pipefail
: "${A:?}" "${B:?}"
MANIFEST="${MANIFEST:-1000000}"
SMALL="${SMALL:-3000}"
RATE="${RATE:-100}"
RUNS="${RUNS:-2}"
SLICE_ARGS=()
if [ -n "${SLICE:-}" ]; then SLICE_ARGS=(--bulk-slice "$SLICE"); fi
RUN=0
C=$(mktemp -d)
trap 'rm -rf "$C"' EXIT
GRPC=127.0.0.1:17710
HTTP=127.0.0.1:17790
one() { # label bin
  local label=$1 bin=$2
  local d; d=$(mktemp -d -p "$C")
  "$bin/custody" keygen --out "$d/owner" >/dev/null
  "$bin/custodyd" init --data "$d/data" --origin bench.example/log --owner-key "$d/owner.pub" >/dev/null
  "$bin/custodyd" serve --data "$d/data" --grpc-addr $GRPC --http-addr $HTTP \
    "${SLICE_ARGS[@]}" 2>"$d/server.log" &
  local pid=$!
  until curl -sf http://$HTTP/checkpoint >/dev/null; do sleep 0.1; done
  "$bin/custody" load --server http://$GRPC --owner-key "$d/owner.key" --events 1 --stream \
    --bulk-every 1 --bulk-size "$MANIFEST" --json >"$d/bulk.json" 2>"$d/bulk.log" &
  local bulk=$!
  # The small reporter starts once the bulk event is sent (its manifest
  # uploaded), so it runs beside the bulk event's admission.
  until grep -q "load: sending" "$d/bulk.log" 2>/dev/null; do
    kill -0 $bulk 2>/dev/null || { echo "the bulk load exited" >&2; cat "$d/bulk.log" >&2; exit 1; }
    sleep 0.1
  done
  local before; before=$(awk '/VmRSS/ {printf "%d", $2/1024}' /proc/$pid/status)
  # The peak so far is the upload's; reset it, so the next is the event's.
  local upload; upload=$(awk '/VmHWM/ {printf "%d", $2/1024}' /proc/$pid/status)
  echo 5 > /proc/$pid/clear_refs
  "$bin/custody" load --server http://$GRPC --owner-key "$d/owner.key" --events "$SMALL" --stream \
    --rate "$RATE" --json >"$d/small.json" 2>>"$d/small.log"
  wait $bulk
  local hwm; hwm=$(awk '/VmHWM/ {printf "%d", $2/1024}' /proc/$pid/status)
  kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.1; done
  python3 - "$label" "$MANIFEST" "$before" "$hwm" "$d/bulk.json" "$d/small.json" "$upload" "${SLICE:-default}" <<'EOF'
import json, sys
label, manifest, before, hwm, bulk, small, upload, slice = sys.argv[1:]
b, s = json.load(open(bulk)), json.load(open(small))
print(json.dumps({"build": label, "manifest": int(manifest), "slice": slice,
                  "bulk_ack_s": round(b["seconds"], 2),
                  "small_ack_p50_ms": round(s["ack_p50_ms"], 2),
                  "small_ack_p99_ms": round(s["ack_p99_ms"], 2),
                  "small_events_per_sec": round(s["events_per_sec"], 1),
                  "upload_peak_rss_mib": int(upload),
                  "rss_before_mib": int(before), "peak_rss_mib": int(hwm)}))
EOF
  RUN=$((RUN + 1))
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS"; cp "$d/server.log" "$LOGS/$RUN-$label.log"; fi
  rm -rf "$d"
}
for _ in $(seq "$RUNS"); do
  one A "$A"
  one B "$B"
done
