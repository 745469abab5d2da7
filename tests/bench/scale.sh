#!/usr/bin/env bash
# The scale run of issue 9 (not part of CI): grow one log to 10,000,000
# entries with `custody load --stream` (single CAPTUREs, COPYs of them to a
# second system, and bulk CAPTUREs through manifests), and at each size in
# $SIZES record, one JSON line each:
#   ingest   events/s of each load step, and peak RSS (VmHWM) of custodyd
#   queries  `custody bench-queries`: AssetHistory, HoldersAt, BreachScope
#            over a system of $BULK assets (p50/p99)
#   proofs   `custody bench-proofs`: inclusion proofs/s and latency
#   restart  SIGKILL, restart, seconds until `inspect findings` answers,
#            and the restarted server's peak RSS
#   disk     bytes of the database before and after `custodyd compact`,
#            against the signed events' bytes
# Then one bulk CAPTURE of a $MANIFEST-member manifest while a second
# reporter streams small events at 100/s: their ack latency, and RSS.
# Draws the charts with tests/bench/plot_scale.py.
#
#   tests/bench/scale.sh                         # 100k, 1M, 10M
#   SIZES="100000 1000000" tests/bench/scale.sh  # a shorter run
#   OUT=DIR keeps the JSON lines and data there (default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/custody-ledger/target}"
SIZES="${SIZES:-100000 1000000 10000000}"
STEP="${STEP:-1000000}"            # events per `custody load` call
TRANSFER_PERCENT="${TRANSFER_PERCENT:-10}"
BULK_EVERY="${BULK_EVERY:-10000}"
BULK_SIZE="${BULK_SIZE:-1000}"
BULK="${BULK:-100000}"             # assets on the BreachScope system
MANIFEST="${MANIFEST:-1000000}"    # members of the last bulk event
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT/bin"
RESULTS="$OUT/scale.jsonl"

. tests/bench/builds.sh
# Copied, so a rebuild of this checkout during the run cannot swap them.
cp "$(current_bins)"/{custodyd,custody} "$OUT/bin/"
BIN="$OUT/bin"
GRPC=127.0.0.1:17500
HTTP=127.0.0.1:17580
URL="http://$GRPC"
D="$OUT/data"

emit() { echo "$1" | tee -a "$RESULTS"; }
hwm_mib() { awk '/VmHWM/ {printf "%d", $2/1024}' "/proc/$1/status"; }
size_now() { curl -sf "http://$HTTP/checkpoint" | sed -n 2p; }
serve() {
  "$BIN/custodyd" serve --data "$D" --grpc-addr "$GRPC" --http-addr "$HTTP" \
    >/dev/null 2>>"$OUT/custodyd.log" &
  echo $!
}
wait_findings() { # pid
  until "$BIN/custody" inspect findings --server "$URL" --json >/dev/null 2>&1; do
    kill -0 "$1" 2>/dev/null || { echo "custodyd $1 exited" >&2; exit 1; }
    sleep 0.05
  done
}
stop() { # pid signal: the server is not this shell's child, so poll
  kill "-$2" "$1"
  while kill -0 "$1" 2>/dev/null; do sleep 0.05; done
}

rm -rf "$D" && : >"$RESULTS"
"$BIN/custody" keygen --out "$OUT/owner" >/dev/null
"$BIN/custodyd" init --data "$D" --origin scale.example/log --owner-key "$OUT/owner.pub" >/dev/null
pid=$(serve)
for _ in $(seq 100); do size_now >/dev/null && break; sleep 0.1; done
signed=0
for target in $SIZES; do
  while :; do
    have=$(size_now)
    [ "$have" -lt "$target" ] || break
    n=$(( target - have < STEP ? target - have : STEP ))
    "$BIN/custody" load --server "$URL" --owner-key "$OUT/owner.key" --events "$n" \
      --stream --transfer-percent "$TRANSFER_PERCENT" --bulk-every "$BULK_EVERY" \
      --bulk-size "$BULK_SIZE" --json >"$OUT/load.json" 2>>"$OUT/load.log"
    signed=$(( signed + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["signed_bytes"])' "$OUT/load.json") ))
    emit "{\"phase\":\"ingest\",\"target\":$target,\"size\":$(size_now),\"peak_rss_mib\":$(hwm_mib "$pid"),\"load\":$(tr -d '\n' <"$OUT/load.json")}"
  done
  size=$(size_now)
  "$BIN/custody" bench-queries --server "$URL" --owner-key "$OUT/owner.key" \
    --bulk-assets "$BULK" --manifest-size "$BULK" --iterations 50 >"$OUT/q.json" 2>>"$OUT/load.log"
  emit "{\"phase\":\"queries\",\"target\":$target,\"size\":$size,\"peak_rss_mib\":$(hwm_mib "$pid"),\"report\":$(tr -d '\n' <"$OUT/q.json")}"
  "$BIN/custody" bench-proofs --server "$URL" --log-key "$D/log.vkey" --seconds 10 \
    --concurrency 8 >"$OUT/p.json"
  emit "{\"phase\":\"proofs\",\"target\":$target,\"peak_rss_mib\":$(hwm_mib "$pid"),\"report\":$(tr -d '\n' <"$OUT/p.json")}"
  stop "$pid" KILL
  t0=$(date +%s.%N); pid=$(serve); wait_findings "$pid"; t1=$(date +%s.%N)
  emit "{\"phase\":\"restart\",\"target\":$target,\"after\":\"SIGKILL\",\"seconds_to_findings\":$(printf %.3f "$(echo "$t1 - $t0" | bc)"),\"peak_rss_mib\":$(hwm_mib "$pid")}"
  stop "$pid" TERM
  before=$(du -sb "$D/db" | cut -f1)
  "$BIN/custodyd" compact --data "$D" >/dev/null
  after=$(du -sb "$D/db" | cut -f1)
  emit "{\"phase\":\"disk\",\"target\":$target,\"size\":$size,\"db_bytes\":$before,\"db_bytes_compacted\":$after,\"signed_bytes\":$signed}"
  t0=$(date +%s.%N); pid=$(serve); wait_findings "$pid"; t1=$(date +%s.%N)
  emit "{\"phase\":\"restart\",\"target\":$target,\"after\":\"compaction\",\"seconds_to_findings\":$(printf %.3f "$(echo "$t1 - $t0" | bc)"),\"peak_rss_mib\":$(hwm_mib "$pid")}"
done

# One bulk event of $MANIFEST members, with a small reporter beside it.
"$BIN/custody" load --server "$URL" --owner-key "$OUT/owner.key" --events 1 --stream \
  --bulk-every 1 --bulk-size "$MANIFEST" --json >"$OUT/bulk.json" 2>"$OUT/bulk.log" &
bulk=$!
until grep -q "load: sending" "$OUT/bulk.log" 2>/dev/null; do
  kill -0 "$bulk" 2>/dev/null || { echo "the bulk load exited" >&2; cat "$OUT/bulk.log" >&2; exit 1; }
  sleep 0.2
done
rss_before=$(awk '/VmRSS/ {printf "%d", $2/1024}' "/proc/$pid/status")
"$BIN/custody" load --server "$URL" --owner-key "$OUT/owner.key" --events 3000 --stream \
  --rate 100 --json >"$OUT/small.json" 2>>"$OUT/load.log"
wait "$bulk"
emit "{\"phase\":\"bulk\",\"manifest\":$MANIFEST,\"rss_before_mib\":$rss_before,\"peak_rss_mib\":$(hwm_mib "$pid"),\"bulk\":$(tr -d '\n' <"$OUT/bulk.json"),\"small\":$(tr -d '\n' <"$OUT/small.json")}"
stop "$pid" TERM
python3 tests/bench/plot_scale.py "$RESULTS" tests/bench/charts || echo "charts not drawn (see above)" >&2
echo "results: $RESULTS"
